"""Partner keys: what is refused (401 with WWW-Authenticate), what is stored, and the command that makes one."""

import datetime
import hashlib
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Account, Partner, PartnerKey
from accounts.services import partner_key_revoke
from tests.api.conftest import key_client

URL = "/api/v1/accounts/"


def with_header(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def assert_401(response, code: str) -> None:
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    body = response.json()
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message"}


def test_a_key_authenticates(client_a, account_a):
    response = client_a.get(URL)
    assert response.status_code == 200
    assert [row["external_id"] for row in response.json()["results"]] == ["a-001"]


def test_missing_key(db):
    assert_401(APIClient().get(URL), "not_authenticated")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Bearer csm_wrong",
        "Bearer csm_ünïcode",
        "Bearer csm_abc\x00def",
        "Bearer " + "x" * 5000,
        "Bearer csm_",
    ],
)
def test_malformed_or_unknown_key(db, header):
    assert_401(with_header(header).get(URL), "authentication_failed")


def test_other_schemes_are_not_authenticated(db):
    assert_401(with_header("Basic dXNlcjpwYXNz").get(URL), "not_authenticated")


def test_a_key_with_a_known_prefix_but_another_secret_is_refused(client_a):
    raw = client_a.raw_key
    forged = raw[:12] + ("A" if raw[12] != "A" else "B") + raw[13:]
    assert_401(with_header(f"Bearer {forged}").get(URL), "authentication_failed")


def test_revoked_key(client_a, partner_a):
    key = PartnerKey.objects.get(partner=partner_a)
    assert client_a.get(URL).status_code == 200
    partner_key_revoke(key=key)
    response = client_a.get(URL)
    assert_401(response, "authentication_failed")
    assert response.json()["error"]["message"] == "This API key was revoked."
    # Revoking one key leaves the partner's other keys working.
    assert key_client(partner_a).get(URL).status_code == 200


def test_inactive_partner(client_a, partner_a):
    Partner.objects.filter(pk=partner_a.pk).update(is_active=False)
    response = client_a.put(f"{URL}a-9/", {"name": "X"}, format="json")
    assert_401(response, "authentication_failed")
    assert response.json()["error"]["message"] == "This partner is not active."
    assert not Account.objects.exists()


def test_last_used_is_recorded_at_most_once_a_minute(client_a, partner_a):
    key = PartnerKey.objects.get(partner=partner_a)
    assert key.last_used_at is None
    before = timezone.now()
    client_a.get(URL)
    key.refresh_from_db()
    first = key.last_used_at
    assert before <= first <= timezone.now()
    client_a.get(URL)
    key.refresh_from_db()
    assert key.last_used_at == first
    # A minute later the next request records its time again.
    earlier = first - datetime.timedelta(minutes=1, seconds=1)
    PartnerKey.objects.filter(pk=key.pk).update(last_used_at=earlier)
    client_a.get(URL)
    key.refresh_from_db()
    assert key.last_used_at > first


def test_a_refused_key_records_no_use(client_a, partner_a):
    key = PartnerKey.objects.get(partner=partner_a)
    partner_key_revoke(key=key)
    client_a.get(URL)
    key.refresh_from_db()
    assert key.last_used_at is None


def test_only_the_hash_is_stored(client_a, partner_a):
    raw = client_a.raw_key
    key = PartnerKey.objects.get(partner=partner_a)
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert key.prefix == raw[4:12]
    stored = [str(value) for value in PartnerKey.objects.values_list(flat=False).get(pk=key.pk)]
    assert not any(raw in value for value in stored)


def test_create_partner_key_command_prints_a_working_key(db):
    out = io.StringIO()
    call_command("create_partner_key", "Reseller", "--scope", "own", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    partner = Partner.objects.get(name="Reseller")
    assert partner.scope == Partner.Scope.OWN
    assert PartnerKey.objects.get(partner=partner).key_hash != raw
    client = with_header(f"Bearer {raw}")
    response = client.put(f"{URL}r-1/", {"name": "Resold"}, format="json")
    assert response.status_code == 201
    assert Account.objects.get(external_id="r-1").partner == partner
    assert client.get(URL).json()["results"][0]["external_id"] == "r-1"
