"""Properties of the revenue bridge (SPEC 4) that hold for any subscription history."""

import datetime
from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.history import FIGURES, SegmentKind, history_from_lines, month_index
from metrics.selectors import revenue as selectors
from metrics.services.revenue import COUNTS, bridge
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


@settings(max_examples=200, deadline=None)
@given(portfolios())
def test_the_bridge_balances_for_any_history(portfolio):
    lines, labels = portfolio
    history = history_from_lines(lines, labels, LAST)
    rows = bridge(history, history.first, history.last)
    for (month, kind, segment), row in rows.items():
        where = (month, kind, segment)
        assert_balances(row, where)
        for rate in RATES_OF_START_MRR:
            assert (row[rate] is None) == (row["start_mrr"] == 0), (where, rate)
        assert (row["logo_churn_rate"] is None) == (row["start_accounts"] == 0), where
        if row["grr"] is not None:
            assert 0 <= row["grr"] <= 1 and row["grr"] <= row["nrr"], where
    for month in history.months:
        total = rows[(month, SegmentKind.ALL, "")]
        for kind in SEGMENT_KINDS:
            parts = [row for (m, k, _), row in rows.items() if m == month and k == kind]
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
