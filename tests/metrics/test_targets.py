"""Usage-linked targets take their value from the metric's latest record, as `usage` readings."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics.services.targets import targets_follow_usage
from success_plans.models import SuccessPlan, Target, TargetMeasurement
from tests import factories

pytestmark = pytest.mark.django_db
ON = datetime.date(2026, 6, 10)
USAGE = TargetMeasurement.Source.USAGE


def linked_target(account=None, status=SuccessPlan.Status.ACTIVE, metric="active_users"):
    plan = factories.SuccessPlanFactory(account=account or factories.AccountFactory(), status=status)
    goal = factories.GoalFactory(plan=plan)
    return factories.TargetFactory(
        goal=goal, baseline=Decimal(0), target_value=Decimal(100), current_value=None, usage_metric=metric
    )


def usage(account, day, value, metric="active_users"):
    return factories.UsageRecordFactory(account=account, metric=metric, date=day, value=Decimal(value))


def start_of(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def test_a_linked_target_reads_the_latest_value_on_or_before_the_day():
    target = linked_target()
    account = target.goal.plan.account
    usage(account, ON - datetime.timedelta(days=2), 30)
    usage(account, ON - datetime.timedelta(days=1), 42)
    usage(account, ON + datetime.timedelta(days=1), 99)  # after the day: not yet
    usage(account, ON, 7, metric="logins")  # another metric

    assert targets_follow_usage(on=ON) == 1

    target.refresh_from_db()
    assert target.current_value == Decimal(42)
    assert target.measured_at == start_of(ON - datetime.timedelta(days=1))
    assert list(target.measurements.values_list("value", "source")) == [(Decimal(42), USAGE)]


def test_following_again_records_nothing_new_and_a_resent_day_is_corrected():
    target = linked_target()
    account = target.goal.plan.account
    record = usage(account, ON, 30)
    assert targets_follow_usage(on=ON) == 1
    assert targets_follow_usage(on=ON) == 0
    assert TargetMeasurement.objects.count() == 1

    record.value = Decimal(35)  # the partner re-sends the day with another value
    record.save()
    assert targets_follow_usage(on=ON) == 1
    assert list(TargetMeasurement.objects.values_list("value", flat=True)) == [Decimal(35)]
    assert Target.objects.get(pk=target.pk).current_value == Decimal(35)

    usage(account, ON + datetime.timedelta(days=1), 38)
    assert targets_follow_usage(on=ON + datetime.timedelta(days=1)) == 1
    assert list(target.measurements.values_list("value", flat=True)) == [Decimal(38), Decimal(35)]


def test_only_open_plans_of_live_accounts_in_scope_follow_usage():
    followed = linked_target()
    closed = linked_target(status=SuccessPlan.Status.ACHIEVED)
    gone = linked_target()
    gone.goal.plan.account.deleted_at = timezone.now()
    gone.goal.plan.account.save()
    elsewhere = linked_target()
    unlinked = linked_target(metric="")
    for t in (followed, closed, gone, elsewhere, unlinked):
        usage(t.goal.plan.account, ON, 10)

    written = targets_follow_usage(
        on=ON, account_ids=[t.goal.plan.account_id for t in (followed, closed, gone, unlinked)]
    )

    assert written == 1
    assert list(TargetMeasurement.objects.values_list("target", flat=True)) == [followed.pk]


def test_a_manual_reading_newer_than_the_usage_day_stays_current():
    target = linked_target()
    usage(target.goal.plan.account, ON - datetime.timedelta(days=3), 20)
    factories.TargetMeasurementFactory(target=target, value=Decimal(25), measured_at=start_of(ON))
    Target.objects.filter(pk=target.pk).update(current_value=Decimal(25), measured_at=start_of(ON))
    targets_follow_usage(on=ON)
    target.refresh_from_db()
    assert target.current_value == Decimal(25)
    assert target.measurements.count() == 2


def test_following_usage_costs_the_same_queries_for_two_and_for_six_targets():
    counts = []
    for size in (2, 6):
        accounts = []
        for _ in range(size):
            t = linked_target()
            usage(t.goal.plan.account, ON, 12)
            accounts.append(t.goal.plan.account_id)
        with CaptureQueriesContext(connection) as queries:
            assert targets_follow_usage(on=ON, account_ids=accounts) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
