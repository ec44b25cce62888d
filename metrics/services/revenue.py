"""The monthly revenue bridge (SPEC 4), per segment, from the subscription lines.

An account's MRR in month M is its MRR on M's last day. Per month and account, start = MRR at the
previous month end and end = MRR at this month end; the difference is new, reactivation, expansion,
contraction or churn. Everything is read in two queries (lines, accounts) and computed in memory,
so a run costs the same number of queries whatever the number of accounts and months.
"""

import calendar
import datetime
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Account, Subscription
from csm.db import bulk_upsert
from metrics.models import RevenueMonth

ZERO = Decimal("0.00")
RATE_PLACES = Decimal("0.000001")
MONEY_PLACES = Decimal("0.01")
SegmentKind = RevenueMonth.SegmentKind


# --- months ---------------------------------------------------------------------------------------


def month_index(day: datetime.date) -> int:
    """Months since year 0: consecutive months have consecutive indexes."""
    return day.year * 12 + day.month - 1


def month_start(index: int) -> datetime.date:
    return datetime.date(index // 12, index % 12 + 1, 1)


def month_end(index: int) -> datetime.date:
    year, month = index // 12, index % 12 + 1
    return datetime.date(year, month, calendar.monthrange(year, month)[1])


def parse_month(value: str) -> datetime.date:
    """'YYYY-MM' to the first day of that month; ValueError with a clear message otherwise."""
    try:
        return datetime.datetime.strptime(value, "%Y-%m").date()  # noqa: DTZ007 - a calendar month, no time
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a month; use YYYY-MM.") from None


# --- history --------------------------------------------------------------------------------------


@dataclass
class AccountHistory:
    """Month-end MRR of one account (and of each of its products), indexed from `MrrHistory.first`."""

    account_id: int
    segments: dict[str, str]
    mrr: list[Decimal]
    by_product: dict[str, list[Decimal]] = field(default_factory=dict)

    def at(self, offset: int) -> Decimal:
        return self.mrr[offset] if 0 <= offset < len(self.mrr) else ZERO

    def first_paid(self) -> int | None:
        """Offset of the first month end with MRR, if any."""
        return next((k for k, value in enumerate(self.mrr) if value > 0), None)


@dataclass
class MrrHistory:
    """Every live account's month-end MRR from the month before its first line to `last` (month indexes)."""

    first: int
    last: int
    accounts: dict[int, AccountHistory]

    @property
    def months(self) -> range:
        return range(self.first, self.last + 1)


def _line_span(start: datetime.date, end: datetime.date | None, last: int) -> tuple[int, int]:
    """The month indexes whose month end a line [start, end) covers, as a half-open range."""
    # A month end e counts when start <= e < end: the start's own month always, up to the month
    # before the end's month (an end on a month's last day misses that month end, being exclusive).
    low = month_index(start)
    high = last + 1 if end is None else min(month_index(end), last + 1)
    return low, high


def load_history(*, until: datetime.date | None = None) -> MrrHistory:
    """Read all live lines of live accounts (one query) and their segments (one query)."""
    last = month_index(until or timezone.localdate())
    lines = list(
        Subscription.objects.alive()
        .filter(account__deleted_at__isnull=True)
        .values_list("account_id", "product", "mrr", "start_date", "end_date")
        .order_by()
    )
    rows = Account.objects.filter(pk__in={line[0] for line in lines}).values_list(
        "pk", "tier__name", "industry", "region", "owner__username"
    )
    labels = {
        pk: {SegmentKind.TIER: t or "", SegmentKind.INDUSTRY: i, SegmentKind.REGION: r, SegmentKind.OWNER: o or ""}
        for pk, t, i, r, o in rows.order_by()
    }
    return history_from_lines(lines, labels, last)


Line = tuple[int, str, Decimal, datetime.date, datetime.date | None]


def history_from_lines(lines: list[Line], labels: dict[int, dict[str, str]], last: int) -> MrrHistory:
    """Month-end MRR per account and product from (account_id, product, mrr, start, end) lines."""
    if not lines:
        return MrrHistory(first=last, last=last, accounts={})
    first = min(min(month_index(line[3]) for line in lines) - 1, last)
    width = last - first + 1
    deltas: dict[int, dict[str, list[Decimal]]] = defaultdict(dict)
    for account_id, product, mrr, start, end in lines:
        low, high = _line_span(start, end, last)
        if low >= high:
            continue
        steps = deltas[account_id].setdefault(product, [ZERO] * (width + 1))
        steps[low - first] += mrr
        steps[high - first] -= mrr
    accounts = {}
    for account_id, products in deltas.items():
        by_product = {}
        total = [ZERO] * width
        for product, steps in products.items():
            running, series = ZERO, []
            for k in range(width):
                running += steps[k]
                series.append(running)
                total[k] += running
            by_product[product] = series
        accounts[account_id] = AccountHistory(account_id, labels.get(account_id, {}), total, by_product)
    return MrrHistory(first=first, last=last, accounts=accounts)


# --- movements ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """What one account did in one month. `kind` is new, reactivation, expansion, contraction, churn or ''."""

    account_id: int
    start: Decimal
    end: Decimal
    kind: str
    amount: Decimal
    cross_sell: Decimal = ZERO

    @property
    def upsell(self) -> Decimal:
        return self.amount - self.cross_sell if self.kind == "expansion" else ZERO


def movement(history: AccountHistory, offset: int) -> Movement:
    """Classify one account's month at `offset` (relative to the history's first month)."""
    start, end = history.at(offset - 1), history.at(offset)
    pk = history.account_id
    if start > 0 and end == 0:
        return Movement(pk, start, end, "churn", start)
    if start > 0 and end < start:
        return Movement(pk, start, end, "contraction", start - end)
    if start > 0 and end > start:
        expansion = end - start
        fresh = sum(
            (
                series[offset]
                for series in history.by_product.values()
                if series[offset] > 0 and not any(v > 0 for v in series[:offset])
            ),
            ZERO,
        )
        return Movement(pk, start, end, "expansion", expansion, min(expansion, fresh))
    if start == 0 and end > 0:
        paid_before = any(v > 0 for v in history.mrr[:offset])
        return Movement(pk, start, end, "reactivation" if paid_before else "new", end)
    return Movement(pk, start, end, "", ZERO)


def movements(history: MrrHistory, month: int) -> Iterator[tuple[AccountHistory, Movement]]:
    offset = month - history.first
    for account in history.accounts.values():
        yield account, movement(account, offset)


# --- the bridge -----------------------------------------------------------------------------------


FIGURES = (
    "start_mrr",
    "new_mrr",
    "reactivation_mrr",
    "expansion_mrr",
    "upsell_mrr",
    "cross_sell_mrr",
    "contraction_mrr",
    "churned_mrr",
    "end_mrr",
)
COUNTS = (
    "start_accounts",
    "new_accounts",
    "reactivated_accounts",
    "expanding_accounts",
    "contracting_accounts",
    "churned_accounts",
    "end_accounts",
)
MOVEMENT_FIGURE = {
    "new": ("new_mrr", "new_accounts"),
    "reactivation": ("reactivation_mrr", "reactivated_accounts"),
    "expansion": ("expansion_mrr", "expanding_accounts"),
    "contraction": ("contraction_mrr", "contracting_accounts"),
    "churn": ("churned_mrr", "churned_accounts"),
}


def _ratio(numerator: Decimal, denominator: Decimal, places: Decimal = RATE_PLACES) -> Decimal | None:
    """numerator / denominator, or None (not computable) when the denominator is zero."""
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(places)


def with_rates(row: dict) -> dict:
    """Add GRR, NRR, churn rates, quick ratio and ARPA to a row of bridge figures."""
    start = row["start_mrr"]
    lost = row["contraction_mrr"] + row["churned_mrr"]
    gained = row["new_mrr"] + row["reactivation_mrr"] + row["expansion_mrr"]
    row["grr"] = _ratio(start - lost, start)
    row["nrr"] = _ratio(start + row["expansion_mrr"] - lost, start)
    row["logo_churn_rate"] = _ratio(row["churned_accounts"], row["start_accounts"])
    row["gross_revenue_churn_rate"] = _ratio(lost, start)
    row["net_revenue_churn_rate"] = None if row["nrr"] is None else _ratio(lost - row["expansion_mrr"], start)
    row["quick_ratio"] = _ratio(gained, lost)
    row["arpa"] = _ratio(row["end_mrr"], row["end_accounts"], MONEY_PLACES)
    return row


def bridge(history: MrrHistory, first: int, last: int) -> dict[tuple[int, str, str], dict]:
    """Bridge figures per (month index, segment kind, segment) for months first..last."""
    rows: dict[tuple[int, str, str], dict] = {}

    def row_for(key):
        if key not in rows:
            rows[key] = dict.fromkeys(FIGURES, ZERO) | dict.fromkeys(COUNTS, 0)
        return rows[key]

    for month in range(first, last + 1):
        row_for((month, SegmentKind.ALL, ""))
        for account, move in movements(history, month):
            if not (move.start or move.end):
                continue
            keys = [(month, SegmentKind.ALL, "")] + [(month, kind, label) for kind, label in account.segments.items()]
            for key in keys:
                row = row_for(key)
                row["start_mrr"] += move.start
                row["end_mrr"] += move.end
                row["start_accounts"] += move.start > 0
                row["end_accounts"] += move.end > 0
                if move.kind:
                    money, count = MOVEMENT_FIGURE[move.kind]
                    row[money] += move.amount
                    row[count] += 1
                if move.kind == "expansion":
                    row["cross_sell_mrr"] += move.cross_sell
                    row["upsell_mrr"] += move.upsell
    return {key: with_rates(row) for key, row in rows.items()}


def default_month_range(history: MrrHistory) -> tuple[int, int]:
    return history.first + 1, history.last


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
    if high < low:
        raise ValueError("The month range ends before it starts.")
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
            *FIGURES,
            *COUNTS,
            "grr",
            "nrr",
            "logo_churn_rate",
            "gross_revenue_churn_rate",
            "net_revenue_churn_rate",
            "quick_ratio",
            "arpa",
            "updated_at",
        ],
    )
    # Segments that no longer have anything in these months (an account moved tier, say) go.
    RevenueMonth.objects.filter(
        month__gte=month_start(low), month__lte=month_start(high), updated_at__lt=stamp
    ).delete()
    return len(rows)
