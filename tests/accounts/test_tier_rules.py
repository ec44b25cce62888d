"""Tier rules: the most-attention tier whose minimum ARR is met; locked and churned accounts stay.

Locking a tier (rules leave the account alone) is recorded in the tier history."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, TierAssignment
from accounts.services import account_create, account_save, account_tier_lock, tier_rules_apply
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


# --- locking a tier -----------------------------------------------------------------------------


def history(account: Account) -> list[tuple]:
    return list(
        TierAssignment.objects.filter(account=account)
        .order_by("started_at", "pk")
        .values_list("tier__slug", "ended_at", "source", "reason", "assigned_by")
    )


def test_locking_records_who_holds_the_tier_by_hand(admin_user):
    account = paying("9000", tier_slug="low-touch")
    (before,) = history(account)

    assert account_tier_lock(account_ids=[account.pk], locked=True, changed_by=admin_user) == 1

    account.refresh_from_db()
    assert account.tier_locked and account.tier.slug == "low-touch"
    closed, current_row = history(account)
    assert closed[0] == "low-touch" and closed[1] is not None
    assert current_row == ("low-touch", None, "manual", "Tier locked by admin", admin_user.pk)
    # The rules now leave it in a tier its ARR does not qualify for.
    assert tier_rules_apply() == 0
    assert current(account).tier.slug == "low-touch"


def test_unlocking_records_it_and_lets_the_rules_move_the_account(admin_user, django_capture_on_commit_callbacks):
    account = paying("9000", tier_slug="low-touch", tier_locked=True)

    with django_capture_on_commit_callbacks(execute=True):
        assert account_tier_lock(accounts=Account.objects.all(), locked=False, changed_by=admin_user) == 1

    rows = history(account)
    assert [row[3] for row in rows] == ["Set by hand", "Tier unlocked by admin", rows[2][3]]
    assert rows[1][:3] == ("low-touch", rows[1][1], "manual") and rows[1][1] is not None
    # The queued recompute ran the rules at once: the account is in the tier its ARR qualifies for.
    assert rows[2][:3] == ("high-touch", None, "rule")
    account.refresh_from_db()
    assert not account.tier_locked and account.tier.slug == "high-touch"


def test_accounts_already_in_that_state_and_accounts_without_tier_get_no_history():
    locked = paying("100", tier_locked=True)
    tierless = factories.AccountFactory(tier=None)

    assert account_tier_lock(account_ids=[locked.pk, tierless.pk], locked=True) == 1

    assert len(history(locked)) == 1
    assert not TierAssignment.objects.filter(account=tierless).exists()
    tierless.refresh_from_db()
    assert tierless.tier_locked


def test_locking_by_saving_the_account_records_it_too(admin_user):
    account = paying("100")
    account.tier_locked = True
    account_save(account=account, changed_by=admin_user)
    assert history(account)[-1] == ("tech-touch", None, "manual", "Tier locked by admin", admin_user.pk)


def test_locking_queries_do_not_grow_with_accounts():
    def run() -> int:
        Account.objects.update(tier_locked=False)
        with CaptureQueriesContext(connection) as queries:
            account_tier_lock(accounts=Account.objects.all(), locked=True)
        return len(queries)

    for _ in range(2):
        paying("100")
    small = run()
    for _ in range(10):
        paying("100")
    assert run() == small
