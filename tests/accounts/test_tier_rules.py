"""Tier rules: the most-attention tier whose minimum ARR is met; locked and churned accounts stay."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, TierAssignment
from accounts.services import account_create, tier_rules_apply
from tests import factories
from tests.factories import default_tier

pytestmark = pytest.mark.django_db


def paying(mrr: str, tier_slug: str = "tech-touch", **fields) -> Account:
    account = account_create(name=f"Pays {mrr}", tier=default_tier(tier_slug), **fields)
    factories.SubscriptionFactory(account=account, mrr=Decimal(mrr), start_date=datetime.date(2025, 1, 1))
    Account.objects.filter(pk=account.pk).update(mrr=Decimal(mrr))
    return account


def current(account: Account) -> TierAssignment:
    return TierAssignment.objects.get(account=account, ended_at__isnull=True)


def test_assigns_by_arr_with_thresholds_inclusive():
    high = paying("8333.34")  # ARR 100,000.08
    edge = paying("1666.67", tier_slug="high-touch")  # ARR 20,000.04 -> low touch
    below = paying("1666.66", tier_slug="low-touch")  # ARR 19,999.92 -> tech touch
    assert tier_rules_apply() == 3
    assert current(high).tier.slug == "high-touch"
    assert current(high).reason == "ARR 100,000.08 meets the High touch minimum of 100,000.00"
    assert current(edge).tier.slug == "low-touch"
    assert current(below).tier.slug == "tech-touch"
    assert current(below).reason == "ARR 19,999.92 is below the Low touch minimum of 20,000.00"
    assert {a.source for a in TierAssignment.objects.filter(ended_at__isnull=True)} == {"rule"}
    for account in (high, edge, below):
        account.refresh_from_db()
        assert account.tier == current(account).tier
        closed = TierAssignment.objects.get(account=account, ended_at__isnull=False)
        assert closed.ended_at == current(account).started_at


def test_leaves_locked_churned_and_well_placed_accounts_alone():
    locked = paying("20000", tier_slug="low-touch", tier_locked=True)
    churned = account_create(name="Gone", tier=default_tier("high-touch"))  # no MRR
    placed = paying("100", tier_slug="tech-touch")
    assert tier_rules_apply() == 0
    for account in (locked, churned, placed):
        assert account.tier_assignments.count() == 1
    # A second run changes nothing either: the rules are idempotent.
    paying("9000")
    assert tier_rules_apply() == 1
    assert tier_rules_apply() == 0


def test_query_count_does_not_grow_with_accounts():
    def run() -> int:
        with CaptureQueriesContext(connection) as queries:
            tier_rules_apply()
        return len(queries)

    for _ in range(2):
        paying("9000")
    small = run()
    for _ in range(20):
        paying("9000")
    assert run() == small
