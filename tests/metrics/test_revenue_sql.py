"""The revenue bridge costs the same queries whatever the number of accounts (SPEC 5: set-based)."""

import datetime
from decimal import Decimal

import pytest

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
    # The savepoint, the bridge summed per segment (one statement), one upsert of every row, the delete of
    # segments gone, the release.
    with django_assert_num_queries(5):
        revenue_recompute(first=D(2025, 1, 1), last=D(2026, 6, 1))
    # From the first line on, one more: the month of the first line.
    with django_assert_num_queries(6):
        revenue_recompute(last=D(2026, 6, 1))
    # One row per owner per month: all accounts are counted in the totals.
    row = RevenueMonth.objects.get(month=D(2026, 6, 1), segment_kind="all")
    assert (row.end_accounts, RevenueMonth.objects.filter(month=D(2026, 6, 1), segment_kind="owner").count()) == (
        accounts,
        accounts,
    )
