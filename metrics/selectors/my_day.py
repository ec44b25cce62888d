"""Reads behind My day, the home page of a CSM: their book, the alerts waiting for them, accounts at risk,
renewals, overdue touches and success-plan work.

A CSM's *book* is the live accounts they own that have not churned. Money is MRR in CSM_CURRENCY
(ARR = 12 x MRR). Each section is bounded (its first `limit` rows, plus whether there are more) and costs
one query whatever the size of the book; plans without progress cost three.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    Count,
    DateField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import Account
from csm.roles import CSM_GROUP
from metrics.models import Alert, HealthBand
from success_plans.models import Initiative, SuccessPlan, Target
from success_plans.selectors import PlanProgress, plans_progress

ALERT_LIMIT = 20
AT_RISK_LIMIT = 10
RENEWAL_LIMIT = 10
RENEWAL_WINDOW_DAYS = 90
OVERDUE_LIMIT = 10
INITIATIVE_LIMIT = 20
STALLED_PLAN_LIMIT = 10
CSM_CHOICE_LIMIT = 500
ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Section:
    """The first rows of a section, and whether more rows match than are shown."""

    rows: list[Any]
    has_more: bool


def _bounded(rows: QuerySet, limit: int) -> Section:
    """One query: `limit + 1` rows tell whether there are more without counting them all."""
    fetched = list(rows[: limit + 1])
    return Section(rows=fetched[:limit], has_more=len(fetched) > limit)


def book_accounts(*, csm) -> QuerySet[Account]:
    """The CSM's book: live accounts they own, churned ones left out."""
    return Account.objects.alive().filter(owner=csm).exclude(lifecycle_stage=Account.LifecycleStage.CHURNED)


@dataclass(frozen=True)
class Book:
    """Size of a book: accounts, ARR (12 x the accounts' MRR) and accounts per health band."""

    accounts: int
    arr: Decimal
    red: int
    yellow: int
    green: int
    unscored: int


def book_summary(*, csm) -> Book:
    """The CSM's book in figures: one aggregate query."""
    figures = book_accounts(csm=csm).aggregate(
        accounts=Count("pk"),
        mrr=Sum("mrr", default=Decimal(0)),
        red=Count("pk", filter=Q(health_band=HealthBand.RED)),
        yellow=Count("pk", filter=Q(health_band=HealthBand.YELLOW)),
        green=Count("pk", filter=Q(health_band=HealthBand.GREEN)),
        unscored=Count("pk", filter=Q(health_band="")),
    )
    mrr = figures.pop("mrr")
    return Book(arr=mrr * 12, **figures)


def _awake(on: datetime.date, prefix: str = "") -> Q:
    """Alerts waiting for action on `on`: open, or snoozed until a day that has come."""
    status, until = f"{prefix}status", f"{prefix}snoozed_until"
    return Q(**{status: Alert.Status.OPEN}) | Q(**{status: Alert.Status.SNOOZED, f"{until}__lte": on})


def alerts_waiting(*, csm, on: datetime.date, limit: int = ALERT_LIMIT) -> Section:
    """The CSM's alerts waiting for action on `on` (open, or snoozed until `on` or before) on live
    accounts, the nearest due first (then those without a due date), with account and rule joined."""
    alerts = (
        Alert.objects.filter(_awake(on), owner=csm, account__deleted_at__isnull=True)
        .select_related("account", "rule")
        .order_by(F("due").asc(nulls_last=True), "-created_at", "pk")
    )
    return _bounded(alerts, limit)


def alert_for_action(*, pk: int) -> Alert:
    """An alert of a live account, with its account (and so its owner) joined, for marking done or snoozing."""
    return Alert.objects.select_related("account", "rule").get(pk=pk, account__deleted_at__isnull=True)


def at_risk(*, csm, on: datetime.date, limit: int = AT_RISK_LIMIT) -> Section:
    """Accounts of the book in the red band, or yellow with an alert waiting; lowest score first.

    Each row has `has_alert`: whether an alert waits on the account (see `alerts_waiting`).
    """
    waiting = Alert.objects.filter(_awake(on), account=OuterRef("pk"))
    accounts = (
        book_accounts(csm=csm)
        .annotate(has_alert=Exists(waiting))
        .filter(Q(health_band=HealthBand.RED) | Q(health_band=HealthBand.YELLOW, has_alert=True))
        .select_related("tier")
        .order_by(F("health_score").asc(nulls_last=True), "name", "pk")
    )
    return _bounded(accounts, limit)


def renewals_ahead(*, csm, on: datetime.date, days: int = RENEWAL_WINDOW_DAYS, limit: int = RENEWAL_LIMIT) -> Section:
    """Accounts of the book renewing from `on` to `on + days` (inclusive), soonest first.

    Each row has `has_active_plan`: whether a live success plan of the account is active.
    """
    active_plan = SuccessPlan.objects.alive().filter(account=OuterRef("pk"), status=SuccessPlan.Status.ACTIVE)
    accounts = (
        book_accounts(csm=csm)
        .filter(renewal_date__gte=on, renewal_date__lte=on + datetime.timedelta(days=days))
        .annotate(has_active_plan=Exists(active_plan))
        .order_by("renewal_date", "name", "pk")
    )
    return _bounded(accounts, limit)


def touches_overdue(*, csm, on: datetime.date, limit: int = OVERDUE_LIMIT) -> Section:
    """Accounts of the book whose last touch (or customer-since date, if never touched) is more than the
    tier's touch cadence before `on` — the rule of the "touch overdue" alert — most overdue first.

    Computed in the database. Each row has `touched_on` (the local date of the last touch, or None),
    `idle_for` (time since the last touch or customer-since date) and `overdue_by` (`idle_for` less the
    cadence), both timedeltas of whole days. Accounts without a tier, or without either date, are left out.
    """
    reference = Coalesce(TruncDate("last_touch_at"), F("customer_since"), output_field=DateField())
    idle_for = ExpressionWrapper(Value(on, output_field=DateField()) - reference, output_field=DurationField())
    # As a plain integer: SQLite multiplies a duration only by the generic numeric types.
    cadence_days = ExpressionWrapper(F("tier__touch_cadence_days"), output_field=IntegerField())
    cadence = ExpressionWrapper(cadence_days * Value(ONE_DAY), output_field=DurationField())
    accounts = (
        book_accounts(csm=csm)
        .filter(tier__isnull=False)
        .annotate(
            touched_on=TruncDate("last_touch_at"),
            idle_for=idle_for,
            cadence=cadence,
        )
        .annotate(overdue_by=ExpressionWrapper(F("idle_for") - F("cadence"), output_field=DurationField()))
        .filter(overdue_by__gt=datetime.timedelta(0))
        .select_related("tier")
        .order_by("-overdue_by", "name", "pk")
    )
    return _bounded(accounts, limit)


def week_of(on: datetime.date) -> tuple[datetime.date, datetime.date]:
    """Monday and Sunday of the week of `on`."""
    monday = on - datetime.timedelta(days=on.weekday())
    return monday, monday + datetime.timedelta(days=6)


def initiatives_this_week(*, csm, on: datetime.date, limit: int = INITIATIVE_LIMIT) -> Section:
    """Initiatives not done, due Monday to Sunday of the week of `on`, of the live draft or active plans on
    the CSM's live accounts or owned by the CSM; soonest first, with plan, account and owner joined."""
    monday, sunday = week_of(on)
    # The CSM's plans as a union of two index lookups: an OR across plan and account reads every plan.
    plans = (
        SuccessPlan.objects.filter(account__owner=csm)
        .values("pk")
        .order_by()
        .union(SuccessPlan.objects.filter(owner=csm).values("pk").order_by())
    )
    initiatives = (
        Initiative.objects.filter(
            goal__plan__in=plans,
            due_date__gte=monday,
            due_date__lte=sunday,
            goal__plan__deleted_at__isnull=True,
            goal__plan__status__in=[SuccessPlan.Status.DRAFT, SuccessPlan.Status.ACTIVE],
            goal__plan__account__deleted_at__isnull=True,
        )
        .exclude(status=Initiative.Status.DONE)
        .select_related("goal__plan__account", "owner")
        .order_by("due_date", "goal__plan__account__name", "pk")
    )
    return _bounded(initiatives, limit)


def plans_without_progress(*, csm, on: datetime.date, limit: int = STALLED_PLAN_LIMIT) -> Section:
    """Active plans of the CSM's book whose progress is 0: no target moved from its baseline towards its
    target value (all unmeasured, or measured at or behind the baseline), or no target at all. Oldest
    start first. Rows are (plan, PlanProgress) pairs, the progress read by `plans_progress`.

    The filter is the database form of `target_progress(...) > 0`: a target has progress when it is
    measured and its current value lies beyond the baseline in the target's direction.
    """
    progressing = Target.objects.filter(goal__plan=OuterRef("pk"), current_value__isnull=False).filter(
        Q(target_value__gt=F("baseline"), current_value__gt=F("baseline"))
        | Q(target_value__lt=F("baseline"), current_value__lt=F("baseline"))
    )
    plans = (
        SuccessPlan.objects.alive()
        .filter(status=SuccessPlan.Status.ACTIVE, account__in=book_accounts(csm=csm))
        .exclude(Exists(progressing))
        .select_related("account")
        .order_by("start_date", "pk")
    )
    section = _bounded(plans, limit)
    if not section.rows:
        return section
    progress: dict[int, PlanProgress] = plans_progress(plan_ids=[plan.pk for plan in section.rows], on=on)
    rows = [(plan, progress[plan.pk]) for plan in section.rows if not progress[plan.pk].progress]
    return Section(rows=rows, has_more=section.has_more)


def csm_choices() -> QuerySet:
    """Active users with the CSM role, by name: whose day a leader may open."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name=CSM_GROUP)
        .order_by("first_name", "last_name", "username")[:CSM_CHOICE_LIMIT]
    )
