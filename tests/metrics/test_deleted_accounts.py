"""Deleting an account takes it out of health, alerts and the revenue bridge; restoring brings it back."""

import datetime
from decimal import Decimal

import pytest
from django.db.models import F

from accounts.services import account_delete, account_restore, subscription_add
from metrics.models import Alert, HealthSnapshot, RevenueMonth
from metrics.services.revenue import revenue_recompute
from tests import factories

pytestmark = pytest.mark.django_db
FEBRUARY = datetime.date(2026, 2, 1)


def february() -> tuple[Decimal, Decimal, Decimal]:
    row = RevenueMonth.objects.get(month=FEBRUARY, segment_kind="all")
    return row.start_mrr, row.new_mrr, row.end_mrr


def unbalanced_months() -> int:
    return (
        RevenueMonth.objects.exclude(
            end_mrr=F("start_mrr")
            + F("new_mrr")
            + F("reactivation_mrr")
            + F("expansion_mrr")
            - F("contraction_mrr")
            - F("churned_mrr")
        )
    ).count()


def test_an_account_leaves_the_metrics_when_deleted_and_comes_back_when_restored(django_capture_on_commit_callbacks):
    tier = factories.default_tier("low-touch")  # touches due every 45 days
    kept = factories.AccountFactory(tier=tier, customer_since=datetime.date(2025, 12, 1))
    gone = factories.AccountFactory(tier=tier, customer_since=datetime.date(2025, 12, 1))
    with django_capture_on_commit_callbacks(execute=True):
        subscription_add(account=kept, product="Core", mrr=Decimal(100), start_date=datetime.date(2026, 1, 1))
        subscription_add(account=gone, product="Core", mrr=Decimal(50), start_date=datetime.date(2026, 2, 1))
    revenue_recompute()
    assert february() == (Decimal(100), Decimal(50), Decimal(150))
    alert = Alert.objects.get(account=gone, rule__kind="touch_overdue")  # never touched since December
    assert alert.status == Alert.Status.OPEN
    assert HealthSnapshot.objects.filter(account=gone).exists()

    with django_capture_on_commit_callbacks(execute=True):
        account_delete(account=gone)

    assert february() == (Decimal(100), Decimal(0), Decimal(100))
    assert unbalanced_months() == 0
    alert.refresh_from_db()
    assert (alert.status, alert.closed_reason) == (Alert.Status.DONE, "The account was deleted")
    assert not HealthSnapshot.objects.filter(account=gone).exists()  # today's is dropped, none made

    with django_capture_on_commit_callbacks(execute=True):
        account_restore(account=gone)

    assert february() == (Decimal(100), Decimal(50), Decimal(150))
    assert unbalanced_months() == 0
    assert Alert.objects.filter(account=gone, rule__kind="touch_overdue", status=Alert.Status.OPEN).count() == 1
    assert HealthSnapshot.objects.filter(account=gone).exists()
