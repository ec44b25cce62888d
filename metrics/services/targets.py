"""Usage-linked targets: a target whose `usage_metric` is set reads that metric's latest value.

Runs whenever usage for an account is ingested and in the nightly run. Each new value is recorded as
a measurement with source `usage`, dated at the start of the usage day, through the success-plan
services, so the target's history and current value stay right.
"""

import datetime
from collections.abc import Iterable

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from metrics.models import UsageRecord
from success_plans.models import SuccessPlan, Target, TargetMeasurement
from success_plans.services import VALUE_FIELD, Measurement, targets_measure_bulk

OPEN_PLAN_STATUSES = (SuccessPlan.Status.DRAFT, SuccessPlan.Status.ACTIVE)


def _day_start(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


@transaction.atomic
def targets_follow_usage(*, account_ids: Iterable[int] | None = None, on: datetime.date | None = None) -> int:
    """Record the latest value (on or before `on`, default today) of each usage-linked target's metric.

    Covers targets of open (draft or active) plans of live accounts, all or those in `account_ids`. A
    value already recorded for that usage day is not recorded again (a changed one is corrected), so
    reruns add nothing. Returns the readings written. A fixed number of queries.
    """
    on = on or timezone.localdate()
    targets = Target.objects.filter(
        goal__plan__status__in=OPEN_PLAN_STATUSES,
        goal__plan__deleted_at__isnull=True,
        goal__plan__account__deleted_at__isnull=True,
    ).exclude(usage_metric="")
    if account_ids is not None:
        targets = targets.filter(goal__plan__account_id__in=list(account_ids))
    latest = UsageRecord.objects.filter(
        account_id=OuterRef("goal__plan__account_id"), metric=OuterRef("usage_metric"), date__lte=on
    ).order_by("-date")
    rows = (
        targets.annotate(
            usage_value=Subquery(latest.values("value")[:1], output_field=VALUE_FIELD),
            usage_date=Subquery(latest.values("date")[:1]),
        )
        .filter(usage_date__isnull=False)
        .values_list("pk", "usage_value", "usage_date")
        .order_by()
    )
    wanted = {pk: (value, _day_start(day)) for pk, value, day in rows}
    if not wanted:
        return 0
    recorded = {
        (target_id, when): (pk, value)
        for pk, target_id, when, value in TargetMeasurement.objects.filter(
            target_id__in=list(wanted),
            source=TargetMeasurement.Source.USAGE,
            measured_at__in={when for _value, when in wanted.values()},
        ).values_list("pk", "target_id", "measured_at", "value")
    }
    fresh, corrected = [], []
    for target_id, (value, when) in wanted.items():
        known = recorded.get((target_id, when))
        if known is None:
            fresh.append(Measurement(target_id, value, TargetMeasurement.Source.USAGE, when))
        elif known[1] != value:
            corrected.append(known[0])
    # A re-sent usage day replaces its reading: drop the stale ones and record the day again.
    if corrected:
        stale = TargetMeasurement.objects.filter(pk__in=corrected)
        fresh += [
            Measurement(target_id, wanted[target_id][0], TargetMeasurement.Source.USAGE, when)
            for target_id, when in stale.values_list("target_id", "measured_at")
        ]
        stale.delete()
    return len(targets_measure_bulk(measurements=fresh))
