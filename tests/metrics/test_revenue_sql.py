"""The revenue bridge costs the same queries whatever the number of accounts (SPEC 5: set-based)."""

import datetime
from decimal import Decimal

import pytest

from accounts.models import Account
from metrics.models import RevenueMonth
from metrics.services.revenue import revenue_recompute
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
    # the new rows, the release.
    with django_assert_num_queries(4):
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
