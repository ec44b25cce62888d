"""Reads shaped for the portfolio page: the stored revenue bridge over a range of months.

The figures themselves come from `metrics.selectors.revenue` and the stored `RevenueMonth` rows; this
module only picks the rows a page shows, each read in one query whatever the number of accounts.
"""

import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db.models import Max, Min, Q

from metrics.history import FIGURES, month_index, month_start
from metrics.models import RevenueMonth

SegmentKind = RevenueMonth.SegmentKind


class MonthBounds(NamedTuple):
    """The first and last month (first days) with a stored bridge of the whole book."""

    first: datetime.date
    last: datetime.date


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
