"""Reads over the revenue history (SPEC 4): retention, LTV, cohorts, expansion, churn, time-to-value.

Money is MRR in CSM_CURRENCY at month ends (ARR = 12 x MRR); rates and shares are fractions (1 = 100 %)
to six places. A figure that cannot be computed (nothing to divide by) is None, never 0 or infinity.
Every selector costs a fixed number of queries whatever the number of accounts and months. Those that
follow accounts month by month take a `history` (`metrics.history.load_history`, two queries) to walk in
memory; without one, cohorts, upsell timing, churns and drill-downs are summed in the database from each
account's MRR steps (`metrics.selectors.revenue_steps`, one query, the same figures) and the others load
it. The rest read the stored RevenueMonth rows or aggregate in the database.
"""

import datetime
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.db import connection
from django.db.models import Max, OuterRef, Subquery
from django.utils.translation import gettext as _

from accounts.models import Account, ChurnEvent, Subscription
from csm.exceptions import DomainError
from metrics.history import (
    FIGURES,
    MONEY_PLACES,
    RATE_PLACES,
    ZERO,
    AccountHistory,
    Movement,
    MrrHistory,
    check_month_range,
    load_history,
    month_end,
    month_index,
    month_start,
    movement,
    movements,
    ratio,
    trailing_retention_by_segment,
)
from metrics.models import RevenueMonth
from metrics.selectors import revenue_steps
from success_plans.models import Goal, SuccessPlan

SegmentKind = RevenueMonth.SegmentKind

# (label, lowest, highest) months since the first MRR month; None: no upper bound.
TENURE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("0–3", 0, 3),
    ("4–6", 4, 6),
    ("7–12", 7, 12),
    ("13–24", 13, 24),
    ("25+", 25, None),
)


class Retention(TypedDict):
    nrr: Decimal | None
    grr: Decimal | None


class RetentionBase(Retention):
    base_mrr: Decimal
    accounts: int


class SegmentLtv(TypedDict):
    arpa: Decimal | None
    churn_rate: Decimal | None
    ltv: Decimal | None


class AccountLtv(TypedDict):
    segment: str
    mrr: Decimal
    churn_rate: Decimal | None
    ltv: Decimal | None


class Cohort(TypedDict):
    cohort: datetime.date
    accounts: int
    start_mrr: Decimal
    logos: list[Decimal | None]
    revenue: list[Decimal | None]


class SegmentExpansion(TypedDict):
    upsell: Decimal
    cross_sell: Decimal
    expansion: Decimal
    expanding: int
    average_expansion: Decimal | None


class UpsellTiming(TypedDict):
    distribution: dict[int, int]
    median_months: Decimal | None
    accounts: int


class ChurnGroup(TypedDict):
    mrr: Decimal
    logos: int


class ChurnAnalysis(TypedDict):
    churned_mrr: Decimal
    churned_accounts: int
    by_tenure: dict[str, ChurnGroup]
    by_tier: dict[str, ChurnGroup]
    reasons: dict[str, int]


class TierTimeToValue(TypedDict):
    median_days: Decimal | None
    count: int
    values: list[int]


class TimeToValue(TypedDict):
    median_days: Decimal | None
    by_tier: dict[str, TierTimeToValue]
    accounts: int


class Concentration(TypedDict):
    accounts: int
    top_accounts: int
    top_arr: Decimal
    total_arr: Decimal
    top_share: Decimal | None


class DrilldownRow(TypedDict):
    account_id: int
    name: str
    amount: Decimal
    start: Decimal
    end: Decimal


# --- helpers --------------------------------------------------------------------------------------


def history_or_load(history: MrrHistory | None, until: datetime.date | None) -> MrrHistory:
    return history if history is not None else load_history(until=until)


def check_within_history(month: datetime.date, last: int | None = None) -> None:
    """Refuse a month after the history's last month (`last`, a month index; default this month): it would
    read as everyone churning."""
    last = revenue_steps.last_month(None) if last is None else last
    if month_index(month) > last:
        raise DomainError(
            _("The revenue history ends in %(last)s; choose %(last)s or an earlier month.")
            % {"last": f"{month_start(last):%Y-%m}"}
        )


def history_offset(history: MrrHistory, month: datetime.date) -> int:
    """`month` as an offset into the history; DomainError after its end (see `check_within_history`)."""
    check_within_history(month, history.last)
    return month_index(month) - history.first


def _segment_of(account: AccountHistory, segment_kind: str) -> str:
    """The account's current segment of that kind; '' for the 'all' kind."""
    return "" if segment_kind == SegmentKind.ALL else account.segments.get(segment_kind, "")


def _check_segment_kind(segment_kind: str) -> None:
    if segment_kind not in SegmentKind.values:
        raise DomainError(
            _("'%(kind)s' is not a segment kind; use one of %(kinds)s.")
            % {"kind": segment_kind, "kinds": ", ".join(SegmentKind.values)}
        )


def _check_months_after(months_after: int) -> None:
    if months_after < 0:
        raise DomainError(_("The number of months after the cohort month cannot be negative."))


def _median(values: Iterable[int]) -> Decimal | None:
    """The median as a Decimal (halfway between the two middle values for an even count); None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[middle])
    return Decimal(ordered[middle - 1] + ordered[middle]) / 2


def _ltv(mrr: Decimal | None, churn_rate: Decimal | None) -> Decimal | None:
    """mrr x gross margin / monthly churn rate; None (not estimable) without churn."""
    if mrr is None or not churn_rate:
        return None
    return (mrr * settings.CSM_GROSS_MARGIN / churn_rate).quantize(MONEY_PLACES)


# --- retention ------------------------------------------------------------------------------------


def trailing_retention(*, month: datetime.date, segment_kind: str = SegmentKind.ALL) -> dict[str, Retention]:
    """Trailing-12-month NRR and GRR per segment at `month`, as stored with the revenue bridge (one query).

    Every stored segment of that month and kind, in order; nrr and grr are None for a segment without
    accounts paying twelve months before. Empty for a month the bridge has not stored: recompute it, or
    use `trailing_retention_computed`.
    """
    _check_segment_kind(segment_kind)
    rows = (
        RevenueMonth.objects.filter(month=month.replace(day=1), segment_kind=segment_kind)
        .order_by("segment")
        .values_list("segment", "trailing_nrr", "trailing_grr")
    )
    return {segment: {"nrr": nrr, "grr": grr} for segment, nrr, grr in rows}


def trailing_retention_computed(
    *, month: datetime.date, segment_kind: str = SegmentKind.ALL, history: MrrHistory | None = None
) -> dict[str, RetentionBase]:
    """Trailing-12-month NRR and GRR per segment at `month`, computed from the subscription lines.

    The figures `revenue_recompute` stores, with their base: base_mrr is the MRR (CSM_CURRENCY) twelve
    months before of the accounts paying then, accounts how many they are. Only segments with such
    accounts, in order; the 'all' kind always has its one segment ''. Two queries (the history).
    """
    _check_segment_kind(segment_kind)
    history = history_or_load(history, month)
    index = history_offset(history, month) + history.first
    retention = trailing_retention_by_segment(history, index)
    return {
        segment: {"nrr": kept.nrr, "grr": kept.grr, "base_mrr": kept.base_mrr, "accounts": kept.accounts}
        for (kind, segment), kept in sorted(retention.items())
        if kind == segment_kind
    }


def cohort_retention(*, months_after: int = 12, history: MrrHistory | None = None) -> list[Cohort]:
    """Accounts grouped by their first month-end MRR month (`cohort`, its first day), oldest first.

    logos[k] is the share of the cohort's accounts with MRR k months later; revenue[k] the cohort's MRR
    then / its MRR in the cohort month (start_mrr, CSM_CURRENCY). k runs from 0 to `months_after`, while
    that month is in the history. Without `history`, the history up to this month, summed in the database
    (one query).
    """
    _check_months_after(months_after)
    if history is None:
        counts = revenue_steps.history_steps(last=revenue_steps.last_month(None), months_after=months_after).cohorts
    else:
        counts = _cohort_counts(history, months_after)
    return cohorts_of(counts)


def cohorts_of(counts: list[revenue_steps.CohortCounts]) -> list[Cohort]:
    """Cohort retention (see `cohort_retention`) from each cohort's paying accounts and MRR."""
    return [
        {
            "cohort": month_start(cohort),
            "accounts": accounts[0],
            "start_mrr": mrr[0],
            "logos": [ratio(paying, accounts[0]) for paying in accounts],
            "revenue": [ratio(value, mrr[0]) for value in mrr],
        }
        for cohort, accounts, mrr in counts
    ]


def _cohort_counts(history: MrrHistory, months_after: int) -> list[revenue_steps.CohortCounts]:
    """`revenue_steps.cohort_counts` from a history in memory."""
    cohorts: dict[int, list[AccountHistory]] = defaultdict(list)
    for account in history.accounts.values():
        first_paid = account.first_paid()
        if first_paid is not None:
            cohorts[first_paid].append(account)
    result = []
    for first_paid in sorted(cohorts):
        members = cohorts[first_paid]
        accounts, revenue = [], []
        for k in range(min(months_after, history.last - history.first - first_paid) + 1):
            mrr = [account.at(first_paid + k) for account in members]
            accounts.append(sum(value > 0 for value in mrr))
            revenue.append(sum(mrr, ZERO))
        result.append(revenue_steps.CohortCounts(history.first + first_paid, accounts, revenue))
    return result


# --- the portfolio's history figures -------------------------------------------------------------


class HistoryFigures(TypedDict):
    cohorts: list[Cohort]
    upsell_timing: UpsellTiming
    churn: ChurnAnalysis | None


def history_figures(
    *, months_after: int, churn_first: datetime.date | None = None, churn_last: datetime.date | None = None
) -> HistoryFigures:
    """`cohort_retention`, `upsell_timing` and, given its months, `churn_analysis`, over the history up to
    this month, from one query in the database (two with churns: their events). A churn range past this
    month is a DomainError (see `check_within_history`)."""
    _check_months_after(months_after)
    last = revenue_steps.last_month(None)
    churn_months = None
    if churn_first is not None and churn_last is not None:
        check_month_range(churn_first, churn_last)
        check_within_history(churn_last, last)
        churn_months = (month_index(churn_first), month_index(churn_last))
    steps = revenue_steps.history_steps(last=last, months_after=months_after, delays=True, churn_months=churn_months)
    churn = churn_analysis_of(*churns_with_reasons(steps.churns, *churn_months)) if churn_months else None
    return {"cohorts": cohorts_of(steps.cohorts), "upsell_timing": timing_of(steps.upsell_delays), "churn": churn}


# --- lifetime value -------------------------------------------------------------------------------


def _segment_ltv(*, month: datetime.date, segment_kind: str, segment: str | None = None) -> dict[str, SegmentLtv]:
    """ARPA in `month`, trailing-12-month mean gross revenue churn rate and LTV per segment (one query)."""
    _check_segment_kind(segment_kind)
    now = month_index(month)
    rows = RevenueMonth.objects.filter(
        segment_kind=segment_kind, month__gte=month_start(now - 11), month__lte=month_start(now)
    )
    if segment is not None:
        rows = rows.filter(segment=segment)
    arpa: dict[str, Decimal | None] = {}
    rates: dict[str, list[Decimal]] = defaultdict(list)
    for label, row_month, start, contraction, churned, row_arpa in rows.values_list(
        "segment", "month", "start_mrr", "contraction_mrr", "churned_mrr", "arpa"
    ).order_by():
        arpa.setdefault(label, None)
        if month_index(row_month) == now:
            arpa[label] = row_arpa
        # From the stored money rather than the rounded stored rate: the mean is rounded once.
        if start:
            rates[label].append((contraction + churned) / start)
    result: dict[str, SegmentLtv] = {}
    for label in sorted(arpa):
        churn_rate = (sum(rates[label]) / len(rates[label])).quantize(RATE_PLACES) if rates[label] else None
        result[label] = {"arpa": arpa[label], "churn_rate": churn_rate, "ltv": _ltv(arpa[label], churn_rate)}
    return result


def ltv_by_segment(*, month: datetime.date, segment_kind: str = SegmentKind.ALL) -> dict[str, SegmentLtv]:
    """LTV per segment at `month`, from the stored revenue bridge (one query).

    arpa: MRR per paying account at the end of `month` (CSM_CURRENCY); churn_rate: the mean monthly gross
    revenue churn rate over the 12 months to `month`, of the months where it is computable; ltv = arpa x
    CSM_GROSS_MARGIN / churn_rate, None when nothing churned in the window (not estimable). The 'all'
    kind has one segment, ''.
    """
    return _segment_ltv(month=month, segment_kind=segment_kind)


def account_ltv(*, account: Account, month: datetime.date | None = None) -> AccountLtv:
    """One account's LTV: its current MRR x CSM_GROSS_MARGIN / its tier's churn rate (see ltv_by_segment).

    `month` defaults to the latest month of the stored bridge. At most two queries (plus the account's
    tier when not loaded).
    """
    tier = account.tier.name if account.tier_id else ""
    if month is None:
        month = RevenueMonth.objects.filter(segment_kind=SegmentKind.ALL).aggregate(last=Max("month"))["last"]
    figures = _segment_ltv(month=month, segment_kind=SegmentKind.TIER, segment=tier).get(tier) if month else None
    churn_rate = figures["churn_rate"] if figures else None
    return {"segment": tier, "mrr": account.mrr, "churn_rate": churn_rate, "ltv": _ltv(account.mrr, churn_rate)}


# --- expansion ------------------------------------------------------------------------------------


def expansion_by_segment(
    *, first: datetime.date, last: datetime.date, segment_kind: str, history: MrrHistory | None = None
) -> dict[str, SegmentExpansion]:
    """Upsell, cross-sell and expansion MRR (CSM_CURRENCY) per segment over the months first..last.

    expanding counts the distinct accounts that expanded in those months (an account expanding in two
    months counts once); average_expansion = expansion / expanding, None without any. Every segment with
    MRR in the range is listed, in order. Two queries (the history).
    """
    _check_segment_kind(segment_kind)
    check_month_range(first, last)
    history = history_or_load(history, last)
    history_offset(history, last)
    money: dict[str, list[Decimal]] = {}  # segment: [upsell, cross-sell, expansion]
    expanding: dict[str, set[int]] = defaultdict(set)
    for month in range(max(month_index(first), history.first), month_index(last) + 1):
        for account, move in movements(history, month):
            segment = _segment_of(account, segment_kind)
            totals = money.setdefault(segment, [ZERO, ZERO, ZERO])
            if move.kind == "expansion":
                totals[0] += move.upsell
                totals[1] += move.cross_sell
                totals[2] += move.amount
                expanding[segment].add(account.account_id)
    return {
        segment: {
            "upsell": upsell,
            "cross_sell": cross_sell,
            "expansion": expansion,
            "expanding": len(expanding[segment]),
            "average_expansion": ratio(expansion, len(expanding[segment]), MONEY_PLACES),
        }
        for segment, (upsell, cross_sell, expansion) in sorted(money.items())
    }


def upsell_timing(*, history: MrrHistory | None = None) -> UpsellTiming:
    """Months from each account's first month-end MRR month to its first expansion month.

    distribution maps months to accounts, ascending; median_months is None when no account expanded;
    accounts counts those that did. Without `history`, the history up to this month, counted in the
    database (one query).
    """
    if history is None:
        delays = revenue_steps.history_steps(last=revenue_steps.last_month(None), delays=True).upsell_delays
    else:
        delays = Counter()
        for account in history.accounts.values():
            first_paid = account.first_paid()
            if first_paid is None:
                continue
            expanded = next(
                (k for k in range(first_paid + 1, len(account.mrr)) if movement(account, k).kind == "expansion"),
                None,
            )
            if expanded is not None:
                delays[expanded - first_paid] += 1
    return timing_of(delays)


def timing_of(delays: Counter[int]) -> UpsellTiming:
    """Upsell timing (see `upsell_timing`) from the accounts per months to their first expansion."""
    return {
        "distribution": dict(sorted(delays.items())),
        "median_months": _median(delays.elements()),
        "accounts": delays.total(),
    }


# --- churn ----------------------------------------------------------------------------------------


def tenure_band(months: int) -> str:
    return next(label for label, low, high in TENURE_BANDS if months >= low and (high is None or months <= high))


def _days_from_month(day: datetime.date, month: int) -> int | None:
    """How far `day` lies from `month` (a month index): 0 inside it, the days past it in the month after,
    1 on the last day of the month before; None further away."""
    index = month_index(day)
    if index == month:
        return 0
    if index == month + 1:
        return (day - month_end(month)).days
    if day == month_end(month - 1):
        return 1
    return None


def churn_reasons(history: MrrHistory, account_ids: Iterable[int]) -> dict[tuple[int, int], str]:
    """(account id, churn month index): the reason of the churn event that belongs to that churn (one query).

    An event belongs to the account's churn nearest to it (see `_days_from_month`), and a churn takes the
    nearest of its events; a churn without one is absent.
    """
    # Every churn of these accounts in the history, in the range or not: an event near the range's edge
    # may belong to a churn just outside it.
    churn_months = {
        pk: [history.first + k for k in range(1, len(account.mrr)) if account.mrr[k - 1] > 0 and account.mrr[k] == 0]
        for pk, account in ((pk, history.accounts[pk]) for pk in account_ids)
    }
    return reasons_of_churns(churn_months)


def reasons_of_churns(churn_months: dict[int, list[int]]) -> dict[tuple[int, int], str]:
    """As `churn_reasons`, given every churn month (index) of each account (one query, none without any)."""
    if not churn_months:
        return {}
    nearest: dict[tuple[int, int], tuple[int, datetime.date, str]] = {}
    events = ChurnEvent.objects.filter(account_id__in=churn_months).values_list("account_id", "churned_on", "reason")
    for pk, churned_on, reason in events.order_by():
        candidates = [
            (distance, month)
            for month in churn_months[pk]
            if (distance := _days_from_month(churned_on, month)) is not None
        ]
        if not candidates:
            continue
        distance, month = min(candidates)
        best = nearest.get((pk, month))
        if best is None or (distance, churned_on) < best[:2]:
            nearest[(pk, month)] = (distance, churned_on, reason)
    return {key: reason for key, (_distance, _day, reason) in nearest.items()}


def churns_in_range(
    *,
    first: datetime.date,
    last: datetime.date,
    history: MrrHistory | None = None,
    until: datetime.date | None = None,
) -> tuple[list[revenue_steps.Churn], dict[tuple[int, int], str]]:
    """The churns of months first..last (in any order), and the recorded reason of those that have one.

    With `history`, from it (names left ''); without, from the history up to `until`'s month (default
    `last`), found in the database. A churn event may belong to a churn after `last`, so the history's end
    matters. DomainError for a bad range or one past the history's end. One query beyond the history for
    the reasons (none without churns), or two without it.
    """
    check_month_range(first, last)
    low, high = month_index(first), month_index(last)
    if history is None:
        end = high if until is None else month_index(until)
        check_within_history(last, end)
        found = revenue_steps.history_steps(last=end, churn_months=(low, high)).churns
        return churns_with_reasons(found, low, high)
    history_offset(history, last)
    found = []
    for month in range(max(low, history.first), high + 1):
        for account, move in movements(history, month):
            if move.kind == "churn":
                tenure = month - history.first - account.first_paid()
                tier = account.segments.get(SegmentKind.TIER, "")
                found.append(revenue_steps.Churn(account.account_id, month, tenure, move.amount, tier, ""))
    return found, churn_reasons(history, {churn.account_id for churn in found})


def churns_with_reasons(
    found: list[revenue_steps.Churn], low: int, high: int
) -> tuple[list[revenue_steps.Churn], dict[tuple[int, int], str]]:
    """The churns of months low..high among `found` (every churn of their accounts), and their reasons."""
    churn_months: dict[int, list[int]] = defaultdict(list)
    for churn in found:
        churn_months[churn.account_id].append(churn.month)
    return [churn for churn in found if low <= churn.month <= high], reasons_of_churns(churn_months)


def churn_analysis(
    *,
    first: datetime.date,
    last: datetime.date,
    history: MrrHistory | None = None,
    until: datetime.date | None = None,
) -> ChurnAnalysis:
    """Churned MRR (CSM_CURRENCY, the MRR lost) and logos over the months first..last.

    by_tenure: per band of months from the account's first MRR month to the churn month (every band,
    in order); by_tier: per current tier name ('' without a tier), most MRR first; reasons: churns per
    reason, most frequent first, then alphabetical.

    Each churn has its own reason, from the account's ChurnEvent recorded for it: the one dated in the
    churn month (the exclusive end of its last line, which falls in that month), else on the last day of
    the month before (its last paid day), else in the month after (recorded late), the nearest first. The
    account's current `churn_reason` is not used: a reactivated account that churned again has had two
    reasons. A churn without an event counts as "Not recorded". Without `history`, the history up to
    `until` (default `last`), found in the database: two queries (see `churns_in_range`).
    """
    return churn_analysis_of(*churns_in_range(first=first, last=last, history=history, until=until))


def churn_analysis_of(churns: list[revenue_steps.Churn], recorded: dict[tuple[int, int], str]) -> ChurnAnalysis:
    """The churn analysis (see `churn_analysis`) of these churns, given the recorded reasons."""
    not_recorded = _("Not recorded")
    by_tenure: dict[str, ChurnGroup] = {label: {"mrr": ZERO, "logos": 0} for label, _low, _high in TENURE_BANDS}
    by_tier: dict[str, ChurnGroup] = defaultdict(lambda: {"mrr": ZERO, "logos": 0})
    reasons: Counter[str] = Counter()
    for churn in churns:
        for group in (by_tenure[tenure_band(churn.tenure)], by_tier[churn.tier]):
            group["mrr"] += churn.mrr
            group["logos"] += 1
        reasons[recorded.get((churn.account_id, churn.month), "").strip() or not_recorded] += 1
    return {
        "churned_mrr": sum((churn.mrr for churn in churns), ZERO),
        "churned_accounts": len(churns),
        "by_tenure": by_tenure,
        "by_tier": dict(sorted(by_tier.items(), key=lambda item: (-item[1]["mrr"], item[0]))),
        "reasons": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    }


# --- time to value --------------------------------------------------------------------------------


def time_to_value() -> TimeToValue:
    """Days from each account's first MRR to the first achieved goal of its first success plan (SPEC 4).

    First MRR: the earliest start of the account's live lines with MRR; first plan: its live plan that
    starts first; the goal must be achieved with a date (`achieved_at`), and counts as 0 days when that
    is before the first MRR. median_days (None without any) overall and per
    current tier name ('' without a tier), with the sorted values. One query.
    """
    first_line = (
        Subscription.objects.alive()
        .filter(account=OuterRef("pk"), mrr__gt=0)
        .order_by("start_date")
        .values("start_date")[:1]
    )
    first_plan = (
        SuccessPlan.objects.alive().filter(account=OuterRef("pk")).order_by("start_date", "pk").values("pk")[:1]
    )
    first_goal = (
        Goal.objects.filter(plan=OuterRef("first_plan"), status=Goal.Status.ACHIEVED, achieved_at__isnull=False)
        .order_by("achieved_at")
        .values("achieved_at")[:1]
    )
    # Only accounts with an achieved goal can have a value: the subqueries then run for those alone.
    achieved = Goal.objects.filter(
        status=Goal.Status.ACHIEVED, achieved_at__isnull=False, plan__deleted_at__isnull=True
    ).values("plan__account_id")
    rows = (
        Account.objects.alive()
        .filter(pk__in=achieved)
        .annotate(first_mrr=Subquery(first_line), first_plan=Subquery(first_plan))
        .annotate(first_value=Subquery(first_goal))
        .filter(first_mrr__isnull=False, first_value__isnull=False)
        .values_list("tier__name", "first_mrr", "first_value")
        .order_by()
    )
    by_tier: dict[str, list[int]] = defaultdict(list)
    for tier, first_mrr, first_value in rows:
        # A goal reached before the first paid day (in a pilot, say) took no paid time at all.
        by_tier[tier or ""].append(max(0, (first_value - first_mrr).days))
    everyone = [days for values in by_tier.values() for days in values]
    return {
        "median_days": _median(everyone),
        "by_tier": {
            tier: {"median_days": _median(values), "count": len(values), "values": sorted(values)}
            for tier, values in sorted(by_tier.items())
        },
        "accounts": len(everyone),
    }


# --- concentration --------------------------------------------------------------------------------


# Paying accounts: their number, total MRR and the MRR of the first `top` by MRR, top = ceil(n x p / q) (at
# least one), read from the index of live accounts' MRR. Money in integer cents, exact on SQLite too.
CONCENTRATION = """
WITH totals AS (
    SELECT COUNT(*) AS n, SUM(CAST(ROUND(mrr * 100) AS BIGINT)) AS cents
    FROM {account} WHERE deleted_at IS NULL AND mrr > 0
)
SELECT n, COALESCE(cents, 0), COALESCE((
    SELECT SUM(CAST(ROUND(mrr * 100) AS BIGINT)) FROM (
        SELECT mrr FROM {account} WHERE deleted_at IS NULL AND mrr > 0
        ORDER BY mrr DESC LIMIT (SELECT (n * %(p)s + %(q)s - 1) / %(q)s FROM totals)
    ) top
), 0)
FROM totals
"""


def concentration(*, share: Decimal = Decimal("0.2")) -> Concentration:
    """Share of ARR (12 x current MRR, CSM_CURRENCY) held by the top `share` of paying accounts.

    top_accounts = ceil(accounts x share), at least one when any account pays; top_share is None when
    no account pays. One query.
    """
    share = Decimal(str(share))  # a float 0.2 would carry binary noise into the ceiling
    if not 0 < share <= 1:
        raise DomainError(_("The share of accounts must be more than 0 and at most 1."))
    p, q = share.as_integer_ratio()
    with connection.cursor() as cursor:
        cursor.execute(
            CONCENTRATION.format(account=connection.ops.quote_name(Account._meta.db_table)), {"p": p, "q": q}
        )
        accounts, total_cents, top_cents = cursor.fetchone()
    top = max(1, math.ceil(accounts * share)) if accounts else 0
    top_arr = 12 * Decimal(int(top_cents)).scaleb(-2)
    total_arr = 12 * Decimal(int(total_cents)).scaleb(-2)
    return {
        "accounts": accounts,
        "top_accounts": top,
        "top_arr": top_arr,
        "total_arr": total_arr,
        "top_share": ratio(top_arr, total_arr),
    }


# --- drill-down -----------------------------------------------------------------------------------


def drilldown(
    *,
    month: datetime.date,
    figure: str,
    segment_kind: str = SegmentKind.ALL,
    segment: str = "",
    history: MrrHistory | None = None,
) -> list[DrilldownRow]:
    """The accounts behind one bridge figure of `month` and segment, largest amount first.

    amount is the account's share of the figure (CSM_CURRENCY); the amounts add up to the bridge's
    figure exactly, both being made of the same `Movement.figures()`. start and end are the account's MRR at
    the previous and this month end. One query (names) beyond the history; without `history`, one query
    reads the month's movements from the history up to `month` in the database.
    """
    if figure not in FIGURES:
        raise DomainError(
            _("'%(figure)s' is not a bridge figure; use one of %(figures)s.")
            % {"figure": figure, "figures": ", ".join(FIGURES)}
        )
    _check_segment_kind(segment_kind)
    if history is None:
        moves = revenue_steps.month_moves(
            month=month_index(month), figure=figure, segment_kind=segment_kind, segment=segment
        )
        found = [(row.account_id, row.name, _month_movement(row)) for row in moves]
    else:
        offset = history_offset(history, month)
        found = [
            (account.account_id, "", movement(account, offset))
            for account in history.accounts.values()
            if segment_kind == SegmentKind.ALL or account.segments.get(segment_kind) == segment
        ]
    found = [(pk, name, move.figures().get(figure, ZERO), move) for pk, name, move in found]
    found = [row for row in found if row[2]]
    if not found:
        return []
    if history is not None:
        names = dict(Account.objects.filter(pk__in=[row[0] for row in found]).values_list("pk", "name").order_by())
        found = [(pk, names.get(pk, ""), amount, move) for pk, _name, amount, move in found]
    rows: list[DrilldownRow] = [
        {"account_id": pk, "name": name, "amount": amount, "start": move.start, "end": move.end}
        for pk, name, amount, move in found
    ]
    rows.sort(key=lambda row: (-row["amount"], row["name"], row["account_id"]))
    return rows


def _month_movement(row: revenue_steps.MonthMove) -> Movement:
    """The account's movement, classified by `movement` itself on a three-month history: (paid before?,
    start, end), with its products first paid in the month as one product."""
    paid_before = Decimal(1) if row.paid_before else ZERO
    history = AccountHistory(row.account_id, {}, [paid_before, row.start, row.end], {"": [ZERO, ZERO, row.fresh]})
    return movement(history, 2)
