"""Properties of the revenue bridge (SPEC 4) that hold for any subscription history.

The product computes the bridge in SQL (`metrics.services.revenue_sql`); `bridge` below computes it in
Python from `metrics.history` (month-end MRR per account and `movement`), the independent method the
stored rows are checked against.
"""

import datetime
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Account, Subscription
from metrics.history import (
    FIGURES,
    ZERO,
    MrrHistory,
    SegmentKind,
    history_from_lines,
    month_index,
    month_start,
    movements,
    trailing_retention_by_segment,
)
from metrics.models import RevenueMonth
from metrics.selectors import revenue as selectors
from metrics.services.revenue import COUNTS, ROW_FIGURES, TRAILING, revenue_recompute, with_rates
from tests import factories
from tests.metrics.reference import STORED_FIGURES, Reference

D = datetime.date
FIRST_DAY = D(2024, 1, 1)
LAST = month_index(D(2026, 6, 1))  # 30 months of history
RATES_OF_START_MRR = ("grr", "nrr", "gross_revenue_churn_rate", "net_revenue_churn_rate")
SEGMENT_KINDS = (SegmentKind.TIER, SegmentKind.INDUSTRY, SegmentKind.REGION, SegmentKind.OWNER)

money = st.integers(min_value=0, max_value=500_000).map(lambda cents: Decimal(cents) / 100)


@st.composite
def a_line(draw, account_id: int):
    start = FIRST_DAY + datetime.timedelta(days=draw(st.integers(min_value=0, max_value=900)))
    length = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=700)))
    end = None if length is None else start + datetime.timedelta(days=length)
    return (account_id, draw(st.sampled_from(["Platform", "Analytics", "API"])), draw(money), start, end)


@st.composite
def portfolios(draw):
    """Random revenue lines (account, product, mrr, start, end) of up to 8 accounts, with segment labels."""
    accounts = draw(st.integers(min_value=1, max_value=8))
    lines, labels = [], {}
    for account_id in range(1, accounts + 1):
        lines += draw(st.lists(a_line(account_id), min_size=0, max_size=5))
        labels[account_id] = {
            SegmentKind.TIER: draw(st.sampled_from(["High touch", "Low touch", ""])),
            SegmentKind.INDUSTRY: draw(st.sampled_from(["Software", "Retail"])),
            SegmentKind.REGION: draw(st.sampled_from(["EMEA", "APAC", "AMER"])),
            SegmentKind.OWNER: draw(st.sampled_from(["casey", "robin", ""])),
        }
    return lines, labels


# The count each kind of movement adds one to.
KIND_COUNT = {
    "new": "new_accounts",
    "reactivation": "reactivated_accounts",
    "expansion": "expanding_accounts",
    "contraction": "contracting_accounts",
    "churn": "churned_accounts",
}


def bridge(history: MrrHistory, first: int, last: int) -> dict[tuple[int, str, str], dict]:
    """Bridge figures, rates and trailing retention per (month index, segment kind, segment), months
    first..last, from the accounts' month-end MRR in Python: each account's `movement` added to each of its
    segments. A segment has a row in a month when one of its accounts had MRR at the start or end of it, or
    twelve months before (see `trailing_retention_by_segment`); ('all', '') every month."""
    rows: dict[tuple[int, str, str], dict] = {}
    everyone = (SegmentKind.ALL, "")
    segments = {pk: (everyone, *account.segments.items()) for pk, account in history.accounts.items()}
    blank = dict.fromkeys(FIGURES, ZERO) | dict.fromkeys(COUNTS, 0) | dict.fromkeys(TRAILING)
    for month in range(first, last + 1):
        month_rows = {everyone: blank.copy()}
        for account, move in movements(history, month):
            for key in segments[account.account_id]:
                row = month_rows.setdefault(key, blank.copy())
                for figure, amount in move.figures().items():
                    row[figure] += amount
                row["start_accounts"] += move.start > 0
                row["end_accounts"] += move.end > 0
                if move.kind:
                    row[KIND_COUNT[move.kind]] += 1
        for key, retention in trailing_retention_by_segment(history, month).items():
            row = month_rows.setdefault(key, blank.copy())
            row["trailing_nrr"], row["trailing_grr"] = retention.nrr, retention.grr
        rows.update(((month, kind, segment), with_rates(row)) for (kind, segment), row in month_rows.items())
    return rows


def assert_balances(row, where) -> None:
    assert (
        row["start_mrr"]
        + row["new_mrr"]
        + row["reactivation_mrr"]
        + row["expansion_mrr"]
        - row["contraction_mrr"]
        - row["churned_mrr"]
        == row["end_mrr"]
    ), where
    assert row["upsell_mrr"] + row["cross_sell_mrr"] == row["expansion_mrr"], where
    assert row["upsell_mrr"] >= 0 and row["cross_sell_mrr"] >= 0, where
    assert (
        row["start_accounts"] + row["new_accounts"] + row["reactivated_accounts"] - row["churned_accounts"]
        == row["end_accounts"]
    ), where


TIERS = {"High touch": "high-touch", "Low touch": "low-touch"}


def store(lines: list, labels: dict, deleted: list[bool]) -> dict[int, int]:
    """The portfolio as accounts and lines in the database (lines marked deleted soft-deleted, so the
    bridge must ignore them); returns the account pk of each portfolio account."""
    pks = {}
    for account_id in labels:
        pks[account_id] = factories.AccountFactory(owner=None, tier=None).pk
    relabel(labels, pks)
    Subscription.objects.bulk_create(
        Subscription(
            account_id=pks[account_id],
            product=product,
            mrr=mrr,
            start_date=start,
            end_date=end,
            deleted_at=timezone.now() if gone else None,
        )
        for (account_id, product, mrr, start, end), gone in zip(lines, deleted, strict=True)
    )
    return pks


def relabel(labels: dict, pks: dict[int, int]) -> None:
    """Give the stored accounts these segments (tier, industry, region, owner)."""
    tiers = {name: factories.default_tier(slug) for name, slug in TIERS.items()}
    for account_id, label in labels.items():
        owner = label[SegmentKind.OWNER]
        Account.objects.filter(pk=pks[account_id]).update(
            tier=tiers.get(label[SegmentKind.TIER]),
            industry=label[SegmentKind.INDUSTRY],
            region=label[SegmentKind.REGION],
            owner=factories.UserFactory(username=owner) if owner else None,
        )


def stored_rows() -> dict[tuple[int, str, str], dict]:
    return {
        (month_index(row.month), row.segment_kind, row.segment): {name: getattr(row, name) for name in ROW_FIGURES}
        for row in RevenueMonth.objects.all()
    }


@st.composite
def recomputes(draw):
    """A portfolio, which of its lines are deleted, the segments its accounts move to before a second
    recompute, and that recompute's months (first None: from the first line)."""
    lines, labels = draw(portfolios())
    deleted = [draw(st.booleans()) and draw(st.booleans()) for _ in lines]
    _, moved = draw(portfolios())
    moved = {account_id: moved.get(account_id, label) for account_id, label in labels.items()}
    last = draw(st.integers(min_value=month_index(FIRST_DAY), max_value=LAST))
    first = draw(st.one_of(st.none(), st.integers(min_value=last - 30, max_value=last)))
    return lines, labels, deleted, moved, first, last


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recomputes())
def test_the_stored_bridge_equals_the_python_bridge_and_balances_for_any_history(case):
    lines, labels, deleted, moved, first, last = case
    with transaction.atomic():
        pks = store(lines, labels, deleted)
        revenue_recompute(last=month_start(LAST))
        # Accounts change segment: the second run must move their past months and drop emptied segments.
        relabel(moved, pks)
        revenue_recompute(first=None if first is None else month_start(first), last=month_start(last))
        stored = {key: row for key, row in stored_rows().items() if key[0] <= last}
        transaction.set_rollback(True)
    kept = [line for line, gone in zip(lines, deleted, strict=True) if not gone]
    history = history_from_lines(kept, moved, last)
    low = min(history.first + 1, history.last) if first is None else first
    expected = bridge(history, low, last)
    # Months before the second run's range keep the first run's rows (other segments): not compared.
    stored = {key: row for key, row in stored.items() if key[0] >= low}
    assert stored.keys() == expected.keys()
    for key, row in expected.items():
        assert stored[key] == {name: row[name] for name in ROW_FIGURES}, key
    for (month, kind, segment), row in stored.items():
        where = (month, kind, segment)
        assert_balances(row, where)
        for rate in RATES_OF_START_MRR:
            assert (row[rate] is None) == (row["start_mrr"] == 0), (where, rate)
        assert (row["logo_churn_rate"] is None) == (row["start_accounts"] == 0), where
        if row["grr"] is not None:
            assert 0 <= row["grr"] <= 1 and row["grr"] <= row["nrr"], where
    for month in range(low, last + 1):
        total = stored[(month, SegmentKind.ALL, "")]
        for kind in SEGMENT_KINDS:
            parts = [row for (m, k, _), row in stored.items() if m == month and k == kind]
            for name in FIGURES + COUNTS:
                assert sum(part[name] for part in parts) == total[name], (month, kind, name)


@settings(max_examples=100, deadline=None)
@given(portfolios())
def test_the_bridge_equals_an_independent_computation_for_any_history(portfolio):
    lines, labels = portfolio
    history = history_from_lines(lines, labels, LAST)
    rows = bridge(history, history.first + 1, history.last)
    reference = Reference(lines, labels)
    for month in history.months[1:]:
        first_day = D(month // 12, month % 12 + 1, 1)
        expected = defaultdict(lambda: dict.fromkeys(STORED_FIGURES, Decimal(0)) | {"accounts": [0, 0]})
        for account, figures in reference.figures(first_day).items():
            for segment in reference.segments(account):
                for figure, amount in figures.items():
                    expected[segment][figure] += amount
                expected[segment]["accounts"][0] += "start_mrr" in figures
                expected[segment]["accounts"][1] += "end_mrr" in figures
        trailing = reference.trailing(first_day)
        keys = {("all", ""), *expected, *trailing}
        assert {(kind, segment) for m, kind, segment in rows if m == month} == keys, first_day
        for kind, segment in keys:
            row, wanted = rows[(month, kind, segment)], expected[(kind, segment)]
            where = (first_day, kind, segment)
            assert {figure: row[figure] for figure in STORED_FIGURES} == {f: wanted[f] for f in STORED_FIGURES}, where
            assert [row["start_accounts"], row["end_accounts"]] == wanted["accounts"], where
            assert (row["trailing_nrr"], row["trailing_grr"]) == trailing.get((kind, segment), (None, None)), where


@settings(max_examples=200, deadline=None)
@given(portfolios())
def test_history_selectors_hold_for_any_history(portfolio):
    lines, labels = portfolio
    history = history_from_lines(lines, labels, LAST)
    for retention in selectors.trailing_retention_computed(month=D(2026, 6, 1), history=history).values():
        assert (retention["nrr"] is None) == (retention["base_mrr"] == 0)
        if retention["grr"] is not None:
            assert 0 <= retention["grr"] <= 1 and retention["grr"] <= retention["nrr"]
    cohorts = selectors.cohort_retention(months_after=12, history=history)
    # Every account with month-end MRR is in exactly one cohort, whose first month is whole.
    assert sum(c["accounts"] for c in cohorts) == sum(a.first_paid() is not None for a in history.accounts.values())
    for cohort in cohorts:
        assert cohort["logos"][0] == 1 and cohort["revenue"][0] == 1
        assert all(0 <= share <= 1 for share in cohort["logos"])
    timing = selectors.upsell_timing(history=history)
    assert sum(timing["distribution"].values()) == timing["accounts"]
    assert all(months >= 1 for months in timing["distribution"])
