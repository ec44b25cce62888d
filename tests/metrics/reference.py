"""SPEC 4 computed the plain way, straight from the subscription lines, to check the revenue code against.

Deliberately shares nothing with `metrics.history` or the bridge: an account's MRR on a day is the sum of
the lines covering that day, month ends come from the calendar, and every month is classified from
scratch by the definitions of SPEC 4. Slow, and meant for small fixtures.
"""

import calendar
import datetime
from collections import defaultdict
from decimal import Decimal

from metrics.models import RevenueMonth

# The money figures the bridge stores, read from the model rather than from the code under test.
STORED_FIGURES = [field.name for field in RevenueMonth._meta.get_fields() if field.name.endswith("_mrr")]
# (account id, product, mrr, start, exclusive end or None)
Line = tuple[int, str, Decimal, datetime.date, datetime.date | None]
SIX_PLACES = Decimal("0.000001")


def last_day(year: int, month: int) -> datetime.date:
    return datetime.date(year, month, calendar.monthrange(year, month)[1])


def month_end_before(day: datetime.date) -> datetime.date:
    """The last day of the month before `day`'s month."""
    return day.replace(day=1) - datetime.timedelta(days=1)


class Reference:
    """Month-end MRR and movements of each account, from `lines`; `labels` maps an account to its segments."""

    def __init__(self, lines: list[Line], labels: dict[int, dict[str, str]] | None = None) -> None:
        self.lines = lines
        self.labels = labels or {}
        self.by_account = defaultdict(list)
        for line in lines:
            self.by_account[line[0]].append(line)
        self.accounts = sorted(self.by_account)
        self.products = {account: {line[1] for line in own} for account, own in self.by_account.items()}
        self.first_day = min((line[3] for line in lines), default=datetime.date(2000, 1, 1))
        self._mrr: dict[tuple, Decimal] = {}

    def mrr(self, account: int, day: datetime.date, product: str | None = None) -> Decimal:
        """MRR of the account (or of one of its products) on `day`: its lines with start <= day < end."""
        key = (account, day, product)
        if key not in self._mrr:
            self._mrr[key] = sum(
                (
                    mrr
                    for _account, line_product, mrr, start, end in self.by_account.get(account, [])
                    if (product is None or line_product == product) and start <= day and (end is None or day < end)
                ),
                Decimal(0),
            )
        return self._mrr[key]

    def month_ends_before(self, month: datetime.date) -> list[datetime.date]:
        """Every month end from the first line's month to the month before `month`."""
        ends = []
        day = last_day(self.first_day.year, self.first_day.month)
        while day < month.replace(day=1):
            ends.append(day)
            day = last_day(*(day + datetime.timedelta(days=1)).timetuple()[:2])
        return ends

    def figures(self, month: datetime.date) -> dict[int, dict[str, Decimal]]:
        """Per account with MRR at the start or end of `month`, its non-zero part of each bridge figure."""
        end_day = last_day(month.year, month.month)
        start_day = month_end_before(month)
        earlier = self.month_ends_before(month)
        result = {}
        for account in self.accounts:
            start, end = self.mrr(account, start_day), self.mrr(account, end_day)
            if not start and not end:
                continue
            figures = {"start_mrr": start, "end_mrr": end}
            if start > 0 and end == 0:
                figures["churned_mrr"] = start
            elif start > 0 and end < start:
                figures["contraction_mrr"] = start - end
            elif start > 0 and end > start:
                expansion = end - start
                # Products paying at this month end that never paid at an earlier month end.
                fresh = sum(
                    (
                        self.mrr(account, end_day, product)
                        for product in self.products[account]
                        if self.mrr(account, end_day, product) > 0
                        and all(self.mrr(account, day, product) <= 0 for day in earlier)
                    ),
                    Decimal(0),
                )
                figures["expansion_mrr"] = expansion
                figures["cross_sell_mrr"] = min(expansion, fresh)
                figures["upsell_mrr"] = expansion - min(expansion, fresh)
            elif start == 0 and end > 0:
                paid_before = any(self.mrr(account, day) > 0 for day in earlier)
                figures["reactivation_mrr" if paid_before else "new_mrr"] = end
            result[account] = {name: value for name, value in figures.items() if value}
        return result

    def segments(self, account: int) -> list[tuple[str, str]]:
        return [("all", ""), *self.labels.get(account, {}).items()]

    def drilldown(self, month: datetime.date, kind: str, segment: str) -> dict[str, dict[int, Decimal]]:
        """Per bridge figure, the accounts of one segment behind it in `month` and their non-zero amounts."""
        result = defaultdict(dict)
        for account, figures in self.figures(month).items():
            if (kind, segment) in self.segments(account):
                for figure, amount in figures.items():
                    result[figure][account] = amount
        return result

    def trailing(self, month: datetime.date) -> dict[tuple[str, str], tuple[Decimal | None, Decimal | None]]:
        """(NRR, GRR) per segment with accounts paying at the end of the month a year before `month`."""
        now_day = last_day(month.year, month.month)
        then_day = last_day(month.year - 1, month.month)
        sums = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
        for account in self.accounts:
            then, now = self.mrr(account, then_day), self.mrr(account, now_day)
            if then > 0:
                for segment in self.segments(account):
                    sums[segment][0] += then
                    sums[segment][1] += now
                    sums[segment][2] += min(then, now)
        return {
            segment: ((now / then).quantize(SIX_PLACES), (kept / then).quantize(SIX_PLACES))
            for segment, (then, now, kept) in sums.items()
        }
