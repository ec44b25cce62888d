"""MRR on a date: start_date <= d < end_date, summed over live lines."""

import datetime
from decimal import Decimal

import pytest

from accounts.selectors import account_mrr_on, account_mrr_on_map, account_paid_month_counts
from accounts.services import soft_delete
from tests import factories

pytestmark = pytest.mark.django_db

D = datetime.date


@pytest.fixture
def account():
    return factories.AccountFactory()


def line(account, mrr, start, end=None, product="Platform"):
    return factories.SubscriptionFactory(
        account=account, mrr=Decimal(mrr), start_date=start, end_date=end, product=product
    )


def test_line_inside_one_month(account):
    # Counts on its start day and the day before its end, not on the end day itself.
    line(account, "300.00", D(2026, 3, 5), D(2026, 3, 20))
    assert account_mrr_on(account_id=account.pk, on=D(2026, 3, 4)) == Decimal("0.00")
    assert account_mrr_on(account_id=account.pk, on=D(2026, 3, 5)) == Decimal("300.00")
    assert account_mrr_on(account_id=account.pk, on=D(2026, 3, 19)) == Decimal("300.00")
    assert account_mrr_on(account_id=account.pk, on=D(2026, 3, 20)) == Decimal("0.00")
    # The month end misses it: a line that starts and ends inside a month never reaches a month end.
    assert account_mrr_on(account_id=account.pk, on=D(2026, 3, 31)) == Decimal("0.00")


def test_back_to_back_price_changes(account):
    line(account, "100.00", D(2026, 1, 1), D(2026, 2, 15))
    line(account, "150.00", D(2026, 2, 15), D(2026, 4, 1))
    line(account, "120.00", D(2026, 4, 1))
    expected = {
        D(2026, 2, 14): "100.00",
        D(2026, 2, 15): "150.00",
        D(2026, 3, 31): "150.00",
        D(2026, 4, 1): "120.00",
        D(2030, 1, 1): "120.00",
    }
    for day, mrr in expected.items():
        assert account_mrr_on(account_id=account.pk, on=day) == Decimal(mrr), day


def test_open_ended_and_overlapping_lines_add_up(account):
    line(account, "500.00", D(2025, 6, 1))
    line(account, "250.50", D(2026, 1, 10), D(2026, 7, 1), product="Analytics add-on")
    assert account_mrr_on(account_id=account.pk, on=D(2025, 5, 31)) == Decimal("0.00")
    assert account_mrr_on(account_id=account.pk, on=D(2026, 1, 9)) == Decimal("500.00")
    assert account_mrr_on(account_id=account.pk, on=D(2026, 6, 30)) == Decimal("750.50")
    assert account_mrr_on(account_id=account.pk, on=D(2026, 7, 1)) == Decimal("500.00")


def test_deleted_lines_do_not_count(account):
    kept = line(account, "100.00", D(2026, 1, 1))
    dropped = line(account, "40.00", D(2026, 1, 1), product="API access")
    soft_delete(instance=dropped)
    assert account_mrr_on(account_id=account.pk, on=D(2026, 2, 1)) == kept.mrr


def test_many_accounts_in_one_query(django_assert_num_queries):
    a, b, c = factories.AccountFactory.create_batch(3)
    line(a, "100.00", D(2026, 1, 1), D(2026, 3, 1))
    line(a, "20.00", D(2026, 2, 1), product="Seats")
    line(b, "999.99", D(2026, 2, 28))
    line(c, "50.00", D(2025, 1, 1), D(2026, 1, 1))
    with django_assert_num_queries(1):
        result = account_mrr_on_map(on=D(2026, 2, 28), account_ids=[a.pk, b.pk, c.pk])
    assert result == {a.pk: Decimal("120.00"), b.pk: Decimal("999.99"), c.pk: Decimal("0.00")}
    with django_assert_num_queries(1):
        only_paying = account_mrr_on_map(on=D(2026, 3, 1))
    assert only_paying == {a.pk: Decimal("20.00"), b.pk: Decimal("999.99")}


def test_paid_month_counts_count_month_ends_with_mrr(django_assert_num_queries):
    a, b, c, d = factories.AccountFactory.create_batch(4)
    line(a, "100.00", D(2025, 1, 15), D(2025, 4, 1))  # Jan, Feb, Mar month ends
    line(a, "50.00", D(2025, 2, 1), D(2025, 3, 1), product="Seats")  # Feb again: a month counts once
    line(a, "70.00", D(2025, 5, 10), D(2025, 5, 31), product="Pilot")  # ends on May 31 itself: no month end
    line(a, "80.00", D(2025, 6, 30), D(2025, 7, 31), product="Pilot")  # Jun 30 only
    line(a, "0.00", D(2025, 8, 1), product="Free tier")  # no MRR: no month
    line(a, "90.00", D(2025, 11, 5), product="Platform")  # Nov, Dec (the months end at `until`)
    soft_delete(instance=line(a, "100.00", D(2025, 9, 1), D(2025, 10, 15), product="Deleted"))  # not Sep
    line(c, "10.00", D(2026, 2, 1))  # after `until`
    line(d, "30.00", D(2024, 12, 31), D(2025, 1, 1))  # its one day is a month end

    with django_assert_num_queries(1):
        counts = account_paid_month_counts(account_ids=[a.pk, b.pk, c.pk, d.pk], until=D(2025, 12, 15))

    assert counts == {a.pk: 6, b.pk: 0, c.pk: 0, d.pk: 1}
