"""Month-end MRR history of every account, and what each account did each month (SPEC 4).

The public vocabulary shared by the revenue bridge (`metrics.services.revenue`) and the revenue
selectors (`metrics.selectors.revenue`): month indexes, the history loader, one account's movement in one
month, and `ratio`. An account's MRR in month M is its MRR on M's last day, in CSM_CURRENCY.
"""

import calendar
import datetime
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Account, Subscription
from csm.exceptions import DomainError
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
    """'YYYY-MM' to the first day of that month; DomainError otherwise."""
    try:
        return datetime.datetime.strptime(value, "%Y-%m").date()  # noqa: DTZ007 - a calendar month, no time
    except (TypeError, ValueError):
        raise DomainError(_("'%(value)s' is not a month; use YYYY-MM.") % {"value": value}) from None


def check_month_range(first: datetime.date, last: datetime.date) -> None:
    """Refuse a range of months whose last month comes before its first."""
    if month_index(last) < month_index(first):
        raise DomainError(_("The month range ends before it starts."))


def ratio(numerator: Decimal | int, denominator: Decimal | int, places: Decimal = RATE_PLACES) -> Decimal | None:
    """numerator / denominator rounded to `places`, or None (not computable) when the denominator is zero."""
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(places)


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


# The bridge's money figures (RevenueMonth's field names), in the order the bridge reads.
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
# The figure each kind of movement adds its amount to.
KIND_FIGURE = {
    "new": "new_mrr",
    "reactivation": "reactivation_mrr",
    "expansion": "expansion_mrr",
    "contraction": "contraction_mrr",
    "churn": "churned_mrr",
}


class Movement(NamedTuple):
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

    def figures(self) -> dict[str, Decimal]:
        """This account's non-zero part of each bridge figure (see FIGURES) in this month.

        The bridge adds these up per segment and a drill-down lists them, so the two always agree.
        """
        parts = {}
        if self.start:
            parts["start_mrr"] = self.start
        if self.end:
            parts["end_mrr"] = self.end
        if self.kind:
            parts[KIND_FIGURE[self.kind]] = self.amount
        if self.kind == "expansion":
            if self.upsell:
                parts["upsell_mrr"] = self.upsell
            if self.cross_sell:
                parts["cross_sell_mrr"] = self.cross_sell
        return parts


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
    """The movement in `month` (a month index) of every account with MRR at its start or end."""
    offset = month - history.first
    for account in history.accounts.values():
        if account.at(offset - 1) or account.at(offset):
            yield account, movement(account, offset)


# --- trailing retention ---------------------------------------------------------------------------


@dataclass
class TrailingRetention:
    """Trailing-12-month retention of one segment at one month (SPEC 4), over its accounts with MRR at
    the end of the month twelve months before. Money in CSM_CURRENCY, month-end MRR."""

    base_mrr: Decimal = ZERO  # their MRR twelve months before
    mrr: Decimal = ZERO  # their MRR now
    kept_mrr: Decimal = ZERO  # their MRR now, each at most at its MRR then
    accounts: int = 0

    @property
    def nrr(self) -> Decimal | None:
        return ratio(self.mrr, self.base_mrr)

    @property
    def grr(self) -> Decimal | None:
        return ratio(self.kept_mrr, self.base_mrr)


def trailing_retention_by_segment(history: MrrHistory, month: int) -> dict[tuple[str, str], TrailingRetention]:
    """Trailing-12-month retention at `month` (a month index) per (segment kind, segment).

    Only segments with a base (an account paying twelve months before) are present, plus
    ('all', '') always, whose figures are None without one.
    """
    now = month - history.first
    # Running sums as lists (base, now, kept, accounts): this runs for every month of the bridge.
    everyone = (SegmentKind.ALL, "")
    sums: dict[tuple[str, str], list] = {everyone: [ZERO, ZERO, ZERO, 0]}
    if 12 <= now <= history.last - history.first:
        for account in history.accounts.values():
            before = account.mrr[now - 12]
            if before <= 0:
                continue
            after = account.mrr[now]
            kept = min(before, after)
            for key in (everyone, *account.segments.items()):
                total = sums.get(key)
                if total is None:
                    total = sums[key] = [ZERO, ZERO, ZERO, 0]
                total[0] += before
                total[1] += after
                total[2] += kept
                total[3] += 1
    return {key: TrailingRetention(*total) for key, total in sums.items()}
