"""Soft-deleted records come back from the admin (the "Restore" action, the "deleted" filter) and from the
API (`"deleted": false`), through the same service, with what depended on them recomputed."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Account, Contact, Partner, Subscription, Touch
from accounts.services import partner_key_create, soft_delete
from metrics.models import HealthSnapshot
from success_plans.models import SuccessPlan
from tests import factories
from tests.admin.test_admin import admin_url, messages_of

pytestmark = pytest.mark.django_db

API = {
    Account: "/api/v1/accounts/",
    Contact: "/api/v1/contacts/",
    Subscription: "/api/v1/subscriptions/",
    Touch: "/api/v1/touches/",
    SuccessPlan: "/api/v1/success-plans/",
}


def paying_account(partner: Partner | None = None) -> Account:
    account = factories.AccountFactory(external_id="acme", partner=partner)
    factories.SubscriptionFactory(account=account, external_id="s-base", mrr=Decimal(900))
    factories.SubscriptionFactory(account=account, external_id="s-addon", mrr=Decimal(300))
    Account.objects.filter(pk=account.pk).update(mrr=Decimal(1200))
    return account


def make(model, account: Account):
    """A live object of `model` belonging to `account` (the account itself for Account)."""
    if model is Account:
        return account
    if model is Subscription:
        return Subscription.objects.get(external_id="s-addon")
    factory = {
        Contact: factories.ContactFactory,
        Touch: factories.TouchFactory,
        SuccessPlan: factories.SuccessPlanFactory,
    }[model]
    return factory(account=account, external_id="x-1")


def listed(client, model, query: str = "") -> set[int]:
    response = client.get(admin_url(model, "changelist") + query)
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


MODELS = [Account, Contact, Subscription, Touch, SuccessPlan]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_admin_filters_deleted_rows_and_restores_them(model, admin_client, django_capture_on_commit_callbacks):
    obj = make(model, paying_account())
    soft_delete(instance=obj)
    assert obj.pk not in listed(admin_client, model)  # live rows by default
    assert obj.pk in listed(admin_client, model, "?deleted=yes")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            admin_url(model, "changelist") + "?deleted=yes",
            {"action": "restore_selected", "_selected_action": [obj.pk]},
            follow=True,
        )

    assert f"1 {model._meta.verbose_name} restored." in messages_of(response)
    restored = model._base_manager.get(pk=obj.pk)
    assert restored.deleted_at is None
    assert obj.pk in listed(admin_client, model)
    assert obj.pk not in listed(admin_client, model, "?deleted=yes")
    # The account was recomputed after commit: it has today's health snapshot.
    account_id = obj.pk if model is Account else obj.account_id
    assert HealthSnapshot.objects.filter(account_id=account_id, date=timezone.localdate()).exists()


def test_the_restore_action_counts_only_the_deleted_rows_selected(admin_client):
    account = paying_account()
    contacts = factories.ContactFactory.create_batch(3, account=account)
    for contact in contacts[:2]:
        soft_delete(instance=contact)
    response = admin_client.post(
        admin_url(Contact, "changelist") + "?deleted=all",
        {"action": "restore_selected", "_selected_action": [c.pk for c in contacts]},
        follow=True,
    )
    assert "2 contacts restored." in messages_of(response)
    assert not Contact.objects.deleted().exists()


def test_the_restore_action_is_offered_on_every_soft_delete_admin(admin_client):
    for model in MODELS:
        actions = admin_client.get(admin_url(model, "changelist")).context["action_form"].fields["action"].choices
        assert "restore_selected" in dict(actions), model


def test_a_user_who_may_only_view_cannot_restore(client):
    from django.contrib.auth.models import Permission

    contact = factories.ContactFactory(account=paying_account())
    soft_delete(instance=contact)
    viewer = factories.UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_contact"))
    client.force_login(viewer)
    url = admin_url(Contact, "changelist") + "?deleted=yes"
    assert client.get(url).context["action_form"] is None  # no action is offered
    client.post(url, {"action": "restore_selected", "_selected_action": [contact.pk]})
    contact.refresh_from_db()
    assert contact.deleted_at is not None


def api_client() -> APIClient:
    partner = factories.PartnerFactory(name="Billing", scope=Partner.Scope.ALL)
    _key, raw = partner_key_create(partner=partner, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def api_ids(client: APIClient, model) -> set[str]:
    response = client.get(API[model])
    assert response.status_code == 200, response.content
    return {row["external_id"] for row in response.json()["results"]}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_api_restores_with_deleted_false(model, django_capture_on_commit_callbacks):
    client = api_client()
    obj = make(model, paying_account())
    assert client.delete(f"{API[model]}{obj.external_id}/").status_code == 204
    assert obj.external_id not in api_ids(client, model)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(f"{API[model]}{obj.external_id}/", {"deleted": False}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["deleted_at"] is None
    assert model._base_manager.get(pk=obj.pk).deleted_at is None
    assert obj.external_id in api_ids(client, model)
    account_id = obj.pk if model is Account else obj.account_id
    assert HealthSnapshot.objects.filter(account_id=account_id, date=timezone.localdate()).exists()


@pytest.mark.parametrize("route", ["admin", "api"])
def test_a_restored_subscription_brings_its_mrr_back(route, admin_client, django_capture_on_commit_callbacks):
    client = api_client()
    account = paying_account()
    addon = Subscription.objects.get(external_id="s-addon")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"{API[Subscription]}s-addon/").status_code == 204
    account.refresh_from_db()
    assert account.mrr == Decimal(900)  # 1,200 less the add-on's 300

    with django_capture_on_commit_callbacks(execute=True):
        if route == "admin":
            admin_client.post(
                admin_url(Subscription, "changelist") + "?deleted=yes",
                {"action": "restore_selected", "_selected_action": [addon.pk]},
            )
        else:
            client.patch(f"{API[Subscription]}s-addon/", {"deleted": False}, format="json")

    account.refresh_from_db()
    assert account.mrr == Decimal(1200)
    snapshot = HealthSnapshot.objects.get(account=account, date=timezone.localdate())
    assert (account.health_score, account.health_band) == (snapshot.score, snapshot.band)


def test_a_restored_touch_is_the_accounts_last_touch_again(admin_client, django_capture_on_commit_callbacks):
    account = paying_account()
    old = factories.TouchFactory(account=account, occurred_at=timezone.now() - datetime.timedelta(days=40))
    recent = factories.TouchFactory(account=account, occurred_at=timezone.now() - datetime.timedelta(days=2))
    Account.objects.filter(pk=account.pk).update(last_touch_at=recent.occurred_at)
    soft_delete(instance=recent)
    account.refresh_from_db()
    assert account.last_touch_at == old.occurred_at

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            admin_url(Touch, "changelist") + "?deleted=yes",
            {"action": "restore_selected", "_selected_action": [recent.pk]},
        )

    account.refresh_from_db()
    assert account.last_touch_at == recent.occurred_at
