"""Incremental sync: keyset pages in (updated_at, id) order that neither skip nor repeat while data changes."""

import base64
import datetime
from collections import Counter

import pytest
from django.utils import timezone

from accounts.models import Account
from api.pagination import encode_cursor
from tests import factories

URL = "/api/v1/accounts/"


def page_through(client, params: dict, between=None) -> list[dict]:
    """Every row of every page; `between(page_number)` runs after each page."""
    rows, cursor, number = [], None, 0
    while True:
        response = client.get(URL, {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.json()
        body = response.json()
        rows += body["results"]
        cursor = body["next_cursor"]
        number += 1
        if cursor is None:
            assert body["next"] is None
            return rows
        assert body["next"].endswith(f"cursor={cursor}") or f"cursor={cursor}&" in body["next"]
        if between is not None:
            between(number)


def make_accounts(partner, count: int) -> list[Account]:
    return [factories.AccountFactory(external_id=f"s-{i:03d}", partner=partner) for i in range(count)]


def test_paging_while_data_changes_neither_skips_nor_repeats(client_a, partner_a):
    accounts = make_accounts(partner_a, 20)
    other = factories.AccountFactory(external_id="other", partner=factories.PartnerFactory())
    changed: dict[str, str] = {}  # external id -> its final name or "deleted"

    def between(page: int) -> None:
        if page == 1:
            # One already seen, one not yet seen, one new, one deleted before it was seen.
            client_a.patch(f"{URL}s-001/", {"name": "Seen, then changed"}, format="json")
            client_a.patch(f"{URL}s-015/", {"name": "Changed before seen"}, format="json")
            client_a.put(f"{URL}s-new/", {"name": "Created mid-sync"}, format="json")
            client_a.delete(f"{URL}s-012/")
            changed.update({"s-001": "Seen, then changed", "s-015": "Changed before seen"})
            changed.update({"s-new": "Created mid-sync", "s-012": "deleted"})
        if page == 3:
            client_a.delete(f"{URL}s-002/")  # seen on page 1
            client_a.patch(f"{URL}s-001/", {"name": "Changed twice"}, format="json")
            changed.update({"s-002": "deleted", "s-001": "Changed twice"})
        Account.objects.filter(pk=other.pk).update(name=f"page {page}")  # outside the scope

    rows = page_through(client_a, {"limit": 4, "include_deleted": "true"}, between)
    seen = Counter(row["external_id"] for row in rows)
    unchanged = {a.external_id for a in accounts} - set(changed)
    assert len(unchanged) == 16
    assert {key: seen[key] for key in unchanged} == dict.fromkeys(unchanged, 1)
    assert "other" not in seen
    # A changed row is seen after its change, whether or not it was seen before; its last sighting is final.
    last = {row["external_id"]: row for row in rows}
    for key, final in changed.items():
        assert seen[key] >= 1
        if final == "deleted":
            assert last[key]["deleted_at"] is not None
        else:
            assert last[key]["name"] == final
    assert seen["s-001"] == 2  # on page 1, then once more at the end, changed twice by then
    assert seen["s-015"] == 1
    # The pages came in strictly increasing (updated_at, id) order.
    keys = [(datetime.datetime.fromisoformat(row["updated_at"]), row["id"]) for row in rows]
    assert keys == sorted(set(keys))


def test_rows_with_the_same_updated_at_are_paged_by_id(client_all, partner_a):
    accounts = make_accounts(partner_a, 10)
    same = timezone.now()
    Account.objects.update(updated_at=same)
    rows = page_through(client_all, {"limit": 3})
    assert [row["id"] for row in rows] == sorted(a.pk for a in accounts)


def test_tombstones_only_with_include_deleted(client_a, partner_a):
    make_accounts(partner_a, 3)
    client_a.delete(f"{URL}s-001/")
    assert [row["external_id"] for row in page_through(client_a, {})] == ["s-000", "s-002"]
    rows = page_through(client_a, {"include_deleted": "true"})
    assert [row["external_id"] for row in rows] == ["s-000", "s-002", "s-001"]
    assert rows[-1]["deleted_at"] is not None


def test_updated_since(client_a, partner_a):
    accounts = make_accounts(partner_a, 4)
    base = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)
    for i, account in enumerate(accounts):
        Account.objects.filter(pk=account.pk).update(updated_at=base + datetime.timedelta(hours=i))

    def since(value: str) -> list[str]:
        response = client_a.get(URL, {"updated_since": value})
        assert response.status_code == 200, response.json()
        return [row["external_id"] for row in response.json()["results"]]

    assert since("2026-05-01T13:00:00Z") == ["s-001", "s-002", "s-003"]  # inclusive
    assert since("2026-05-01T13:00:00.000001Z") == ["s-002", "s-003"]
    assert since("2026-05-01T15:00:00+02:00") == ["s-001", "s-002", "s-003"]  # 13:00 UTC
    assert since("2026-05-01T14:00:00") == ["s-002", "s-003"]  # no offset: UTC
    assert since("2026-05-02") == []
    assert since("2026-05-01") == ["s-000", "s-001", "s-002", "s-003"]


def test_default_page_is_100_and_limit_is_honoured(client_all, partner_a):
    Account.objects.bulk_create([Account(name=f"Bulk {i}", external_id=f"bulk-{i:03d}") for i in range(101)])
    first = client_all.get(URL).json()
    assert len(first["results"]) == 100
    assert first["next_cursor"] is not None
    rest = client_all.get(URL, {"cursor": first["next_cursor"]}).json()
    assert [row["external_id"] for row in rest["results"]] == ["bulk-100"]
    assert rest["next_cursor"] is None
    assert len(client_all.get(URL, {"limit": "1000"}).json()["results"]) == 101
    assert len(client_all.get(URL, {"limit": "7"}).json()["results"]) == 7


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "x" * 500}, "cursor"),
        ({"cursor": encode_cursor(timezone.now(), 1)[:-3]}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),  # [1,2]
        ({"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwxXQ"}, "cursor"),  # no offset
        ({"cursor": "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzEwOjAwIiwxXQ"}, "cursor"),  # before year 1 in UTC
        ({"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwWiIsMWUxMDBd"}, "cursor"),  # a float id
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"updated_since": "2026-02-30"}, "updated_since"),
        ({"updated_since": "9999-12-31T23:59:59-23:00"}, "updated_since"),
        ({"updated_since": "0001-01-01T00:00:00+14:00"}, "updated_since"),
        ({"include_deleted": "maybe"}, "include_deleted"),
    ],
)
def test_bad_paging_parameters_are_400(client_all, account_a, params, field):
    response = client_all.get(URL, params)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    assert list(response.json()["error"]["fields"]) == [field]


def test_a_cursor_of_nested_json_is_400(client_all):
    token = base64.urlsafe_b64encode(b"[" * 150).decode().rstrip("=")
    response = client_all.get(URL, {"cursor": token})
    assert response.status_code == 400
