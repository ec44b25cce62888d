"""The bulk writes' plain validation gives exactly what the serializers give, or leaves the item to them."""

import pytest
from rest_framework import serializers

from api.engine import PlainInput
from api.resources.accounts import AccountSerializer
from api.resources.usage import UsageInputSerializer, plain_item

ACCOUNT_ITEMS = [
    {"external_id": "x-1", "name": "Acme", "employees": 5, "owner": "priya", "tier": "high-touch"},
    {"external_id": "x-1", "name": " Acme ", "domain": ""},
    {"name": "Acme", "employees": "12", "tier_locked": "true", "customer_since": "20250101"},
    {"name": "Acme", "employees": -1},
    {"name": "Acme", "employees": True, "tier_locked": 1},
    {"name": "Acme", "owner": None, "tier": None, "renewal_date": None, "churned_at": "2026-02-30"},
    {"name": "Acme", "lifecycle_stage": "nope", "pricing_model": ""},
    {"name": "Acme", "lifecycle_stage": "adoption", "customer_since": "2025-01-01T00:00:00"},
    {"name": "x" * 300},
    {"name": "Acme", "external_id": "a/b"},
    {"name": "Acme", "external_id": "  "},
    {"name": "Acme", "owner": "", "tier": "t" * 101},
    {"name": "Acme\x00"},
    {"external_id": "only"},
    {"name": None},
    {"name": 12, "deleted": False},
]

USAGE_ITEMS = [
    {"account": "a-001", "metric": "active_users", "date": "2026-03-01", "value": "12.5"},
    {"account": "a-001", "metric": " logins ", "date": "2026-03-01", "value": 3},
    {"account": "a-001", "metric": "not a slug", "date": "2026-03-01", "value": 3},
    {"account": "a-001", "metric": 5, "date": "20260301", "value": 1.23455},
    {"account": "a-001", "metric": "m", "date": "2026-03-01", "value": "NaN"},
    {"account": "a-001", "metric": "m", "date": "2026-03-01", "value": True},
    {"account": "", "metric": "m", "date": "2026-03-01", "value": 1},
    {"account": "a-001", "metric": "m" * 51, "date": "2026-03-01", "value": 1},
    {"account": "a-001", "metric": "m", "date": "2026-03-01", "value": "1e30"},
    {"account": "a-001", "metric": "m", "date": "2026-03-01"},
]


def serializer_result(serializer, item):
    try:
        return serializer.run_validation(item)
    except serializers.ValidationError:
        return "invalid"


@pytest.mark.django_db
@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("item", ACCOUNT_ITEMS)
def test_plain_account_input_matches_the_serializer(item, partial):
    serializer = AccountSerializer(partial=partial)
    plain = PlainInput(serializer)
    assert plain.fields is not None  # accounts take the plain path
    data = plain(item)
    if data is not None:
        assert data == serializer_result(serializer, item)
        assert list(data) == list(serializer_result(serializer, item))


@pytest.mark.parametrize("item", USAGE_ITEMS)
def test_plain_usage_item_matches_the_serializer(item):
    data = plain_item(item)
    if data is not None:
        assert data == serializer_result(UsageInputSerializer(), item)


def test_plain_input_takes_the_common_valid_items():
    assert PlainInput(AccountSerializer())(ACCOUNT_ITEMS[0]) is not None
    assert plain_item(USAGE_ITEMS[0]) is not None
