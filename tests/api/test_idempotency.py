"""Idempotency-Key: a retried POST gets the first response back and writes nothing again."""

import datetime

from django.utils import timezone

from accounts.models import Account
from api.models import IdempotencyKey
from tests import factories

URL = "/api/v1/accounts/"
BULK = f"{URL}bulk/"


def post(client, url, body, key=None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(url, body, format="json", headers=headers)


def test_same_key_and_body_returns_the_first_response_and_writes_once(client_a, partner_a):
    body = {"external_id": "i-1", "name": "Once"}
    first = post(client_a, URL, body, "k-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    account = Account.objects.get()
    second = post(client_a, URL, body, "k-1")
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.content == first.content  # byte for byte, keys in the same order
    assert Account.objects.get() == account
    assert Account.objects.get().updated_at == account.updated_at
    record = IdempotencyKey.objects.get()
    assert (record.client, record.key, record.method, record.path, record.status_code) == (
        f"partner:{partner_a.pk}",
        "k-1",
        "POST",
        URL,
        201,
    )


def test_bulk_with_the_same_key_writes_once(client_a, account_a):
    items = [{"external_id": "a-001", "name": "Alpha 2"}, {"external_id": "i-2", "name": "New"}]
    first = post(client_a, BULK, items, "bulk-1")
    assert first.status_code == 200
    stamps = dict(Account.objects.values_list("external_id", "updated_at"))
    # The same retry later replays instead of upserting again (no updated_at moves).
    second = post(client_a, BULK, items, "bulk-1")
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert dict(Account.objects.values_list("external_id", "updated_at")) == stamps
    assert Account.objects.count() == 2


def test_same_key_with_another_body_is_422(client_a):
    assert post(client_a, URL, {"external_id": "i-3", "name": "First"}, "k-3").status_code == 201
    response = post(client_a, URL, {"external_id": "i-4", "name": "Second"}, "k-3")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_mismatch"
    assert list(Account.objects.values_list("external_id", flat=True)) == ["i-3"]
    # The same key on another path is another request too.
    assert post(client_a, BULK, [{"external_id": "i-3", "name": "First"}], "k-3").status_code == 422


def test_a_key_older_than_a_day_is_forgotten(client_a):
    assert post(client_a, URL, {"external_id": "i-5", "name": "Old"}, "k-5").status_code == 201
    IdempotencyKey.objects.update(created_at=timezone.now() - datetime.timedelta(hours=24, seconds=1))
    response = post(client_a, URL, {"external_id": "i-6", "name": "New"}, "k-5")
    assert response.status_code == 201
    assert set(Account.objects.values_list("external_id", flat=True)) == {"i-5", "i-6"}
    assert IdempotencyKey.objects.get().request_hash != ""
    assert IdempotencyKey.objects.count() == 1


def test_a_key_younger_than_a_day_is_kept(client_a):
    assert post(client_a, URL, {"external_id": "i-7", "name": "Kept"}, "k-7").status_code == 201
    IdempotencyKey.objects.update(created_at=timezone.now() - datetime.timedelta(hours=23, minutes=59))
    assert post(client_a, URL, {"external_id": "i-8", "name": "Other"}, "k-7").status_code == 422


def test_keys_are_per_client(client_a, client_b, partner_b):
    assert post(client_a, URL, {"external_id": "i-9", "name": "A's"}, "shared").status_code == 201
    response = post(client_b, URL, {"external_id": "i-10", "name": "B's"}, "shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Account.objects.get(external_id="i-10").partner == partner_b
    # B's identical retry replays B's response, not A's.
    replay = post(client_b, URL, {"external_id": "i-10", "name": "B's"}, "shared")
    assert replay.json()["external_id"] == "i-10"
    assert IdempotencyKey.objects.count() == 2


def test_a_request_without_a_key_is_not_recorded(client_a):
    assert post(client_a, URL, {"external_id": "i-11", "name": "Plain"}).status_code == 201
    assert post(client_a, URL, {"external_id": "i-11", "name": "Plain"}).status_code == 409
    assert not IdempotencyKey.objects.exists()


def test_an_error_response_is_replayed(client_a):
    body = {"external_id": "i-12", "name": "Owned", "owner": "priya"}
    first = post(client_a, URL, body, "k-12")
    assert first.status_code == 400
    assert first.json()["error"]["fields"] == {"owner": ["There is no user “priya”."]}
    factories.csm_user(username="priya")  # the request would now succeed, but a retry is the same request
    second = post(client_a, URL, body, "k-12")
    assert (second.status_code, second.json()) == (400, first.json())
    assert second["Idempotent-Replayed"] == "true"
    assert not Account.objects.exists()


def test_a_conflict_is_not_remembered(client_a, account_b):
    """A 409 depends on other objects' state: the retry is answered afresh."""
    body = {"external_id": "b-001", "name": "Mine now"}
    assert post(client_a, URL, body, "k-13").status_code == 409
    Account.objects.filter(external_id="b-001").update(external_id="b-001-renamed")
    assert post(client_a, URL, body, "k-13").status_code == 201
    assert Account.objects.get(external_id="b-001").name == "Mine now"


def test_a_bad_key_is_a_field_error(client_a):
    for key in ("x" * 256, "tab\there"):
        response = post(client_a, URL, {"external_id": "i-14", "name": "X"}, key)
        assert response.status_code == 400
        assert list(response.json()["error"]["fields"]) == ["Idempotency-Key"]
    assert not Account.objects.exists()
