"""Reads over success plans: progress (the one definition, SPEC 3), plans with their parts, readings.

Progress of a target = clamp((current - baseline) / (target - baseline), 0, 1), a target not measured
yet counting as 0 (`models.target_progress`). Progress of a plan = the mean over its targets. Every
selector costs a fixed number of queries whatever the number of plans, goals and targets.
"""

import datetime
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Prefetch, QuerySet
from django.utils import timezone

from accounts.models import Account

from .models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement, target_progress

OVERDUE_INITIATIVE_PENALTY = Decimal("0.1")


def _mean(values: list[Decimal]) -> Decimal | None:
    return sum(values, Decimal(0)) / len(values) if values else None


def _target_shares(plans: QuerySet[SuccessPlan], key: str) -> tuple[dict[int, list[Decimal]], dict[int, int]]:
    """Per `key`: the progress of each target of `plans` and how many of them are measured. One query."""
    shares: dict[int, list[Decimal]] = defaultdict(list)
    measured: dict[int, int] = defaultdict(int)
    targets = Target.objects.filter(goal__plan__in=plans).values_list(
        f"goal__plan__{key}", "baseline", "target_value", "current_value"
    )
    for group, baseline, target_value, current in targets.order_by():
        shares[group].append(target_progress(baseline=baseline, target_value=target_value, current_value=current))
        measured[group] += current is not None
    return shares, measured


def _progress_inputs(
    plans: QuerySet[SuccessPlan], key: str, on: datetime.date
) -> tuple[dict[int, list[Decimal]], dict[int, int], dict[int, int]]:
    """Per `key` ("account_id" or "id" of the plan): the progress of each target of `plans`, how many
    of those targets are measured, and how many initiatives are past due on `on` and not done. Two queries.
    """
    shares, measured = _target_shares(plans, key)
    overdue = dict(
        Initiative.objects.filter(goal__plan__in=plans, due_date__lt=on)
        .exclude(status=Initiative.Status.DONE)
        .values_list(f"goal__plan__{key}")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return shares, measured, overdue


def plan_progress_by_account(*, accounts: QuerySet[Account], on: datetime.date) -> dict[int, Decimal]:
    """The health input `plan_progress`: per account, the mean progress of the targets on its active
    plans, less 0.1 per initiative of those plans past due on `on` and not done, not below 0.

    Accounts with no target on an active plan have no entry (no data). Plans keep no history, so a
    past date reads their current state. Two queries.
    """
    inputs = plan_progress_inputs_by_account(accounts=accounts)
    return {account_id: plan_progress_on(mean, due_dates, on) for account_id, (mean, due_dates) in inputs.items()}


def plan_progress_inputs_by_account(*, accounts: QuerySet[Account]) -> dict[int, tuple[Decimal, list[datetime.date]]]:
    """What `plan_progress_by_account` needs for any day: per account with a target on an active plan, the
    mean target progress and the sorted due dates of those plans' initiatives not done. Two queries."""
    active_plans = SuccessPlan.objects.alive().filter(
        status=SuccessPlan.Status.ACTIVE, account__in=accounts.values("pk")
    )
    shares, _measured = _target_shares(active_plans, "account_id")
    due_dates: dict[int, list[datetime.date]] = defaultdict(list)
    initiatives = (
        Initiative.objects.filter(goal__plan__in=active_plans, due_date__isnull=False)
        .exclude(status=Initiative.Status.DONE)
        .values_list("goal__plan__account_id", "due_date")
        .order_by("due_date")
    )
    for account_id, due in initiatives:
        due_dates[account_id].append(due)
    return {account_id: (_mean(values), due_dates.get(account_id, [])) for account_id, values in shares.items()}


def plan_progress_on(mean: Decimal, due_dates: list[datetime.date], on: datetime.date) -> Decimal:
    """An account's plan progress on `on` from `plan_progress_inputs_by_account`: overdue initiatives are
    those due before `on`."""
    return max(mean - OVERDUE_INITIATIVE_PENALTY * bisect_left(due_dates, on), Decimal(0))


@dataclass(frozen=True)
class PlanProgress:
    """A plan's progress (None without targets), its targets, how many are measured, overdue initiatives."""

    progress: Decimal | None
    targets: int
    measured: int
    overdue_initiatives: int


def plans_progress(*, plan_ids: list[int], on: datetime.date | None = None) -> dict[int, PlanProgress]:
    """Progress of each plan in `plan_ids` (see PlanProgress); overdue means past due on `on` (today)."""
    shares, measured, overdue = _progress_inputs(
        SuccessPlan.objects.filter(pk__in=plan_ids), "id", on or timezone.localdate()
    )
    return {
        plan_id: PlanProgress(
            progress=_mean(shares[plan_id]),
            targets=len(shares[plan_id]),
            measured=measured[plan_id],
            overdue_initiatives=overdue.get(plan_id, 0),
        )
        for plan_id in plan_ids
    }


def plan_list(*, account: Account | None = None, include_closed: bool = True) -> QuerySet[SuccessPlan]:
    """Live plans, newest start first, with their account, owner and template joined."""
    plans = SuccessPlan.objects.alive().select_related("account", "owner", "template")
    if account is not None:
        plans = plans.filter(account=account)
    if not include_closed:
        plans = plans.filter(status__in=[SuccessPlan.Status.DRAFT, SuccessPlan.Status.ACTIVE])
    return plans


def plan_get(*, pk: int) -> SuccessPlan:
    """A live plan with its goals, their targets and initiatives (with owners) loaded: four queries."""
    goals = Goal.objects.prefetch_related(
        Prefetch("targets", Target.objects.all()),
        Prefetch("initiatives", Initiative.objects.select_related("owner")),
    )
    return (
        SuccessPlan.objects.alive()
        .select_related("account", "owner", "template")
        .prefetch_related(Prefetch("goals", goals))
        .get(pk=pk)
    )


def target_readings(*, target: Target, limit: int = 50) -> list[TargetMeasurement]:
    """A target's latest readings, newest first, with who recorded them."""
    return list(target.measurements.select_related("recorded_by")[:limit])
