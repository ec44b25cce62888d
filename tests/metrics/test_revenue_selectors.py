"""The revenue selectors against figures computed by hand (SPEC 4), on the portfolio of test_revenue."""

import ast
import datetime
from decimal import Decimal
from pathlib import Path

import hypothesis
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import strategies as st

from accounts.models import Account, Tier
from csm.exceptions import DomainError
from metrics.history import FIGURES, SegmentKind, load_history, month_index, month_start
from metrics.models import RevenueMonth
from metrics.selectors import revenue as selectors
from metrics.services.revenue import revenue_recompute
from success_plans.models import Goal, SuccessPlan
from tests import factories
from tests.metrics.reference import STORED_FIGURES, Reference
from tests.metrics.test_revenue import LINES

D = datetime.date
# Month-end MRR now (2026-02) of each account of LINES: A, D and H have churned.
CURRENT_MRR = {"A": 0, "B": 1200, "C": 1500, "D": 0, "E": 400, "F": 1000, "G": 600, "H": 0, "I": 1150, "J": 250}
# Churn events recorded for the portfolio's churns, dated on the exclusive end of the last line (as the
# account service records them): D in August, H in December. E's churn in May has no recorded reason.
CHURN_EVENTS = {"D": [(D(2025, 8, 1), "Budget cuts")], "H": [(D(2025, 12, 31), "Budget cuts")]}


def build_portfolio(lines: dict, prefix: str = "", churns: dict | None = None, **fields) -> dict[str, Account]:
    churns = CHURN_EVENTS if churns is None else churns
    accounts = {}
    for name, (tier, region, account_lines) in lines.items():
        account = factories.AccountFactory(
            name=f"{prefix}{name}",
            external_id=f"{prefix}{name}",
            tier=factories.default_tier(tier) if tier else None,
            region=region,
            mrr=Decimal(CURRENT_MRR.get(name, 0)),
            **fields,
        )
        for product, mrr, start, end in account_lines:
            factories.SubscriptionFactory(
                account=account, product=product, mrr=Decimal(mrr), start_date=start, end_date=end
            )
        for churned_on, reason in churns.get(name, []):
            factories.ChurnEventFactory(account=account, churned_on=churned_on, reason=reason)
        accounts[name] = account
    return accounts


@pytest.fixture
def portfolio(db) -> dict[str, Account]:
    return build_portfolio(LINES)


@pytest.fixture
def bridge(portfolio) -> dict[str, Account]:
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
    return portfolio


def stored(month: D, kind: str = "all", segment: str = "") -> RevenueMonth:
    return RevenueMonth.objects.get(month=month, segment_kind=kind, segment=segment)


# --- trailing retention ---------------------------------------------------------------------------


def test_trailing_retention_computed_at_2026_01_over_the_accounts_paying_in_2025_01(portfolio):
    result = selectors.trailing_retention_computed(month=D(2026, 1, 1))
    # Paying at the end of 2025-01: B 1000, C 2000, D 500, F 800, H 700, I 1000, J 250 = 6250
    # (A pays only inside March, E starts in February, G in March).
    # At the end of 2026-01: B 1200, C 1500, D 0, F 1000, H 0, I 1150, J 250 = 5100 -> NRR 5100 / 6250 = 0.816
    # Capped at 2025-01: B 1000, C 1500, D 0, F 800, H 0, I 1000, J 250 = 4550 -> GRR 4550 / 6250 = 0.728
    assert result == {"": {"nrr": Decimal("0.816"), "grr": Decimal("0.728"), "base_mrr": Decimal(6250), "accounts": 7}}
    # High touch B C F I: 4800 -> 4850, capped 4300; Low touch D H J: 1450 -> 250.
    assert selectors.trailing_retention_computed(month=D(2026, 1, 1), segment_kind="tier") == {
        "High touch": {
            "nrr": Decimal("1.010417"),
            "grr": Decimal("0.895833"),
            "base_mrr": Decimal(4800),
            "accounts": 4,
        },
        "Low touch": {"nrr": Decimal("0.172414"), "grr": Decimal("0.172414"), "base_mrr": Decimal(1450), "accounts": 3},
    }


def test_trailing_retention_reads_the_stored_figures(bridge):
    # The figures of test_revenue.TRAILING, from the stored rows.
    assert selectors.trailing_retention(month=D(2026, 2, 1)) == {
        "": {"nrr": Decimal("0.839695"), "grr": Decimal("0.740458")}
    }
    assert selectors.trailing_retention(month=D(2026, 2, 1), segment_kind="region") == {
        "APAC": {"nrr": Decimal("0.924242"), "grr": Decimal("0.848485")},
        "EMEA": {"nrr": Decimal("0.753846"), "grr": Decimal("0.630769")},
    }
    # A stored month without a base a year before; a month not stored.
    assert selectors.trailing_retention(month=D(2025, 6, 1)) == {"": {"nrr": None, "grr": None}}
    assert selectors.trailing_retention(month=D(2026, 3, 1)) == {}
    # What is read is what is stored: a stale row is read as it is, not recomputed.
    RevenueMonth.objects.filter(month=D(2026, 2, 1), segment_kind="all").update(trailing_nrr=Decimal("0.5"))
    assert selectors.trailing_retention(month=D(2026, 2, 1))[""]["nrr"] == Decimal("0.5")


def test_stored_and_computed_trailing_retention_agree_for_every_segment(bridge):
    history = load_history(until=D(2026, 2, 1))
    for month in (D(2025, 12, 1), D(2026, 1, 1), D(2026, 2, 1)):
        for kind in ("all", "tier", "industry", "region", "owner"):
            stored_figures = selectors.trailing_retention(month=month, segment_kind=kind)
            computed = selectors.trailing_retention_computed(month=month, segment_kind=kind, history=history)
            with_base = {segment: value for segment, value in stored_figures.items() if value["nrr"] is not None}
            if kind == "all":
                with_base.setdefault("", {"nrr": None, "grr": None})
            assert with_base == {s: {"nrr": v["nrr"], "grr": v["grr"]} for s, v in computed.items()}, (month, kind)


def test_trailing_retention_is_empty_without_a_base_and_refuses_months_past_the_history(portfolio):
    history = load_history(until=D(2026, 2, 1))
    # Nobody paid in 2024-06.
    assert selectors.trailing_retention_computed(month=D(2025, 6, 1), history=history) == {
        "": {"nrr": None, "grr": None, "base_mrr": Decimal(0), "accounts": 0}
    }
    assert selectors.trailing_retention_computed(month=D(2025, 6, 1), segment_kind="tier", history=history) == {}
    with pytest.raises(DomainError, match="history ends in 2026-02"):
        selectors.trailing_retention_computed(month=D(2026, 3, 1), history=history)


# --- lifetime value -------------------------------------------------------------------------------


def test_ltv_by_segment_with_churn(bridge):
    result = selectors.ltv_by_segment(month=D(2026, 1, 1))
    # Gross revenue churn 2025-02..2026-01: May 300 / 7350, Jun 500 / 7050, Aug 500 / 6750, Dec 700 / 6800,
    # the other eight months 0: mean 0.288754 / 12 = 0.024063. ARPA 2026-01: 6100 / 7 = 871.43.
    # LTV = 871.43 x 0.8 / 0.024063 = 697.144 / 0.024063 = 28971.62
    assert result == {"": {"arpa": Decimal("871.43"), "churn_rate": Decimal("0.024063"), "ltv": Decimal("28971.62")}}

    tiers = selectors.ltv_by_segment(month=D(2026, 1, 1), segment_kind="tier")
    # High touch: only C's contraction, 500 / 5000 in June: 0.1 / 12 = 0.008333;
    # ARPA (B 1200 + C 1500 + F 1000 + I 1150) / 4 = 1212.50; 1212.50 x 0.8 / 0.008333 = 116404.66
    # Low touch: E 300 / 2350 (May), D 500 / 2050 (Aug), H 700 / 1950 (Dec): 0.730536 / 12 = 0.060878;
    # ARPA (E 400 + G 600 + J 250) / 3 = 416.67; 416.67 x 0.8 / 0.060878 = 5475.48
    # Tech touch (A) never has month-end MRR, so no row.
    assert tiers == {
        "High touch": {"arpa": Decimal("1212.50"), "churn_rate": Decimal("0.008333"), "ltv": Decimal("116404.66")},
        "Low touch": {"arpa": Decimal("416.67"), "churn_rate": Decimal("0.060878"), "ltv": Decimal("5475.48")},
    }


def test_ltv_is_empty_when_nothing_churned(bridge):
    # 2025-01 starts with no MRR (no rate); 2025-02..04 lose nothing: a churn rate of 0, no LTV.
    assert selectors.ltv_by_segment(month=D(2025, 4, 1)) == {
        "": {"arpa": Decimal("816.67"), "churn_rate": Decimal("0"), "ltv": None}
    }
    # Only 2025-01, whose rate cannot be computed.
    assert selectors.ltv_by_segment(month=D(2025, 1, 1)) == {
        "": {"arpa": Decimal("892.86"), "churn_rate": None, "ltv": None}
    }


def test_account_ltv_uses_the_tier_churn_rate_and_current_mrr(bridge):
    j = bridge["J"]
    # J: 250 x 0.8 / 0.060878 (Low touch, above) = 3285.26
    expected = {
        "segment": "Low touch",
        "mrr": Decimal(250),
        "churn_rate": Decimal("0.060878"),
        "ltv": Decimal("3285.26"),
    }
    assert selectors.account_ltv(account=j, month=D(2026, 1, 1)) == expected
    # The latest stored month, 2026-02: the window 2025-03..2026-02 holds the same three churns over
    # the same starts, and 2026-02 loses nothing, so the same rate.
    assert selectors.account_ltv(account=j) == expected
    # C is High touch and churn-free before June: no LTV.
    assert selectors.account_ltv(account=bridge["C"], month=D(2025, 5, 1))["ltv"] is None


def test_segment_kind_is_checked(db):
    with pytest.raises(DomainError, match="not a segment kind"):
        selectors.ltv_by_segment(month=D(2026, 1, 1), segment_kind="planet")


# --- cohorts --------------------------------------------------------------------------------------


def test_cohort_retention(portfolio):
    cohorts = selectors.cohort_retention(months_after=12, history=load_history(until=D(2026, 2, 1)))
    assert [(c["cohort"], c["accounts"], c["start_mrr"]) for c in cohorts] == [
        (D(2025, 1, 1), 7, Decimal(6250)),  # B, C, D, F, H, I, J; A never has month-end MRR
        (D(2025, 2, 1), 1, Decimal(300)),  # E
        (D(2025, 3, 1), 1, Decimal(600)),  # G, from 15 March
    ]
    january, february, march = cohorts
    # 2025-01 cohort, month ends Jan..Jan: 6250, 6250, 6250, B +200 6450, 6450, C -500 5950, F +200 6150,
    # D churns 5650, 5650, I +150 5800, 5800, H churns 5100, 5100 -- each / 6250.
    revenue = ["1", "1", "1", "1.032", "1.032", "0.952", "0.984", "0.904", "0.904", "0.928", "0.928", "0.816", "0.816"]
    assert january["revenue"] == [Decimal(v) for v in revenue]
    # 7 of 7 until D churns in August (6 / 7 = 0.857143), then 5 / 7 = 0.714286 once H goes in December.
    assert january["logos"] == [Decimal(1)] * 7 + [Decimal("0.857143")] * 4 + [Decimal("0.714286")] * 2
    # E: 300 Feb..Apr, nothing May..Aug, back with 400 Sep..: 400 / 300 = 1.333333; k = 0..12 reaches 2026-02.
    assert february["logos"] == [Decimal(v) for v in "1110000111111"]
    assert february["revenue"] == [Decimal(1)] * 3 + [Decimal(0)] * 4 + [Decimal("1.333333")] * 6
    # G: 2025-03 + 12 would be 2026-03, past the history: k = 0..11 only.
    assert march["revenue"] == [Decimal(1)] * 12

    short = selectors.cohort_retention(months_after=2, history=load_history(until=D(2026, 2, 1)))
    assert [len(c["logos"]) for c in short] == [3, 3, 3]


# --- expansion ------------------------------------------------------------------------------------


def test_expansion_by_segment_splits_upsell_and_cross_sell(bridge):
    tiers = selectors.expansion_by_segment(first=D(2025, 1, 1), last=D(2026, 2, 1), segment_kind="tier")
    # High touch: B +200 upsell (Apr), F +200 cross-sell (Jul), I +150 = 100 upsell + 50 cross-sell (Oct):
    # upsell 300, cross-sell 250, expansion 550 over 3 accounts: 550 / 3 = 183.33
    assert tiers["High touch"] == {
        "upsell": Decimal(300),
        "cross_sell": Decimal(250),
        "expansion": Decimal(550),
        "expanding": 3,
        "average_expansion": Decimal("183.33"),
    }
    # Low touch never expands: nothing to average.
    assert tiers["Low touch"] == {
        "upsell": Decimal(0),
        "cross_sell": Decimal(0),
        "expansion": Decimal(0),
        "expanding": 0,
        "average_expansion": None,
    }
    regions = selectors.expansion_by_segment(first=D(2025, 1, 1), last=D(2026, 2, 1), segment_kind="region")
    # EMEA: B 200 upsell + F 200 cross-sell = 400 / 2 = 200; APAC: I 100 + 50 = 150 / 1.
    assert (regions["EMEA"]["upsell"], regions["EMEA"]["cross_sell"]) == (Decimal(200), Decimal(200))
    assert regions["EMEA"]["average_expansion"] == Decimal(200)
    assert (regions["APAC"]["upsell"], regions["APAC"]["cross_sell"]) == (Decimal(100), Decimal(50))
    assert regions["APAC"]["average_expansion"] == Decimal(150)
    # July to September: only F's cross-sell.
    summer = selectors.expansion_by_segment(first=D(2025, 7, 1), last=D(2025, 9, 30), segment_kind="all")
    assert summer[""]["upsell"] == 0 and summer[""]["cross_sell"] == Decimal(200) and summer[""]["expanding"] == 1
    with pytest.raises(DomainError, match="ends before it starts"):
        selectors.expansion_by_segment(first=D(2025, 9, 1), last=D(2025, 7, 1), segment_kind="all")


def test_average_expansion_is_per_expanding_account_not_per_account_month(db):
    build_portfolio(
        {
            # X expands twice: +50 cross-sell in February (API), +50 upsell in April (a price change).
            "X": (
                "high-touch",
                "EMEA",
                [
                    ("Platform", 100, D(2025, 1, 1), D(2025, 4, 1)),
                    ("API", 50, D(2025, 2, 1), None),
                    ("Platform", 150, D(2025, 4, 1), None),
                ],
            ),
            # Y expands once, +300 upsell in March.
            "Y": (
                "high-touch",
                "APAC",
                [("Platform", 200, D(2025, 1, 1), D(2025, 3, 1)), ("Platform", 500, D(2025, 3, 1), None)],
            ),
            # Z never expands.
            "Z": ("high-touch", "APAC", [("Platform", 400, D(2025, 1, 1), None)]),
        }
    )
    history = load_history(until=D(2025, 6, 1))
    result = selectors.expansion_by_segment(
        first=D(2025, 1, 1), last=D(2025, 6, 1), segment_kind="tier", history=history
    )
    # 50 + 50 + 300 = 400 over two accounts (X, Y): 200 each, not 400 / 3 account-months = 133.33.
    assert result == {
        "High touch": {
            "upsell": Decimal(350),
            "cross_sell": Decimal(50),
            "expansion": Decimal(400),
            "expanding": 2,
            "average_expansion": Decimal(200),
        }
    }
    # EMEA is X alone: 100 over one account.
    regions = selectors.expansion_by_segment(
        first=D(2025, 1, 1), last=D(2025, 6, 1), segment_kind="region", history=history
    )
    assert (regions["EMEA"]["expanding"], regions["EMEA"]["average_expansion"]) == (1, Decimal(100))
    assert (regions["APAC"]["expanding"], regions["APAC"]["average_expansion"]) == (1, Decimal(300))
    # Only X's April upsell falls in April-June.
    spring = selectors.expansion_by_segment(
        first=D(2025, 4, 1), last=D(2025, 6, 1), segment_kind="all", history=history
    )
    assert spring[""] == {
        "upsell": Decimal(50),
        "cross_sell": Decimal(0),
        "expansion": Decimal(50),
        "expanding": 1,
        "average_expansion": Decimal(50),
    }


def test_upsell_timing(portfolio):
    # First MRR 2025-01 for B, F and I; first expansions Apr (3 months), Jul (6), Oct (9).
    result = selectors.upsell_timing(history=load_history(until=D(2026, 2, 1)))
    assert result == {"distribution": {3: 1, 6: 1, 9: 1}, "median_months": Decimal(6), "accounts": 3}
    # Up to September only B and F have expanded: median (3 + 6) / 2 = 4.5.
    early = selectors.upsell_timing(history=load_history(until=D(2025, 9, 1)))
    assert early == {"distribution": {3: 1, 6: 1}, "median_months": Decimal("4.5"), "accounts": 2}


# --- churn ----------------------------------------------------------------------------------------


def test_churn_analysis_by_tenure_tier_and_reason(portfolio):
    result = selectors.churn_analysis(first=D(2025, 1, 1), last=D(2026, 2, 1))
    # E churns 300 in May (first MRR Feb: 3 months), D 500 in Aug (Jan: 7), H 700 in Dec (Jan: 11).
    assert result["churned_mrr"] == Decimal(1500)
    assert result["churned_accounts"] == 3
    assert result["by_tenure"] == {
        "0–3": {"mrr": Decimal(300), "logos": 1},
        "4–6": {"mrr": Decimal(0), "logos": 0},
        "7–12": {"mrr": Decimal(1200), "logos": 2},
        "13–24": {"mrr": Decimal(0), "logos": 0},
        "25+": {"mrr": Decimal(0), "logos": 0},
    }
    assert result["by_tier"] == {"Low touch": {"mrr": Decimal(1500), "logos": 3}}
    assert result["reasons"] == {"Budget cuts": 2, "Not recorded": 1}

    summer = selectors.churn_analysis(first=D(2025, 6, 1), last=D(2025, 9, 1))  # D only
    assert (summer["churned_mrr"], summer["reasons"]) == (Decimal(500), {"Budget cuts": 1})


def test_churn_analysis_long_tenures_and_accounts_without_tier(db):
    build_portfolio(
        {
            "K": ("", "EMEA", [("Platform", 900, D(2023, 1, 1), D(2025, 3, 1))]),  # Jan 2023 -> Mar 2025: 26
            "L": ("high-touch", "EMEA", [("Platform", 850, D(2024, 1, 1), D(2025, 3, 1))]),  # Jan 2024 -> Mar: 14
            "M": ("high-touch", "APAC", [("Platform", 100, D(2025, 1, 10), D(2025, 5, 1))]),  # Jan -> May: 4
        },
        churns={"K": [(D(2025, 3, 1), "Acquired")]},
    )
    result = selectors.churn_analysis(first=D(2025, 1, 1), last=D(2025, 12, 1))
    assert {band: group["logos"] for band, group in result["by_tenure"].items()} == {
        "0–3": 0,
        "4–6": 1,
        "7–12": 0,
        "13–24": 1,
        "25+": 1,
    }
    assert result["by_tenure"]["25+"]["mrr"] == Decimal(900)
    # High touch L 850 + M 100 = 950 comes before K's 900, which has no tier.
    assert result["by_tier"] == {"High touch": {"mrr": Decimal(950), "logos": 2}, "": {"mrr": Decimal(900), "logos": 1}}
    assert list(result["by_tier"]) == ["High touch", ""]
    assert result["reasons"] == {"Not recorded": 2, "Acquired": 1}


def test_each_churn_keeps_the_reason_recorded_when_it_happened(db):
    accounts = build_portfolio(
        {
            # R churns in May (its line ends on 1 May), comes back in August and churns again in November.
            "R": (
                "low-touch",
                "EMEA",
                [("Platform", 500, D(2025, 1, 1), D(2025, 5, 1)), ("Platform", 600, D(2025, 8, 1), D(2025, 11, 1))],
            ),
            # S churns in July (its line ends on 1 July); the churn was dated on its last paid day, 30 June.
            "S": ("low-touch", "EMEA", [("Platform", 300, D(2025, 1, 1), D(2025, 7, 1))]),
            # T churns in March (its line ends on 15 March); the churn was recorded late, on 10 April.
            "T": ("low-touch", "EMEA", [("Platform", 200, D(2025, 1, 1), D(2025, 3, 15))]),
            # U churns in February; its only event, in June, is too far from it to be its reason.
            "U": ("low-touch", "EMEA", [("Platform", 100, D(2025, 1, 1), D(2025, 2, 10))]),
        },
        churns={
            "R": [(D(2025, 5, 1), "Budget cuts"), (D(2025, 11, 1), "Switched to a competitor")],
            "S": [(D(2025, 6, 30), "Too expensive")],
            "T": [(D(2025, 4, 10), "Acquired")],
            "U": [(D(2025, 6, 1), "Moved on")],
        },
    )
    # The accounts' current reasons are not the reasons of their past churns.
    Account.objects.filter(pk=accounts["R"].pk).update(churn_reason="Switched to a competitor")
    Account.objects.filter(pk=accounts["U"].pk).update(churn_reason="Moved on")
    year = selectors.churn_analysis(first=D(2025, 1, 1), last=D(2025, 12, 1))
    assert year["churned_accounts"] == 5
    assert year["reasons"] == {
        "Acquired": 1,
        "Budget cuts": 1,
        "Not recorded": 1,
        "Switched to a competitor": 1,
        "Too expensive": 1,
    }
    assert list(year["reasons"]) == sorted(year["reasons"])  # equal counts: alphabetical
    # Each of R's churns with its own reason, in its own month.
    may = selectors.churn_analysis(first=D(2025, 5, 1), last=D(2025, 5, 1))
    assert (may["churned_mrr"], may["reasons"]) == (Decimal(500), {"Budget cuts": 1})
    november = selectors.churn_analysis(first=D(2025, 11, 1), last=D(2025, 11, 1))
    assert (november["churned_mrr"], november["reasons"]) == (Decimal(600), {"Switched to a competitor": 1})


# --- time to value --------------------------------------------------------------------------------


def plan(account: Account, start: D, goals: list[tuple[str, D | None]], **fields) -> SuccessPlan:
    success_plan = factories.SuccessPlanFactory(account=account, start_date=start, target_date=None, **fields)
    for status, achieved_at in goals:
        factories.GoalFactory(plan=success_plan, status=status, achieved_at=achieved_at)
    return success_plan


def test_time_to_value(portfolio):
    achieved, in_progress = Goal.Status.ACHIEVED, Goal.Status.IN_PROGRESS
    b, c, d, g, h = (portfolio[name] for name in "BCDGH")
    # B (first MRR 2025-01-01): first plan's first achieved goal 2025-02-15 -> 45 days. A later plan's
    # earlier goal and a deleted earlier plan do not count.
    plan(b, D(2025, 1, 5), [(achieved, D(2025, 3, 1)), (achieved, D(2025, 2, 15)), (in_progress, None)])
    plan(b, D(2025, 6, 1), [(achieved, D(2025, 1, 20))])
    plan(b, D(2024, 12, 1), [(achieved, D(2025, 1, 10))], deleted_at=timezone.now())
    # C (2025-01-01): 2025-04-01 -> 90 days; an "achieved" goal without a date is not evidence.
    plan(c, D(2025, 1, 10), [(achieved, None), (achieved, D(2025, 4, 1))])
    # G (first paid line 2025-03-15; a free pilot line from January does not count): 2025-04-14 -> 30 days.
    factories.SubscriptionFactory(account=g, product="Pilot", mrr=Decimal(0), start_date=D(2025, 1, 1))
    plan(g, D(2025, 3, 20), [(achieved, D(2025, 4, 14))])
    # D: nothing achieved yet. H: only its second plan achieved something.
    plan(d, D(2025, 2, 1), [(in_progress, None)])
    plan(h, D(2025, 2, 1), [(in_progress, None)])
    plan(h, D(2025, 5, 1), [(achieved, D(2025, 6, 1))])

    result = selectors.time_to_value()
    # 30, 45, 90 -> 45; High touch 45, 90 -> 67.5; Low touch 30.
    assert result == {
        "median_days": Decimal(45),
        "by_tier": {
            "High touch": {"median_days": Decimal("67.5"), "count": 2, "values": [45, 90]},
            "Low touch": {"median_days": Decimal(30), "count": 1, "values": [30]},
        },
        "accounts": 3,
    }


def test_time_to_value_is_zero_for_a_goal_achieved_before_the_first_paid_month(db):
    achieved = Goal.Status.ACHIEVED
    accounts = build_portfolio(
        {
            "P": ("low-touch", "EMEA", [("Platform", 300, D(2025, 3, 15), None)]),
            "Q": ("low-touch", "EMEA", [("Platform", 300, D(2025, 3, 15), None)]),
            "R": ("low-touch", "EMEA", [("Platform", 300, D(2025, 3, 15), None)]),
        },
        churns={},
    )
    # P's pilot reached its goal in February, before its first paid line (15 March): 0 days, not -23.
    plan(accounts["P"], D(2025, 1, 1), [(achieved, D(2025, 2, 20))])
    # Q's on 10 March, in the first paid month but before the line starts: 0 days, not -5.
    plan(accounts["Q"], D(2025, 1, 1), [(achieved, D(2025, 3, 10))])
    # R's on 4 April: 20 days.
    plan(accounts["R"], D(2025, 3, 1), [(achieved, D(2025, 4, 4))])
    assert selectors.time_to_value() == {
        "median_days": Decimal(0),
        "by_tier": {"Low touch": {"median_days": Decimal(0), "count": 3, "values": [0, 0, 20]}},
        "accounts": 3,
    }


# --- concentration --------------------------------------------------------------------------------


def test_concentration(portfolio):
    # A deleted account's MRR does not count.
    factories.AccountFactory(name="Gone", mrr=Decimal(9000), deleted_at=timezone.now())
    # Paying: C 1500, B 1200, I 1150, F 1000, G 600, E 400, J 250 = 6100 MRR, 73200 ARR.
    # Top ceil(7 x 0.2) = ceil(1.4) = 2: C + B = 2700 MRR = 32400 ARR; 32400 / 73200 = 0.442623
    assert selectors.concentration() == {
        "accounts": 7,
        "top_accounts": 2,
        "top_arr": Decimal(32400),
        "total_arr": Decimal(73200),
        "top_share": Decimal("0.442623"),
    }
    # ceil(7 x 0.5) = 4: 1500 + 1200 + 1150 + 1000 = 4850 MRR = 58200 ARR; 58200 / 73200 = 0.795082
    half = selectors.concentration(share=Decimal("0.5"))
    assert (half["top_accounts"], half["top_arr"], half["top_share"]) == (4, Decimal(58200), Decimal("0.795082"))
    # One paying account is its own top 20 %.
    Account.objects.exclude(name="C").update(mrr=0)
    assert selectors.concentration()["top_accounts"] == 1
    assert selectors.concentration()["top_share"] == Decimal(1)
    with pytest.raises(DomainError, match="share of accounts"):
        selectors.concentration(share=Decimal(0))


# --- drill-down -----------------------------------------------------------------------------------


def test_drilldown_lists_the_accounts_behind_a_figure(bridge):
    # Low touch lost H (700) in December.
    churned = selectors.drilldown(month=D(2025, 12, 1), figure="churned_mrr", segment_kind="tier", segment="Low touch")
    assert churned == [
        {"account_id": bridge["H"].pk, "name": "H", "amount": Decimal(700), "start": Decimal(700), "end": Decimal(0)}
    ]
    assert stored(D(2025, 12, 1), "tier", "Low touch").churned_mrr == Decimal(700)
    # High touch starts June with C 2000, B 1200, I 1000, F 800 = 5000, largest first.
    start = selectors.drilldown(month=D(2025, 6, 1), figure="start_mrr", segment_kind="tier", segment="High touch")
    assert [(row["name"], row["amount"]) for row in start] == [
        ("C", Decimal(2000)),
        ("B", Decimal(1200)),
        ("I", Decimal(1000)),
        ("F", Decimal(800)),
    ]
    # I's October expansion of 150: 100 upsell, 50 cross-sell; F's July expansion is all cross-sell.
    october = {figure: selectors.drilldown(month=D(2025, 10, 1), figure=figure) for figure in FIGURES}
    assert [(r["name"], r["amount"]) for r in october["expansion_mrr"]] == [("I", Decimal(150))]
    assert [(r["name"], r["amount"]) for r in october["upsell_mrr"]] == [("I", Decimal(100))]
    assert [(r["name"], r["amount"]) for r in october["cross_sell_mrr"]] == [("I", Decimal(50))]
    assert selectors.drilldown(month=D(2025, 7, 1), figure="upsell_mrr") == []
    with pytest.raises(DomainError, match="'mrr' is not a bridge figure"):
        selectors.drilldown(month=D(2025, 7, 1), figure="mrr")


def portfolio_lines(accounts: dict[str, Account]) -> tuple[list, dict]:
    """LINES as (account id, product, mrr, start, end), and each account's segments, from the fixture."""
    lines = [
        (accounts[name].pk, product, Decimal(mrr), start, end)
        for name, (_tier, _region, account_lines) in LINES.items()
        for product, mrr, start, end in account_lines
    ]
    labels = {
        account.pk: {
            "tier": account.tier.name if account.tier else "",
            "industry": account.industry,
            "region": account.region,
            "owner": account.owner.username if account.owner else "",
        }
        for account in accounts.values()
    }
    return lines, labels


def test_drilldown_matches_an_independent_computation_and_the_stored_bridge(bridge):
    reference = Reference(*portfolio_lines(bridge))
    history = load_history(until=D(2026, 2, 1))
    rows = list(RevenueMonth.objects.all())
    assert len(rows) > 50
    for row in rows:
        # Each account's part of each figure, by SPEC 4 straight from the lines, for the row's segment.
        expected = reference.drilldown(row.month, row.segment_kind, row.segment)
        for figure in STORED_FIGURES:
            found = selectors.drilldown(
                month=row.month, figure=figure, segment_kind=row.segment_kind, segment=row.segment, history=history
            )
            assert {r["account_id"]: r["amount"] for r in found} == expected[figure], (row, figure)
            assert sum(expected[figure].values(), Decimal(0)) == getattr(row, figure), (row, figure)
        assert len(expected["start_mrr"]) == row.start_accounts, row
        assert len(expected["end_mrr"]) == row.end_accounts, row


# For each money figure the bridge stores: a month and segment of LINES, and the accounts behind that
# figure there, worked out by hand from LINES, largest first.
DRILLDOWN_BY_HAND = {
    "start_mrr": ("2025-06", "tier", "High touch", [("C", 2000), ("B", 1200), ("I", 1000), ("F", 800)]),
    "new_mrr": ("2025-03", "all", "", [("G", 600)]),  # G starts on 15 March
    "reactivation_mrr": ("2025-09", "all", "", [("E", 400)]),  # E is back in September
    "expansion_mrr": ("2025-04", "all", "", [("B", 200)]),  # B's price change, 1000 -> 1200
    "upsell_mrr": ("2025-10", "region", "APAC", [("I", 100)]),  # I's Platform 1000 -> 1100
    "cross_sell_mrr": ("2025-07", "region", "EMEA", [("F", 200)]),  # F adds Analytics
    "contraction_mrr": ("2025-06", "all", "", [("C", 500)]),  # C's downgrade, 2000 -> 1500
    "churned_mrr": ("2025-08", "tier", "Low touch", [("D", 500)]),  # D's line ends on 1 August
    "end_mrr": ("2025-02", "tier", "Low touch", [("H", 700), ("D", 500), ("E", 300), ("J", 250)]),
}


def test_every_bridge_figure_has_a_drilldown(bridge):
    assert set(DRILLDOWN_BY_HAND) == set(STORED_FIGURES)
    for figure, (month, kind, segment, expected) in DRILLDOWN_BY_HAND.items():
        first_day = D(*map(int, month.split("-")), 1)
        found = selectors.drilldown(month=first_day, figure=figure, segment_kind=kind, segment=segment)
        assert [(r["name"], r["amount"]) for r in found] == [(name, Decimal(v)) for name, v in expected], figure
        assert getattr(stored(first_day, kind, segment), figure) == sum(Decimal(v) for _name, v in expected), figure


# --- bad input ------------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_domain_error_a_user_can_act_on(portfolio):
    history = load_history(until=D(2026, 2, 1))
    cases = [
        (
            lambda: selectors.trailing_retention_computed(month=D(2026, 3, 1), history=history),
            "The revenue history ends in 2026-02; choose 2026-02 or an earlier month.",
        ),
        (
            lambda: selectors.ltv_by_segment(month=D(2026, 1, 1), segment_kind="planet"),
            "'planet' is not a segment kind; use one of all, tier, industry, region, owner.",
        ),
        (
            lambda: selectors.expansion_by_segment(first=D(2025, 9, 1), last=D(2025, 7, 1), segment_kind="all"),
            "The month range ends before it starts.",
        ),
        (
            lambda: selectors.churn_analysis(first=D(2025, 9, 1), last=D(2025, 7, 1), history=history),
            "The month range ends before it starts.",
        ),
        (
            lambda: selectors.cohort_retention(months_after=-1, history=history),
            "The number of months after the cohort month cannot be negative.",
        ),
        (
            lambda: selectors.concentration(share=Decimal("1.5")),
            "The share of accounts must be more than 0 and at most 1.",
        ),
        (
            lambda: selectors.drilldown(month=D(2025, 7, 1), figure="mrr", history=history),
            "'mrr' is not a bridge figure; use one of start_mrr, new_mrr, reactivation_mrr, expansion_mrr, "
            "upsell_mrr, cross_sell_mrr, contraction_mrr, churned_mrr, end_mrr.",
        ),
    ]
    for call, message in cases:
        with pytest.raises(DomainError) as error:
            call()
        assert error.value.messages == [message]


# --- module boundaries ----------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["metrics/selectors/revenue.py", "metrics/services/revenue.py"])
def test_revenue_modules_import_only_public_names(module):
    """The revenue history and its helpers are a public module; nobody reaches into another's privates."""
    tree = ast.parse((Path(settings.BASE_DIR) / module).read_text())
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


# --- nothing to compute ---------------------------------------------------------------------------


def test_an_empty_database_gives_empty_figures_without_errors(db):
    month = D(2026, 1, 1)
    assert selectors.trailing_retention(month=month) == {}
    assert selectors.trailing_retention_computed(month=month) == {
        "": {"nrr": None, "grr": None, "base_mrr": Decimal(0), "accounts": 0}
    }
    assert selectors.ltv_by_segment(month=month) == {}
    assert selectors.ltv_by_segment(month=month, segment_kind="tier") == {}
    lonely = factories.AccountFactory(mrr=Decimal(100))
    assert selectors.account_ltv(account=lonely) == {
        "segment": "Low touch",
        "mrr": Decimal(100),
        "churn_rate": None,
        "ltv": None,
    }
    Account.objects.all().delete()
    assert selectors.cohort_retention() == []
    assert selectors.expansion_by_segment(first=month, last=month, segment_kind="region") == {}
    assert selectors.upsell_timing() == {"distribution": {}, "median_months": None, "accounts": 0}
    churn = selectors.churn_analysis(first=D(2025, 1, 1), last=month)
    assert (churn["churned_mrr"], churn["churned_accounts"], churn["by_tier"], churn["reasons"]) == (0, 0, {}, {})
    assert all(group == {"mrr": 0, "logos": 0} for group in churn["by_tenure"].values())
    assert selectors.time_to_value() == {"median_days": None, "by_tier": {}, "accounts": 0}
    assert selectors.concentration() == {
        "accounts": 0,
        "top_accounts": 0,
        "top_arr": Decimal(0),
        "total_arr": Decimal(0),
        "top_share": None,
    }
    for figure in FIGURES:
        assert selectors.drilldown(month=month, figure=figure) == []


# --- query counts ---------------------------------------------------------------------------------


def count_queries(run) -> int:
    with CaptureQueriesContext(connection) as queries:
        run()
    return len(queries)


SELECTOR_QUERIES = {
    # load_history: lines, accounts' segments
    "trailing_retention_computed": (lambda: selectors.trailing_retention_computed(month=D(2026, 1, 1)), 2),
    # the history's steps, summed in the database
    "cohort_retention": (lambda: selectors.cohort_retention(), 1),
    "upsell_timing": (lambda: selectors.upsell_timing(), 1),
    "expansion_by_segment": (
        lambda: selectors.expansion_by_segment(first=D(2025, 1, 1), last=D(2026, 2, 1), segment_kind="tier"),
        2,
    ),
    # the churns (with tier and name), then their accounts' churn events
    "churn_analysis": (lambda: selectors.churn_analysis(first=D(2025, 1, 1), last=D(2026, 2, 1)), 2),
    # the month's movements, with names
    "drilldown": (lambda: selectors.drilldown(month=D(2025, 12, 1), figure="churned_mrr"), 1),
    # the stored bridge rows
    "trailing_retention": (lambda: selectors.trailing_retention(month=D(2026, 1, 1), segment_kind="tier"), 1),
    "ltv_by_segment": (lambda: selectors.ltv_by_segment(month=D(2026, 1, 1), segment_kind="tier"), 1),
    # accounts with their first line, first plan and its first achieved goal as subqueries
    "time_to_value": (lambda: selectors.time_to_value(), 1),
    # paying accounts' MRR
    "concentration": (lambda: selectors.concentration(), 1),
}


def add_portfolio_copy(prefix: str) -> None:
    accounts = build_portfolio(LINES, prefix=prefix)
    for account in accounts.values():
        success_plan = factories.SuccessPlanFactory(account=account, start_date=D(2025, 1, 1), target_date=None)
        factories.GoalFactory(plan=success_plan, status=Goal.Status.ACHIEVED, achieved_at=D(2025, 3, 1))


@pytest.mark.parametrize("name", SELECTOR_QUERIES)
def test_query_counts_do_not_grow_with_accounts(db, name):
    run, expected = SELECTOR_QUERIES[name]
    add_portfolio_copy("1-")
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
    few = count_queries(run)
    for copy in range(2, 5):
        add_portfolio_copy(f"{copy}-")
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
    assert count_queries(run) == few == expected


# --- the database's steps against the history in memory -------------------------------------------


FIRST_DAY = D(2024, 1, 1)


@st.composite
def portfolios(draw):
    """Random revenue lines (account, product, mrr, start, end) of up to 6 accounts, with segment labels."""
    lines, labels = [], {}
    for account_id in range(1, draw(st.integers(min_value=1, max_value=6)) + 1):
        for _line in range(draw(st.integers(min_value=0, max_value=4))):
            start = FIRST_DAY + datetime.timedelta(days=draw(st.integers(min_value=0, max_value=900)))
            length = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=700)))
            end = None if length is None else start + datetime.timedelta(days=length)
            product = draw(st.sampled_from(["Platform", "Analytics", "API"]))
            mrr = Decimal(draw(st.integers(min_value=0, max_value=500_000))) / 100
            lines.append((account_id, product, mrr, start, end))
        labels[account_id] = {
            SegmentKind.TIER: draw(st.sampled_from(["High touch", "Low touch", ""])),
            SegmentKind.INDUSTRY: draw(st.sampled_from(["Software", "Retail"])),
            SegmentKind.REGION: draw(st.sampled_from(["EMEA", "APAC"])),
            SegmentKind.OWNER: draw(st.sampled_from(["casey", "robin", ""])),
        }
    return lines, labels


def build_generated_portfolio(lines, labels) -> None:
    """Replace every account with the generated ones: their segments, owners and revenue lines."""
    Account.objects.all().delete()
    tiers = {tier.name: tier for tier in Tier.objects.all()}
    for account_id, label in labels.items():
        owner = label[SegmentKind.OWNER]
        account = factories.AccountFactory(
            pk=account_id,
            tier=tiers.get(label[SegmentKind.TIER]),
            industry=label[SegmentKind.INDUSTRY],
            region=label[SegmentKind.REGION],
            owner=factories.UserFactory(username=owner) if owner else None,
        )
        for _pk, product, mrr, start, end in (line for line in lines if line[0] == account_id):
            factories.SubscriptionFactory(account=account, product=product, mrr=mrr, start_date=start, end_date=end)


@hypothesis.settings(
    max_examples=25, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(portfolio=portfolios(), months=st.lists(st.integers(min_value=0, max_value=30), max_size=4))
def test_figures_summed_in_the_database_equal_the_history_walked_in_memory(db, portfolio, months):
    """Cohorts, upsell timing, churns and drill-downs read without a history (summed in the database as
    steps) equal the same selectors walking the whole history in memory, for any revenue lines."""
    lines, labels = portfolio
    build_generated_portfolio(lines, labels)
    history = load_history()  # up to this month, as the selectors without one read
    assert selectors.cohort_retention() == selectors.cohort_retention(history=history)
    assert selectors.upsell_timing() == selectors.upsell_timing(history=history)
    for offset in months:
        month = month_start(month_index(FIRST_DAY) + offset)
        until = load_history(until=month)
        assert selectors.churn_analysis(first=FIRST_DAY, last=month) == selectors.churn_analysis(
            first=FIRST_DAY, last=month, history=until
        )
        for figure in FIGURES:
            for kind, segment in (("all", ""), *((kind, label[kind]) for label in labels.values() for kind in label)):
                ours = selectors.drilldown(month=month, figure=figure, segment_kind=kind, segment=segment)
                assert ours == selectors.drilldown(
                    month=month, figure=figure, segment_kind=kind, segment=segment, history=until
                ), (month, figure, kind, segment)
