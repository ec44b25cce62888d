"""Health scores: components measured as of a date, mapped to 0–100, weighted, banded.

A component's raw measure x scores 100 * clamp((x - bad) / (good - bad), 0, 1); components without
data are left out and the others' weights renormalised. Snapshots are made for accounts with MRR > 0
on the date, one per (account, date): recomputing a day replaces it.

The work is set-based: one query reads every account's raw measures (correlated subqueries that
each walk an index), two read success-plan progress, then snapshots are upserted in batches.
"""

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import (
    Avg,
    DecimalField,
    Exists,
    F,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Account, Touch
from accounts.selectors import subscriptions_active_on
from csm.db import bulk_upsert
from csm.exceptions import DomainError, full_clean
from metrics.models import HealthBand, HealthComponent, HealthModel, HealthSnapshot, RecomputeIssue, UsageRecord
from success_plans.selectors import plan_progress_by_account

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


CHUNK_SIZE = 5000  # accounts scored together: a chunk's rows are all a recompute holds in memory


def id_ranges(chunk_size: int = CHUNK_SIZE) -> list[tuple[int, int]]:
    """Half-open account id ranges [low, high) covering every account, `chunk_size` ids wide."""
    bounds = Account.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return []
    return [(low, low + chunk_size) for low in range(bounds["low"], bounds["high"] + 1, chunk_size)]


def account_scope(account_ids: Iterable[int] | None = None, id_range: tuple[int, int] | None = None) -> Q:
    """The accounts a computation covers: given ids, an id range [low, high), or all."""
    scope = Q()
    if account_ids is not None:
        scope &= Q(pk__in=list(account_ids))
    if id_range is not None:
        scope &= Q(pk__gte=id_range[0], pk__lt=id_range[1])
    return scope


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
    components: list[dict]


def combine(*, model: HealthModel, raw_values: dict[int, Decimal | None]) -> Score | None:
    """Weighted mean of the components that have data; None when none has (no snapshot that day).

    `raw_values` maps a component's id to its raw measure (None: no data).
    """
    components = list(model.components.all())
    measured = [(c, raw_values.get(c.pk)) for c in components]
    total_weight = sum((c.weight for c, raw in measured if raw is not None), Decimal(0))
    if total_weight <= 0:
        return None
    weighted = Decimal(0)
    explained = []  # what each component gave; its thresholds stay with the model version
    for component, raw in measured:
        entry = {
            "kind": component.kind,  # readers name it in the reader's language (selectors.health.kind_label)
            "metric": component.metric,
            "per_metric": component.per_metric,
            "raw": None,
            "score": None,
            "weight": 0.0,
        }
        if raw is not None:
            score = component_score(raw=raw, bad=component.bad, good=component.good)
            weight = component.weight / total_weight
            weighted += score * weight
            entry.update(
                raw=float(raw.quantize(RAW_PLACES)),
                score=float(score.quantize(SCORE_PLACES, ROUND_HALF_UP)),
                weight=float(weight.quantize(RAW_PLACES)),
            )
        explained.append(entry)
    overall = weighted.quantize(SCORE_PLACES, ROUND_HALF_UP)
    return Score(score=overall, band=band_for(score=overall, model=model), components=explained)


# --- measuring ----------------------------------------------------------------------------------


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def usage_sum_expression(metric: str, first: datetime.date, last: datetime.date) -> Subquery:
    rows = (
        UsageRecord.objects.filter(account=OuterRef("pk"), metric=metric, date__gte=first, date__lte=last)
        .order_by()
        .values("account")
        .annotate(total=Sum("value"))
        .values("total")
    )
    return Subquery(rows, output_field=VALUE)


def usage_latest_expression(metric: str, on: datetime.date) -> Subquery:
    rows = UsageRecord.objects.filter(account=OuterRef("pk"), metric=metric, date__lte=on).order_by("-date")
    return Subquery(rows.values("value")[:1], output_field=VALUE)


def _measure_annotations(model: HealthModel, on: datetime.date) -> dict:
    """One annotation per raw input the model's components need."""
    _, day_end = day_bounds(on)
    touches = Touch.objects.alive().filter(account=OuterRef("pk"), occurred_at__lt=day_end).order_by()
    annotations = {
        "cadence": F("tier__touch_cadence_days"),
        "last_touch": Subquery(touches.order_by("-occurred_at").values("occurred_at")[:1]),
    }
    kinds = {c.kind for c in model.components.all()}
    if Kind.SENTIMENT in kinds:
        recent = touches.filter(
            occurred_at__gte=day_end - datetime.timedelta(days=SENTIMENT_DAYS), sentiment__isnull=False
        )
        annotations["sentiment"] = Subquery(
            recent.values("account").annotate(mean=Avg("sentiment")).values("mean"), output_field=FloatField()
        )
    for component in model.components.all():
        if component.kind == Kind.USAGE_TREND and component.metric:
            recent_first = on - datetime.timedelta(days=TREND_DAYS - 1)
            prior_first = recent_first - datetime.timedelta(days=TREND_DAYS)
            annotations[f"trend_recent_{component.pk}"] = usage_sum_expression(component.metric, recent_first, on)
            annotations[f"trend_prior_{component.pk}"] = usage_sum_expression(
                component.metric, prior_first, recent_first - ONE_DAY
            )
        elif component.kind == Kind.USAGE_LEVEL and component.metric:
            annotations[f"level_{component.pk}"] = usage_latest_expression(component.metric, on)
            if component.per_metric:
                annotations[f"level_per_{component.pk}"] = usage_latest_expression(component.per_metric, on)
    return annotations


def _raw_values(
    model: HealthModel, row: dict, on: datetime.date, plan_progress: dict[int, Decimal]
) -> dict[int, Decimal | None]:
    values: dict[int, Decimal | None] = {}
    for component in model.components.all():
        raw = None
        if component.kind == Kind.USAGE_TREND:
            recent = _decimal(row.get(f"trend_recent_{component.pk}")) or Decimal(0)
            prior = _decimal(row.get(f"trend_prior_{component.pk}"))
            if prior:
                raw = recent / prior
        elif component.kind == Kind.USAGE_LEVEL:
            raw = _decimal(row.get(f"level_{component.pk}"))
            if raw is not None and component.per_metric:
                divisor = _decimal(row.get(f"level_per_{component.pk}"))
                raw = raw / divisor if divisor else None
        elif component.kind == Kind.ENGAGEMENT:
            since = timezone.localtime(row["last_touch"]).date() if row["last_touch"] else row["customer_since"]
            if since is not None and row["cadence"]:
                # A customer whose relationship starts after `on` has been one for 0 days, not fewer.
                raw = Decimal(max((on - since).days, 0)) / Decimal(row["cadence"])
        elif component.kind == Kind.SENTIMENT:
            raw = _decimal(row.get("sentiment"))
        elif component.kind == Kind.PLAN_PROGRESS:
            raw = plan_progress.get(row["pk"])
        elif component.kind == Kind.RENEWAL_PROXIMITY:
            renewal = row["renewal_date"]
            if renewal is not None and renewal >= on:
                raw = Decimal((renewal - on).days)
        values[component.pk] = raw
    return values


def health_scores_on(*, on: datetime.date, scope: Q, model: HealthModel) -> dict[int, Score]:
    """Compute (without saving) the score of every active account in `scope` on `on`."""
    annotations = _measure_annotations(model, on)
    rows = (
        Account.objects.alive()
        .filter(scope)
        # Active: MRR > 0 on the day, i.e. a live line with a price (prices are never negative).
        .filter(Exists(subscriptions_active_on(on).filter(account_id=OuterRef("pk"), mrr__gt=0)))
        .annotate(**annotations)
        .values("pk", "customer_since", "renewal_date", *annotations)
        .order_by()
    )
    needs_plans = any(c.kind == Kind.PLAN_PROGRESS for c in model.components.all())
    plan_progress = plan_progress_by_account(accounts=Account.objects.filter(scope), on=on) if needs_plans else {}
    scores = {}
    for row in rows:
        score = combine(model=model, raw_values=_raw_values(model, row, on, plan_progress))
        if score is not None:
            scores[row["pk"]] = score
    return scores


# --- writing ------------------------------------------------------------------------------------


@transaction.atomic
def health_recompute(
    *,
    on: datetime.date | None = None,
    account_ids: Iterable[int] | None = None,
    id_range: tuple[int, int] | None = None,
) -> int:
    """Replace the snapshots of `on` (default today) for the accounts in scope; returns how many were written.

    Idempotent: rerunning a day gives the same snapshots, and accounts that no longer qualify lose
    that day's snapshot. Account.health_score / health_band then follow each account's latest snapshot.
    """
    on = on or timezone.localdate()
    model = active_health_model()
    if account_ids is None and id_range is None:
        # Every account, a chunk of ids at a time, so memory stays flat however many accounts there are.
        return sum(_recompute_scope(on, account_scope(id_range=ids), model) for ids in id_ranges(CHUNK_SIZE))
    return _recompute_scope(on, account_scope(account_ids, id_range), model)


def _recompute_scope(on: datetime.date, scope: Q, model: HealthModel) -> int:
    scores = health_scores_on(on=on, scope=scope, model=model)
    stamp = timezone.now()
    rows = [
        {
            "account": account_id,
            "date": on,
            "score": score.score,
            "band": score.band,
            "model_version": model.pk,
            "components": score.components,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for account_id, score in scores.items()
    ]
    bulk_upsert(
        HealthSnapshot,
        rows,
        unique_fields=["account", "date"],
        update_fields=["score", "band", "model_version", "components", "updated_at"],
    )
    # Whatever this run did not write for that day is stale.
    HealthSnapshot.objects.filter(date=on, updated_at__lt=stamp, account__in=Account.objects.filter(scope)).delete()
    account_health_refresh(scope=scope)
    return len(rows)


def health_recompute_reported(
    *,
    on: datetime.date | None = None,
    account_ids: Iterable[int] | None = None,
    id_range: tuple[int, int] | None = None,
) -> int:
    """`health_recompute` for background runs; returns the snapshots written (0 when it cannot score).

    The write that queued the run has already succeeded, so a model that cannot score is not raised: it
    is logged and recorded as a RecomputeIssue (shown in the admin), and a run that scores marks such
    issues resolved.
    """
    try:
        written = health_recompute(on=on, account_ids=account_ids, id_range=id_range)
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
    *, first: datetime.date, last: datetime.date, account_ids: Iterable[int] | None = None, progress=None
) -> int:
    """Backfill every day from `first` to `last` inclusive; returns the snapshots written."""
    if last < first:
        raise DomainError(_("The range ends before it starts."))
    account_ids = None if account_ids is None else list(account_ids)
    written = 0
    day = first
    while day <= last:
        written += health_recompute(on=day, account_ids=account_ids)
        if progress is not None:
            progress(day)
        day += ONE_DAY
    return written


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
        HealthModel.objects.filter(is_active=True).update(is_active=False, updated_at=timezone.now())
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
    return model


def health_model_components(model: HealthModel) -> list[dict]:
    """A model's components as the plain dicts `health_model_publish` takes."""
    return [{name: getattr(c, name) for name in COMPONENT_FIELDS} for c in model.components.all()]


@transaction.atomic
def health_model_activate(*, model: HealthModel) -> HealthModel:
    """Make `model` the one that scores accounts (retiring the active one); its components are untouched."""
    if not has_weight(model.components.values_list("weight", flat=True)):
        raise DomainError(WITHOUT_WEIGHT)
    now = timezone.now()
    HealthModel.objects.filter(is_active=True).exclude(pk=model.pk).update(is_active=False, updated_at=now)
    HealthModel.objects.filter(pk=model.pk).update(is_active=True, updated_at=now)
    model.is_active = True
    return model


@transaction.atomic
def health_model_deactivate(*, model: HealthModel) -> HealthModel:
    """Stop `model` scoring accounts. Until another is active, recomputes record the problem and score nothing."""
    HealthModel.objects.filter(pk=model.pk, is_active=True).update(is_active=False, updated_at=timezone.now())
    model.is_active = False
    return model
