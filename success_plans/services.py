"""Writes over success plans: plans (blank or from a playbook), goals, targets and their readings, initiatives.

Every service validates with a message a user can act on, runs in one transaction and, because plan
progress and overdue initiatives are health inputs, queues a recompute of the account once it commits.
The workspace, the admin, the API, imports and tasks all call these.

The latest reading of a usage-linked target comes from `metrics.services.targets.targets_follow_usage`:
usage is metrics' data, and metrics builds on this app.
"""

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from django.db import transaction
from django.db.models import DateTimeField, DecimalField, Max, Model, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Account
from accounts.services import queue_recompute, soft_delete
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

PLAN_EDITABLE_FIELDS = ("title", "owner", "success_definition", "start_date", "target_date", "external_id")


@transaction.atomic
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
    """A blank plan: goals, targets and initiatives are added afterwards."""
    if account.deleted_at is not None:
        raise DomainError(_("The account %(account)s was deleted.") % {"account": account})
    if status not in (PlanStatus.DRAFT, PlanStatus.ACTIVE):
        raise DomainError({"status": _("A new plan starts as a draft or active.")})
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
    return _save(plan)


@transaction.atomic
def plan_update(*, plan: SuccessPlan, data: Mapping[str, Any]) -> SuccessPlan:
    """Change a plan's fields; its status changes through `plan_set_status`."""
    _check_open(plan)
    _assign(plan, data, PLAN_EDITABLE_FIELDS)
    return _save(plan)


@transaction.atomic
def plan_set_status(*, plan: SuccessPlan, status: str, reason: str = "") -> SuccessPlan:
    """Activate a draft, achieve or abandon a plan (with a reason), or reopen a closed one."""
    _check_open(plan)
    if status not in PlanStatus.values:
        raise DomainError({"status": _("Unknown plan status “%(status)s”.") % {"status": status}})
    if status == plan.status:
        return plan
    if status == PlanStatus.DRAFT:
        raise DomainError({"status": _("A plan that has started cannot go back to draft.")})
    if status == PlanStatus.ACHIEVED and plan.status != PlanStatus.ACTIVE:
        raise DomainError({"status": _("Only an active plan can be achieved; activate it first.")})
    if status in (PlanStatus.ACHIEVED, PlanStatus.ABANDONED):
        plan.status_reason = _reason(reason, required=status == PlanStatus.ABANDONED, what=_("plan"))
        plan.closed_at = timezone.now()
    else:  # active: a draft starts, or a closed plan is reopened
        plan.status_reason, plan.closed_at = "", None
    plan.status = status
    plan.save(update_fields=["status", "status_reason", "closed_at", "updated_at"])
    queue_recompute([plan.account_id])
    return plan


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
    if status not in GoalStatus.values:
        raise DomainError({"status": _("Unknown goal status “%(status)s”.") % {"status": status}})
    if status == GoalStatus.ACHIEVED:
        on = on or timezone.localdate()
        if on > timezone.localdate():
            raise DomainError({"achieved_at": _("A goal cannot be achieved in the future.")})
        goal.achieved_at = on
        goal.status_reason = _reason(reason, required=False, what=_("goal"))
    elif status == GoalStatus.ABANDONED:
        goal.achieved_at = None
        goal.status_reason = _reason(reason, required=True, what=_("goal"))
    else:
        goal.achieved_at, goal.status_reason = None, ""
    goal.status = status
    goal.save(update_fields=["status", "achieved_at", "status_reason", "updated_at"])
    queue_recompute([goal.plan.account_id])
    return goal


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
    initiative.status_reason = ""
    if status == InitiativeStatus.DONE:
        initiative.completed_at = timezone.now()
    else:
        initiative.completed_at = None
        if status == InitiativeStatus.BLOCKED:
            initiative.status_reason = _reason(reason, required=True, what=_("initiative"))
    initiative.status = status
    initiative.save(update_fields=["status", "status_reason", "completed_at", "updated_at"])
    queue_recompute([initiative.goal.plan.account_id])
    return initiative


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
