"""Writes over success plans: plans (blank or from a playbook), goals, targets and their readings, initiatives.

Every service validates with a message a user can act on, runs in one transaction and, because plan
progress and overdue initiatives are health inputs, queues a recompute of the account once it commits.
The workspace, the admin, the API, imports and tasks all call these.

The latest reading of a usage-linked target comes from `metrics.services.targets.targets_follow_usage`:
usage is metrics' data, and metrics builds on this app.
"""

import datetime
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS
from django.db import transaction
from django.db.models import DateTimeField, DecimalField, Max, Model, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Account
from accounts.services import (
    FieldErrors,
    _add_error,
    _check_many,
    _chunks,
    _domain_errors,
    _refuse,
    _write_many,
    queue_recompute,
    recompute_batch,
    soft_delete,
)
from csm.db import record_history
from csm.exceptions import DomainError, full_clean
from csm.numbers import clean_decimal

from .models import (
    VALUE,
    Goal,
    Initiative,
    PlanTemplate,
    SuccessPlan,
    Target,
    TargetMeasurement,
    TemplateGoal,
)

PlanStatus = SuccessPlan.Status
GoalStatus = Goal.Status
InitiativeStatus = Initiative.Status
Source = TargetMeasurement.Source
FUTURE_SLACK = datetime.timedelta(minutes=5)
VALUE_FIELD = DecimalField(**VALUE)
BATCH_SIZE = 1000
M = TypeVar("M", bound=Model)


def _assign(instance: Model, data: Mapping[str, Any], editable: Sequence[str]) -> None:
    unknown = sorted(set(data) - set(editable))
    if unknown:
        raise DomainError(_("These fields cannot be changed here: %(fields)s.") % {"fields": ", ".join(unknown)})
    for name, value in data.items():
        setattr(instance, name, value)


def _account_id(part: Model) -> int:
    """The account a plan, goal, target or initiative belongs to (its recompute is queued)."""
    if isinstance(part, SuccessPlan):
        return part.account_id
    if isinstance(part, Goal):
        return part.plan.account_id
    return part.goal.plan.account_id


def _save(part: M, data: Mapping[str, Any] | None = None, editable: Sequence[str] = ()) -> M:
    """Apply `data` (only `editable` fields), validate, save, and queue the account's recompute."""
    if data:
        _assign(part, data, editable)
    full_clean(part)
    part.save()
    queue_recompute([_account_id(part)])
    return part


def _reason(reason: str, *, required: bool, what: str) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise DomainError({"status_reason": _("Say why the %(what)s is abandoned or blocked.") % {"what": what}})
    if len(reason) > 300:
        raise DomainError({"status_reason": _("Keep the reason under 300 characters.")})
    return reason


def _check_open(plan: SuccessPlan) -> None:
    if plan.deleted_at is not None:
        raise DomainError(_("This success plan was deleted."))


def _reorder(model: type[Model], rows: Iterable[Model], ordered_ids: Sequence[int], what: str) -> None:
    rows = list(rows)
    if sorted(ordered_ids) != sorted(row.pk for row in rows) or len(set(ordered_ids)) != len(ordered_ids):
        raise DomainError(_("Give every %(what)s exactly once to reorder them.") % {"what": what})
    position = {pk: index for index, pk in enumerate(ordered_ids)}
    now = timezone.now()
    for row in rows:
        row.order, row.updated_at = position[row.pk], now
    model.objects.bulk_update(rows, ["order", "updated_at"])


def _next_order(queryset) -> int:
    latest = queryset.aggregate(latest=Max("order"))["latest"]
    return 0 if latest is None else latest + 1


# --- plans --------------------------------------------------------------------------------------

PLAN_CLOSED = (PlanStatus.ACHIEVED, PlanStatus.ABANDONED)
PLAN_EDITABLE_FIELDS = ("title", "owner", "success_definition", "start_date", "target_date", "external_id")


def plan_create(
    *,
    account: Account,
    title: str,
    owner=None,
    success_definition: str = "",
    start_date: datetime.date | None = None,
    target_date: datetime.date | None = None,
    status: str = PlanStatus.ACTIVE,
    external_id: str | None = None,
) -> SuccessPlan:
    """A blank plan: goals, targets and initiatives are added afterwards (or with `plans_save`)."""
    plan = SuccessPlan(
        account=account,
        title=title,
        owner=owner if owner is not None else account.owner,
        success_definition=success_definition,
        start_date=start_date or timezone.localdate(),
        target_date=target_date,
        status=status,
        external_id=external_id,
    )
    return plans_save(plans=[plan])[0]


def plan_update(*, plan: SuccessPlan, data: Mapping[str, Any]) -> SuccessPlan:
    """Change a plan's fields; its status changes through `plan_set_status`."""
    _check_open(plan)
    _assign(plan, data, PLAN_EDITABLE_FIELDS)
    return plans_save(plans=[plan])[0]


def plan_set_status(*, plan: SuccessPlan, status: str, reason: str = "") -> SuccessPlan:
    """Activate a draft, achieve or abandon a plan (with a reason), or reopen a closed one."""
    _check_open(plan)
    if status == plan.status:
        return plan
    before = plan.status, plan.status_reason
    plan.status, plan.status_reason = status, reason
    try:
        return plans_save(plans=[plan])[0]
    except DomainError:
        plan.status, plan.status_reason = before
        raise


def _plan_status_reason(*, old: str | None, status: str, reason: str) -> str:
    """The rule for a plan's status (`old` is None for a new plan): raises DomainError when the change is
    not allowed, else returns the reason to keep. Achieving or abandoning closes the plan, with a reason
    (required to abandon); activating starts a draft or reopens a closed plan, without one."""
    if status not in PlanStatus.values:
        raise DomainError({"status": _("Unknown plan status “%(status)s”.") % {"status": status}})
    if old is None:
        if status not in (PlanStatus.DRAFT, PlanStatus.ACTIVE):
            raise DomainError({"status": _("A new plan starts as a draft or active.")})
        return ""
    if status == old:
        return (reason or "").strip() if status in PLAN_CLOSED else ""
    if status == PlanStatus.DRAFT:
        raise DomainError({"status": _("A plan that has started cannot go back to draft.")})
    if status == PlanStatus.ACHIEVED and old != PlanStatus.ACTIVE:
        raise DomainError({"status": _("Only an active plan can be achieved; activate it first.")})
    if status in PLAN_CLOSED:
        return _reason(reason, required=status == PlanStatus.ABANDONED, what=_("plan"))
    return ""


def plan_achieve(*, plan: SuccessPlan, reason: str = "") -> SuccessPlan:
    return plan_set_status(plan=plan, status=PlanStatus.ACHIEVED, reason=reason)


def plan_abandon(*, plan: SuccessPlan, reason: str) -> SuccessPlan:
    return plan_set_status(plan=plan, status=PlanStatus.ABANDONED, reason=reason)


@transaction.atomic
def plan_delete(*, plan: SuccessPlan) -> SuccessPlan:
    """Soft-delete a plan (partners sync the tombstone); it stops counting towards health."""
    return soft_delete(instance=plan)  # which queues the account's recompute


# --- plans from playbooks -----------------------------------------------------------------------


@dataclass
class TemplateApplication:
    """What applying a template did: the plans created, and why each other account got none."""

    created: list[SuccessPlan] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # account id -> reason


@transaction.atomic
def plans_apply_template(
    *,
    template: PlanTemplate,
    accounts: Iterable[Account],
    start_date: datetime.date | None = None,
    start_dates: Mapping[int, datetime.date] | None = None,
    owner=None,
    status: str = PlanStatus.ACTIVE,
) -> TemplateApplication:
    """One plan per account from `template`: its goals, targets and initiatives copied, due dates counted
    from the plan's start (`start_dates[account.pk]`, else `start_date`, else today).

    Accounts that were deleted, or already have an open (draft or active) plan from this template, are
    skipped with a reason. The owner is `owner`, else the account's CSM. A fixed number of queries,
    whatever the number of accounts.
    """
    if not template.is_active:
        raise DomainError(_("The template “%(name)s” is not active.") % {"name": template.name})
    if status not in (PlanStatus.DRAFT, PlanStatus.ACTIVE):
        raise DomainError({"status": _("A new plan starts as a draft or active.")})
    accounts = list(accounts)
    result = TemplateApplication()
    busy = set(
        SuccessPlan.objects.alive()
        .filter(template=template, status__in=[PlanStatus.DRAFT, PlanStatus.ACTIVE], account__in=accounts)
        .values_list("account_id", flat=True)
    )
    goals = list(TemplateGoal.objects.filter(template=template).prefetch_related("targets", "initiatives"))
    today = timezone.localdate()
    plans: list[SuccessPlan] = []
    seen: set[int] = set()
    for account in accounts:
        if account.pk in seen:
            continue
        seen.add(account.pk)
        if account.deleted_at is not None:
            result.skipped[account.pk] = _("the account was deleted")
        elif account.pk in busy:
            result.skipped[account.pk] = _("it already has an open plan from this template")
        else:
            start = (start_dates or {}).get(account.pk) or start_date or today
            plans.append(
                SuccessPlan(
                    account=account,
                    title=template.name,
                    status=status,
                    owner=owner if owner is not None else account.owner,
                    start_date=start,
                    target_date=start + datetime.timedelta(days=template.duration_days),
                    template=template,
                )
            )
    if not plans:
        return result
    SuccessPlan.objects.bulk_create(plans, batch_size=BATCH_SIZE)

    def due(plan: SuccessPlan, days: int | None) -> datetime.date | None:
        return None if days is None else plan.start_date + datetime.timedelta(days=days)

    new_goals = [
        (
            plan,
            template_goal,
            Goal(
                plan=plan,
                title=template_goal.title,
                description=template_goal.description,
                priority=template_goal.priority,
                due_date=due(plan, template_goal.due_in_days),
                order=template_goal.order,
            ),
        )
        for plan in plans
        for template_goal in goals
    ]
    Goal.objects.bulk_create([goal for _plan, _template_goal, goal in new_goals], batch_size=BATCH_SIZE)
    targets, initiatives = [], []
    for plan, template_goal, goal in new_goals:
        targets += [
            Target(
                goal=goal,
                name=t.name,
                unit=t.unit,
                baseline=t.baseline,
                target_value=t.target_value,
                due_date=due(plan, t.due_in_days),
                usage_metric=t.usage_metric,
                order=t.order,
            )
            for t in template_goal.targets.all()
        ]
        initiatives += [
            Initiative(goal=goal, title=i.title, owner=plan.owner, due_date=due(plan, i.due_in_days), order=i.order)
            for i in template_goal.initiatives.all()
        ]
    Target.objects.bulk_create(targets, batch_size=BATCH_SIZE)
    Initiative.objects.bulk_create(initiatives, batch_size=BATCH_SIZE)
    for model, created in (
        (SuccessPlan, plans),
        (Goal, [g for _p, _t, g in new_goals]),
        (Target, targets),
        (Initiative, initiatives),
    ):
        record_history(model, [row.pk for row in created], history_type="+")
    result.created = plans
    queue_recompute(plan.account_id for plan in plans)
    return result


def plan_create_from_template(
    *,
    account: Account,
    template: PlanTemplate,
    start_date: datetime.date | None = None,
    owner=None,
    status: str = PlanStatus.ACTIVE,
) -> SuccessPlan:
    """One account's plan from a playbook; refuses with the reason when the account cannot have one."""
    applied = plans_apply_template(
        template=template, accounts=[account], start_date=start_date, owner=owner, status=status
    )
    if not applied.created:
        raise DomainError(
            _("No plan was created for %(account)s: %(reason)s.")
            % {"account": account, "reason": applied.skipped[account.pk]}
        )
    return applied.created[0]


# --- goals --------------------------------------------------------------------------------------

GOAL_EDITABLE_FIELDS = ("title", "description", "priority", "due_date", "order")


@transaction.atomic
def goal_add(
    *,
    plan: SuccessPlan,
    title: str,
    description: str = "",
    priority: int = Goal._meta.get_field("priority").default,
    due_date: datetime.date | None = None,
) -> Goal:
    _check_open(plan)
    goal = Goal(
        plan=plan,
        title=title,
        description=description,
        priority=priority,
        due_date=due_date,
        order=_next_order(plan.goals.all()),
    )
    return _save(goal)


@transaction.atomic
def goal_update(*, goal: Goal, data: Mapping[str, Any]) -> Goal:
    """Change a goal's fields; its status changes through `goal_set_status`."""
    return _save(goal, data, GOAL_EDITABLE_FIELDS)


@transaction.atomic
def goal_set_status(*, goal: Goal, status: str, reason: str = "", on: datetime.date | None = None) -> Goal:
    """Start, achieve (on `on`, default today), abandon (with a reason) or reopen a goal."""
    goal.achieved_at, goal.status_reason = _goal_status_fields(status=status, reason=reason, on=on)
    goal.status = status
    goal.save(update_fields=["status", "achieved_at", "status_reason", "updated_at"])
    queue_recompute([goal.plan.account_id])
    return goal


def _goal_status_fields(
    *, status: str, reason: str = "", on: datetime.date | None = None
) -> tuple[datetime.date | None, str]:
    """A goal's `achieved_at` and `status_reason` in `status`: achieved on `on` (default today, never in the
    future), abandoned with a reason, otherwise neither. Raises DomainError."""
    if status not in GoalStatus.values:
        raise DomainError({"status": _("Unknown goal status “%(status)s”.") % {"status": status}})
    if status == GoalStatus.ACHIEVED:
        on = on or timezone.localdate()
        if on > timezone.localdate():
            raise DomainError({"achieved_at": _("A goal cannot be achieved in the future.")})
        return on, _reason(reason, required=False, what=_("goal"))
    if status == GoalStatus.ABANDONED:
        return None, _reason(reason, required=True, what=_("goal"))
    return None, ""


def goal_achieve(*, goal: Goal, reason: str = "", on: datetime.date | None = None) -> Goal:
    return goal_set_status(goal=goal, status=GoalStatus.ACHIEVED, reason=reason, on=on)


def goal_abandon(*, goal: Goal, reason: str) -> Goal:
    return goal_set_status(goal=goal, status=GoalStatus.ABANDONED, reason=reason)


@transaction.atomic
def goal_remove(*, goal: Goal) -> None:
    """Delete a goal with its targets, their readings, and its initiatives."""
    parts_remove(queryset=Goal.objects.filter(pk=goal.pk))


@transaction.atomic
def parts_remove(*, queryset: QuerySet[Goal] | QuerySet[Target] | QuerySet[Initiative]) -> int:
    """Delete goals, targets or initiatives (with what hangs off them) in one set-based call; their
    accounts are recomputed once. Returns how many were deleted."""
    path = {Goal: "plan__account_id", Target: "goal__plan__account_id", Initiative: "goal__plan__account_id"}
    account_ids = set(queryset.values_list(path[queryset.model], flat=True).order_by())
    record_history(queryset.model, queryset.values_list("pk", flat=True).order_by(), history_type="-")
    count = queryset.count()
    queryset.delete()
    queue_recompute(account_ids)
    return count


@transaction.atomic
def goals_reorder(*, plan: SuccessPlan, goal_ids: Sequence[int]) -> None:
    _reorder(Goal, plan.goals.all(), goal_ids, _("goal of the plan"))


# --- targets ------------------------------------------------------------------------------------

TARGET_EDITABLE_FIELDS = ("name", "unit", "baseline", "target_value", "due_date", "usage_metric", "order")


@transaction.atomic
def target_add(
    *,
    goal: Goal,
    name: str,
    target_value: Decimal,
    baseline: Decimal = Decimal(0),
    unit: str = "",
    due_date: datetime.date | None = None,
    usage_metric: str = "",
) -> Target:
    target = Target(
        goal=goal,
        name=name,
        unit=unit,
        baseline=baseline,
        target_value=target_value,
        due_date=due_date,
        usage_metric=usage_metric,
        order=_next_order(goal.targets.all()),
    )
    return _save(target)


@transaction.atomic
def target_update(*, target: Target, data: Mapping[str, Any]) -> Target:
    """Change a target's definition; its value changes only by recording a measurement."""
    return _save(target, data, TARGET_EDITABLE_FIELDS)


@transaction.atomic
def target_remove(*, target: Target) -> None:
    parts_remove(queryset=Target.objects.filter(pk=target.pk))


@transaction.atomic
def targets_reorder(*, goal: Goal, target_ids: Sequence[int]) -> None:
    _reorder(Target, goal.targets.all(), target_ids, _("target of the goal"))


class Measurement(NamedTuple):
    """One reading to record: `measured_at` defaults to now."""

    target_id: int
    value: Decimal
    source: str = Source.WORKSPACE
    measured_at: datetime.datetime | None = None
    recorded_by_id: int | None = None


def _clean_value(value: Any) -> Decimal:
    """A reading as a Decimal that fits the column on every database (see `csm.numbers`)."""
    return clean_decimal(value, **VALUE)


@transaction.atomic
def targets_measure_bulk(*, measurements: Iterable[Measurement]) -> list[TargetMeasurement]:
    """Record readings of many targets in a fixed number of queries; all or none.

    Each target's `current_value` and `measured_at` become its latest reading, so a reading dated before
    the latest one is kept in the history without replacing the current value. Errors are keyed by the
    reading's index.
    """
    measurements = list(measurements)
    now = timezone.now()
    targets = {
        t.pk: t for t in Target.objects.filter(pk__in={m.target_id for m in measurements}).select_related("goal__plan")
    }
    rows, problems = [], {}
    for index, m in enumerate(measurements):
        errors = []
        target = targets.get(m.target_id)
        if target is None:
            errors.append(_("target: no such target."))
        elif target.goal.plan.deleted_at is not None:
            errors.append(_("target: its plan was deleted."))
        if m.source not in Source.values:
            errors.append(_("source: one of %(choices)s.") % {"choices": ", ".join(Source.values)})
        try:
            value = _clean_value(m.value)
        except DomainError as error:
            errors += [f"value: {message}" for message in error.messages]
            value = None
        when = m.measured_at or now
        if timezone.is_naive(when):
            when = timezone.make_aware(when)
        try:
            when.astimezone(datetime.UTC)  # stored in UTC
        except OverflowError:
            errors.append(_("measured at: the date and time is out of range."))
        else:
            if when > now + FUTURE_SLACK:
                errors.append(_("measured at: a reading cannot be in the future."))
        if errors:
            problems[str(index)] = errors
            continue
        rows.append(
            TargetMeasurement(
                target_id=m.target_id,
                value=value,
                measured_at=when,
                source=m.source,
                recorded_by_id=m.recorded_by_id,
                created_at=now,
                updated_at=now,
            )
        )
    if problems:
        raise DomainError(problems)
    TargetMeasurement.objects.bulk_create(rows, batch_size=BATCH_SIZE)
    target_current_values_refresh(target_ids={row.target_id for row in rows})
    queue_recompute(targets[row.target_id].goal.plan.account_id for row in rows)
    return rows


def target_measure(
    *,
    target: Target,
    value: Decimal,
    measured_at: datetime.datetime | None = None,
    source: str = Source.WORKSPACE,
    recorded_by=None,
) -> TargetMeasurement:
    """Record one reading of a target (see `targets_measure_bulk`)."""
    try:
        (reading,) = targets_measure_bulk(
            measurements=[Measurement(target.pk, value, source, measured_at, recorded_by.pk if recorded_by else None)]
        )
    except DomainError as error:
        # One reading: its errors, without the index.
        messages = error.message_dict.get("0", error.messages) if hasattr(error, "error_dict") else error.messages
        raise DomainError(messages) from None
    target.refresh_from_db(fields=["current_value", "measured_at", "updated_at"])
    return reading


def target_current_values_refresh(*, target_ids: Iterable[int]) -> int:
    """Set each target's `current_value` / `measured_at` to its latest reading (one UPDATE per batch)."""
    latest = TargetMeasurement.objects.filter(target=OuterRef("pk")).order_by("-measured_at", "-pk")
    ids = sorted(set(target_ids))
    changed = 0
    for first in range(0, len(ids), BATCH_SIZE):
        changed += Target.objects.filter(pk__in=ids[first : first + BATCH_SIZE]).update(
            current_value=Subquery(latest.values("value")[:1], output_field=VALUE_FIELD),
            measured_at=Subquery(latest.values("measured_at")[:1], output_field=DateTimeField()),
            updated_at=timezone.now(),
        )
    return changed


# --- initiatives --------------------------------------------------------------------------------

INITIATIVE_EDITABLE_FIELDS = ("title", "owner", "due_date", "order")


@transaction.atomic
def initiative_add(*, goal: Goal, title: str, owner=None, due_date: datetime.date | None = None) -> Initiative:
    initiative = Initiative(
        goal=goal, title=title, owner=owner, due_date=due_date, order=_next_order(goal.initiatives.all())
    )
    return _save(initiative)


@transaction.atomic
def initiative_update(*, initiative: Initiative, data: Mapping[str, Any]) -> Initiative:
    """Change an initiative's fields; its status changes through `initiative_set_status`."""
    return _save(initiative, data, INITIATIVE_EDITABLE_FIELDS)


@transaction.atomic
def initiative_set_status(*, initiative: Initiative, status: str, reason: str = "") -> Initiative:
    """Start, complete, block (with a reason) or reopen an initiative; completing stamps `completed_at`."""
    if status not in InitiativeStatus.values:
        raise DomainError({"status": _("Unknown initiative status “%(status)s”.") % {"status": status}})
    if status == initiative.status:
        return initiative
    initiative.completed_at, initiative.status_reason = _initiative_status_fields(status=status, reason=reason)
    initiative.status = status
    initiative.save(update_fields=["status", "status_reason", "completed_at", "updated_at"])
    queue_recompute([initiative.goal.plan.account_id])
    return initiative


def _initiative_status_fields(
    *, status: str, reason: str = "", now: datetime.datetime | None = None
) -> tuple[datetime.datetime | None, str]:
    """An initiative's `completed_at` and `status_reason` on moving to `status`: done is stamped `now`,
    blocked needs a reason, the others have neither. Raises DomainError."""
    if status not in InitiativeStatus.values:
        raise DomainError({"status": _("Unknown initiative status “%(status)s”.") % {"status": status}})
    if status == InitiativeStatus.DONE:
        return now or timezone.now(), ""
    if status == InitiativeStatus.BLOCKED:
        return None, _reason(reason, required=True, what=_("initiative"))
    return None, ""


def initiative_complete(*, initiative: Initiative) -> Initiative:
    return initiative_set_status(initiative=initiative, status=InitiativeStatus.DONE)


def initiative_block(*, initiative: Initiative, reason: str) -> Initiative:
    return initiative_set_status(initiative=initiative, status=InitiativeStatus.BLOCKED, reason=reason)


def initiative_reopen(*, initiative: Initiative) -> Initiative:
    return initiative_set_status(initiative=initiative, status=InitiativeStatus.IN_PROGRESS)


@transaction.atomic
def initiative_remove(*, initiative: Initiative) -> None:
    parts_remove(queryset=Initiative.objects.filter(pk=initiative.pk))


@transaction.atomic
def initiatives_reorder(*, goal: Goal, initiative_ids: Sequence[int]) -> None:
    _reorder(Initiative, goal.initiatives.all(), initiative_ids, _("initiative of the goal"))


# --- plans with their goals, targets and initiatives --------------------------------------------


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()  # "not given", where None is a value


@dataclass
class TargetSpec:
    """A target of a goal written with its plan; `current_value` given (not None) records a reading."""

    name: str
    target_value: Any
    unit: str = ""
    baseline: Any = Decimal(0)
    due_date: datetime.date | None = None
    usage_metric: str = ""
    id: int | None = None
    current_value: Any = UNSET
    measured_at: datetime.datetime | None = None


@dataclass
class InitiativeSpec:
    """An initiative of a goal written with its plan; `status_reason` not given keeps the stored one."""

    title: str
    owner_id: int | None = None
    status: str = InitiativeStatus.PLANNED
    due_date: datetime.date | None = None
    id: int | None = None
    status_reason: Any = UNSET


@dataclass
class GoalSpec:
    """A goal written with its plan. `targets` / `initiatives` given become exactly those; None leaves them."""

    title: str
    description: str = ""
    priority: int = Goal._meta.get_field("priority").default
    status: str = GoalStatus.NOT_STARTED
    due_date: datetime.date | None = None
    id: int | None = None
    targets: list[TargetSpec] | None = None
    initiatives: list[InitiativeSpec] | None = None
    status_reason: Any = UNSET


def _written(model: type[Model]) -> list[str]:
    """The columns `_write_many` writes (with `closed_at` for plans, written beside it)."""
    names = [f.attname for f in model._meta.concrete_fields if f.editable and not f.primary_key]
    return names + (["closed_at"] if model is SuccessPlan else [])


def _values(instance: Model) -> tuple:
    return tuple(getattr(instance, name) for name in _written(type(instance)))


def _constraint_message(model: type[Model], name: str) -> str:
    return str(next(c for c in model._meta.constraints if c.name == name).violation_error_message)


@dataclass
class _Part:
    """A goal, target or initiative to write: where it is in the request and how it was stored."""

    row: Model
    index: int  # the plan's position
    path: str  # "goals[1].targets[0]"
    stored: tuple | None  # _values() as stored; None for a new row
    cleaned: set[str] = field(default_factory=set)  # fields already refused by cleaning


@dataclass
class _Batch:
    """What a call to `plans_save` writes, once everything is valid."""

    plans: list[SuccessPlan]
    errors: FieldErrors = field(default_factory=dict)
    stored: dict[int, SuccessPlan] = field(default_factory=dict)  # existing plans as stored, by id
    status: dict[int, str] = field(default_factory=dict)  # plan position -> its status reason
    parts: dict[type[Model], list[_Part]] = field(default_factory=lambda: {Goal: [], Target: [], Initiative: []})
    removed: dict[type[Model], list[int]] = field(default_factory=lambda: {Goal: [], Target: [], Initiative: []})
    readings: list[tuple[Target, Decimal, datetime.datetime | None]] = field(default_factory=list)


def _match(
    specs: Sequence[Any], rows: Sequence[M], key: str, add: Callable[[str, str], None], path: str, what: str
) -> tuple[list, list[M]]:
    """Pair each spec with a stored row: by `id`, else the first unmatched row with the same `key`, else
    None (a new row). Returns the pairs and the rows nothing matched."""
    by_id = {row.pk: row for row in rows}
    taken: set[int] = set()
    matched: list[M | None] = [None] * len(specs)
    for position, spec in enumerate(specs):
        if spec.id is None:
            continue
        row = by_id.get(spec.id)
        if row is None:
            add(f"{path}[{position}].id", _("there is no %(what)s %(id)s here.") % {"what": what, "id": spec.id})
        elif row.pk in taken:
            add(f"{path}[{position}].id", _("%(what)s %(id)s is given twice.") % {"what": what, "id": spec.id})
        else:
            taken.add(row.pk)
            matched[position] = row
    for position, spec in enumerate(specs):
        if spec.id is None:
            value = getattr(spec, key)
            row = next((r for r in rows if r.pk not in taken and getattr(r, key) == value), None)
            if row is not None:
                taken.add(row.pk)
                matched[position] = row
    return list(zip(specs, matched, strict=True)), [row for row in rows if row.pk not in taken]


def _prepare(plans: Sequence[SuccessPlan], goals: Sequence[list[GoalSpec] | None] | None) -> _Batch:
    """Validate a write of plans with their nested parts, in a fixed number of queries, and work out the
    rows to write, remove and measure. The caller's plans are only validated (and their fields cleaned)."""
    batch = _Batch(plans=list(plans))
    plans = batch.plans
    specs = list(goals) if goals is not None else [None] * len(plans)
    if len(specs) != len(plans):
        raise DomainError(_("Give one list of goals (or None) per plan."))
    errors = batch.errors
    for index, fields_ in _check_many(plans).items():
        errors[index] = fields_
    ids = [plan.pk for plan in plans if plan.pk is not None]
    batch.stored = {plan.pk: plan for chunk in _chunks(ids) for plan in SuccessPlan._base_manager.filter(pk__in=chunk)}
    account_ids = sorted({plan.account_id for plan in plans} - {None})
    deleted_accounts = {
        account.pk: account
        for chunk in _chunks(account_ids)
        for account in Account._base_manager.filter(pk__in=chunk, deleted_at__isnull=False)
    }
    order_message = _constraint_message(SuccessPlan, "plan_target_after_start")
    first_at: dict[int, int] = {}
    for index, plan in enumerate(plans):
        stored = batch.stored.get(plan.pk)
        if plan.pk is not None and first_at.setdefault(plan.pk, index) != index:
            _add_error(errors, index, NON_FIELD_ERRORS, _("This plan is given more than once."))
        if plan.pk is not None and stored is None:
            _add_error(errors, index, NON_FIELD_ERRORS, _("There is no success plan with id %(id)s.") % {"id": plan.pk})
        if plan.deleted_at is not None or (stored is not None and stored.deleted_at is not None):
            _add_error(errors, index, NON_FIELD_ERRORS, _("This success plan was deleted."))
        if plan.account_id in deleted_accounts:
            message = _("The account %(account)s was deleted.") % {"account": deleted_accounts[plan.account_id]}
            _add_error(errors, index, "account", message)
        start, end = plan.start_date, plan.target_date
        if isinstance(start, datetime.date) and isinstance(end, datetime.date) and end < start:
            _add_error(errors, index, NON_FIELD_ERRORS, order_message)
        if plan.status in PlanStatus.values:
            try:
                batch.status[index] = _plan_status_reason(
                    old=stored.status if stored is not None else None, status=plan.status, reason=plan.status_reason
                )
            except DomainError as error:
                for name, messages in error.message_dict.items():
                    for message in messages:
                        _add_error(errors, index, name, message)
    _prepare_goals(batch, specs)
    for model, relation in ((Goal, "plan"), (Target, "goal"), (Initiative, "goal")):
        parts = batch.parts[model]
        for position, fields_ in _check_many([part.row for part in parts]).items():
            part = parts[position]
            for name, messages in fields_.items():
                if name == relation or name in part.cleaned:
                    continue  # the parent is set here; a refused number was reported by cleaning
                name = "owner_id" if name == "owner" else name
                for message in messages:
                    _add_error(
                        errors, part.index, f"{part.path}.{name}" if name != NON_FIELD_ERRORS else part.path, message
                    )
    return batch


def _prepare_goals(batch: _Batch, specs: list[list[GoalSpec] | None]) -> None:
    plans, errors = batch.plans, batch.errors
    given = [
        (index, plan, goal_specs)
        for index, (plan, goal_specs) in enumerate(zip(plans, specs, strict=True))
        if goal_specs is not None
    ]
    if not given:
        return
    plan_ids = [plan.pk for _index, plan, _specs in given if plan.pk is not None]
    goals_of: dict[int, list[Goal]] = {}
    for chunk in _chunks(plan_ids):
        for goal in Goal.objects.filter(plan_id__in=chunk):
            goals_of.setdefault(goal.plan_id, []).append(goal)
    children: dict[type[Model], dict[int, list[Model]]] = {Target: {}, Initiative: {}}
    for model, attribute in ((Target, "targets"), (Initiative, "initiatives")):
        if any(getattr(spec, attribute) is not None for _i, _p, goal_specs in given for spec in goal_specs):
            for chunk in _chunks(plan_ids):
                for row in model.objects.filter(goal__plan_id__in=chunk):
                    children[model].setdefault(row.goal_id, []).append(row)
    now = timezone.now()
    for index, plan, goal_specs in given:

        def add(path: str, message: str, index: int = index) -> None:
            _add_error(errors, index, path, message)

        pairs, unmatched = _match(goal_specs, goals_of.get(plan.pk, []), "title", add, "goals", _("goal"))
        batch.removed[Goal] += [goal.pk for goal in unmatched]
        for position, (spec, goal) in enumerate(pairs):
            path = f"goals[{position}]"
            stored = None if goal is None else _values(goal)
            old_status = None if goal is None else goal.status
            goal = goal or Goal(plan=plan)
            goal.title, goal.description, goal.priority = spec.title, spec.description, spec.priority
            goal.due_date, goal.status, goal.order = spec.due_date, spec.status, position
            _apply_status(goal, spec, old_status, GoalStatus.values, "achieved_at", _goal_status_fields, path, add)
            batch.parts[Goal].append(_Part(goal, index, path, stored))
            if spec.targets is not None:
                _prepare_targets(batch, index, path, goal, spec.targets, children[Target].get(goal.pk, []), add, now)
            if spec.initiatives is not None:
                stored_rows = children[Initiative].get(goal.pk, [])
                _prepare_initiatives(batch, index, path, goal, spec.initiatives, stored_rows, add, now)


def _prepare_targets(
    batch: _Batch,
    index: int,
    goal_path: str,
    goal: Goal,
    specs: Sequence[TargetSpec],
    rows: Sequence[Target],
    add: Callable[[str, str], None],
    now: datetime.datetime,
) -> None:
    pairs, unmatched = _match(specs, rows if goal.pk else [], "name", add, f"{goal_path}.targets", _("target"))
    batch.removed[Target] += [target.pk for target in unmatched]
    differ = _constraint_message(Target, "target_target_differs_from_baseline")
    for position, (spec, target) in enumerate(pairs):
        path = f"{goal_path}.targets[{position}]"
        part = _Part(target or Target(goal=goal), index, path, None if target is None else _values(target))
        target = part.row
        target.name, target.unit, target.due_date = spec.name, spec.unit, spec.due_date
        target.usage_metric, target.order = spec.usage_metric, position
        for name in ("target_value", "baseline"):
            try:
                setattr(target, name, _clean_value(getattr(spec, name)))
            except DomainError as error:
                part.cleaned.add(name)
                setattr(target, name, None)
                for message in error.messages:
                    add(f"{path}.{name}", message)
        if not part.cleaned and target.target_value == target.baseline:
            add(f"{path}.target_value", differ)
        batch.parts[Target].append(part)
        if spec.current_value is UNSET or spec.current_value is None:
            continue
        try:
            value = _clean_value(spec.current_value)
        except DomainError as error:
            for message in error.messages:
                add(f"{path}.current_value", message)
            continue
        if spec.measured_at is not None and spec.measured_at > now + FUTURE_SLACK:
            add(f"{path}.measured_at", _("a reading cannot be in the future."))
            continue
        if value != target.current_value or (spec.measured_at is not None and spec.measured_at != target.measured_at):
            batch.readings.append((target, value, spec.measured_at))


def _prepare_initiatives(
    batch: _Batch,
    index: int,
    goal_path: str,
    goal: Goal,
    specs: Sequence[InitiativeSpec],
    rows: Sequence[Initiative],
    add: Callable[[str, str], None],
    now: datetime.datetime,
) -> None:
    pairs, unmatched = _match(specs, rows if goal.pk else [], "title", add, f"{goal_path}.initiatives", _("initiative"))
    batch.removed[Initiative] += [initiative.pk for initiative in unmatched]
    for position, (spec, initiative) in enumerate(pairs):
        path = f"{goal_path}.initiatives[{position}]"
        stored = None if initiative is None else _values(initiative)
        old_status = None if initiative is None else initiative.status
        initiative = initiative or Initiative(goal=goal)
        initiative.title, initiative.owner_id, initiative.due_date = spec.title, spec.owner_id, spec.due_date
        initiative.status, initiative.order = spec.status, position
        rule = functools.partial(_initiative_status_fields, now=now)
        _apply_status(initiative, spec, old_status, InitiativeStatus.values, "completed_at", rule, path, add)
        batch.parts[Initiative].append(_Part(initiative, index, path, stored))


def _apply_status(part, spec, old_status: str | None, statuses, stamp: str, rule, path: str, add) -> None:
    """Give a goal or initiative the status its spec asks for, by the status rule of its kind (`rule`
    returns the `stamp` field's value and the reason); the rule's errors are reported under `path`."""
    if spec.status not in statuses or (spec.status == old_status and spec.status_reason is UNSET):
        return
    try:
        stamped, part.status_reason = rule(status=spec.status, reason=spec.status_reason or "")
    except DomainError as error:
        for name, messages in error.message_dict.items():
            for message in messages:
                add(f"{path}.{name}", message)
    else:
        if spec.status != old_status:
            setattr(part, stamp, stamped)


def plans_check(
    *, plans: Sequence[SuccessPlan], goals: Sequence[list[GoalSpec] | None] | None = None
) -> dict[int, DomainError]:
    """What is wrong with each plan and its nested parts, by position (empty when all are valid).

    Nested errors name their path ("goals[1].targets[0].target_value"). A fixed number of queries.
    """
    return _domain_errors(_prepare(plans, goals).errors)


@transaction.atomic
def plans_save(
    *,
    plans: Sequence[SuccessPlan],
    goals: Sequence[list[GoalSpec] | None] | None = None,
    recorded_by=None,
    source: str = Source.API,
) -> list[SuccessPlan]:
    """Validate and save plans built or changed by a caller, with their goals, targets and initiatives;
    all or none, in a fixed number of queries whatever the number of plans and rows.

    A plan's status follows `plan_set_status`'s rule (its `status_reason` is the reason). `goals[i]`
    given makes plan i's goals exactly those specs: matched by id, else by title, else created; the
    goals left out are removed; `order` is the list position. Targets (by id, else name) and initiatives
    (by id, else title) likewise when a goal spec gives them. A target's `current_value` is recorded as a
    reading (`source`, `recorded_by`) when it differs from the stored one, or its `measured_at` does.
    Rows that did not change are not written, so the same call twice changes nothing the second time.
    Errors are keyed by position ("0", "1", ...), or by field for a single plan.
    """
    if source not in Source.values:
        raise DomainError({"source": _("Unknown reading source “%(source)s”.") % {"source": source}})
    batch = _prepare(plans, goals)
    plans = batch.plans
    _refuse(_domain_errors(batch.errors), len(plans))
    now = timezone.now()
    with recompute_batch():
        reopened_or_closed = []
        for index, plan in enumerate(plans):
            stored = batch.stored.get(plan.pk)
            plan.status_reason = batch.status[index]
            if stored is None or plan.status != stored.status:
                plan.closed_at = now if plan.status in PLAN_CLOSED else None
                if stored is not None:
                    reopened_or_closed.append(plan)
            else:
                plan.closed_at = stored.closed_at
        _write_many(SuccessPlan, [p for p in plans if p.pk is None or _values(p) != _values(batch.stored[p.pk])], now)
        SuccessPlan._base_manager.bulk_update(reopened_or_closed, ["closed_at"], batch_size=BATCH_SIZE)
        for model in (Initiative, Target, Goal):  # one delete per kind; a removed goal takes its parts along
            if batch.removed[model]:
                parts_remove(queryset=model.objects.filter(pk__in=batch.removed[model]))
        for model in (Goal, Target, Initiative):
            changed = [part.row for part in batch.parts[model] if part.stored != _values(part.row)]
            _write_many(model, changed, now)
        targets_measure_bulk(
            measurements=[
                Measurement(target.pk, value, source, measured_at, recorded_by.pk if recorded_by else None)
                for target, value, measured_at in batch.readings
            ]
        )
        queue_recompute(plan.account_id for plan in plans)
    return plans
