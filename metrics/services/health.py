"""Health scores: components measured as of a date, mapped to 0–100, weighted, banded.

A component's raw measure x scores 100 * clamp((x - bad) / (good - bad), 0, 1); components without
data are left out and the others' weights renormalised. Snapshots are made for accounts with MRR > 0
on the date, one per (account, date): recomputing a day replaces it.

The work is set-based, a chunk of account ids at a time (see "measuring"): a few queries read a chunk's
inputs for every day of a pass, Python measures and scores each (account, day), and snapshots are
written in bulk (COPY on PostgreSQL).
"""

import datetime
import json
import logging
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from itertools import chain, groupby, islice
from operator import is_not, itemgetter

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, DecimalField, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Account, Subscription, Touch
from csm.db import bulk_upsert, record_history
from csm.exceptions import DomainError, full_clean
from metrics.models import HealthBand, HealthComponent, HealthModel, HealthSnapshot, RecomputeIssue, UsageRecord
from metrics.selectors.health import in_snapshot_order
from success_plans.selectors import plan_progress_inputs_by_account, plan_progress_on

Kind = HealthComponent.Kind
ONE_DAY = datetime.timedelta(days=1)
TREND_DAYS = 30
SENTIMENT_DAYS = 90
RAW_PLACES = Decimal("0.000001")
SCORE_PLACES = Decimal("0.1")
VALUE = DecimalField(max_digits=18, decimal_places=4)


logger = logging.getLogger(__name__)


class HealthModelUnusable(DomainError):
    """No health model can score: none is active, or the active one's weights sum to zero.

    `code` names the problem; background runs record it as a RecomputeIssue under that code.
    """

    NO_ACTIVE_MODEL = "no-active-health-model"
    NO_WEIGHT = "health-model-without-weight"
    CODES = (NO_ACTIVE_MODEL, NO_WEIGHT)


CHUNK_SIZE = 5000  # account ids per nightly task and per backfill transaction
BACKFILL_IDS = 500  # account ids per backfill pass: their usage over a year is about 50 MB as received
PASS_IDS = 20_000  # account ids a full recompute scores per pass (about 70 MB of inputs and results)
FEW_DAYS = 7  # up to this many days a pass aggregates in the database; more (a backfill) slide windows in Python
STREAM_ROWS = 20_000  # rows made Python objects at a time while a pass streams its inputs
BATCH = 5000  # accounts measured before the usage levels their days lack are read, in one query


def id_ranges(chunk_size: int = CHUNK_SIZE) -> list[tuple[int, int]]:
    """Half-open account id ranges [low, high) covering every account, `chunk_size` ids wide."""
    bounds = Account.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return []
    return [(low, low + chunk_size) for low in range(bounds["low"], bounds["high"] + 1, chunk_size)]


@dataclass(frozen=True)
class Scope:
    """The accounts a computation covers: given ids, an id range [low, high), or all."""

    account_ids: tuple[int, ...] | None = None
    id_range: tuple[int, int] | None = None

    def q(self, field: str = "pk") -> Q:
        """The scope as a filter on `field`, the account's id in the queried model."""
        scope = Q()
        if self.account_ids is not None:
            scope &= Q(**{f"{field}__in": self.account_ids})
        if self.id_range is not None:
            scope &= Q(**{f"{field}__gte": self.id_range[0], f"{field}__lt": self.id_range[1]})
        return scope


def account_scope(
    account_ids: Iterable[int] | None = None, id_range: tuple[int, int] | None = None, field: str = "pk"
) -> Q:
    """The accounts a computation covers (given ids, an id range [low, high), or all) as a filter on `field`."""
    return Scope(None if account_ids is None else tuple(account_ids), id_range).q(field)


def day_bounds(on: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end) of a calendar day in the deployment's time zone."""
    start = timezone.make_aware(datetime.datetime.combine(on, datetime.time.min))
    return start, timezone.make_aware(datetime.datetime.combine(on + ONE_DAY, datetime.time.min))


def has_weight(weights: Iterable[Decimal]) -> bool:
    """A model can score only when its weights sum to more than zero (none is negative)."""
    return sum(weights, Decimal(0)) > 0


def active_health_model() -> HealthModel:
    """The model that scores accounts; HealthModelUnusable when there is none that can."""
    model = HealthModel.objects.filter(is_active=True).prefetch_related("components").first()
    if model is None:
        raise HealthModelUnusable(
            _("No health model is active, so health scores were not recomputed; activate one."),
            code=HealthModelUnusable.NO_ACTIVE_MODEL,
        )
    if not has_weight(c.weight for c in model.components.all()):
        raise HealthModelUnusable(
            _(
                "The active health model (%(model)s) has weights that sum to zero, so health scores were not "
                "recomputed; give a component a weight above zero."
            )
            % {"model": model},
            code=HealthModelUnusable.NO_WEIGHT,
        )
    return model


# --- the maths ----------------------------------------------------------------------------------


def component_score(*, raw: Decimal, bad: Decimal, good: Decimal) -> Decimal:
    """Map a raw measure to 0–100; bad > good inverts the scale (e.g. days overdue)."""
    share = (raw - bad) / (good - bad)
    return Decimal(100) * min(max(share, Decimal(0)), Decimal(1))


def band_for(*, score: Decimal, model: HealthModel) -> str:
    if score < model.yellow_from:
        return HealthBand.RED
    if score < model.green_from:
        return HealthBand.YELLOW
    return HealthBand.GREEN


@dataclass(frozen=True)
class Score:
    score: Decimal
    band: str
    components: str  # JSON: per component of the model (in snapshot order) [raw, score, weight], or null


ZERO, HUNDRED, ONE = Decimal(0), Decimal(100), Decimal(1)
REPEATING_KINDS = {Kind.ENGAGEMENT, Kind.SENTIMENT, Kind.PLAN_PROGRESS, Kind.RENEWAL_PROXIMITY, Kind.USAGE_LEVEL}
MEMO_SIZE = 10_000  # raw values remembered per component
FLOAT_MARGIN = 1e-12  # relative distance from a rounding tie within which floats defer to Decimal
UNSEEN = object()


class Scorer:
    """A model version ready to score many accounts: its components read once, the renormalised weights
    of each set of components with data worked out once per run.

    `combine` takes the raw measures in the order of `components` (None: no data).
    """

    def __init__(self, model: HealthModel) -> None:
        self.model = model
        # Snapshots store one entry per component in this order; what each is stays with the model version.
        self.components = in_snapshot_order(model.components.all())
        self.kinds = {c.kind for c in self.components}
        self._thresholds = [(c.bad, c.good - c.bad) for c in self.components]
        self._weights: dict[tuple[bool, ...], tuple[list[Decimal | None], list[float]] | None] = {}
        # Scores of raw values already seen, for kinds whose raw values repeat across accounts and days (a
        # number of days, a mean of a few sentiments): equal Decimals score equal, whatever their exponent.
        self._memos: list[dict | None] = [{} if c.kind in REPEATING_KINDS else None for c in self.components]
        self._float_thresholds = [(float(bad), float(span)) for bad, span in self._thresholds]
        self._float_memos: list[dict | None] = [{} if memo is not None else None for memo in self._memos]
        # Per set of components with data: each one's weight as a float and the end of its explanation (the
        # weight as shown); None when none has data.
        self._float_terms: dict[tuple[bool, ...], list[tuple[float, str]] | None] = {}
        self._nones = [None] * len(self.components)
        self._scores: dict[int, tuple[Decimal, str]] = {}  # tenths of a point -> (score, band)

    def _weights_for(self, measured: tuple[bool, ...]) -> tuple[list[Decimal | None], list[float]] | None:
        """The renormalised weights of the components with data, and as shown (rounded); None without any."""
        if measured not in self._weights:
            total = sum((c.weight for c, has in zip(self.components, measured, strict=True) if has), Decimal(0))
            if total <= 0:
                self._weights[measured] = None
            else:
                weights = [c.weight / total if has else None for c, has in zip(self.components, measured, strict=True)]
                self._weights[measured] = (weights, [float(w.quantize(RAW_PLACES)) if w else 0.0 for w in weights])
        return self._weights[measured]

    def combine(self, raws: list[Decimal | None]) -> Score | None:
        """Weighted mean of the components that have data; None when none has (no snapshot that day)."""
        found = self._weights_for(tuple(raw is not None for raw in raws))
        if found is None:
            return None
        weights, shown_weights = found
        weighted = ZERO
        explained = []
        for (bad, span), memo, raw, weight, shown in zip(
            self._thresholds, self._memos, raws, weights, shown_weights, strict=True
        ):
            if raw is None:
                explained.append("null")
                continue
            scored = memo.get(raw) if memo is not None else None
            if scored is None:
                score = HUNDRED * min(max((raw - bad) / span, ZERO), ONE)
                scored = (
                    score,
                    f"{float(raw.quantize(RAW_PLACES))!r}, {float(score.quantize(SCORE_PLACES, ROUND_HALF_UP))!r}",
                )
                if memo is not None and len(memo) < MEMO_SIZE:
                    memo[raw] = scored
            weighted += scored[0] * weight
            explained.append(f"[{scored[1]}, {shown!r}]")
        overall = weighted.quantize(SCORE_PLACES, ROUND_HALF_UP)
        return Score(
            score=overall, band=band_for(score=overall, model=self.model), components=f"[{', '.join(explained)}]"
        )

    def combine_fast(self, raws: list[float | None]) -> "Score | None | type[Inexact]":
        """`combine` in binary floating point, the same result whenever floats decide each rounding the
        same way; `Inexact` when one of them falls too near a rounding tie (then `combine` decides).

        Every shown figure is a rounding of a value both computations agree on to about 1e-15 relative:
        away from a tie by more than FLOAT_MARGIN, the rounded figures are identical.
        """
        measured = tuple(map(is_not, raws, self._nones))
        terms = self._float_terms.get(measured, UNSEEN)
        if terms is UNSEEN:
            found = self._weights_for(measured)
            terms = self._float_terms[measured] = (
                None
                if found is None
                else [(float(w) if w is not None else 0.0, f", {shown!r}]") for w, shown in zip(*found, strict=True)]
            )
        if terms is None:
            return None
        weighted = 0.0
        explained = []
        for (bad, span), memo, raw, (weight, shown) in zip(
            self._float_thresholds, self._float_memos, raws, terms, strict=True
        ):
            if raw is None:
                explained.append("null")
                continue
            scored = memo.get(raw) if memo is not None else None
            if scored is None:
                scored = _float_score(raw, bad, span)
                if memo is not None and len(memo) < MEMO_SIZE:
                    memo[raw] = scored
            if scored is Inexact:
                return Inexact
            weighted += scored[0] * weight
            explained.append(f"[{scored[1]}{shown}")
        tenths = weighted * 10.0
        if abs(tenths - math.floor(tenths) - 0.5) < FLOAT_MARGIN * 1000:
            return Inexact
        overall = math.floor(tenths + 0.5)
        scored = self._scores.get(overall)
        if scored is None:
            score = Decimal(overall).scaleb(-1)
            scored = self._scores[overall] = (score, band_for(score=score, model=self.model))
        return Score(score=scored[0], band=scored[1], components=f"[{', '.join(explained)}]")


def _float_score(raw: float, bad: float, span: float) -> "tuple[float, str] | type[Inexact]":
    """A component's score and its explanation's raw and score figures, or Inexact near a rounding tie."""
    share = (raw - bad) / span
    if share == 0.0 and span < 0.0:  # Decimal's zero is negative then (and shown as -0.0): let it decide
        return Inexact
    score = 100.0 if share > 1.0 else 0.0 if share < 0.0 else 100.0 * share
    millionths = raw * 1e6
    shown_raw = round(millionths)
    if abs(abs(millionths - shown_raw) - 0.5) < FLOAT_MARGIN * max(1.0, abs(millionths)) or (
        shown_raw == 0 and raw != 0.0
    ):
        return Inexact
    tenths = score * 10.0
    if abs(tenths - math.floor(tenths) - 0.5) < FLOAT_MARGIN * 1000:
        return Inexact
    return score, f"{shown_raw / 1e6!r}, {math.floor(tenths + 0.5) / 10!r}"


class Inexact:
    """`Scorer.combine_fast` could not decide a rounding: score in Decimal."""


def combine(*, model: HealthModel, raw_values: dict[int, Decimal | None]) -> Score | None:
    """Weighted mean of the components that have data; None when none has (no snapshot that day).

    `raw_values` maps a component's id to its raw measure (None: no data).
    """
    scorer = Scorer(model)
    return scorer.combine([raw_values.get(c.pk) for c in scorer.components])


# --- measuring ----------------------------------------------------------------------------------
#
# A pass scores the accounts of one scope (ids or an id range) on one or more days. Its inputs are read
# per scope, set-based, then every (account, day) is measured in Python:
# - few days (a recompute, the nightly day and the usage-lag day): usage window sums come from one
#   GROUP BY account scan with a FILTERed sum per window, touches from another; the latest usage value
#   on or before a day is an index descent per account;
# - many days (a backfill): every usage value of the range is streamed in index order and the windows
#   slide over it; touches the same.
# Revenue lines and plan progress are read once per pass for all its days.


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def usage_latest_expression(metric: str, on: datetime.date) -> Subquery:
    rows = UsageRecord.objects.filter(account=OuterRef("pk"), metric=metric, date__lte=on).order_by("-date")
    return Subquery(rows.values("value")[:1], output_field=VALUE)


def trend_windows(on: datetime.date) -> tuple[tuple[datetime.date, datetime.date], tuple[datetime.date, datetime.date]]:
    """The usage-trend windows of day `on`: the 30 days ending on it and the 30 days before, inclusive."""
    recent_first = on - datetime.timedelta(days=TREND_DAYS - 1)
    prior_first = recent_first - datetime.timedelta(days=TREND_DAYS)
    return (recent_first, on), (prior_first, recent_first - ONE_DAY)


def usage_window_sums(
    scope: Q,
    windows: dict[str, tuple[str, datetime.date, datetime.date]],
    values_on: dict[str, tuple[str, datetime.date]] | None = None,
) -> Iterator[dict]:
    """Per account in `scope` (a Q over `account_id`), in id order: {"account_id", then per named window
    {name: (metric, first, last)} the metric's sum over it, and per named day {name: (metric, day)} its
    value that day; None when there is no row}. One GROUP BY scan."""
    if not windows and not values_on:
        return iter(())
    return stream_rows(usage_window_query(scope, windows, values_on))


def usage_window_query(
    scope: Q,
    windows: dict[str, tuple[str, datetime.date, datetime.date]],
    values_on: dict[str, tuple[str, datetime.date]] | None = None,
) -> QuerySet:
    """The values() query of `usage_window_sums` (at least one window or day)."""
    values_on = values_on or {}
    spans = [*windows.values(), *((metric, day, day) for metric, day in values_on.values())]
    aggregates = {
        name: Sum("value", filter=Q(metric=metric, date__gte=low, date__lte=high), output_field=VALUE)
        for name, (metric, low, high) in windows.items()
    }
    # (account, metric, date) is unique: the day's only value, None without a row.
    aggregates |= {
        name: Max("value", filter=Q(metric=metric, date=day), output_field=VALUE)
        for name, (metric, day) in values_on.items()
    }
    return (
        UsageRecord.objects.filter(
            scope,
            metric__in={span[0] for span in spans},
            date__gte=min(span[1] for span in spans),
            date__lte=max(span[2] for span in spans),
        )
        .values("account_id")
        .annotate(**aggregates)
        .order_by("account_id")
    )


class AccountDays:
    """One account's raw inputs on each day of a pass (lists indexed like the pass's days)."""

    __slots__ = (
        "pk",
        "customer_since",
        "renewal_date",
        "cadence",
        "health_score",
        "health_band",
        "active",
        "trend",
        "level",
        "last_touch",
        "sentiment",
    )

    def __init__(self, row: dict, days: int, trend_metrics: list[str], level_metrics: list[str]) -> None:
        self.pk: int = row["pk"]
        self.customer_since: datetime.date | None = row["customer_since"]
        self.renewal_date: datetime.date | None = row["renewal_date"]
        self.cadence: int | None = row["cadence"]
        self.health_score: Decimal | None = row["health_score"]
        self.health_band: str = row["health_band"]
        self.active = [False] * days  # MRR > 0 that day
        # metric -> (sum over the 30 days ending that day, over the 30 days before) per day
        self.trend: dict[str, list[tuple[Decimal, Decimal | None]]] = {m: [(ZERO, None)] * days for m in trend_metrics}
        self.level: dict[str, list[Decimal | None]] = {m: [None] * days for m in level_metrics}  # latest value
        self.last_touch: list[datetime.date | None] = [None] * days  # local date of the latest touch
        self.sentiment: list[Decimal | None] = [None] * days  # mean sentiment of the 90 days ending that day


def stream_rows(queryset: QuerySet) -> Iterator[dict]:
    """The rows of a values() queryset as dicts, fetched in one go but made Python objects a batch at a time.

    A client-side cursor: the planner plans the whole result (a scan and a hash aggregate), not a fast
    start as it does for a server-side cursor. PostgreSQL's driver gives final types (Decimal, aware
    datetimes, dates), so Django's converters are skipped there.
    """
    names = row_names(queryset)
    for row in stream_tuples(queryset):
        yield dict(zip(names, row, strict=True))


def row_names(queryset: QuerySet) -> list[str]:
    """The names of a values() queryset's columns, in the order of its rows' values."""
    query = queryset.query
    return [*query.extra_select, *query.values_select, *query.annotation_select]


def stream_tuples(queryset: QuerySet) -> Iterator[tuple]:
    """`stream_rows` as tuples, in `row_names` order: no dict per row where the positions are known."""
    if connection.vendor == "postgresql":
        return received_rows(queryset)
    return queryset.query.get_compiler(queryset.db).results_iter(chunk_size=STREAM_ROWS)


def received_rows(queryset: QuerySet) -> Iterator[tuple]:
    """The rows of a values_list() queryset, the query run now and its whole result received (compact, by
    the driver), made Python objects a batch at a time as they are read: the connection is free for other
    statements meanwhile, such as the COPY a backfill streams its snapshots through."""
    if connection.vendor != "postgresql":
        return iter(list(queryset))
    sql, params = queryset.query.sql_with_params()
    cursor = connection.cursor()
    cursor.execute(sql, params)

    def rows() -> Iterator[tuple]:
        with cursor:
            while batch := cursor.fetchmany(STREAM_ROWS):
                yield from batch

    return rows()


class RowsByAccount:
    """Rows ordered by account id, handed out alongside accounts walked in the same order: called with
    each account id in turn, returns that account's rows (empty when it has none)."""

    def __init__(self, rows: Iterable, key) -> None:
        self.groups = groupby(rows, key=key)
        self.current: tuple[int, list] | None = None

    def __call__(self, account_id: int) -> list:
        while self.current is None or self.current[0] < account_id:
            group = next(self.groups, None)
            if group is None:
                self.current = (account_id + 1, [])  # past every account still to come
                break
            self.current = (group[0], list(group[1]))
        return self.current[1] if self.current[0] == account_id else []


class RowAt:
    """The rows of a values() query whose first column is the account id, one row per account in id order,
    handed out as tuples alongside accounts walked in the same order (a row of None without one); `at(name)`
    is a column's position in them (that of an always-None value when the query lacks it or there is none)."""

    def __init__(self, queryset: QuerySet | None) -> None:
        names = row_names(queryset) if queryset is not None else []
        self.positions = {name: k for k, name in enumerate(names)}
        self.missing = (None,) * (len(names) + 1)
        self.rows = RowsByAccount(stream_tuples(queryset) if queryset is not None else (), key=itemgetter(0))

    def at(self, name: str) -> int:
        return self.positions.get(name, len(self.missing) - 1)

    def __call__(self, account_id: int) -> tuple:
        rows = self.rows(account_id)
        return (*rows[0], None) if rows else self.missing


class Pass:
    """The inputs of one scope of accounts over `days` (ascending), read set-based and merged by account
    id; `accounts()` yields each active account's AccountDays in id order."""

    def __init__(self, scorer: Scorer, scope: Scope, days: list[datetime.date], seen: list[int] | None = None) -> None:
        self.scorer, self.scope, self.days, self.seen = scorer, scope, days, seen
        components = scorer.components
        self.trend_metrics = sorted({c.metric for c in components if c.kind == Kind.USAGE_TREND and c.metric})
        self.level_metrics = sorted(
            {m for c in components if c.kind == Kind.USAGE_LEVEL and c.metric for m in (c.metric, c.per_metric) if m}
        )
        self.ends = [day_bounds(day)[1] for day in days]
        self.zone = timezone.get_current_timezone()
        self.touches_needed = bool(scorer.kinds & {Kind.ENGAGEMENT, Kind.SENTIMENT})
        self.level_misses: dict[tuple[str, int], list[AccountDays]] = {}  # (metric, day index) -> accounts

    def plan_progress(self) -> dict[int, tuple[Decimal, list[datetime.date]]]:
        if Kind.PLAN_PROGRESS not in self.scorer.kinds:
            return {}
        return plan_progress_inputs_by_account(accounts=Account.objects.filter(self.scope.q("pk")))

    def accounts(self) -> Iterator[AccountDays]:
        contiguous = (self.days[-1] - self.days[0]).days + 1 == len(self.days)
        many = len(self.days) > FEW_DAYS and contiguous
        # The latest value of each level metric before the range: many days carry it on over the range.
        starts = {f"level_{m}": usage_latest_expression(m, self.days[0] - ONE_DAY) for m in self.level_metrics}
        if not many:
            starts = {}
        rows = stream_rows(
            Account.objects.alive()
            .filter(self.scope.q("pk"))
            .annotate(cadence=F("tier__touch_cadence_days"), **starts)
            .values("pk", "customer_since", "renewal_date", "health_score", "health_band", "cadence", *starts)
            .order_by("pk")
        )
        first, last = self.days[0], self.days[-1]
        lines = RowsByAccount(
            received_rows(
                Subscription.objects.alive()
                .filter(self.scope.q("account_id"), mrr__gt=0, start_date__lte=last)
                .filter(Q(end_date__isnull=True) | Q(end_date__gt=first))
                .values_list("account_id", "start_date", "end_date")
                .order_by("account_id")
            ),
            key=itemgetter(0),
        )
        measure = self._many_days() if many else self._few_days()
        next(measure)  # start its reads
        batch: list[AccountDays] = []
        for row in rows:
            account = AccountDays(row, len(self.days), self.trend_metrics, self.level_metrics)
            if self.seen is not None:
                self.seen.append(account.pk)
            # Active: MRR > 0 on the day, i.e. a live line with a price covering it (as
            # `subscriptions_active_on`; prices are never negative).
            for _account_id, start, end in lines(account.pk):
                for i, day in enumerate(self.days):
                    if start <= day and (end is None or end > day):
                        account.active[i] = True
            measure.send((account, row))
            if many:  # every level is known already; an account's days weigh too much to hold a batch
                if any(account.active):
                    yield account
                continue
            batch.append(account)
            if len(batch) == BATCH:
                yield from self._settled(batch)
                batch = []
        yield from self._settled(batch)

    def _settled(self, batch: list[AccountDays]) -> Iterator[AccountDays]:
        """The active accounts of `batch`, once the usage levels the day's rows did not give are read: the
        latest value before that day, one query per metric and day that misses any."""
        for (metric, i), accounts in self.level_misses.items():
            on = self.days[i]
            latest = dict(
                Account.objects.filter(pk__in=[a.pk for a in accounts])
                .annotate(latest=usage_latest_expression(metric, on))
                .values_list("pk", "latest")
            )
            for account in accounts:
                account.level[metric][i] = _decimal(latest[account.pk])
        self.level_misses.clear()
        return (account for account in batch if any(account.active))

    # -- few days: aggregates in the database

    def _few_days(self) -> Generator[None, tuple[AccountDays, dict], None]:
        windows, values_on = {}, {}
        for i, day in enumerate(self.days):
            (recent_first, recent_last), (prior_first, prior_last) = trend_windows(day)
            for metric in self.trend_metrics:
                windows[f"recent_{metric}_{i}"] = (metric, recent_first, recent_last)
                windows[f"prior_{metric}_{i}"] = (metric, prior_first, prior_last)
            for metric in self.level_metrics:
                values_on[f"on_{metric}_{i}"] = (metric, day)
        usage = RowAt(
            usage_window_query(self.scope.q("account_id"), windows, values_on) if windows or values_on else None
        )
        touches = RowAt(self._touch_aggregates())
        # Per day: (metric, position of its recent and prior sums) per trend metric, (metric, position of
        # the day's value) per level metric, the positions of the touches' latest, sentiment total and count.
        at = [
            (
                [(m, usage.at(f"recent_{m}_{i}"), usage.at(f"prior_{m}_{i}")) for m in self.trend_metrics],
                [(m, usage.at(f"on_{m}_{i}")) for m in self.level_metrics],
                (touches.at(f"last_{i}"), touches.at(f"total_{i}"), touches.at(f"count_{i}")),
            )
            for i in range(len(self.days))
        ]
        zone = self.zone
        while True:
            account, _row = yield
            sums = usage(account.pk)
            touched = touches(account.pk)
            for i, (trends, levels, (last_at, total_at, count_at)) in enumerate(at):
                for metric, recent_at, prior_at in trends:
                    recent = sums[recent_at]
                    account.trend[metric][i] = (ZERO if recent is None else recent, sums[prior_at])
                for metric, value_at in levels:
                    value = sums[value_at]
                    if value is None:  # no row that day: the latest before it, read with the batch
                        self.level_misses.setdefault((metric, i), []).append(account)
                    account.level[metric][i] = value
                last = touched[last_at]
                account.last_touch[i] = last.astimezone(zone).date() if last is not None else None
                account.sentiment[i] = sentiment_mean(touched[total_at], touched[count_at])

    def _touch_aggregates(self) -> QuerySet | None:
        if not self.touches_needed:
            return None
        aggregates = {}
        for i, end in enumerate(self.ends):
            window = Q(occurred_at__lt=end, occurred_at__gte=end - datetime.timedelta(days=SENTIMENT_DAYS))
            aggregates[f"last_{i}"] = Max("occurred_at", filter=Q(occurred_at__lt=end))
            aggregates[f"total_{i}"] = Sum("sentiment", filter=window)
            aggregates[f"count_{i}"] = Count("sentiment", filter=window)
        return (
            Touch.objects.alive()
            .filter(self.scope.q("account_id"), occurred_at__lt=self.ends[-1])
            .values("account_id")
            .annotate(**aggregates)
            .order_by("account_id")
        )

    # -- many days: windows slid in Python over rows streamed in index order

    def _many_days(self) -> Generator[None, tuple[AccountDays, dict], None]:
        first, last, n = self.days[0], self.days[-1], len(self.days)
        lead = 2 * TREND_DAYS
        usage = RowsByAccount(
            received_rows(
                UsageRecord.objects.filter(
                    self.scope.q("account_id"),
                    metric__in=set(self.trend_metrics) | set(self.level_metrics),
                    date__gte=first - datetime.timedelta(days=lead),
                    date__lte=last,
                )
                .values_list("account_id", "metric", "date", "value")
                .order_by("account_id", "metric", "date")
            ),
            key=itemgetter(0),
        )
        touches = RowsByAccount(
            received_rows(
                Touch.objects.alive()
                .filter(self.scope.q("account_id"), occurred_at__lt=self.ends[-1])
                .values_list("account_id", "occurred_at", "sentiment")
                .order_by("account_id", "occurred_at")
            )
            if self.touches_needed
            else iter(()),
            key=itemgetter(0),
        )
        while True:
            account, row = yield
            daily: dict[str, list[Decimal | None]] = {}  # metric -> value per day of [first - lead, last]
            for _account_id, metric, day, value in usage(account.pk):
                daily.setdefault(metric, [None] * (n + lead))[(day - first).days + lead] = value
            for metric in self.trend_metrics:
                if metric not in daily:
                    continue
                sums = [ZERO]  # sums[k]: the total of the first k values
                for value in daily[metric]:
                    sums.append(sums[-1] if value is None else sums[-1] + value)
                trend = account.trend[metric]
                for i in range(n):
                    # Day i sits at position i + lead: its windows end there and 30 days before. An empty
                    # window sums to 0 here and to None in SQL: either way the trend has no data.
                    end = i + lead + 1
                    trend[i] = (sums[end] - sums[end - TREND_DAYS], sums[end - TREND_DAYS] - sums[end - lead])
            for metric in self.level_metrics:
                latest = _decimal(row[f"level_{metric}"])
                values = daily.get(metric)
                level = account.level[metric]
                for i in range(n):
                    if values is not None and values[i + lead] is not None:
                        latest = values[i + lead]
                    level[i] = latest
            self._slide_touches(account, touches(account.pk))

    def _slide_touches(self, account: AccountDays, touches: list[tuple]) -> None:
        latest = None
        seen = 0  # touches before the current day's end
        dropped = 0  # touches before its 90-day window
        total = count = 0  # sentiment over the touches in the window
        for i, end in enumerate(self.ends):
            while seen < len(touches) and touches[seen][1] < end:
                latest = touches[seen][1]
                if touches[seen][2] is not None:
                    total += touches[seen][2]
                    count += 1
                seen += 1
            start = end - datetime.timedelta(days=SENTIMENT_DAYS)
            while dropped < seen and touches[dropped][1] < start:
                if touches[dropped][2] is not None:
                    total -= touches[dropped][2]
                    count -= 1
                dropped += 1
            account.last_touch[i] = latest.astimezone(self.zone).date() if latest is not None else None
            account.sentiment[i] = sentiment_mean(total, count)


def sentiment_mean(total: int | None, count: int | None) -> Decimal | None:
    """The mean sentiment of `count` touches summing to `total`, as a float made Decimal (None without any)."""
    if not count:
        return None
    return Decimal(repr(total / count))


def _same(value: Decimal) -> Decimal:
    return value


def raw_values(
    scorer: Scorer,
    account: AccountDays,
    i: int,
    on: datetime.date,
    plan: tuple[Decimal, list[datetime.date]] | None,
    number: Callable[[Decimal], Decimal | float] = _same,
) -> list:
    """The raw measure of each of the scorer's components for `account` on `on`, day `i` of its pass: as
    Decimals, or as floats with `number=float` (for `Scorer.combine_fast`; the same components have data)."""
    values = []
    for component in scorer.components:
        raw = None
        kind = component.kind
        if kind == Kind.USAGE_TREND:
            if component.metric:
                recent, prior = account.trend[component.metric][i]
                if prior:
                    raw = number(recent) / number(prior)
        elif kind == Kind.USAGE_LEVEL:
            if component.metric:
                level = account.level[component.metric][i]
                if level is not None and component.per_metric:
                    divisor = account.level[component.per_metric][i]
                    raw = number(level) / number(divisor) if divisor else None
                elif level is not None:
                    raw = number(level)
        elif kind == Kind.ENGAGEMENT:
            since = account.last_touch[i] or account.customer_since
            if since is not None and account.cadence:
                # A customer whose relationship starts after `on` has been one for 0 days, not fewer.
                raw = number(Decimal(max((on - since).days, 0))) / number(Decimal(account.cadence))
        elif kind == Kind.SENTIMENT:
            if account.sentiment[i] is not None:
                raw = number(account.sentiment[i])
        elif kind == Kind.PLAN_PROGRESS:
            if plan is not None:
                raw = number(plan_progress_on(plan[0], plan[1], on))
        elif kind == Kind.RENEWAL_PROXIMITY:
            renewal = account.renewal_date
            if renewal is not None and renewal >= on:
                raw = number(Decimal((renewal - on).days))
        values.append(raw)
    return values


def health_scores(
    *, days: list[datetime.date], scope: Scope, scorer: Scorer, seen: list[int] | None = None
) -> Iterator[tuple[AccountDays, int, Score]]:
    """Compute (without saving) each active account's score on each of `days`: (account, day index, score).
    `seen`, if given, receives the id of every live account in scope.

    Scored in floats, in Decimal when floats cannot decide a rounding: the same scores either way.
    """
    work = Pass(scorer, scope, days, seen)
    progress = work.plan_progress()
    for account in work.accounts():
        plan = progress.get(account.pk)
        for i, day in enumerate(days):
            if account.active[i]:
                score = scorer.combine_fast(raw_values(scorer, account, i, day, plan, float))
                if score is Inexact:
                    score = scorer.combine(raw_values(scorer, account, i, day, plan))
                if score is not None:
                    yield account, i, score


# --- writing ------------------------------------------------------------------------------------


SNAPSHOT_COLUMNS = ("account_id", "date", "score", "band", "model_version_id", "components", "created_at", "updated_at")
COPY_ROWS = 10_000  # snapshots sent per COPY and upsert: bounds memory while a backfill streams


def snapshots_write(rows: list[tuple], *, unchanged_kept: bool = False, fresh: bool = False) -> int:
    """Insert or replace snapshots given as tuples in SNAPSHOT_COLUMNS order (components as JSON text);
    returns how many were given.

    PostgreSQL: COPY into a temporary table, then one INSERT … ON CONFLICT; elsewhere the shared JSON upsert.
    With `unchanged_kept`, PostgreSQL leaves a snapshot that would not change as it is (its updated_at
    too, so partners syncing snapshots see only real changes). `fresh` rows are expected to clash with none
    (their days had no snapshots): PostgreSQL copies them straight into the table, upserting them only if one
    clashes after all.
    """
    if not rows:
        return 0
    if fresh and connection.vendor == "postgresql":
        try:
            # A savepoint: should a concurrent run have written one of these snapshots meanwhile, the rows
            # are upserted instead.
            with (
                transaction.atomic(),
                connection.wrap_database_errors,
                connection.cursor() as cursor,
                cursor.cursor.copy(
                    f"COPY {HealthSnapshot._meta.db_table} ({', '.join(SNAPSHOT_COLUMNS)}) FROM STDIN"
                ) as copy,
            ):
                copy.write("".join(_copy_line(row) for row in rows))
            return len(rows)
        except IntegrityError:
            pass
    if connection.vendor != "postgresql":
        names = ("account", "date", "score", "band", "model_version", "components", "created_at", "updated_at")
        return bulk_upsert(
            HealthSnapshot,
            [dict(zip(names, (*row[:5], json.loads(row[5]), *row[6:]), strict=True)) for row in rows],
            unique_fields=["account", "date"],
            update_fields=["score", "band", "model_version", "components", "updated_at"],
        )
    columns = ", ".join(SNAPSHOT_COLUMNS)
    compared = ("score", "band", "model_version_id", "components")
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*compared, "updated_at"))
    condition = ""
    if unchanged_kept:
        table = HealthSnapshot._meta.db_table
        condition = (
            f" WHERE ({', '.join(f'{table}.{c}' for c in compared)}) "
            f"IS DISTINCT FROM ({', '.join(f'excluded.{c}' for c in compared)})"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS health_snapshot_load "
            f"ON COMMIT DELETE ROWS AS SELECT {columns} FROM metrics_healthsnapshot WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY health_snapshot_load ({columns}) FROM STDIN") as copy:
            copy.write("".join(_copy_line(row) for row in rows))
        cursor.execute(
            f"INSERT INTO metrics_healthsnapshot ({columns}) SELECT {columns} FROM health_snapshot_load "
            f"ON CONFLICT (account_id, date) DO UPDATE SET {updates}{condition}"
        )
        cursor.execute("TRUNCATE health_snapshot_load")
    return len(rows)


def _copy_line(row: tuple) -> str:
    """A snapshot row in COPY's text format: its values are numbers, dates, slugs and JSON (whose only
    special character there is the backslash of its escapes)."""
    account_id, day, score, band, model_id, components, created_at, updated_at = row
    components = components.replace("\\", "\\\\")
    return f"{account_id}\t{day}\t{score}\t{band}\t{model_id}\t{components}\t{created_at}\t{updated_at}\n"


def _snapshot_row(account_id: int, day: datetime.date, score: Score, model_id: int, stamp) -> tuple:
    return (account_id, day, score.score, score.band, model_id, score.components, stamp, stamp)


@transaction.atomic
def health_recompute(
    *,
    on: datetime.date | None = None,
    account_ids: Iterable[int] | None = None,
    id_range: tuple[int, int] | None = None,
    days: Iterable[datetime.date] | None = None,
) -> int:
    """Replace the snapshots of `on` (default today), or of each of `days`, for the accounts in scope; returns
    how many were written.

    Idempotent: rerunning a day gives the same snapshots, and accounts that no longer qualify lose
    that day's snapshot. Account.health_score / health_band then follow each account's latest snapshot.
    Several days (the nightly day and the usage-lag day) share one read of the inputs.
    """
    days = sorted(set(days)) if days is not None else [on or timezone.localdate()]
    scorer = Scorer(active_health_model())
    if account_ids is None and id_range is None:
        # Every account, PASS_IDS ids at a time: few scans, and memory bounded however many accounts there are.
        return sum(_recompute_days(days, Scope(id_range=ids), scorer) for ids in id_ranges(PASS_IDS))
    return _recompute_days(days, Scope(None if account_ids is None else tuple(account_ids), id_range), scorer)


def _recompute_days(days: list[datetime.date], scope: Scope, scorer: Scorer) -> int:
    """Score `days` for `scope` in one streamed pass, write the snapshots in bulk, drop the stale ones and
    bring the accounts whose latest snapshot changed up to date."""
    start = timezone.now()
    # Day i's snapshots are stamped a microsecond after day i - 1's: later days read as rescored later.
    stamps = [start + datetime.timedelta(microseconds=i) for i in range(len(days))]
    scored: list[set[int]] = [set() for _ in days]
    # account -> the last day scored (index), whether it changes what the account shows
    latest_new: dict[int, tuple[int, bool]] = {}
    written, rows = 0, []
    seen: list[int] = []  # every live account in scope
    # The night's case: the days have no snapshots in scope yet, so none can be stale and the new ones go
    # straight into the table.
    fresh = not HealthSnapshot.objects.filter(scope.q("account_id"), date__in=days).exists()
    for account, i, score in health_scores(days=days, scope=scope, scorer=scorer, seen=seen):
        rows.append(_snapshot_row(account.pk, days[i], score, scorer.model.pk, stamps[i]))
        scored[i].add(account.pk)
        latest_new[account.pk] = (i, (account.health_score, account.health_band) != (score.score, score.band))
        if len(rows) == COPY_ROWS:
            written += snapshots_write(rows, unchanged_kept=True, fresh=fresh)
            rows = []
    written += snapshots_write(rows, unchanged_kept=True, fresh=fresh)
    # The day's snapshots of accounts this run did not score are stale: those of live accounts it read
    # but did not score that day, and those of deleted accounts (none when the days had none).
    lost: set[int] = set()  # accounts that lost a snapshot
    deleted = HealthSnapshot.objects.filter(scope.q("account_id"), account__deleted_at__isnull=False)
    for day, day_scored in [] if fresh else zip(days, scored, strict=True):
        unscored = [pk for pk in seen if pk not in day_scored]
        stale = list(deleted.filter(date=day).values_list("account_id", flat=True))
        for first in range(0, len(unscored), CHUNK_SIZE):
            stale += HealthSnapshot.objects.filter(
                account_id__in=unscored[first : first + CHUNK_SIZE], date=day
            ).values_list("account_id", flat=True)
        for first in range(0, len(stale), CHUNK_SIZE):
            HealthSnapshot.objects.filter(account_id__in=stale[first : first + CHUNK_SIZE], date=day).delete()
        lost.update(stale)
    # Account.health_* follow the latest snapshot: the one just written unless a later day has one. Only
    # accounts whose shown health changes are updated; one that lost a snapshot and got none is refreshed.
    after = Q(date__gt=days[-1])
    if (days[-1] - days[0]).days + 1 > len(days):  # and the days between them (one index condition without)
        after |= Q(date__gt=days[0], date__lt=days[-1]) & ~Q(date__in=days)
    later = dict(
        HealthSnapshot.objects.filter(scope.q("account_id"))
        .filter(after)
        .values_list("account_id")
        .annotate(latest=Max("date"))
        .order_by()
    )
    changed: list[list[int]] = [[] for _ in days]
    for pk, (i, changes) in latest_new.items():
        if changes and (pk not in later or later[pk] < days[i]):
            changed[i].append(pk)
    now = timezone.now()
    for day, ids in zip(days, changed, strict=True):
        snapshot = HealthSnapshot.objects.filter(account=OuterRef("pk"), date=day)
        for first in range(0, len(ids), CHUNK_SIZE):
            Account.objects.filter(pk__in=ids[first : first + CHUNK_SIZE]).update(
                health_score=Subquery(snapshot.values("score")),
                health_band=Subquery(snapshot.values("band")),
                updated_at=now,
            )
    lost -= latest_new.keys()
    if lost:
        account_health_refresh(scope=Q(pk__in=sorted(lost)))
    return written


def health_recompute_reported(
    *,
    on: datetime.date | None = None,
    account_ids: Iterable[int] | None = None,
    id_range: tuple[int, int] | None = None,
    days: Iterable[datetime.date] | None = None,
) -> int:
    """`health_recompute` for background runs; returns the snapshots written (0 when it cannot score).

    The write that queued the run has already succeeded, so a model that cannot score is not raised: it
    is logged and recorded as a RecomputeIssue (shown in the admin), and a run that scores marks such
    issues resolved.
    """
    try:
        written = health_recompute(on=on, account_ids=account_ids, id_range=id_range, days=days)
    except HealthModelUnusable as problem:
        logger.warning("Health not recomputed: %s", problem.message)
        recompute_issue_report(code=problem.code, message=problem.message)
        return 0
    recompute_issue_resolve(codes=HealthModelUnusable.CODES)
    return written


def recompute_issue_report(*, code: str, message: str) -> None:
    """Record that a recompute met a configuration problem: one row per code, counted, reopened if resolved."""
    now = timezone.now()
    seen = {
        "occurrences": F("occurrences") + 1,
        "message": message,
        "last_seen_at": now,
        "resolved_at": None,
        "updated_at": now,
    }
    with transaction.atomic():
        if RecomputeIssue.objects.filter(code=code).update(**seen):
            return
        try:
            with transaction.atomic():
                RecomputeIssue.objects.create(code=code, message=message, first_seen_at=now, last_seen_at=now)
        except IntegrityError:  # a concurrent run recorded it first
            RecomputeIssue.objects.filter(code=code).update(**seen)


def recompute_issue_resolve(*, codes: Iterable[str]) -> int:
    """Mark the open issues with these codes resolved (one UPDATE); returns how many were open."""
    now = timezone.now()
    return RecomputeIssue.objects.filter(code__in=list(codes), resolved_at__isnull=True).update(
        resolved_at=now, updated_at=now
    )


def account_health_refresh(*, scope: Q) -> int:
    """Copy each account's latest snapshot into Account.health_score / health_band (one UPDATE)."""
    latest = HealthSnapshot.objects.filter(account=OuterRef("pk")).order_by("-date")
    score = Subquery(latest.values("score")[:1], output_field=DecimalField(max_digits=4, decimal_places=1))
    band = Coalesce(Subquery(latest.values("band")[:1]), Value(""))
    changed = (
        ~Q(health_band=F("new_band"))
        | Q(health_score__isnull=True, new_score__isnull=False)
        | Q(health_score__isnull=False, new_score__isnull=True)
        | ~Q(health_score=F("new_score"))
    )
    return (
        Account.objects.filter(scope)
        .annotate(new_score=score, new_band=band)
        .filter(changed)
        .update(health_score=score, health_band=band, updated_at=timezone.now())
    )


def health_recompute_range(
    *,
    first: datetime.date,
    last: datetime.date,
    account_ids: Iterable[int] | None = None,
    id_range: tuple[int, int] | None = None,
    progress=None,
) -> int:
    """Backfill every day from `first` to `last` inclusive; returns the snapshots written.

    The same snapshots as recomputing each day, made a chunk of account ids at a time over the whole range
    (one streamed read of the chunk's usage and touches, windows slid in Python, snapshots written in bulk),
    each chunk in its own transaction, so memory stays flat and chunks can run on several workers
    (`metrics.tasks.backfill_health_chunk`). `progress()` is called after each chunk (see `backfill_scopes`).
    """
    if last < first:
        raise DomainError(_("The range ends before it starts."))
    scorer = Scorer(active_health_model())
    days = [first + datetime.timedelta(days=k) for k in range((last - first).days + 1)]
    written = 0
    for scope in backfill_scopes(account_ids=account_ids, id_range=id_range):
        written += _backfill_scope(days, scope, scorer)
        if progress is not None:
            progress()
    if connection.vendor == "postgresql" and written:
        # So many new rows at once: the planner's statistics follow now, not whenever autovacuum gets to them
        # (until then it would scan the whole table for one account's latest snapshot).
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {HealthSnapshot._meta.db_table}")
    return written


def backfill_scopes(
    *, account_ids: Iterable[int] | None = None, id_range: tuple[int, int] | None = None
) -> list[Scope]:
    """The passes a backfill works through, each in its own transaction: the given ids, the id range or
    every account, BACKFILL_IDS at a time (a pass holds its accounts' usage over the range as received)."""
    if account_ids is not None:
        ids = sorted(set(account_ids))
        return [Scope(account_ids=tuple(ids[k : k + BACKFILL_IDS])) for k in range(0, len(ids), BACKFILL_IDS)]
    if id_range is not None:
        low, high = id_range
        return [Scope(id_range=(k, min(k + BACKFILL_IDS, high))) for k in range(low, high, BACKFILL_IDS)]
    return [Scope(id_range=ids) for ids in id_ranges(BACKFILL_IDS)]


@transaction.atomic
def _backfill_scope(days: list[datetime.date], scope: Scope, scorer: Scorer) -> int:
    """Rebuild the snapshots of `days` for `scope`: the range's snapshots are deleted, then the new ones
    streamed in as they are scored (on PostgreSQL through one COPY, which the database works through while
    the next are scored)."""
    HealthSnapshot.objects.filter(scope.q("account_id"), date__gte=days[0], date__lte=days[-1]).delete()
    stamp = timezone.now()
    model_id = scorer.model.pk
    scores = health_scores(days=days, scope=scope, scorer=scorer)
    # The first score comes once every input is read: the connection is then free for the COPY.
    first = next(scores, None)
    scores = chain([first], scores) if first is not None else iter(())
    written = 0
    if connection.vendor == "postgresql":
        columns = ", ".join(SNAPSHOT_COLUMNS)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {HealthSnapshot._meta.db_table} ({columns}) FROM STDIN") as copy,
        ):
            for batch in batched(scores, COPY_ROWS):
                copy.write("".join(_copy_line(_snapshot_row(a.pk, days[i], s, model_id, stamp)) for a, i, s in batch))
                written += len(batch)
    else:
        for batch in batched(scores, COPY_ROWS):
            written += snapshots_write([_snapshot_row(a.pk, days[i], s, model_id, stamp) for a, i, s in batch])
    account_health_refresh(scope=scope.q("pk"))
    return written


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Lists of up to `size` items, in order."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# --- model versions -----------------------------------------------------------------------------

COMPONENT_FIELDS = ("kind", "weight", "bad", "good", "metric", "per_metric", "order")
WITHOUT_WEIGHT = gettext_lazy("A health model needs at least one component with a weight above zero.")


@transaction.atomic
def health_model_publish(
    *,
    components: list[dict],
    name: str = "Default",
    yellow_from: Decimal = Decimal(40),
    green_from: Decimal = Decimal(70),
    notes: str = "",
    activate: bool = True,
) -> HealthModel:
    """Create the next version of the health model; activating it retires the active one.

    Versions are never edited once they have scored anything, so every snapshot keeps the version
    that produced it.
    """
    if not has_weight(Decimal(c.get("weight") or 0) for c in components):
        raise DomainError(WITHOUT_WEIGHT)
    version = (HealthModel.objects.aggregate(latest=Max("version"))["latest"] or 0) + 1
    if activate:
        _health_models_set_active(HealthModel.objects.filter(is_active=True), active=False)
    model = HealthModel(
        name=name, version=version, is_active=activate, yellow_from=yellow_from, green_from=green_from, notes=notes
    )
    full_clean(model)
    model.save()
    rows = []
    for position, fields in enumerate(components):
        component = HealthComponent(model=model, **{k: v for k, v in fields.items() if k in COMPONENT_FIELDS})
        if "order" not in fields:
            component.order = position
        full_clean(component)
        rows.append(component)
    HealthComponent.objects.bulk_create(rows)
    record_history(HealthComponent, [row.pk for row in rows], history_type="+")
    return model


def health_model_components(model: HealthModel) -> list[dict]:
    """A model's components as the plain dicts `health_model_publish` takes."""
    return [{name: getattr(c, name) for name in COMPONENT_FIELDS} for c in model.components.all()]


@transaction.atomic
def health_model_activate(*, model: HealthModel) -> HealthModel:
    """Make `model` the one that scores accounts (retiring the active one); its components are untouched."""
    if not has_weight(model.components.values_list("weight", flat=True)):
        raise DomainError(WITHOUT_WEIGHT)
    _health_models_set_active(HealthModel.objects.filter(is_active=True).exclude(pk=model.pk), active=False)
    _health_models_set_active(HealthModel.objects.filter(pk=model.pk, is_active=False), active=True)
    model.is_active = True
    return model


@transaction.atomic
def health_model_deactivate(*, model: HealthModel) -> HealthModel:
    """Stop `model` scoring accounts. Until another is active, recomputes record the problem and score nothing."""
    _health_models_set_active(HealthModel.objects.filter(pk=model.pk, is_active=True), active=False)
    model.is_active = False
    return model


def _health_models_set_active(models, *, active: bool) -> None:
    """Activate or retire these model versions, recording the change in their history."""
    ids = list(models.values_list("pk", flat=True))
    HealthModel.objects.filter(pk__in=ids).update(is_active=active, updated_at=timezone.now())
    record_history(HealthModel, ids)
