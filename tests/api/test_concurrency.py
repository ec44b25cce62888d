"""Concurrent writers of the same external id or Idempotency-Key: one object, one write, no error.

Real threads with their own database connections, released together by a barrier. SQLite lets one
writer in at a time, so the race only exists (and is only tested) on PostgreSQL.
"""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from accounts.models import Account, Partner, TierAssignment
from api.models import IdempotencyKey
from tests import factories
from tests.api.conftest import key_client

URL = "/api/v1/accounts/"
THREADS = 6

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite admits one writer at a time: no race to test"
)


@pytest.fixture
def partner(transactional_db):
    return factories.PartnerFactory(name="Racing partner", scope=Partner.Scope.OWN)


def race(requests) -> list:
    """Run each callable in its own thread, all starting at once; their results (or exceptions)."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(index: int, request) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = request()
        except Exception as error:  # reported by the test, not lost in the thread
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, request)) for i, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_puts_of_one_external_id_make_one_account(partner):
    clients = [key_client(partner) for _ in range(THREADS)]
    body = {"name": "Raced", "tier": "high-touch", "tier_locked": True}
    responses = race([lambda c=c: c.put(f"{URL}race-1/", body, format="json") for c in clients])
    statuses = sorted(r.status_code if hasattr(r, "status_code") else repr(r) for r in responses)
    assert statuses == [200] * (THREADS - 1) + [201]
    account = Account.objects.get()
    assert (account.external_id, account.name, account.partner_id) == ("race-1", "Raced", partner.pk)
    assert TierAssignment.objects.filter(account=account).count() == 1
    assert {r.json()["id"] for r in responses} == {account.pk}


def test_concurrent_bulks_with_overlapping_ids(partner):
    clients = [key_client(partner) for _ in range(THREADS)]
    keys = [f"bulk-{i}" for i in range(10)]

    def items(order):
        return [{"external_id": key, "name": f"Name of {key}"} for key in order]

    orders = [keys[i:] + keys[:i] if i % 2 else list(reversed(keys)) for i in range(THREADS)]
    responses = race(
        [lambda c=c, o=o: c.post(f"{URL}bulk/", items(o), format="json") for c, o in zip(clients, orders, strict=True)]
    )
    assert [getattr(r, "status_code", repr(r)) for r in responses] == [200] * THREADS
    assert sorted(Account.objects.values_list("external_id", flat=True)) == sorted(keys)
    created = Counter()
    for response in responses:
        for result in response.json()["results"]:
            created[result["external_id"]] += result["status"] == "created"
    assert created == dict.fromkeys(keys, 1)


def test_concurrent_retries_with_one_idempotency_key_write_once(partner):
    clients = [key_client(partner) for _ in range(THREADS)]
    body = {"external_id": "idem-1", "name": "Once"}
    responses = race(
        [lambda c=c: c.post(URL, body, format="json", headers={"Idempotency-Key": "same-key"}) for c in clients]
    )
    assert [getattr(r, "status_code", repr(r)) for r in responses] == [201] * THREADS
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == THREADS - 1
    assert Account.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    assert len({r.content for r in responses}) == 1


def test_concurrent_creates_of_one_external_id_are_one_201_and_conflicts(partner):
    clients = [key_client(partner) for _ in range(THREADS)]
    body = {"external_id": "create-1", "name": "First wins"}
    responses = race([lambda c=c: c.post(URL, body, format="json") for c in clients])
    assert sorted(getattr(r, "status_code", repr(r)) for r in responses) == [201] + [409] * (THREADS - 1)
    assert Account.objects.count() == 1
