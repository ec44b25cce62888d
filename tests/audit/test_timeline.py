"""The account 360 timeline tells who changed the account, its contacts, revenue lines and plans."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Tier
from accounts.services import account_update, contact_save, soft_delete, subscription_save
from audit.context import ActorKind, acting_as
from metrics.selectors.account import account_timeline
from success_plans.services import plan_update
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(csm_user):
    return factories.AccountFactory(name="Initech", owner=csm_user, renewal_date=datetime.date(2027, 3, 31))


def changes(account) -> list[str]:
    return [event.title for event in account_timeline(account=account, tier_assignments=[], band_changes=[])]


def url(account) -> str:
    return reverse("metrics:account", args=[account.pk])


def test_changes_read_as_who_changed_which_field_from_what_to_what(account):
    line = factories.SubscriptionFactory(account=account, external_id="sub-1001", mrr=Decimal("100.00"))
    contact = factories.ContactFactory(account=account, name="Dana", title="CTO")
    plan = factories.SuccessPlanFactory(account=account, title="Year one")

    with acting_as(ActorKind.USER, "Priya"):
        account_update(account=account, data={"renewal_date": datetime.date(2027, 6, 30)})
    with acting_as(ActorKind.PARTNER_KEY, "Billing (key production)"):
        line.mrr = Decimal("250.00")
        subscription_save(subscription=line)
    with acting_as(ActorKind.USER, "Sam"):
        contact.title = "CEO"
        contact_save(contact=contact)
        plan_update(plan=plan, data={"title": "Year two"})
    with acting_as(ActorKind.RULE, "tier rules"):
        account_update(account=account, data={"tier": Tier.objects.get(slug="high-touch")})
    with acting_as(ActorKind.USER, "Sam"):
        soft_delete(instance=contact)

    assert changes(account) == [
        "Sam deleted contact Dana",
        "tier rules changed tier Low touch → High touch",
        "Sam changed title Year one → Year two of plan Year two",
        "Sam changed job title CTO → CEO of contact Dana",
        "Billing (key production) changed MRR 100.00 → 250.00 of line sub-1001",
        "Priya changed renewal date 2027-03-31 → 2027-06-30",
        "Success plan created: Year two",  # the plan's own event, under its title now
    ]


def test_additions_by_someone_show_and_changes_by_the_system_do_not(account):
    with acting_as(ActorKind.IMPORT, "import by Priya"):
        contact_save(contact=factories.ContactFactory.build(account=account, name="Lee"))
    account_update(account=account, data={"name": "Initech Ltd"})  # the system: no one to name

    assert changes(account) == ["import by Priya added contact Lee"]


def test_the_page_escapes_what_it_shows(csm_client, account):
    with acting_as(ActorKind.USER, "<b>Priya</b>"):
        contact_save(contact=factories.ContactFactory.build(account=account, name="<script>alert(1)</script>"))

    html = csm_client.get(url(account)).content.decode()

    assert "&lt;b&gt;Priya&lt;/b&gt; added contact &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html


def test_the_page_runs_the_same_queries_whatever_the_number_of_changes(csm_client, csm_user):
    small, large = (factories.AccountFactory(owner=csm_user) for _ in range(2))
    for account, size in ((small, 1), (large, 6)):
        contacts = factories.ContactFactory.create_batch(size, account=account)
        lines = factories.SubscriptionFactory.create_batch(size, account=account)
        with acting_as(ActorKind.USER, "Priya"):
            for k in range(size):
                account_update(account=account, data={"employees": 100 + k, "owner": factories.UserFactory()})
                contacts[k].title = f"Title {k}"
                contact_save(contact=contacts[k])
                lines[k].quantity = 100 + k
                subscription_save(subscription=lines[k])
    csm_client.get(url(small))  # warm the session and the role cache alike for both

    counts = []
    for account in (small, large):
        with CaptureQueriesContext(connection) as queries:
            response = csm_client.get(url(account))
        counts.append(len(queries))
        assert response.status_code == 200
    shown = [item for item in response.context["timeline"] if item["event"].kind == "change"]

    assert counts[0] == counts[1]
    assert len(shown) == 18  # six changes each of the account, its contacts and its lines
    # the owners named are looked up once, by name
    assert all("#" not in item["event"].title for item in shown)
