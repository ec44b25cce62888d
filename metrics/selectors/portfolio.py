"""Reads shaped for the portfolio page: the stored revenue bridge over a range of months, and the history
figures the nightly revenue step stores (`metrics.services.portfolio`): cohorts, upsell timing and churns.

The figures themselves come from `metrics.selectors.revenue` and the stored `RevenueMonth`, `PortfolioHistory`
and `AccountChurn` rows; this module only picks the rows a page shows, each read in one query whatever the
number of accounts.
"""

import datetime
from collections import Counter, defaultdict
from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils.translation import gettext as _

from accounts.models import Account
from metrics.history import FIGURES, ZERO, MrrHistory, month_end, month_index, month_start
from metrics.models import AccountChurn, PortfolioHistory, RevenueMonth

# The churn analysis' own classification, reused so the drill-down counts exactly what it counts.
from metrics.selectors.revenue import (
    TENURE_BANDS,
    ChurnAnalysis,
    ChurnGroup,
    Cohort,
    Concentration,
    UpsellTiming,
    churns_in_range,
    cohorts_of,
    tenure_band,
    timing_of,
)
from metrics.selectors.revenue_steps import (
    CHANGED_IN_MONTH,
    MONTH_MOVES,
    SEGMENT_OF,
    WANTED,
    CohortCounts,
    steps_sql,
)

SegmentKind = RevenueMonth.SegmentKind


class MonthBounds(NamedTuple):
    """The first and last month (first days) with a stored bridge of the whole book."""

    first: datetime.date
    last: datetime.date


class ChurnRow(NamedTuple):
    """One churn of `churn_analysis`: an account's MRR falling to zero in a month."""

    account_id: int
    name: str
    month: datetime.date
    tenure: int  # months from its first paid month to the churn month
    band: str  # the tenure band's label (TENURE_BANDS)
    mrr: Decimal  # the MRR lost (CSM_CURRENCY)
    reason: str  # the reason as `churn_analysis` counts it ("Not recorded" without an event)


class PortfolioRows(NamedTuple):
    """The whole book month by month (oldest first), and each segment of one kind in the last month."""

    months: list[RevenueMonth]
    segments: list[RevenueMonth]


def revenue_month_bounds() -> MonthBounds | None:
    """The stored bridge's first and last month, None before the bridge was ever computed (one query)."""
    bounds = RevenueMonth.objects.filter(segment_kind=SegmentKind.ALL).aggregate(first=Min("month"), last=Max("month"))
    if bounds["last"] is None:
        return None
    return MonthBounds(bounds["first"], bounds["last"])


def default_month_range(bounds: MonthBounds, months: int = 12) -> tuple[datetime.date, datetime.date]:
    """The last `months` months of the stored bridge (fewer when it is shorter)."""
    first = max(month_index(bounds.last) - months + 1, month_index(bounds.first))
    return month_start(first), bounds.last


def portfolio_rows(*, first: datetime.date, last: datetime.date, segment_kind: str) -> PortfolioRows:
    """The stored bridge of the whole book for the months first..last, and of every segment of
    `segment_kind` in `last` (ordered by segment; for the 'all' kind, the book's own last month). One query.
    """
    first, last = first.replace(day=1), last.replace(day=1)
    wanted = Q(segment_kind=SegmentKind.ALL, month__gte=first, month__lte=last)
    if segment_kind != SegmentKind.ALL:
        wanted |= Q(segment_kind=segment_kind, month=last)
    months, segments = [], []
    for row in RevenueMonth.objects.filter(wanted).order_by("segment_kind", "segment", "month"):
        if row.segment_kind == SegmentKind.ALL:
            months.append(row)
        else:
            segments.append(row)
    if segment_kind == SegmentKind.ALL:
        segments = [row for row in months if row.month == last]
    return PortfolioRows(months, segments)


def stored_bridge_figure(*, month: datetime.date, figure: str, segment_kind: str, segment: str) -> Decimal | None:
    """One stored bridge figure (MRR, CSM_CURRENCY), None when that month and segment is not stored. One query."""
    if figure not in FIGURES:
        return None
    return (
        RevenueMonth.objects.filter(month=month.replace(day=1), segment_kind=segment_kind, segment=segment)
        .values_list(figure, flat=True)
        .first()
    )


def tenure_bands() -> list[str]:
    return [label for label, _low, _high in TENURE_BANDS]


def not_recorded_reason() -> str:
    """The reason `churn_analysis` gives a churn without a churn event."""
    return _("Not recorded")


def churn_rows(
    *,
    first: datetime.date,
    last: datetime.date,
    tenure: str | None = None,
    reason: str | None = None,
    history: MrrHistory | None = None,
    until: datetime.date | None = None,
) -> list[ChurnRow]:
    """The churns behind `revenue.churn_analysis(first, last)` (same `history` or `until`), optionally of
    one tenure band and/or one reason (as counted there), by month then most MRR first then name. Their MRR
    and number add up to that band's or reason's figure. DomainError for a bad range or one past the
    history's end. Two queries without a history (churns with names, churn events); with one, churn events
    and account names (none without churns).
    """
    churns, recorded = churns_in_range(first=first, last=last, history=history, until=until)
    churns = [churn for churn in churns if tenure is None or tenure_band(churn.tenure) == tenure]
    if not churns:
        return []
    if history is not None:
        names = dict(
            Account.objects.filter(pk__in={churn.account_id for churn in churns}).values_list("pk", "name").order_by()
        )
        churns = [churn._replace(name=names.get(churn.account_id, "")) for churn in churns]
    not_recorded = not_recorded_reason()
    rows = []
    for churn in churns:
        label = recorded.get((churn.account_id, churn.month), "").strip() or not_recorded
        if reason is None or label == reason:
            band = tenure_band(churn.tenure)
            rows.append(
                ChurnRow(churn.account_id, churn.name, month_start(churn.month), churn.tenure, band, churn.mrr, label)
            )
    rows.sort(key=lambda row: (row.month, -row.mrr, row.name, row.account_id))
    return rows


def churn_total(rows: list[ChurnRow]) -> Decimal:
    return sum((row.mrr for row in rows), ZERO)


# --- the stored history figures -------------------------------------------------------------------


class StoredHistory(NamedTuple):
    """Cohort retention and upsell timing as the nightly revenue step stored them (see `revenue.cohort_retention`
    and `revenue.upsell_timing`), with the history's last month and when they were computed."""

    through: datetime.date
    computed_at: datetime.datetime
    cohorts: list[Cohort]
    upsell_timing: UpsellTiming
    concentration: Concentration
    time_to_value: dict  # as `revenue.time_to_value`, without each tier's list of days


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def stored_history() -> StoredHistory | None:
    """The stored cohorts, upsell timing, concentration and time to value, None before the nightly revenue
    step first ran. One query."""
    row = PortfolioHistory.objects.order_by("-computed_at").first()
    if row is None:
        return None
    counts = [
        CohortCounts(month_index(datetime.date.fromisoformat(cohort)), accounts, [Decimal(c).scaleb(-2) for c in mrr])
        for cohort, accounts, mrr in row.cohorts
    ]
    delays = Counter({months: accounts for months, accounts in row.upsell_delays})
    share = row.book.get("concentration") or {"accounts": 0, "top_accounts": 0, "top_arr": "0", "total_arr": "0"}
    days = row.book.get("time_to_value") or {"median_days": None, "accounts": 0, "by_tier": {}}
    return StoredHistory(
        row.through,
        row.computed_at,
        cohorts_of(counts),
        timing_of(delays),
        {
            **share,
            "top_arr": Decimal(share["top_arr"]),
            "total_arr": Decimal(share["total_arr"]),
            "top_share": _decimal(share.get("top_share")),
        },
        {
            "median_days": _decimal(days["median_days"]),
            "accounts": days["accounts"],
            "by_tier": {
                tier: {"median_days": _decimal(figures["median_days"]), "count": figures["count"]}
                for tier, figures in days["by_tier"].items()
            },
        },
    )


def _band_bounds(band: str) -> tuple[int, int | None]:
    return next((low, high) for label, low, high in TENURE_BANDS if label == band)


def stored_churns(
    *, first: datetime.date, last: datetime.date, tenure: str | None = None, reason: str | None = None
) -> QuerySet[AccountChurn]:
    """The stored churns of months first..last, optionally of one tenure band (a TENURE_BANDS label) and/or one
    reason as the churn analysis labels it ("Not recorded" for none), ordered as `churn_rows`: by month, then
    most MRR first, then name. Read through the churns' month index."""
    churns = AccountChurn.objects.filter(
        month__gte=month_start(month_index(first)), month__lte=month_start(month_index(last))
    )
    if tenure is not None:
        low, high = _band_bounds(tenure)
        churns = churns.filter(tenure_months__gte=low)
        if high is not None:
            churns = churns.filter(tenure_months__lte=high)
    if reason is not None:
        wanted = Q(reason=reason)
        if reason == not_recorded_reason():
            wanted |= Q(reason="")
        churns = churns.filter(wanted)
    return churns.order_by("month", "-mrr", "account__name", "account_id")


class ChurnTotals(NamedTuple):
    count: int
    mrr: Decimal  # CSM_CURRENCY


def churn_totals(churns: QuerySet[AccountChurn]) -> ChurnTotals:
    """How many churns and how much MRR `stored_churns` holds. One query."""
    totals = churns.order_by().aggregate(count=Count("pk"), mrr=Sum("mrr"))
    return ChurnTotals(totals["count"], totals["mrr"] if totals["mrr"] is not None else ZERO)


def churn_rows_of(churns: QuerySet[AccountChurn]) -> QuerySet:
    """`stored_churns` as `ChurnRow`s (a page of it is one query with the accounts' names)."""
    return churns.values_list("account_id", "account__name", "month", "tenure_months", "mrr", "reason")


def churn_row(values: tuple) -> ChurnRow:
    account_id, name, month, tenure, mrr, reason = values
    return ChurnRow(account_id, name, month, tenure, tenure_band(tenure), mrr, reason or not_recorded_reason())


def stored_churn_analysis(*, first: datetime.date, last: datetime.date) -> ChurnAnalysis:
    """`revenue.churn_analysis(first, last)` from the stored churns: the same figures as of the nightly run.
    One query, grouped by tenure, tier and reason."""
    groups = (
        stored_churns(first=first, last=last)
        .order_by()
        .values_list("tenure_months", "tier", "reason")
        .annotate(logos=Count("pk"), mrr=Sum("mrr"))
    )
    not_recorded = not_recorded_reason()
    by_tenure: dict[str, ChurnGroup] = {label: {"mrr": ZERO, "logos": 0} for label, _low, _high in TENURE_BANDS}
    by_tier: dict[str, ChurnGroup] = defaultdict(lambda: {"mrr": ZERO, "logos": 0})
    reasons: Counter[str] = Counter()
    total, logos = ZERO, 0
    for tenure, tier, reason, count, mrr in groups:
        for group in (by_tenure[tenure_band(tenure)], by_tier[tier]):
            group["mrr"] += mrr
            group["logos"] += count
        reasons[reason or not_recorded] += count
        total += mrr
        logos += count
    return {
        "churned_mrr": total,
        "churned_accounts": logos,
        "by_tenure": by_tenure,
        "by_tier": dict(sorted(by_tier.items(), key=lambda item: (-item[1]["mrr"], item[0]))),
        "reasons": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    }


# --- the bridge drill-down, a page at a time ------------------------------------------------------

# Each account's part of a bridge figure in cents, from its month's movement as `revenue_steps.month_moves`
# reads it (start, end, paid before, products first paid in the month) and as `metrics.history.movement`
# splits it; the accounts `WANTED` keeps are the only ones that can have a part.
EXPANSION = "(m.end_cents - m.start_cents)"
CROSS_SELL = f"CASE WHEN m.fresh_cents < {EXPANSION} THEN m.fresh_cents ELSE {EXPANSION} END"
AMOUNT = {
    "start_mrr": "m.start_cents",
    "new_mrr": "CASE WHEN m.paid_before = 0 THEN m.end_cents ELSE 0 END",
    "reactivation_mrr": "CASE WHEN m.paid_before = 1 THEN m.end_cents ELSE 0 END",
    "expansion_mrr": EXPANSION,
    "upsell_mrr": f"{EXPANSION} - ({CROSS_SELL})",
    "cross_sell_mrr": CROSS_SELL,
    "contraction_mrr": "m.start_cents - m.end_cents",
    "churned_mrr": "m.start_cents",
    "end_mrr": "m.end_cents",
}
# The month's movements (the CTEs of `revenue_steps.MONTH_MOVES`), then one page of the accounts with a part,
# largest first, each row carrying how many there are and their total.
MOVES = MONTH_MOVES[: MONTH_MOVES.index("\nSELECT ")]
PAGE = """
, parts AS (
    SELECT m.account_id, a.name, m.start_cents, m.end_cents, {amount} AS amount
    FROM moves m JOIN {account} a ON a.id = m.account_id
    LEFT JOIN {tier} t ON t.id = a.tier_id LEFT JOIN {user} u ON u.id = a.owner_id
    WHERE {wanted} AND {segment}
)
SELECT account_id, name, start_cents, end_cents, amount, COUNT(*) OVER (), SUM(amount) OVER ()
FROM parts WHERE amount <> 0
ORDER BY amount DESC, name, account_id
LIMIT %(limit)s OFFSET %(offset)s
"""


class DrilldownPage(NamedTuple):
    """One page of the accounts behind a bridge figure, and how many they are and their total (CSM_CURRENCY)."""

    rows: list[dict]  # account_id, name, start, end (MRR at the two month ends), amount (its part)
    count: int
    total: Decimal


def _money(cents: int | Decimal) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def drilldown_page(
    *, month: datetime.date, figure: str, segment_kind: str, segment: str, number: int, size: int
) -> tuple[DrilldownPage, int]:
    """Page `number` (from 1; past the last: the last) of `revenue.drilldown(month, figure, segment_kind,
    segment)`: the same rows in the same order, with their number and total, sorted and cut in the database.
    Returns the page and its number. One query (three for a page past the last)."""
    params: dict = {"last": month_index(month), "limit": size}
    segment_sql = "1 = 1"
    if segment_kind in SEGMENT_OF:
        segment_sql = f"{SEGMENT_OF[segment_kind]} = %(segment)s"
        params["segment"] = segment
    only = ""
    if figure not in ("start_mrr", "end_mrr"):  # only accounts with a line starting or ending then can move
        only = CHANGED_IN_MONTH
        params |= {"month_first": month_start(month_index(month)), "month_last": month_end(month_index(month))}
    sql = steps_sql(MOVES + PAGE, only=only, wanted=WANTED[figure], segment=segment_sql, amount=AMOUNT[figure])

    def fetch(page: int) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, {**params, "offset": (page - 1) * size})
            return cursor.fetchall()

    number = max(1, number)
    found = fetch(number)
    if not found and number > 1:  # past the last page: show the last, as Paginator.get_page does
        counted = fetch(1)
        number = max(1, -(-counted[0][5] // size)) if counted else 1
        found = fetch(number) if counted else []
    rows = [
        {"account_id": pk, "name": name, "start": _money(start), "end": _money(end), "amount": _money(amount)}
        for pk, name, start, end, amount, _count, _total in found
    ]
    count, total = (found[0][5], _money(found[0][6])) if found else (0, ZERO)
    return DrilldownPage(rows, count, total), number
