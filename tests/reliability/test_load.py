"""The load test (issue #12, item 2): 8 partner clients and a workspace user for 60 s against the production
stack (gunicorn, a real worker, PostgreSQL, Redis); no 5xx, nothing duplicated, every acknowledged write stored
with the value sent last. The figures are printed (run with -s to see them) and by `make loadtest`."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Account, Contact, Subscription
from demo import bench_load
from metrics.models import UsageRecord
from tests.reliability.conftest import needs_stack

SECONDS = 60


@needs_stack
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_partners_and_the_workspace_under_load_lose_and_duplicate_nothing(stack):
    # A small book for the workspace pages: paying accounts whose pages the leader opens.
    pages = []
    for n in range(5):
        account = Account.objects.create(name=f"Book {n}", external_id=f"book-{n}")
        Subscription.objects.create(
            account=account,
            product="Platform",
            mrr=Decimal(100 * (n + 1)),
            quantity=1,
            start_date=timezone.localdate() - datetime.timedelta(days=90),
        )
        pages.append(account.pk)
    load = bench_load.run(stack, seconds=SECONDS, account_ids=pages)
    print(f"\nLoad test against {stack.url}:\n{load.report()}")

    result = load.result
    assert load.server_errors == 0, load.report()
    assert load.problems == [], load.report()
    assert result["total"]["failures"] == 0, load.report()
    # Every kind of request ran, and enough of them that the checks below mean something.
    for endpoint in (
        "PUT accounts/{id}/",
        "POST accounts/bulk/",
        "PUT contacts/{id}/",
        "POST contacts/bulk/",
        "POST usage/bulk/",
        "GET accounts/ (sync page)",
        "GET / (My day)",
        "GET accounts/",
        "GET account/{id}/ (360)",
        "GET portfolio/",
    ):
        assert result["endpoints"][endpoint]["requests"] > 0, endpoint
    acked = result["acked"]
    assert len(acked["accounts"]) > 100
    assert len(acked["usage"]) > 100
    # The database holds exactly what was acknowledged, counted independently of the check above.
    assert Account.objects.filter(external_id__startswith="load-").count() == len(acked["accounts"])
    assert Contact.objects.filter(external_id__startswith="load-").count() == len(acked["contacts"])
    assert UsageRecord.objects.filter(account__external_id__startswith="load-").count() == len(acked["usage"])


@pytest.mark.django_db
def test_the_check_finds_lost_stale_foreign_and_unacknowledged_writes():
    """The load test's check can fail: each kind of loss it looks for, made by hand, is reported."""
    from accounts.models import Partner

    own = Partner.objects.create(name="Load partner 1", scope=Partner.Scope.OWN)
    other = Partner.objects.create(name="Load partner 2", scope=Partner.Scope.OWN)
    renewal = datetime.date(2027, 1, 31)
    kept = Account.objects.create(
        name="kept", external_id="load-p1-acct-1", employees=5, renewal_date=renewal, partner=own
    )
    Account.objects.create(name="old", external_id="load-p1-acct-2", employees=5, renewal_date=renewal, partner=own)
    Account.objects.create(name="x", external_id="load-p1-acct-3", employees=1, renewal_date=renewal, partner=other)
    Contact.objects.create(account=kept, external_id="load-p1-contact-1", name="Ann", email="a@x.example", title="")
    UsageRecord.objects.create(account=kept, metric="logins", date=renewal, value=Decimal("7"))
    acked = {
        "accounts": {
            "load-p1-acct-1": {"name": "kept", "employees": 5, "renewal_date": "2027-01-31"},
            "load-p1-acct-2": {"name": "new", "employees": 5, "renewal_date": "2027-01-31"},
            "load-p1-acct-9": {"name": "lost", "employees": 5, "renewal_date": "2027-01-31"},
        },
        "contacts": {
            "load-p1-contact-1": {"account": "load-p1-acct-1", "name": "Ann", "email": "a@x.example", "title": ""}
        },
        "usage": {"load-p1-acct-1|logins|2027-01-31": 8},
    }
    problems = bench_load.check({"problems": [], "acked": acked})
    assert sorted(problems) == sorted(
        [
            "account load-p1-acct-2 holds {'name': 'old', 'employees': 5, 'renewal_date': '2027-01-31'}, not the "
            "last value acknowledged, {'name': 'new', 'employees': 5, 'renewal_date': '2027-01-31'}",
            "account load-p1-acct-9 was acknowledged but is missing",
            "1 account rows are stored but were never acknowledged: ['load-p1-acct-3']",
            "account load-p1-acct-3 belongs to Load partner 2, not to the partner that made it",
            "usage load-p1-acct-1|logins|2027-01-31 holds 7.0000, not the last value acknowledged, 8",
        ]
    )
    # Once the database holds what was acknowledged, nothing is reported.
    Account.objects.filter(external_id="load-p1-acct-2").update(name="new")
    Account.objects.filter(external_id="load-p1-acct-3").delete()
    UsageRecord.objects.update(value=8)
    del acked["accounts"]["load-p1-acct-9"]
    assert bench_load.check({"problems": [], "acked": acked}) == []
