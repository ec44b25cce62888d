"""Celery tasks: event-driven recompute after commit, the nightly chain, and a real worker on Redis."""

import datetime
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import Account, Subscription, Touch
from accounts.services import subscription_add, touch_log
from metrics.models import (
    Alert,
    HealthComponent,
    HealthModel,
    HealthSnapshot,
    RecomputeIssue,
    RevenueMonth,
    UsageRecord,
)
from metrics.services.health import id_ranges
from metrics.services.usage import usage_records_upsert
from metrics.tasks import nightly, nightly_workflow, recompute_accounts
from success_plans.models import TargetMeasurement
from tests import factories
from tests.metrics.test_snapshot_compact import explained
from tests.workers import needs_broker, real_worker

ONE_DAY = datetime.timedelta(days=1)


def paying_account(**fields) -> Account:
    account = factories.AccountFactory(customer_since=datetime.date(2025, 1, 1), **fields)
    factories.SubscriptionFactory(account=account, mrr=Decimal(900), start_date=datetime.date(2025, 1, 1))
    Account.objects.filter(pk=account.pk).update(mrr=Decimal(900))
    return account


@pytest.mark.django_db
class TestEventDriven:
    def test_logging_a_touch_recomputes_that_account_after_commit(self, django_capture_on_commit_callbacks):
        account, other = paying_account(), paying_account()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            touch_log(account=account, kind="call", occurred_at=timezone.now(), subject="Call", sentiment=0)
        # Nothing ran inside the transaction; one recompute is queued for commit time.
        assert not HealthSnapshot.objects.exists()
        assert len(callbacks) == 1
        callbacks[0]()
        snapshot = HealthSnapshot.objects.get()
        assert (snapshot.account, snapshot.date) == (account, timezone.localdate())
        # Only two components have data. Engagement: touched today, 0 days / 45 (low touch) -> beyond good (1),
        # 100. Sentiment: mean 0 on -0.5..0.5 -> 50. Weighted 20 and 15: (20 * 100 + 15 * 50) / 35 = 78.57.
        account.refresh_from_db()
        assert (account.health_score, account.health_band) == (Decimal("78.6"), "green")
        assert (snapshot.score, snapshot.band) == (Decimal("78.6"), "green")
        assert not HealthSnapshot.objects.filter(account=other).exists()

    def test_subscription_change_moves_tier_and_recomputes(self, django_capture_on_commit_callbacks):
        account = paying_account(tier=factories.default_tier("tech-touch"))
        with django_capture_on_commit_callbacks(execute=True):
            subscription_add(
                account=account, product="Analytics add-on", mrr=Decimal(9000), start_date=datetime.date(2026, 1, 1)
            )
        account.refresh_from_db()
        assert account.mrr == Decimal(9900)
        assert account.tier.slug == "high-touch"
        assert HealthSnapshot.objects.filter(account=account).exists()

    def test_usage_ingest_upserts_and_recomputes(self, django_capture_on_commit_callbacks):
        account = paying_account()
        today = timezone.localdate()
        rows = [{"account_id": account.pk, "metric": "active_users", "date": today, "value": "12"}]
        with django_capture_on_commit_callbacks(execute=True):
            usage_records_upsert(records=rows)
            usage_records_upsert(records=[{**rows[0], "value": "15"}])
        assert list(UsageRecord.objects.values_list("value", flat=True)) == [Decimal(15)]
        assert HealthSnapshot.objects.filter(account=account, date=today).exists()

    def test_bad_usage_writes_nothing(self):
        account = paying_account()
        good = {"account_id": account.pk, "metric": "logins", "date": datetime.date(2026, 1, 1), "value": 3}
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError) as error:
            usage_records_upsert(records=[good, {**good, "metric": "not a slug", "value": "NaN"}])
        assert set(error.value.message_dict) == {"1"}
        assert len(error.value.message_dict["1"]) == 2
        assert not UsageRecord.objects.exists()


@pytest.mark.django_db
class TestNoActiveHealthModel:
    """Writes still succeed; the queued recompute reports the problem and runs every other step."""

    def test_logging_a_touch_commits_and_the_recompute_records_the_problem(
        self, django_capture_on_commit_callbacks, caplog
    ):
        account = paying_account(
            tier=factories.default_tier("tech-touch"), renewal_date=timezone.localdate() + datetime.timedelta(days=20)
        )
        Subscription.objects.filter(account=account).update(mrr=Decimal(9000))  # MRR and tier are stale
        HealthModel.objects.update(is_active=False)

        with django_capture_on_commit_callbacks(execute=True), caplog.at_level(logging.WARNING):
            touch = touch_log(account=account, kind="call", occurred_at=timezone.now(), subject="Call", sentiment=1)

        assert Touch.objects.filter(pk=touch.pk).exists()
        account.refresh_from_db()
        assert (account.mrr, account.tier.slug) == (Decimal(9000), "high-touch")  # MRR and tier steps ran
        assert Alert.objects.filter(account=account, rule__kind="renewal_risk").exists()  # so did alerts
        assert not HealthSnapshot.objects.exists()
        issue = RecomputeIssue.objects.get()
        assert (issue.code, issue.occurrences, issue.resolved_at) == ("no-active-health-model", 1, None)
        assert issue.message == "No health model is active, so health scores were not recomputed; activate one."
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
            "Health not recomputed: No health model is active, so health scores were not recomputed; activate one."
        ]

        first_seen = issue.first_seen_at
        recompute_accounts.delay([account.pk])
        issue.refresh_from_db()
        assert issue.occurrences == 2 and issue.first_seen_at == first_seen < issue.last_seen_at

        # Once a model is active again, the next recompute scores and marks the problem resolved.
        HealthModel.objects.filter(version=1).update(is_active=True)
        recompute_accounts.delay([account.pk])
        issue.refresh_from_db()
        assert issue.resolved_at is not None and issue.occurrences == 2
        assert HealthSnapshot.objects.filter(account=account).exists()

    def test_a_problem_seen_again_after_it_was_resolved_is_open_again(self):
        account = paying_account()
        HealthComponent.objects.update(weight=0)
        recompute_accounts.delay([account.pk])
        HealthComponent.objects.update(weight=1)
        recompute_accounts.delay([account.pk])
        HealthComponent.objects.update(weight=0)
        recompute_accounts.delay([account.pk])
        issue = RecomputeIssue.objects.get()
        assert (issue.code, issue.occurrences, issue.resolved_at) == ("health-model-without-weight", 2, None)

    def test_the_nightly_chain_runs_every_other_step(self):
        account = paying_account(tier=factories.default_tier("tech-touch"))
        Subscription.objects.filter(account=account).update(mrr=Decimal(9000))
        factories.HealthSnapshotFactory(account=account, date=timezone.localdate())
        HealthModel.objects.update(is_active=False)

        nightly.delay()

        account.refresh_from_db()
        assert (account.mrr, account.tier.slug) == (Decimal(9000), "high-touch")
        assert RevenueMonth.objects.exists()
        assert HealthSnapshot.objects.filter(account=account, date=timezone.localdate()).count() == 1  # kept
        assert RecomputeIssue.objects.get().code == "no-active-health-model"


@pytest.mark.django_db
def test_nightly_runs_the_whole_chain_eagerly():
    red = paying_account(tier=factories.default_tier("high-touch"))
    factories.TouchFactory(account=red, occurred_at=timezone.now() - datetime.timedelta(days=200), sentiment=-1)
    Account.objects.filter(pk=red.pk).update(last_touch_at=timezone.now() - datetime.timedelta(days=200))
    green = paying_account()
    factories.TouchFactory(account=green, occurred_at=timezone.now(), sentiment=1)
    nightly.delay()
    today = timezone.localdate()
    assert HealthSnapshot.objects.filter(date=today).count() == 2
    red.refresh_from_db()
    assert red.tier.slug == "tech-touch"  # 10,800 ARR: the tier rule ran before health
    assert red.health_band == "red"
    kinds = set(Alert.objects.filter(account=red).values_list("rule__kind", flat=True))
    assert {"health_red", "touch_overdue"} <= kinds


@pytest.mark.django_db
def test_id_ranges_cover_every_account_in_chunks():
    accounts = [paying_account() for _ in range(5)]
    ranges = id_ranges(chunk_size=2)
    assert len(ranges) == 3
    covered = {a.pk for a in accounts if any(low <= a.pk < high for low, high in ranges)}
    assert covered == {a.pk for a in accounts}
    health_chord = nightly_workflow(chunk_size=2).tasks[-1]
    assert len(health_chord.tasks) == 3  # one health task per id range, then alerts


@needs_broker
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_the_nightly_task_end_to_end():
    from celery.result import AsyncResult

    accounts = [paying_account() for _ in range(3)]
    for account in accounts:
        factories.TouchFactory(account=account, occurred_at=timezone.now() - datetime.timedelta(days=1))
    with real_worker() as app:
        last_task_id = nightly.delay().get(timeout=60)
        AsyncResult(last_task_id, app=app).get(timeout=120)
    assert HealthSnapshot.objects.filter(date=timezone.localdate()).count() == 3
    assert Account.objects.filter(health_band="").count() == 0


@pytest.mark.django_db
class TestUsageLag:
    """Partners send a day's usage the day after: the nightly run re-scores that day once it has arrived."""

    DAY = datetime.date(2026, 6, 30)

    def seats(self, account, day, active):
        usage_records_upsert(
            records=[
                {"account_id": account.pk, "metric": "seats_licensed", "date": day, "value": "20"},
                {"account_id": account.pk, "metric": "active_users", "date": day, "value": active},
            ]
        )

    def usage_level(self, account, day):
        snapshot = HealthSnapshot.objects.get(account=account, date=day)
        return explained(snapshot)["usage_level"]["raw"]

    def test_the_previous_day_is_scored_again_first(self):
        account = paying_account()
        yesterday = self.DAY - datetime.timedelta(days=1)
        nightly_workflow(yesterday.isoformat()).apply()
        assert self.usage_level(account, yesterday) is None
        self.seats(account, yesterday, "10")  # yesterday's usage arrives during the day

        nightly_workflow(self.DAY.isoformat()).apply()

        assert self.usage_level(account, yesterday) == 0.5  # 10 of 20 seats
        assert self.usage_level(account, self.DAY) == 0.5  # the latest values on or before the day
        rescored, scored = (HealthSnapshot.objects.get(account=account, date=d) for d in (yesterday, self.DAY))
        assert rescored.updated_at < scored.updated_at

    def test_a_lag_of_zero_scores_the_day_alone(self, settings):
        settings.CSM_USAGE_LAG_DAYS = 0
        paying_account()
        nightly_workflow(self.DAY.isoformat()).apply()
        assert list(HealthSnapshot.objects.values_list("date", flat=True)) == [self.DAY]

    def test_a_longer_lag_rescores_that_day(self, settings):
        settings.CSM_USAGE_LAG_DAYS = 3
        paying_account()
        nightly_workflow(self.DAY.isoformat()).apply()
        assert sorted(HealthSnapshot.objects.values_list("date", flat=True)) == [
            self.DAY - datetime.timedelta(days=3),
            self.DAY,
        ]


def load_lag(value: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    code = "import django; from django.conf import settings; django.setup(); print(settings.CSM_USAGE_LAG_DAYS)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={**env, "DJANGO_SETTINGS_MODULE": "csm.settings", "CSM_USAGE_LAG_DAYS": value},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        ("0", "0"),
        ("2", "2"),
        ("-1", "CSM_USAGE_LAG_DAYS='-1' must be a whole number of days, 0 or more."),
        ("1.5", "CSM_USAGE_LAG_DAYS='1.5' must be a whole number of days, 0 or more."),
        ("soon", "CSM_USAGE_LAG_DAYS='soon' must be a whole number of days, 0 or more."),
    ],
)
def test_the_usage_lag_setting_is_validated(value, outcome):
    result = load_lag(value)
    if outcome.isdigit():
        assert (result.returncode, result.stdout.strip()) == (0, outcome), result.stderr
    else:
        assert result.returncode != 0 and outcome in result.stderr


def test_the_usage_lag_defaults_to_one_day():
    assert settings.CSM_USAGE_LAG_DAYS == 1


@pytest.mark.django_db
class TestUsageLinkedTargets:
    """A target linked to a usage metric takes that metric's latest value on ingest and in every recompute."""

    DAY = datetime.date(2026, 6, 30)

    def linked_target(self, account):
        # Active users from 0 to 50: a reading of 25 is halfway.
        goal = factories.GoalFactory(plan=factories.SuccessPlanFactory(account=account))
        return factories.TargetFactory(
            goal=goal, baseline=0, target_value=50, current_value=None, usage_metric="active_users"
        )

    def plan_progress(self, account, day):
        snapshot = HealthSnapshot.objects.get(account=account, date=day)
        return explained(snapshot)["plan_progress"]["raw"]

    def test_ingest_records_a_reading_for_the_accounts_touched_and_queues_one_recompute(
        self, django_capture_on_commit_callbacks
    ):
        account, other = paying_account(), paying_account()
        target, untouched = self.linked_target(account), self.linked_target(other)
        factories.UsageRecordFactory(account=other, metric="active_users", date=timezone.localdate(), value=40)
        today = timezone.localdate()

        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            usage_records_upsert(
                records=[{"account_id": account.pk, "metric": "active_users", "date": today, "value": "25"}]
            )

        target.refresh_from_db()
        assert target.current_value == Decimal(25)
        reading = TargetMeasurement.objects.get(target=target)
        assert (reading.value, reading.source) == (Decimal(25), "usage")
        assert not TargetMeasurement.objects.filter(target=untouched).exists()
        assert len(callbacks) == 1  # one recompute for the usage and the readings together

    def test_the_nightly_run_follows_usage_before_scoring_health(self, django_capture_on_commit_callbacks):
        account = paying_account()
        target = self.linked_target(account)
        factories.UsageRecordFactory(account=account, metric="active_users", date=self.DAY, value=25)
        factories.UsageRecordFactory(account=account, metric="active_users", date=self.DAY + ONE_DAY, value=50)

        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            nightly_workflow(self.DAY.isoformat()).apply()

        target.refresh_from_db()
        assert target.current_value == Decimal(25)  # the latest value on the day, not after it
        assert self.plan_progress(account, self.DAY) == 0.5  # health saw the reading
        assert callbacks == []  # the health step scores those accounts already: nothing more is queued

    def test_the_event_driven_recompute_follows_usage(self, django_capture_on_commit_callbacks):
        account = paying_account()
        target = self.linked_target(account)
        factories.UsageRecordFactory(account=account, metric="active_users", date=timezone.localdate(), value=10)

        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            recompute_accounts.delay([account.pk])

        target.refresh_from_db()
        assert target.current_value == Decimal(10)
        assert self.plan_progress(account, timezone.localdate()) == 0.2
        assert callbacks == []


@pytest.mark.django_db
def test_a_full_health_recompute_scores_chunk_by_chunk_as_one_pass_would(monkeypatch):
    from metrics.services import health

    accounts = [paying_account() for _ in range(5)]
    factories.AccountFactory()  # no revenue: no snapshot
    today = timezone.localdate()
    assert health.health_recompute(on=today) == 5
    one_pass = dict(HealthSnapshot.objects.filter(date=today).values_list("account_id", "score"))

    HealthSnapshot.objects.all().delete()
    monkeypatch.setattr(health, "CHUNK_SIZE", 2)  # three chunks of ids for six accounts
    assert len(health.id_ranges(health.CHUNK_SIZE)) == 3
    assert health.health_recompute(on=today) == 5
    chunked = dict(HealthSnapshot.objects.filter(date=today).values_list("account_id", "score"))
    assert chunked == one_pass and set(chunked) == {a.pk for a in accounts}


@pytest.mark.django_db
def test_a_fresh_database_has_the_marker_beat_compares_schedule_edits_against():
    # A running beat reloads the schedule when this marker's time moves past the one it saw at start;
    # with no row at start, the first edit in the admin would only create it and go unnoticed.
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    before = PeriodicTasks.last_change()
    assert before is not None
    task = PeriodicTask.objects.get(task="metrics.tasks.nightly")
    task.enabled = False
    task.save()
    assert PeriodicTasks.last_change() > before
