"""Partner keys are stored as hashes only, compared in constant time, and never written to a log."""

import logging

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import PartnerKey
from tests import factories
from tests.api.conftest import key_client

URL = "/api/v1/accounts/"


@pytest.fixture
def partner(db):
    return factories.PartnerFactory(name="Billing")


def secret_part(raw: str) -> str:
    """What follows the key's public prefix ("csm_" and the lookup prefix)."""
    return raw[4 + PartnerKey.PREFIX_LENGTH :]


@override_settings(DEBUG=True)
def test_no_log_line_holds_a_key(partner, caplog):
    client = key_client(partner)
    raw = client.raw_key
    factories.AccountFactory(external_id="acme-001", partner=partner)
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    connection.force_debug_cursor = True  # every SQL statement is logged, with its parameters
    try:
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="django.db.backends"):
            assert client.get(URL).status_code == 200
            assert client.put(f"{URL}acme-002/", {"name": "Acme 2"}, format="json").status_code in (200, 201)
            assert client.get(f"{URL}missing/").status_code == 404
            refused = APIClient()
            refused.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
            assert refused.get(URL).status_code == 401
    finally:
        connection.force_debug_cursor = False
    logged = "\n".join(
        f"{record.name} {record.getMessage()} {getattr(record, 'sql', '')} {getattr(record, 'params', '')}"
        for record in caplog.records
    )
    assert "django.db.backends" in logged and "django.request" in logged  # both were captured
    assert raw[4 : 4 + PartnerKey.PREFIX_LENGTH] in logged  # the key lookups' SQL, with parameters
    for secret in (raw, forged, secret_part(raw), secret_part(forged)):
        assert secret not in logged


def test_only_the_hash_is_stored(partner):
    raw = key_client(partner).raw_key
    key = PartnerKey.objects.get(partner=partner)
    stored = " ".join(str(value) for value in PartnerKey.objects.filter(pk=key.pk).values().get().values())
    assert raw not in stored and secret_part(raw) not in stored
    assert len(key.key_hash) == 64 and key.key_hash != raw


def test_keys_are_compared_in_constant_time():
    """The comparison goes through hmac.compare_digest, also when no key has the prefix."""
    import inspect

    from api.authentication import PartnerKeyAuthentication

    assert "hmac.compare_digest(" in inspect.getsource(PartnerKeyAuthentication.key_for)
