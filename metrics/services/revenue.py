"""The monthly revenue bridge (SPEC 4), per segment, from the subscription lines.

An account's MRR in month M is its MRR on M's last day. Per month and account, start = MRR at the
previous month end and end = MRR at this month end; the difference is new, reactivation, expansion,
contraction or churn (as `metrics.history.movement` classifies it). The database classifies every
account-month and sums the figures per segment (`metrics.services.revenue_sql`); only those sums come
back, so a run costs the same few queries and memory whatever the number of accounts.
"""

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction
from django.db.models import Min
from django.utils import timezone

from accounts.models import Subscription
from csm.db import bulk_upsert
from metrics.history import (
    FIGURES,
    MONEY_PLACES,
    check_month_range,
    month_index,
    month_start,
    ratio,
)
from metrics.models import RevenueMonth
from metrics.services.revenue_sql import COUNTS, MONEY_CENTS, SUMMED, bridge_sums

# --- the bridge -----------------------------------------------------------------------------------


TRAILING = ("trailing_nrr", "trailing_grr")
RATES = ("grr", "nrr", "logo_churn_rate", "gross_revenue_churn_rate", "net_revenue_churn_rate", "quick_ratio", "arpa")
# Every figure a RevenueMonth row stores, in the order it is shown.
ROW_FIGURES = (*FIGURES, *COUNTS, *RATES, *TRAILING)
# RevenueMonth rows upserted per statement.
UPSERT_ROWS = 5_000


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


def _money(cents: int) -> Decimal:
    """Integer cents (as the bridge query sums them) to money with two places."""
    return Decimal(cents).scaleb(-2)


def _stored(name: str, text: str | None) -> Decimal | int | None:
    """A stored figure read as text back to its value."""
    if text is None:
        return None
    return Decimal(text) if name not in COUNTS else int(text)


class BridgeRow(NamedTuple):
    """One segment row of the bridge: computed `figures` (None: no longer computed), and what is stored for
    it (`stored_id` and `stored` None: nothing yet)."""

    month: int | None
    segment_kind: str | None
    segment: str | None
    figures: dict | None
    stored_id: int | None
    stored: dict | None


def bridge_rows(first: int, last: int) -> Iterator[BridgeRow]:
    """Every segment row of months first..last with its bridge figures, rates and trailing retention
    (see ROW_FIGURES), beside the stored one.

    A segment has a row in a month when one of its accounts had MRR at the start or end of it, or twelve
    months before; ('all', '') has one every month. The sums come from one query
    (`revenue_sql.bridge_sums`), streamed; only the rates are worked out here.
    """
    computed = len(SUMMED)
    for month, kind, segment, *values in bridge_sums(first, last, ROW_FIGURES):
        sums = dict(zip(SUMMED, (value or 0 for value in values[:computed]), strict=True))
        stored_id, *texts = values[computed:]
        stored = None if stored_id is None else dict(zip(ROW_FIGURES, map(_stored, ROW_FIGURES, texts), strict=True))
        if month is None:
            yield BridgeRow(None, None, None, None, stored_id, stored)
            continue
        row = {name: _money(sums[name]) for name in MONEY_CENTS} | {name: sums[name] for name in COUNTS}
        row["upsell_mrr"] = row["expansion_mrr"] - row["cross_sell_mrr"]
        row["trailing_nrr"] = ratio(sums["now_mrr"], sums["base_mrr"])
        row["trailing_grr"] = ratio(sums["kept_mrr"], sums["base_mrr"])
        yield BridgeRow(month, kind, segment, with_rates(row), stored_id, stored)


def first_month(last: int) -> int:
    """The month of the first line (the first month with any movement), or `last` without lines or later."""
    first_start = (
        Subscription.objects.alive()
        .filter(account__deleted_at__isnull=True)
        .aggregate(first=Min("start_date"))["first"]
    )
    return last if first_start is None else min(month_index(first_start), last)


def _insert_new(rows: list[dict]) -> int:
    """Write rows not stored yet (PostgreSQL): copied straight into the table, far cheaper than an upsert
    where the bridge is built for the first time; upserted should a concurrent run have stored one meanwhile."""
    if not rows:
        return 0
    names = list(rows[0])
    columns = ", ".join(RevenueMonth._meta.get_field(name).column for name in names)
    try:
        with (
            transaction.atomic(),
            connection.wrap_database_errors,
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {RevenueMonth._meta.db_table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row[name] for name in names])
    except IntegrityError:
        return _upsert(rows)
    return len(rows)


def _upsert(rows: list[dict]) -> int:
    return bulk_upsert(
        RevenueMonth,
        rows,
        unique_fields=["month", "segment_kind", "segment"],
        update_fields=[*ROW_FIGURES, "updated_at"],
    )


@transaction.atomic
def revenue_recompute(*, first: datetime.date | None = None, last: datetime.date | None = None) -> int:
    """Replace the RevenueMonth rows of months first..last (default: all history to this month).

    Idempotent: only rows whose figures changed are written (their `updated_at` moves), and rows of
    segments left with nothing in a month are deleted. Returns the number of rows written.
    """
    high = month_index(last or timezone.localdate())
    low = first_month(high) if first is None else month_index(first)
    check_month_range(month_start(low), month_start(high))
    stamp = timezone.now()
    new, changed, gone = [], [], []  # new: rows not stored yet, copied in on PostgreSQL
    copied = connection.vendor == "postgresql"
    written = 0
    for row in bridge_rows(low, high):
        if row.figures is None:
            gone.append(row.stored_id)  # its segment has nothing in that month any more (an account moved)
        elif row.figures != row.stored:  # new, or its figures changed: only those are written
            (new if copied and row.stored_id is None else changed).append(
                {
                    "month": month_start(row.month),
                    "segment_kind": row.segment_kind,
                    "segment": row.segment,
                    **row.figures,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        # A batch at a time, so memory stays flat however many segments (owners, industries) there are.
        if len(new) == UPSERT_ROWS:
            written += _insert_new(new)
            new = []
        if len(changed) == UPSERT_ROWS:
            written += _upsert(changed)
            changed = []
    written += _insert_new(new) + _upsert(changed)
    for start in range(0, len(gone), UPSERT_ROWS):
        RevenueMonth.objects.filter(pk__in=gone[start : start + UPSERT_ROWS]).delete()
    return written
