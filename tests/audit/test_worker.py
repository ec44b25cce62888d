"""A real Celery worker on Redis records what its tasks change as made by the task (or the rule it runs)."""

import datetime
from decimal import Decimal

import pytest

from accounts.models import Tier
from metrics.tasks import run_tier_rules
from tests import factories
from tests.audit.conftest import actors, history_of
from tests.audit.test_actors import rename_account
from tests.workers import needs_broker, real_worker


@needs_broker
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_records_its_task_and_the_tier_rules_as_the_actors():
    account = factories.AccountFactory(tier=Tier.objects.get(slug="tech-touch"))
    factories.SubscriptionFactory(account=account, mrr=Decimal(10_000), start_date=datetime.date(2025, 1, 1))
    account.__class__.objects.filter(pk=account.pk).update(mrr=Decimal(10_000))  # ARR 120,000: high touch
    with real_worker():
        rename_account.delay(account.pk, "Renamed by the worker").get(timeout=60)
        # The rename queues the account's recompute, whose tier rules move it; the solo worker runs
        # that first, so the nightly rules find nothing left to move.
        assert run_tier_rules.delay().get(timeout=60) == 0

    assert actors(history_of(account)) == [
        ("+", "system", "system"),
        ("~", "task", f"task {rename_account.name}"),
        ("~", "rule", "tier rules"),
    ]
    assert history_of(account)[-1].tier_id == Tier.objects.get(slug="high-touch").pk
