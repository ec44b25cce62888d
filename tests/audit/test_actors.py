"""Who changed what: each kind of actor is recorded, by every path that writes an audited object."""

import datetime
import json
from decimal import Decimal

import pytest
from celery import shared_task
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, Contact, Subscription, Tier
from accounts.services import account_update, soft_delete_many, tier_rules_apply
from api.authentication import key_label
from audit.context import ActorKind, acting_as
from success_plans.models import SuccessPlan
from success_plans.services import plans_apply_template
from tests import factories
from tests.admin.test_admin import admin_url, form_data, import_csv
from tests.api.conftest import key_client
from tests.audit.conftest import actors, history_count, history_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner(db):
    return factories.PartnerFactory(name="Billing", scope="all")


@pytest.fixture
def account(partner):
    return factories.AccountFactory(
        external_id="acc-1", name="Initech", partner=partner, renewal_date=datetime.date(2027, 3, 31)
    )


def test_objects_created_outside_any_request_are_recorded_as_by_the_system(account):
    assert actors(history_of(account)) == [("+", "system", "system")]


# --- a signed-in user ---------------------------------------------------------------------------


def test_a_workspace_form_records_the_signed_in_user(csm_client, csm_user):
    csm_user.first_name, csm_user.last_name = "Priya", "Patel"
    csm_user.save()
    plan = factories.SuccessPlanFactory(account=factories.AccountFactory(owner=csm_user), title="Year one")
    url = reverse("plans:edit", args=[plan.pk])
    data = {"title": "Renamed", "owner": csm_user.pk, "success_definition": "", "start_date": "2026-03-02"}

    assert csm_client.post(url, data).status_code == 302

    latest = history_of(plan)[-1]
    assert (latest.history_type, latest.actor_kind, latest.actor_label) == ("~", "user", "Priya Patel")
    assert latest.history_user_id == csm_user.pk
    assert latest.title == "Renamed"


def test_an_admin_change_records_the_admin_and_the_history_page_lists_it(admin_client, admin_user):
    tier = factories.TierFactory(touch_cadence_days=45)
    page = admin_client.get(admin_url(Tier, "change", tier.pk))
    data = {**form_data(page), "touch_cadence_days": "30"}

    response = admin_client.post(admin_url(Tier, "change", tier.pk), data)

    assert response.status_code == 302
    latest = history_of(tier)[-1]
    name = admin_user.get_full_name()
    assert name  # the factory names its users: the label is the full name, not the username
    assert (latest.actor_kind, latest.actor_label, latest.history_user_id) == ("user", name, admin_user.pk)
    assert (latest.touch_cadence_days, history_of(tier)[-2].touch_cadence_days) == (30, 45)

    history = admin_client.get(admin_url(Tier, "history", tier.pk))
    assert history.status_code == 200
    html = history.content.decode()
    assert "touch cadence (days)" in html.lower()
    assert "45" in html and "30" in html
    assert name in html


# --- a partner key ------------------------------------------------------------------------------


def test_an_api_put_records_the_partner_key_and_the_same_put_again_records_nothing(partner, account):
    client = key_client(partner)
    key = partner.keys.get()
    url = "/api/v1/accounts/acc-1/"
    body = {"external_id": "acc-1", "name": "Initech", "renewal_date": "2027-06-30"}

    assert client.put(url, body, format="json").status_code == 200
    rows = history_of(account)
    assert actors(rows)[1:] == [("~", "partner_key", "Billing (key tests)")]
    assert key_label(key) == "Billing (key tests)"
    assert (rows[0].renewal_date, rows[1].renewal_date) == (datetime.date(2027, 3, 31), datetime.date(2027, 6, 30))

    assert client.put(url, body, format="json").status_code == 200
    assert len(history_of(account)) == 2  # unchanged: nothing recorded


def test_the_key_is_not_the_actor_of_the_next_request_on_the_same_thread(partner, account, leader_client):
    key_client(partner).put("/api/v1/accounts/acc-1/", {"external_id": "acc-1", "name": "By key"}, format="json")
    body = json.dumps({"external_id": "acc-1", "name": "By hand"})
    response = leader_client.put("/api/v1/accounts/acc-1/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert [row.actor_kind for row in history_of(account)] == ["system", "partner_key", "user"]


def test_an_api_bulk_records_each_changed_and_created_row_by_the_key(partner, account):
    other = factories.AccountFactory(external_id="acc-2", name="Umbrella", partner=partner)
    items = [
        {"external_id": "acc-1", "name": "Initech 2"},  # changed
        {"external_id": "acc-2", "name": "Umbrella"},  # unchanged
        {"external_id": "acc-3", "name": "Globex"},  # created
    ]
    response = key_client(partner).post("/api/v1/accounts/bulk/", items, format="json")

    assert response.status_code == 200, response.json()
    created = Account.objects.get(external_id="acc-3")
    by_key = ("partner_key", "Billing (key tests)")
    assert [(t, *a) for t, *a in actors(history_of(account))] == [("+", "system", "system"), ("~", *by_key)]
    assert len(history_of(other)) == 1
    assert actors(history_of(created)) == [("+", *by_key)]


def test_subscription_lines_are_recorded_with_their_mrr(partner, account):
    client = key_client(partner)
    body = {"account": "acc-1", "product": "Analytics", "mrr": "100.00", "quantity": 1, "start_date": "2026-01-01"}
    assert client.put("/api/v1/subscriptions/sub-1001/", body, format="json").status_code in (200, 201)
    assert client.put("/api/v1/subscriptions/sub-1001/", {**body, "mrr": "250.00"}, format="json").status_code == 200

    line = Subscription.objects.get(external_id="sub-1001")
    rows = history_of(line)
    assert [(r.history_type, r.mrr) for r in rows] == [("+", Decimal("100.00")), ("~", Decimal("250.00"))]
    assert {r.actor_label for r in rows} == {"Billing (key tests)"}


# --- rules, tasks, imports ----------------------------------------------------------------------


def test_the_tier_rules_are_recorded_as_the_rule(account):
    factories.SubscriptionFactory(account=account, mrr=Decimal(10_000), start_date=datetime.date(2025, 1, 1))
    Account.objects.filter(pk=account.pk).update(mrr=Decimal(10_000))  # ARR 120,000: high touch

    assert tier_rules_apply(account_ids=[account.pk]) == 1

    latest = history_of(account)[-1]
    assert (latest.actor_kind, latest.actor_label) == ("rule", "tier rules")
    assert latest.tier_id == Tier.objects.get(slug="high-touch").pk


@shared_task
def rename_account(account_id: int, name: str) -> None:
    account_update(account=Account.objects.get(pk=account_id), data={"name": name})


def test_a_task_is_the_actor_of_what_it_changes_and_ends_with_it(account):
    rename_account.delay(account.pk, "Renamed by a task")  # eager in tests: the Celery signals still run

    latest = history_of(account)[-1]
    assert (latest.actor_kind, latest.actor_label) == ("task", f"task {rename_account.name}")
    account_update(account=account, data={"name": "After the task"})
    assert history_of(account)[-1].actor_kind == "system"


def test_an_admin_import_is_recorded_as_the_import_by_its_user(admin_client, admin_user, csm):
    content = "external_id,name,owner,tier,lifecycle_stage,renewal_date\na-1,Initech,casey,high-touch,adoption,\n"
    import_csv(admin_client, Account, content)

    rows = history_of(Account.objects.get(external_id="a-1"))
    assert actors(rows) == [("+", "import", f"import by {admin_user.get_full_name()}")]
    assert rows[0].history_user_id == admin_user.pk


def test_soft_deletes_and_template_plans_are_recorded(account):
    contacts = factories.ContactFactory.create_batch(3, account=account)
    template = factories.PlanTemplateFactory()
    factories.TemplateGoalFactory(template=template)
    before = history_count(Contact)

    with acting_as(ActorKind.USER, "Priya"):
        soft_delete_many(queryset=Contact.objects.filter(pk__in=[c.pk for c in contacts[:2]]))
        plans_apply_template(template=template, accounts=[account])

    assert history_count(Contact) == before + 2
    assert [history_of(c)[-1].deleted_at is not None for c in contacts[:2]] == [True, True]
    plan = SuccessPlan.objects.get(account=account)
    assert actors(history_of(plan)) == [("+", "user", "Priya")]
    assert history_of(contacts[0])[-1].history_date <= timezone.now()
