"""The revenue bridge: the same queries whatever the number of accounts (SPEC 5: set-based), and a rerun writes
only what moved yet stores what a recompute from scratch stores."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Account, Subscription
from metrics.models import RevenueMonth
from metrics.services.revenue import ROW_FIGURES, revenue_recompute
from tests import factories

pytestmark = pytest.mark.django_db
D = datetime.date


def portfolio(accounts: int) -> None:
    """`accounts` accounts in three tiers, each owned by its own CSM, with a price change, a churn and a
    cross-sell among them."""
    tiers = [factories.default_tier(slug) for slug in ("high-touch", "low-touch", "tech-touch")]
    for number in range(accounts):
        account = factories.AccountFactory(tier=tiers[number % 3], industry=f"Industry {number % 4}")
        factories.SubscriptionFactory(
            account=account, mrr=Decimal(100 + number), start_date=D(2025, 1, 1), end_date=D(2025, 9, 1)
        )
        factories.SubscriptionFactory(account=account, mrr=Decimal(150 + number), start_date=D(2025, 9, 1))
        if number % 2:
            factories.SubscriptionFactory(account=account, product="API", mrr=Decimal(50), start_date=D(2026, 2, 1))
        if number % 3 == 2:
            factories.SubscriptionFactory(account=account, product="Seats", mrr=Decimal(10), start_date=D(2025, 4, 1))


@pytest.mark.parametrize("accounts", [3, 30])
def test_a_recompute_costs_the_same_queries_for_3_and_30_accounts(accounts, django_assert_num_queries):
    portfolio(accounts)
    # The savepoint, the bridge summed per segment beside the stored rows (one statement), one upsert of
    # the new rows, the release; PostgreSQL copies the new rows in instead (COPY is not counted) inside a
    # savepoint of their own.
    with django_assert_num_queries(5 if connection.vendor == "postgresql" else 4):
        written = revenue_recompute(first=D(2025, 1, 1), last=D(2026, 6, 1))
    assert written == RevenueMonth.objects.count()
    # From the first line on (one more query: its month), nothing changed: nothing is written.
    with django_assert_num_queries(4):
        assert revenue_recompute(last=D(2026, 6, 1)) == 0
    # Every high-touch account goes tech touch: the tier rows change (one upsert) and High touch has
    # nothing left in any month (one delete).
    Account.objects.filter(tier__slug="high-touch").update(tier=factories.default_tier("tech-touch"))
    with django_assert_num_queries(5):
        assert revenue_recompute(first=D(2025, 1, 1), last=D(2026, 6, 1)) == 18  # Tech touch, 18 months
    assert not RevenueMonth.objects.filter(segment="High touch").exists()
    # One row per owner per month: all accounts are counted in the totals.
    row = RevenueMonth.objects.get(month=D(2026, 6, 1), segment_kind="all")
    owners = RevenueMonth.objects.filter(month=D(2026, 6, 1), segment_kind="owner")
    assert (row.end_accounts, owners.count()) == (accounts, accounts)


def figures_by_key() -> dict[tuple, tuple[dict, object]]:
    return {
        (row.month, row.segment_kind, row.segment): ({name: getattr(row, name) for name in ROW_FIGURES}, row.updated_at)
        for row in RevenueMonth.objects.all()
    }


def test_a_rerun_after_edits_of_the_past_equals_a_recompute_from_scratch():
    """The nightly run recomputes every month but writes only the rows that moved: after an old line's price,
    an account's owner and a deleted line change past months, it stores exactly what a recompute into an
    empty table stores, and the untouched rows keep their updated_at."""
    portfolio(6)
    revenue_recompute(last=D(2026, 6, 1))
    before = figures_by_key()
    old_line = Subscription.objects.filter(start_date=D(2025, 1, 1)).order_by("pk").first()
    old_line.mrr = Decimal("99.99")
    old_line.save()
    moved = Account.objects.exclude(pk=old_line.account_id).order_by("pk").first()
    moved.owner = factories.UserFactory(username="new-owner")
    moved.save()
    Subscription.objects.filter(product="Seats").update(deleted_at=timezone.now())
    written = revenue_recompute(last=D(2026, 6, 1))
    after = figures_by_key()

    RevenueMonth.objects.all().delete()
    revenue_recompute(last=D(2026, 6, 1))
    fresh = figures_by_key()
    assert {key: figures for key, (figures, _) in after.items()} == {key: f for key, (f, _) in fresh.items()}
    changed = {key for key, (figures, _) in after.items() if before.get(key, (None,))[0] != figures}
    assert written == len(changed) > 0
    for key, (_, updated_at) in after.items():
        assert (updated_at != before.get(key, (None, None))[1]) == (key in changed), key
    # The moved account's former owner has nothing left: those rows went.
    gone = set(before) - set(after)
    assert gone and {kind for _, kind, _ in gone} == {"owner"}
