"""The product's configuration (tiers, the health model and its components, alert rules, playbooks,
partners and their keys) is changed by CS leaders only.

A plain CSM is not staff: every admin page sends them to sign in. A CSM made staff (say, to read
accounts in the admin) keeps the CSM group's permissions, which grant no change to any of it: adding,
changing and deleting are refused (403) and nothing is written. What the CSM group may view is the
migration's CSM_PERMISSIONS (less partners and keys, which only leaders see); it lets a staff CSM read these
lists, never edit them.
"""

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db

CONFIGURATION = [
    "accounts.tier",
    "accounts.partner",
    "accounts.partnerkey",
    "metrics.healthmodel",
    "metrics.healthcomponent",
    "metrics.alertrule",
    "success_plans.plantemplate",
]


def some_object(label: str):
    model = apps.get_model(label)
    existing = model.objects.order_by("pk").first()  # the migrations seed tiers, a model, rules, playbooks
    if existing is not None:
        return existing
    if label == "accounts.partner":
        return factories.PartnerFactory(name="Billing")
    from accounts.services import partner_key_create

    return partner_key_create(partner=factories.PartnerFactory(name="Billing"), name="main")[0]


def admin_urls(label: str, pk) -> dict[str, str]:
    app, model = label.split(".")
    return {
        "changelist": reverse(f"admin:{app}_{model}_changelist"),
        "add": reverse(f"admin:{app}_{model}_add"),
        "change": reverse(f"admin:{app}_{model}_change", args=[pk]),
        "delete": reverse(f"admin:{app}_{model}_delete", args=[pk]),
    }


def rows(label: str) -> list[tuple]:
    return list(apps.get_model(label).objects.order_by("pk").values_list())


@pytest.mark.parametrize("label", CONFIGURATION)
def test_a_plain_csm_is_sent_to_sign_in(csm_client, label):
    obj = some_object(label)
    before = rows(label)
    for page, url in admin_urls(label, obj.pk).items():
        for method in ("get", "post"):
            response = getattr(csm_client, method)(url, {"name": "Taken over"})
            assert response.status_code == 302, (page, method)
            assert "/login/" in response["Location"]
    assert rows(label) == before


@pytest.mark.parametrize("label", CONFIGURATION)
def test_a_staff_csm_may_not_add_change_or_delete(label):
    user = factories.csm_user(username="staff-csm", is_staff=True)
    client = Client()
    client.force_login(user)
    obj = some_object(label)
    before = rows(label)
    urls = admin_urls(label, obj.pk)
    assert client.get(urls["add"]).status_code == 403
    assert client.post(urls["add"], {"name": "New"}).status_code == 403
    assert client.post(urls["change"], {"name": "Taken over"}).status_code == 403
    assert client.get(urls["delete"]).status_code == 403
    assert client.post(urls["delete"], {"post": "yes"}).status_code == 403
    # Viewing, when the group grants it, is read-only: the change page shows no save button.
    page = client.get(urls["change"])
    assert page.status_code in (200, 403)
    assert b'name="_save"' not in page.content
    assert rows(label) == before


@pytest.mark.parametrize("label", CONFIGURATION)
def test_a_leader_may_change_it(leader_client, label):
    obj = some_object(label)
    urls = admin_urls(label, obj.pk)
    assert leader_client.get(urls["changelist"]).status_code == 200
    assert leader_client.get(urls["change"]).status_code == 200


def test_the_csm_group_grants_no_change_to_the_configuration():
    from django.contrib.auth.models import Group

    codes = set(Group.objects.get(name="CSM").permissions.values_list("content_type__app_label", "codename"))
    for label in CONFIGURATION:
        app, model = label.split(".")
        for action in ("add", "change", "delete"):
            assert (app, f"{action}_{model}") not in codes


@pytest.mark.parametrize("label", ["accounts.partner", "accounts.partnerkey"])
def test_a_staff_csm_does_not_see_partners_or_their_keys(label):
    from django.contrib.auth.models import Group

    app, model = label.split(".")
    codes = set(Group.objects.get(name="CSM").permissions.values_list("content_type__app_label", "codename"))
    assert (app, f"view_{model}") not in codes
    client = Client()
    client.force_login(factories.csm_user(username="staff-csm", is_staff=True))
    obj = some_object(label)
    assert client.get(admin_urls(label, obj.pk)["changelist"]).status_code == 403
    assert client.get(admin_urls(label, obj.pk)["change"]).status_code == 403
