"""Every workspace page needs a sign-in and a role; the roles are groups the migrations create."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from csm.roles import Role, can_edit_account, role_of
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_roles_exist_with_their_permissions():
    leader = Group.objects.get(name="CS leader")
    csm = Group.objects.get(name="CSM")
    leader_codes = set(leader.permissions.values_list("codename", flat=True))
    csm_codes = set(csm.permissions.values_list("codename", flat=True))
    assert {"change_healthmodel", "change_tier", "add_partner", "change_alertrule", "add_plantemplate"} <= leader_codes
    assert {"view_account", "add_touch", "change_successplan", "add_targetmeasurement", "change_alert"} <= csm_codes
    assert not {"change_healthmodel", "change_tier", "add_partner", "change_alertrule", "change_account"} & csm_codes


def test_an_anonymous_visitor_is_sent_to_sign_in():
    from django.test import Client

    response = Client().get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_signing_in_and_out(client, csm_user):
    csm_user.set_password("correct horse")
    csm_user.save()
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b"csrfmiddlewaretoken" in page.content
    refused = client.post(reverse("login"), {"username": "priya", "password": "wrong"})
    assert refused.status_code == 200
    assert "correct username and password" in refused.content.decode()
    assert client.post(reverse("login"), {"username": "priya", "password": "correct horse"}).status_code == 302
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_a_user_without_a_role_sees_a_polite_page(client, outsider):
    client.force_login(outsider)
    response = client.get(reverse("home"), follow=True)
    assert response.status_code == 403
    assert "No access yet" in response.content.decode()
    assert client.post(reverse("logout")).status_code == 302  # but can sign out


def test_roles():
    assert role_of(factories.csm_user(username="c")) == Role.CSM
    assert role_of(factories.leader(username="l")) == Role.LEADER
    assert role_of(factories.UserFactory(username="s", is_superuser=True)) == Role.LEADER
    assert role_of(factories.UserFactory(username="n")) is None
    inactive = factories.csm_user(username="i", is_active=False)
    assert role_of(inactive) is None


def test_who_may_edit_an_account(csm_user, other_csm, leader, outsider):
    assert can_edit_account(csm_user, csm_user.pk)
    assert not can_edit_account(csm_user, other_csm.pk)
    assert not can_edit_account(csm_user, None)
    assert can_edit_account(leader, other_csm.pk)
    assert can_edit_account(leader, None)
    assert not can_edit_account(outsider, outsider.pk)
