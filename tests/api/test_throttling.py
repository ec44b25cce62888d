"""Per-partner throttling: a partner's own limit, else CSM_API_RATE_PER_MINUTE; 429 with Retry-After."""

from django.test import override_settings

from accounts.models import Account, Partner
from tests.api.conftest import key_client

URL = "/api/v1/accounts/"


def test_a_partner_over_its_limit_gets_429_with_retry_after(client_a, client_b, partner_a):
    Partner.objects.filter(pk=partner_a.pk).update(rate_limit=3)
    assert [client_a.get(URL).status_code for _ in range(3)] == [200, 200, 200]
    response = client_a.get(URL)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    # Writes are refused too, and write nothing.
    assert client_a.put(f"{URL}t-1/", {"name": "Late"}, format="json").status_code == 429
    assert not Account.objects.exists()
    # Another partner is not affected.
    assert client_b.get(URL).status_code == 200


def test_all_keys_of_a_partner_share_its_limit(client_a, partner_a):
    Partner.objects.filter(pk=partner_a.pk).update(rate_limit=2)
    second_key = key_client(partner_a)
    assert client_a.get(URL).status_code == 200
    assert second_key.get(URL).status_code == 200
    assert second_key.get(URL).status_code == 429
    assert client_a.get(URL).status_code == 429


@override_settings(CSM_API_RATE_PER_MINUTE=2)
def test_the_default_limit_comes_from_the_setting(client_a, client_b, partner_b):
    assert [client_a.get(URL).status_code for _ in range(3)] == [200, 200, 429]
    # A partner's own limit replaces the default.
    Partner.objects.filter(pk=partner_b.pk).update(rate_limit=5)
    assert [client_b.get(URL).status_code for _ in range(6)] == [200] * 5 + [429]


@override_settings(CSM_API_RATE_PER_MINUTE=2)
def test_a_signed_in_user_has_the_default_limit(leader_api):
    assert [leader_api.get(URL).status_code for _ in range(3)] == [200, 200, 429]
