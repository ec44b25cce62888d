"""Database constraints reject bad rows on SQLite and PostgreSQL alike, and validation explains why."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Account, Subscription, TierAssignment, Touch
from metrics.models import Alert, HealthComponent, HealthModel, HealthSnapshot, UsageRecord
from tests import factories

pytestmark = pytest.mark.django_db


def assert_rejected(make) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


def test_external_ids_are_unique():
    factories.AccountFactory(external_id="acme-001")
    assert_rejected(lambda: factories.AccountFactory(external_id="acme-001"))
    with pytest.raises(ValidationError) as error:
        Account(name="Acme again", external_id="acme-001").full_clean()
    assert "external_id" in error.value.message_dict


def test_external_id_may_be_empty_on_many_rows():
    factories.AccountFactory(external_id=None)
    factories.AccountFactory(external_id=None)
    assert Account.objects.filter(external_id__isnull=True).count() == 2


def test_subscription_must_end_after_it_starts():
    account = factories.AccountFactory()
    day = datetime.date(2026, 3, 1)
    assert_rejected(lambda: factories.SubscriptionFactory(account=account, start_date=day, end_date=day))
    line = Subscription(account=account, product="Platform", mrr=Decimal(10), start_date=day, end_date=day)
    with pytest.raises(ValidationError, match="The end date must be after the start date"):
        line.full_clean()


def test_mrr_cannot_be_negative():
    assert_rejected(lambda: factories.SubscriptionFactory(mrr=Decimal("-1.00")))
    account = factories.AccountFactory()
    assert_rejected(lambda: Account.objects.filter(pk=account.pk).update(mrr=Decimal("-5")))


def test_touch_sentiment_is_between_minus_one_and_one():
    account = factories.AccountFactory()
    assert_rejected(lambda: factories.TouchFactory(account=account, sentiment=2))
    assert_rejected(lambda: factories.TouchFactory(account=account, sentiment=-2))
    touch = factories.TouchFactory.build(account=account, csm=account.owner, sentiment=5)
    with pytest.raises(ValidationError) as error:
        touch.full_clean()
    assert "sentiment" in error.value.message_dict


def test_health_component_weight_is_not_negative_and_thresholds_differ():
    model = factories.HealthModelFactory()
    assert_rejected(lambda: factories.HealthComponentFactory(model=model, weight=Decimal(-1)))
    assert_rejected(lambda: factories.HealthComponentFactory(model=model, bad=Decimal(1), good=Decimal(1)))
    component = HealthComponent(model=model, kind="engagement", weight=Decimal(-1), bad=Decimal(2), good=Decimal(1))
    with pytest.raises(ValidationError, match="Weights cannot be negative"):
        component.full_clean()


def test_one_usage_value_per_account_metric_and_day():
    record = factories.UsageRecordFactory()
    assert_rejected(
        lambda: UsageRecord.objects.create(
            account=record.account, metric=record.metric, date=record.date, value=Decimal(1)
        )
    )
    # Another metric or another day is fine.
    UsageRecord.objects.create(account=record.account, metric="logins", date=record.date, value=Decimal(1))


def test_one_health_snapshot_per_account_and_day():
    snapshot = factories.HealthSnapshotFactory()
    assert_rejected(
        lambda: HealthSnapshot.objects.create(
            account=snapshot.account,
            date=snapshot.date,
            score=Decimal(50),
            band="yellow",
            model_version=snapshot.model_version,
        )
    )
    assert_rejected(lambda: factories.HealthSnapshotFactory(score=Decimal("100.5")))


def test_only_one_active_health_model():
    assert HealthModel.objects.filter(is_active=True).count() == 1
    assert_rejected(lambda: factories.HealthModelFactory(is_active=True))


def test_one_open_tier_assignment_per_account():
    account = factories.AccountFactory()
    factories.TierAssignmentFactory(account=account)
    assert_rejected(lambda: factories.TierAssignmentFactory(account=account))


def test_tier_assignment_cannot_end_before_it_starts():
    start = datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)
    assert_rejected(
        lambda: factories.TierAssignmentFactory(started_at=start, ended_at=start - datetime.timedelta(days=1))
    )
    assert TierAssignment.objects.count() == 0


def test_one_open_alert_per_rule_and_account_but_done_ones_pile_up():
    alert = factories.AlertFactory()
    assert_rejected(lambda: factories.AlertFactory(rule=alert.rule, account=alert.account))
    alert.status = Alert.Status.DONE
    alert.save()
    factories.AlertFactory(rule=alert.rule, account=alert.account)
    factories.AlertFactory(rule=alert.rule, account=alert.account, status=Alert.Status.DONE)
    assert Alert.objects.filter(account=alert.account).count() == 3


def test_snoozed_alert_needs_a_wake_up_date():
    assert_rejected(lambda: factories.AlertFactory(status=Alert.Status.SNOOZED, snoozed_until=None))


def test_one_primary_contact_per_account():
    account = factories.AccountFactory()
    factories.ContactFactory(account=account, is_primary=True)
    assert_rejected(lambda: factories.ContactFactory(account=account, is_primary=True))


def test_target_value_must_differ_from_baseline():
    assert_rejected(lambda: factories.TargetFactory(baseline=Decimal(5), target_value=Decimal(5)))


def test_default_configuration_is_seeded():
    from accounts.models import Tier
    from metrics.models import AlertRule

    tiers = list(Tier.objects.values_list("name", "rank", "touch_cadence_days", "min_arr"))
    assert tiers == [
        ("High touch", 1, 14, Decimal("100000.00")),
        ("Low touch", 2, 45, Decimal("20000.00")),
        ("Tech touch", 3, 90, None),
    ]
    model = HealthModel.objects.get(is_active=True)
    assert sorted(model.components.values_list("kind", flat=True)) == sorted(HealthComponent.Kind.values)
    assert set(AlertRule.objects.values_list("kind", flat=True)) == set(AlertRule.Kind.values)


def test_touch_kinds_and_sources_are_the_spec_vocabulary():
    assert set(Touch.Kind.values) == {"call", "meeting", "email", "qbr", "onboarding", "training", "chat", "campaign"}
