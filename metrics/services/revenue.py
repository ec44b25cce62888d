"""The monthly revenue bridge (SPEC 4), per segment, from the subscription lines.

An account's MRR in month M is its MRR on M's last day. Per month and account, start = MRR at the
previous month end and end = MRR at this month end; the difference is new, reactivation, expansion,
contraction or churn (`metrics.history.movement`). Everything is read in two queries (lines,
accounts; `metrics.history.load_history`) and computed in memory, so a run costs the same number
of queries whatever the number of accounts and months.
"""

import datetime

from django.db import transaction
from django.utils import timezone

from csm.db import bulk_upsert
from metrics.history import (
    FIGURES,
    MONEY_PLACES,
    ZERO,
    MrrHistory,
    SegmentKind,
    check_month_range,
    load_history,
    month_index,
    month_start,
    movements,
    ratio,
    trailing_retention_by_segment,
)
from metrics.models import RevenueMonth

# --- the bridge -----------------------------------------------------------------------------------


COUNTS = (
    "start_accounts",
    "new_accounts",
    "reactivated_accounts",
    "expanding_accounts",
    "contracting_accounts",
    "churned_accounts",
    "end_accounts",
)
TRAILING = ("trailing_nrr", "trailing_grr")
RATES = ("grr", "nrr", "logo_churn_rate", "gross_revenue_churn_rate", "net_revenue_churn_rate", "quick_ratio", "arpa")
# Every figure a RevenueMonth row stores, in the order it is shown.
ROW_FIGURES = (*FIGURES, *COUNTS, *RATES, *TRAILING)
# The count each kind of movement adds one to.
KIND_COUNT = {
    "new": "new_accounts",
    "reactivation": "reactivated_accounts",
    "expansion": "expanding_accounts",
    "contraction": "contracting_accounts",
    "churn": "churned_accounts",
}


def with_rates(row: dict) -> dict:
    """Add GRR, NRR, churn rates, quick ratio and ARPA to a row of bridge figures."""
    start = row["start_mrr"]
    lost = row["contraction_mrr"] + row["churned_mrr"]
    gained = row["new_mrr"] + row["reactivation_mrr"] + row["expansion_mrr"]
    row["grr"] = ratio(start - lost, start)
    row["nrr"] = ratio(start + row["expansion_mrr"] - lost, start)
    row["logo_churn_rate"] = ratio(row["churned_accounts"], row["start_accounts"])
    row["gross_revenue_churn_rate"] = ratio(lost, start)
    row["net_revenue_churn_rate"] = None if row["nrr"] is None else ratio(lost - row["expansion_mrr"], start)
    row["quick_ratio"] = ratio(gained, lost)
    row["arpa"] = ratio(row["end_mrr"], row["end_accounts"], MONEY_PLACES)
    return row


def bridge(history: MrrHistory, first: int, last: int) -> dict[tuple[int, str, str], dict]:
    """Bridge figures, rates and trailing retention per (month index, segment kind, segment), months first..last.

    A segment has a row in a month when one of its accounts had MRR at the start or end of it, or twelve
    months before (see `trailing_retention_by_segment`).
    """
    rows: dict[tuple[int, str, str], dict] = {}
    everyone = (SegmentKind.ALL, "")
    # Each account's segments, built once rather than once per month: this loop is the hot path.
    segments = {pk: (everyone, *account.segments.items()) for pk, account in history.accounts.items()}
    blank = dict.fromkeys(FIGURES, ZERO) | dict.fromkeys(COUNTS, 0) | dict.fromkeys(TRAILING)
    for month in range(first, last + 1):
        month_rows = {everyone: blank.copy()}
        for account, move in movements(history, month):
            parts = move.figures()
            for key in segments[account.account_id]:
                row = month_rows.get(key)
                if row is None:
                    row = month_rows[key] = blank.copy()
                for figure, amount in parts.items():
                    row[figure] += amount
                row["start_accounts"] += move.start > 0
                row["end_accounts"] += move.end > 0
                if move.kind:
                    row[KIND_COUNT[move.kind]] += 1
        # A segment whose accounts of a year ago have all gone still has a row: its retention is 0.
        for key, retention in trailing_retention_by_segment(history, month).items():
            row = month_rows.get(key)
            if row is None:
                row = month_rows[key] = blank.copy()
            row["trailing_nrr"], row["trailing_grr"] = retention.nrr, retention.grr
        rows.update(((month, kind, segment), with_rates(row)) for (kind, segment), row in month_rows.items())
    return rows


def default_month_range(history: MrrHistory) -> tuple[int, int]:
    """The month after the history's first (which has no MRR) to its last; just the last without any lines."""
    return min(history.first + 1, history.last), history.last


@transaction.atomic
def revenue_recompute(*, first: datetime.date | None = None, last: datetime.date | None = None) -> int:
    """Replace the RevenueMonth rows of months first..last (default: all history to this month).

    Idempotent. Returns the number of rows written.
    """
    history = load_history(until=last)
    low, high = default_month_range(history)
    if first is not None:
        low = month_index(first)
    if last is not None:
        high = month_index(last)
    check_month_range(month_start(low), month_start(high))
    stamp = timezone.now()
    rows = [
        {
            "month": month_start(month),
            "segment_kind": kind,
            "segment": segment,
            **figures,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for (month, kind, segment), figures in bridge(history, low, high).items()
    ]
    bulk_upsert(
        RevenueMonth,
        rows,
        unique_fields=["month", "segment_kind", "segment"],
        update_fields=[
            *ROW_FIGURES,
            "updated_at",
        ],
    )
    # Segments that no longer have anything in these months (an account moved tier, say) go.
    RevenueMonth.objects.filter(
        month__gte=month_start(low), month__lte=month_start(high), updated_at__lt=stamp
    ).delete()
    return len(rows)
