"""A real Celery worker on Redis records what its tasks change as made by the task (or the rule it runs)."""

import datetime
import os
from decimal import Decimal

import pytest
from django.conf import settings

from accounts.models import Tier
from metrics.tasks import run_tier_rules
from tests import factories
from tests.audit.conftest import actors, history_of
from tests.audit.test_actors import rename_account

needs_broker = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL and not os.environ.get("CSM_REQUIRE_WORKER"),
    reason="needs CELERY_BROKER_URL (a real Redis); CI's PostgreSQL run sets it and CSM_REQUIRE_WORKER",
)


@needs_broker
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_records_its_task_and_the_tier_rules_as_the_actors():
    from celery.contrib.testing.worker import start_worker

    from csm.celery import app

    assert settings.CELERY_BROKER_URL, "CI runs this test with a real broker: set CELERY_BROKER_URL"
    account = factories.AccountFactory(tier=Tier.objects.get(slug="tech-touch"))
    factories.SubscriptionFactory(account=account, mrr=Decimal(10_000), start_date=datetime.date(2025, 1, 1))
    account.__class__.objects.filter(pk=account.pk).update(mrr=Decimal(10_000))  # ARR 120,000: high touch
    app.conf.task_always_eager = False
    try:
        app.control.purge()
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            rename_account.delay(account.pk, "Renamed by the worker").get(timeout=60)
            # The rename queues the account's recompute, whose tier rules move it; the solo worker runs
            # that first, so the nightly rules find nothing left to move.
            assert run_tier_rules.delay().get(timeout=60) == 0
    finally:
        app.conf.task_always_eager = True

    assert actors(history_of(account)) == [
        ("+", "system", "system"),
        ("~", "task", f"task {rename_account.name}"),
        ("~", "rule", "tier rules"),
    ]
    assert history_of(account)[-1].tier_id == Tier.objects.get(slug="high-touch").pk
