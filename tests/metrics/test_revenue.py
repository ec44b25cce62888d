"""The revenue bridge against figures computed by hand (SPEC 4)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from csm.exceptions import DomainError
from metrics.history import FIGURES, parse_month
from metrics.models import RevenueMonth
from metrics.services.revenue import COUNTS, revenue_recompute
from tests import factories

D = datetime.date
LINES = {
    # account: (tier, region, [(product, mrr, start, end)])
    "A": ("tech-touch", "EMEA", [("Platform", 100, D(2025, 3, 5), D(2025, 3, 20))]),  # inside one month
    "B": (
        "high-touch",
        "EMEA",
        [
            ("Platform", 1000, D(2025, 1, 1), D(2025, 4, 15)),  # price change
            ("Platform", 1200, D(2025, 4, 15), None),
        ],
    ),
    "C": (
        "high-touch",
        "APAC",
        [
            ("Platform", 2000, D(2025, 1, 1), D(2025, 6, 1)),  # downgrade
            ("Platform Lite", 1500, D(2025, 6, 1), None),
        ],
    ),
    "D": ("low-touch", "EMEA", [("Platform", 500, D(2025, 1, 1), D(2025, 8, 1))]),  # churn
    "E": (
        "low-touch",
        "APAC",
        [
            ("Platform", 300, D(2025, 2, 1), D(2025, 5, 1)),  # churn, then back
            ("Platform", 400, D(2025, 9, 1), None),
        ],
    ),
    "F": (
        "high-touch",
        "EMEA",
        [
            ("Platform", 800, D(2025, 1, 1), None),  # cross-sell
            ("Analytics", 200, D(2025, 7, 10), None),
        ],
    ),
    "G": ("low-touch", "APAC", [("Platform", 600, D(2025, 3, 15), None)]),  # starts mid-month
    "H": ("low-touch", "EMEA", [("Platform", 700, D(2025, 1, 1), D(2025, 12, 31))]),  # ends on a month's last day
    "I": (
        "high-touch",
        "APAC",
        [
            ("Platform", 1000, D(2025, 1, 1), D(2025, 10, 1)),  # upsell and cross-sell
            ("Platform", 1100, D(2025, 10, 1), None),
            ("API", 50, D(2025, 10, 1), None),
        ],
    ),
    "J": ("low-touch", "EMEA", [("Platform", 250, D(2025, 1, 1), None)]),
}

# month: start, new, reactivation, expansion, upsell, cross-sell, contraction, churned, end,
#        accounts at start, new, reactivated, expanding, contracting, churned, at end
HAND = {
    "2025-01": ("0", "6250", "0", "0", "0", "0", "0", "0", "6250", 0, 7, 0, 0, 0, 0, 7),
    "2025-02": ("6250", "300", "0", "0", "0", "0", "0", "0", "6550", 7, 1, 0, 0, 0, 0, 8),
    "2025-03": ("6550", "600", "0", "0", "0", "0", "0", "0", "7150", 8, 1, 0, 0, 0, 0, 9),
    "2025-04": ("7150", "0", "0", "200", "200", "0", "0", "0", "7350", 9, 0, 0, 1, 0, 0, 9),
    "2025-05": ("7350", "0", "0", "0", "0", "0", "0", "300", "7050", 9, 0, 0, 0, 0, 1, 8),
    "2025-06": ("7050", "0", "0", "0", "0", "0", "500", "0", "6550", 8, 0, 0, 0, 1, 0, 8),
    "2025-07": ("6550", "0", "0", "200", "0", "200", "0", "0", "6750", 8, 0, 0, 1, 0, 0, 8),
    "2025-08": ("6750", "0", "0", "0", "0", "0", "0", "500", "6250", 8, 0, 0, 0, 0, 1, 7),
    "2025-09": ("6250", "0", "400", "0", "0", "0", "0", "0", "6650", 7, 0, 1, 0, 0, 0, 8),
    "2025-10": ("6650", "0", "0", "150", "100", "50", "0", "0", "6800", 8, 0, 0, 1, 0, 0, 8),
    "2025-11": ("6800", "0", "0", "0", "0", "0", "0", "0", "6800", 8, 0, 0, 0, 0, 0, 8),
    "2025-12": ("6800", "0", "0", "0", "0", "0", "0", "700", "6100", 8, 0, 0, 0, 0, 1, 7),
    "2026-01": ("6100", "0", "0", "0", "0", "0", "0", "0", "6100", 7, 0, 0, 0, 0, 0, 7),
    "2026-02": ("6100", "0", "0", "0", "0", "0", "0", "0", "6100", 7, 0, 0, 0, 0, 0, 7),
}
# month: GRR, NRR, logo churn, gross revenue churn, net revenue churn, quick ratio, ARPA (None: not computable)
HAND_RATES = {
    "2025-01": (None, None, None, None, None, None, "892.86"),  # 6250 / 7
    "2025-02": ("1", "1", "0", "0", "0", None, "818.75"),
    "2025-03": ("1", "1", "0", "0", "0", None, "794.44"),  # 7150 / 9
    "2025-04": ("1", "1.027972", "0", "0", "-0.027972", None, "816.67"),  # 7350 / 7150; -200 / 7150
    "2025-05": ("0.959184", "0.959184", "0.111111", "0.040816", "0.040816", "0", "881.25"),  # 7050/7350; 1/9
    "2025-06": ("0.929078", "0.929078", "0", "0.070922", "0.070922", "0", "818.75"),  # 6550 / 7050
    "2025-07": ("1", "1.030534", "0", "0", "-0.030534", None, "843.75"),  # 6750 / 6550
    "2025-08": ("0.925926", "0.925926", "0.125", "0.074074", "0.074074", "0", "892.86"),  # 6250 / 6750
    "2025-09": ("1", "1", "0", "0", "0", None, "831.25"),
    "2025-10": ("1", "1.022556", "0", "0", "-0.022556", None, "850"),  # 6800 / 6650
    "2025-11": ("1", "1", "0", "0", "0", None, "850"),
    "2025-12": ("0.897059", "0.897059", "0.125", "0.102941", "0.102941", "0", "871.43"),  # 6100 / 6800
    "2026-01": ("1", "1", "0", "0", "0", None, "871.43"),
    "2026-02": ("1", "1", "0", "0", "0", None, "871.43"),
}
MONEY = FIGURES  # the order of HAND's money columns
RATES = ("grr", "nrr", "logo_churn_rate", "gross_revenue_churn_rate", "net_revenue_churn_rate", "quick_ratio", "arpa")


@pytest.fixture
def portfolio(db):
    for name, (tier, region, lines) in LINES.items():
        account = factories.AccountFactory(
            name=name, external_id=name, tier=factories.default_tier(tier), region=region
        )
        for product, mrr, start, end in lines:
            factories.SubscriptionFactory(
                account=account, product=product, mrr=Decimal(mrr), start_date=start, end_date=end
            )


def figures(month: str, kind: str = "all", segment: str = "") -> RevenueMonth:
    return RevenueMonth.objects.get(month=f"{month}-01", segment_kind=kind, segment=segment)


def test_every_figure_of_every_month_matches_the_hand_computation(portfolio):
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
    for month, expected in HAND.items():
        row = figures(month)
        money = tuple(getattr(row, name) for name in MONEY)
        counts = tuple(getattr(row, name) for name in COUNTS)
        assert money == tuple(Decimal(v) for v in expected[:9]), month
        assert counts == expected[9:], month
        rates = tuple(getattr(row, name) for name in RATES)
        assert rates == tuple(None if v is None else Decimal(v) for v in HAND_RATES[month]), month


def test_the_bridge_balances_and_segments_add_up(portfolio):
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
    for row in RevenueMonth.objects.all():
        assert (
            row.start_mrr
            + row.new_mrr
            + row.reactivation_mrr
            + row.expansion_mrr
            - row.contraction_mrr
            - row.churned_mrr
            == row.end_mrr
        ), row
        assert row.upsell_mrr + row.cross_sell_mrr == row.expansion_mrr
    for month in HAND:
        total = figures(month)
        for kind in ("tier", "industry", "region", "owner"):
            parts = RevenueMonth.objects.filter(month=f"{month}-01", segment_kind=kind)
            for name in MONEY + COUNTS:
                assert sum(getattr(p, name) for p in parts) == getattr(total, name), (month, kind, name)


def test_segment_figures_by_hand(portfolio):
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
    high = figures("2025-06", "tier", "High touch")  # B 1200, C 2000 -> 1500, F 800, I 1000
    assert (high.start_mrr, high.contraction_mrr, high.end_mrr) == (Decimal(5000), Decimal(500), Decimal(4500))
    assert high.grr == Decimal("0.9")
    apac = figures("2025-09", "region", "APAC")  # C 1500, E back with 400, G 600, I 1000
    assert (apac.start_mrr, apac.reactivation_mrr, apac.end_mrr) == (Decimal(3100), Decimal(400), Decimal(3500))


def test_recompute_is_idempotent_and_costs_the_same_queries_for_more_months(portfolio):
    def run(first, last) -> int:
        with CaptureQueriesContext(connection) as queries:
            revenue_recompute(first=first, last=last)
        return len(queries)

    short = run(D(2025, 1, 1), D(2025, 3, 1))
    long = run(D(2025, 1, 1), D(2026, 2, 1))
    before = list(RevenueMonth.objects.order_by("pk").values())
    # A rerun finds every row as stored and writes nothing: the upsert's statement fewer (on PostgreSQL, which
    # copies new rows in, the copy's savepoint and its release).
    assert run(D(2025, 1, 1), D(2026, 2, 1)) == long - (2 if connection.vendor == "postgresql" else 1)
    assert long == short
    after = list(RevenueMonth.objects.order_by("pk").values())
    assert before == after


def test_bad_months_are_refused_with_a_domain_error(db):
    assert parse_month("2025-03") == D(2025, 3, 1)
    for value in ("2025-13", "March", ""):
        with pytest.raises(DomainError) as error:
            parse_month(value)
        assert error.value.messages == [f"'{value}' is not a month; use YYYY-MM."]
    with pytest.raises(DomainError) as error:
        revenue_recompute(first=D(2025, 3, 1), last=D(2025, 2, 1))
    assert error.value.messages == ["The month range ends before it starts."]
    assert not RevenueMonth.objects.exists()


# Trailing-12-month retention (SPEC 4) at 2026-01 over the accounts paying at the end of 2025-01, and
# at 2026-02 over those paying at the end of 2025-02 (E joins, 300). Month-end MRR then -> now:
# B 1000 -> 1200, C 2000 -> 1500, D 500 -> 0, F 800 -> 1000, H 700 -> 0, I 1000 -> 1150, J 250 -> 250,
# E 300 -> 400. NRR = sum(now) / sum(then); GRR = sum(min(now, then)) / sum(then).
TRAILING = {
    # (month, kind, segment): (NRR, GRR)
    ("2026-01", "all", ""): ("0.816", "0.728"),  # 5100 / 6250, 4550 / 6250
    ("2026-01", "tier", "High touch"): ("1.010417", "0.895833"),  # B C F I: 4850 / 4800, 4300 / 4800
    ("2026-01", "tier", "Low touch"): ("0.172414", "0.172414"),  # D H J: 250 / 1450 both
    ("2026-01", "region", "EMEA"): ("0.753846", "0.630769"),  # B D F H J: 2450 / 3250, 2050 / 3250
    ("2026-01", "region", "APAC"): ("0.883333", "0.833333"),  # C I: 2650 / 3000, 2500 / 3000
    ("2026-02", "all", ""): ("0.839695", "0.740458"),  # + E: 5500 / 6550, 4850 / 6550
    ("2026-02", "tier", "High touch"): ("1.010417", "0.895833"),  # the same accounts as in January
    ("2026-02", "tier", "Low touch"): ("0.371429", "0.314286"),  # D H J E: 650 / 1750, 550 / 1750
    ("2026-02", "region", "EMEA"): ("0.753846", "0.630769"),
    ("2026-02", "region", "APAC"): ("0.924242", "0.848485"),  # C I E: 3050 / 3300, 2800 / 3300
}


def test_trailing_retention_is_stored_with_each_month_and_segment(portfolio):
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
    for (month, kind, segment), (nrr, grr) in TRAILING.items():
        row = figures(month, kind, segment)
        assert (row.trailing_nrr, row.trailing_grr) == (Decimal(nrr), Decimal(grr)), (month, kind, segment)
    # Nobody paid in 2024: no base, so no trailing figure (not 0) in 2025.
    early = RevenueMonth.objects.filter(month__lt=D(2026, 1, 1))
    assert early.exists()
    assert not early.filter(trailing_nrr__isnull=False).exists()
    assert not early.filter(trailing_grr__isnull=False).exists()


def test_a_segment_that_lost_everything_keeps_a_trailing_row(db):
    owner = factories.UserFactory(username="robin")
    retail = factories.AccountFactory(industry="Retail", owner=owner)
    software = factories.AccountFactory(industry="Software", owner=owner)
    factories.SubscriptionFactory(account=retail, mrr=Decimal(500), start_date=D(2025, 1, 1), end_date=D(2025, 6, 1))
    factories.SubscriptionFactory(account=software, product="Platform", mrr=Decimal(300), start_date=D(2025, 1, 1))
    factories.SubscriptionFactory(account=software, product="API", mrr=Decimal(200), start_date=D(2025, 8, 1))
    # Only January 2026 is recomputed; its base, January 2025, still comes from the lines.
    revenue_recompute(first=D(2026, 1, 1), last=D(2026, 1, 1))
    # Retail had 500 in 2025-01 and nothing since June: a row of zeros whose trailing NRR and GRR are 0.
    gone = figures("2026-01", "industry", "Retail")
    assert (gone.start_mrr, gone.end_mrr, gone.end_accounts) == (0, 0, 0)
    assert (gone.trailing_nrr, gone.trailing_grr) == (Decimal(0), Decimal(0))
    # Software: 300 -> 500: NRR 500 / 300 = 1.666667, GRR capped at 300 / 300 = 1.
    grown = figures("2026-01", "industry", "Software")
    assert (grown.trailing_nrr, grown.trailing_grr) == (Decimal("1.666667"), Decimal(1))
    # All: 800 -> 500: NRR 0.625; GRR (0 + 300) / 800 = 0.375. The one owner has both accounts.
    for kind, segment in (("all", ""), ("owner", "robin")):
        row = figures("2026-01", kind, segment)
        assert (row.trailing_nrr, row.trailing_grr) == (Decimal("0.625"), Decimal("0.375"))


def test_recompute_without_any_revenue_writes_an_empty_month_instead_of_failing(db):
    # A new deployment's nightly run, before the first subscription is entered.
    assert revenue_recompute(last=D(2026, 3, 1)) == 1
    row = figures("2026-03")
    assert (row.start_mrr, row.end_mrr, row.end_accounts, row.nrr, row.trailing_nrr) == (0, 0, 0, None, None)


def test_recompute_costs_a_fixed_number_of_queries_whatever_the_number_of_accounts(portfolio):
    def run() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            revenue_recompute(first=D(2025, 1, 1), last=D(2026, 2, 1))
        return [query["sql"].split()[0] for query in queries]

    few = run()
    for copy in range(3):
        for tier, region, lines in LINES.values():
            account = factories.AccountFactory(tier=factories.default_tier(tier), region=region, industry=f"I{copy}")
            for product, mrr, start, end in lines:
                factories.SubscriptionFactory(
                    account=account, product=product, mrr=Decimal(mrr), start_date=start, end_date=end
                )
    # The bridge summed per segment in the database beside the stored rows (read from a server-side cursor
    # on PostgreSQL), one upsert of the rows that changed (inside the service's savepoint) -- with 10 accounts
    # as with 40, and more rows for the new industries. No segment emptied: nothing to delete.
    # PostgreSQL copies the rows not stored yet straight in, in a savepoint of their own (COPY is not among the
    # captured queries), and upserts the changed ones.
    if connection.vendor == "postgresql":
        assert few == ["SAVEPOINT", "DECLARE", "SAVEPOINT", "RELEASE", "RELEASE"]
        assert run() == ["SAVEPOINT", "DECLARE", "SAVEPOINT", "RELEASE", "INSERT", "RELEASE"]
    else:
        assert few == ["SAVEPOINT", "WITH", "INSERT", "RELEASE"]
        assert run() == few
