"""API personas: two partners scoped to their own accounts, one seeing all, and a CS leader's session."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Partner
from accounts.services import partner_key_create
from tests import factories


@pytest.fixture(autouse=True)
def fresh_throttle():
    """Throttle counters live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


def key_client(partner: Partner) -> APIClient:
    """An API client sending a new key of `partner` as `Authorization: Bearer <key>`."""
    _key, raw = partner_key_create(partner=partner, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_key = raw
    return client


@pytest.fixture
def partner_a(db):
    return factories.PartnerFactory(name="Partner A", scope=Partner.Scope.OWN)


@pytest.fixture
def partner_b(db):
    return factories.PartnerFactory(name="Partner B", scope=Partner.Scope.OWN)


@pytest.fixture
def partner_all(db):
    return factories.PartnerFactory(name="Billing (all)", scope=Partner.Scope.ALL)


@pytest.fixture
def client_a(partner_a):
    return key_client(partner_a)


@pytest.fixture
def client_b(partner_b):
    return key_client(partner_b)


@pytest.fixture
def client_all(partner_all):
    return key_client(partner_all)


@pytest.fixture
def leader_api(leader):
    client = APIClient()
    client.force_login(leader)
    return client


@pytest.fixture
def account_a(partner_a):
    """An account of partner A, with external id a-001."""
    return factories.AccountFactory(external_id="a-001", name="Alpha", partner=partner_a)


@pytest.fixture
def account_b(partner_b):
    """An account of partner B, with external id b-001."""
    return factories.AccountFactory(external_id="b-001", name="Bravo", partner=partner_b)
