"""Sign-in is throttled against password guessing, per address and per user name, on both sign-in pages."""

import time

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # what the factories set
REFUSED = "Too many failed sign-ins. Try again in"


@pytest.fixture(autouse=True)
def no_failures_counted():
    cache.clear()
    yield
    cache.clear()


def sign_in(url: str, username: str, password: str, address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def signed_in(response) -> bool:
    return response.status_code == 302


@override_settings(CSM_LOGIN_ATTEMPTS=3)
def test_after_the_allowed_failures_even_the_right_password_is_refused(csm_user):
    url = reverse("login")
    for _attempt in range(3):
        response = sign_in(url, "priya", "wrong")
        assert response.status_code == 200
        assert "correct username and password" in response.content.decode()
    refused = sign_in(url, "priya", PASSWORD)
    assert refused.status_code == 429
    assert f"{REFUSED} 15 minutes." in refused.content.decode()
    # From another address too: the user name is locked, not just the address.
    assert sign_in(url, "priya", PASSWORD, address="10.0.0.2").status_code == 429
    # And the address is locked for every other user name.
    other = factories.csm_user(username="sam")
    assert sign_in(url, other.username, PASSWORD).status_code == 429
    assert signed_in(sign_in(url, other.username, PASSWORD, address="10.0.0.3"))


@override_settings(CSM_LOGIN_ATTEMPTS=1)
def test_a_refused_sign_in_is_logged_without_the_password(csm_user, caplog):
    url = reverse("login")
    sign_in(url, "priya", "wrong-guess")
    with caplog.at_level("WARNING", logger="csm.login"):
        sign_in(url, "priya", PASSWORD)
    assert [r.getMessage() for r in caplog.records if r.name == "csm.login"] == [
        "Sign-in refused after repeated failures, from 10.0.0.1."
    ]
    assert PASSWORD not in caplog.text and "wrong-guess" not in caplog.text


@override_settings(CSM_LOGIN_ATTEMPTS=2, CSM_LOGIN_LOCKOUT_SECONDS=1)
def test_the_lockout_ends_after_its_time(csm_user):
    url = reverse("login")
    for _attempt in range(2):
        sign_in(url, "priya", "wrong")
    assert sign_in(url, "priya", PASSWORD).status_code == 429
    assert "1 minute." in sign_in(url, "priya", PASSWORD).content.decode()
    time.sleep(1.2)
    assert signed_in(sign_in(url, "priya", PASSWORD))


@override_settings(CSM_LOGIN_ATTEMPTS=3)
def test_a_successful_sign_in_clears_the_count(csm_user):
    url = reverse("login")
    for _round in range(3):  # 2 failures then a success, three times: 6 failures, never 3 in a row
        sign_in(url, "priya", "wrong")
        sign_in(url, "priya", "wrong")
        assert signed_in(sign_in(url, "priya", PASSWORD))


@override_settings(CSM_LOGIN_ATTEMPTS=3)
def test_a_post_without_a_password_does_not_clear_the_count(csm_user):
    url = reverse("login")
    sign_in(url, "priya", "wrong")
    sign_in(url, "priya", "wrong")
    Client(REMOTE_ADDR="10.0.0.1").post(url, {"username": "priya"})
    sign_in(url, "priya", "wrong")
    assert sign_in(url, "priya", PASSWORD).status_code == 429


@override_settings(CSM_LOGIN_ATTEMPTS=3)
def test_the_admin_sign_in_shares_the_count(leader):
    admin_url = reverse("admin:login")
    sign_in(reverse("login"), "lee", "wrong")
    sign_in(admin_url, "lee", "wrong")
    sign_in(admin_url, "LEE", "wrong")  # user names are counted without regard to case
    refused = sign_in(admin_url, "lee", PASSWORD)
    assert not signed_in(refused)
    assert REFUSED in refused.content.decode()
    assert sign_in(reverse("login"), "lee", PASSWORD, address="10.0.0.9").status_code == 429


def test_the_default_allows_five_failures(csm_user):
    url = reverse("login")
    for _attempt in range(5):
        assert sign_in(url, "priya", "wrong").status_code == 200
    assert sign_in(url, "priya", PASSWORD).status_code == 429
