"""usage/: upserts per (account, metric, date), all or none and per-item outcomes, idempotency, the sync
list with its filters, query counts and scope isolation."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics.models import UsageRecord
from tests import factories

URL = "/api/v1/usage/"
BULK = "/api/v1/usage/bulk/"
DAY = datetime.date(2026, 3, 1)


def item(account="a-001", metric="active_users", day=DAY, value="12") -> dict:
    return {"account": account, "metric": metric, "date": day.isoformat(), "value": value}


def stored() -> list[tuple]:
    return sorted(
        UsageRecord.objects.values_list("account__external_id", "metric", "date", "value"),
        key=lambda row: (row[0], row[1], row[2]),
    )


def days(count: int, account="a-001") -> list[dict]:
    return [item(account=account, day=DAY + datetime.timedelta(days=n), value=str(n)) for n in range(count)]


# --- POST usage/: all or none -------------------------------------------------------------------


def test_post_upserts_and_resending_a_day_replaces_it(client_a, account_a):
    response = client_a.post(URL, [item(value="12"), item(metric="logins", value="3.5")], format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "results": [
            {"index": 0, "status": "created", "account": "a-001", "metric": "active_users", "date": "2026-03-01"},
            {"index": 1, "status": "created", "account": "a-001", "metric": "logins", "date": "2026-03-01"},
        ]
    }
    response = client_a.post(URL, [item(value="15")], format="json")
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"index": 0, "status": "updated", "account": "a-001", "metric": "active_users", "date": "2026-03-01"}
    ]
    assert stored() == [
        ("a-001", "active_users", DAY, Decimal(15)),
        ("a-001", "logins", DAY, Decimal("3.5")),
    ]


def test_values_are_rounded_to_four_places(client_a, account_a):
    response = client_a.post(URL, [item(value=1.23455), item(metric="logins", value="-7")], format="json")
    assert response.status_code == 200, response.content
    assert stored() == [
        ("a-001", "active_users", DAY, Decimal("1.2346")),
        ("a-001", "logins", DAY, Decimal(-7)),
    ]


def test_an_invalid_item_writes_nothing(client_a, account_a):
    UsageRecord.objects.create(account=account_a, metric="active_users", date=DAY, value=Decimal(1))
    response = client_a.post(
        URL,
        [
            item(value="99"),
            item(metric="not a slug"),
            item(account="nobody"),
            item(value="NaN", metric="logins"),
            "not an object",
            {"account": "a-001"},
        ],
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"] == "5 of 6 items cannot be written; nothing was written."
    by_index = {entry["index"]: entry for entry in error["items"]}
    assert sorted(by_index) == [1, 2, 3, 4, 5]
    assert set(by_index[1]["error"]["fields"]) == {"metric"}
    assert by_index[2]["error"]["fields"] == {"account": ["There is no account “nobody”."]}
    assert by_index[3]["error"]["fields"] == {"value": ["a finite number is required."]}
    assert by_index[4]["error"]["message"] == "Each item must be a JSON object."
    assert set(by_index[5]["error"]["fields"]) == {"metric", "date", "value"}
    assert all(entry["status"] == "error" for entry in error["items"])
    assert stored() == [("a-001", "active_users", DAY, Decimal(1))]


def test_the_same_day_twice_in_one_request_is_refused(client_a, account_a):
    response = client_a.post(URL, [item(value="1"), item(value="2")], format="json")
    assert response.status_code == 400
    assert [entry["index"] for entry in response.json()["error"]["items"]] == [1]
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize("payload", [{"account": "a-001"}, "text", 12, None])
def test_a_body_that_is_not_a_list_is_refused(client_a, account_a, payload):
    response = client_a.post(URL, payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not UsageRecord.objects.exists()


def test_an_empty_list_writes_nothing(client_a):
    response = client_a.post(URL, [], format="json")
    assert response.status_code == 200
    assert response.json() == {"results": []}


def test_more_than_10000_items_is_413(client_a, account_a):
    payload = [item(day=DAY + datetime.timedelta(days=n % 400), metric=f"m{n // 400}") for n in range(10_001)]
    for url in (URL, BULK, BULK + "?all_or_none=false"):
        response = client_a.post(url, payload, format="json")
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
    assert not UsageRecord.objects.exists()


def test_10000_items_are_written(client_a, account_a):
    payload = [item(day=DAY + datetime.timedelta(days=n % 400), metric=f"m{n // 400}", value=n) for n in range(10_000)]
    response = client_a.post(URL, payload, format="json")
    assert response.status_code == 200
    assert UsageRecord.objects.count() == 10_000
    assert UsageRecord.objects.get(metric="m24", date=DAY + datetime.timedelta(days=399)).value == Decimal(9999)


# --- POST usage/bulk/ ---------------------------------------------------------------------------


def test_bulk_all_or_none_by_default(client_a, account_a):
    response = client_a.post(BULK, [item(), item(account="nobody")], format="json")
    assert response.status_code == 400
    assert [entry["index"] for entry in response.json()["error"]["items"]] == [1]
    assert not UsageRecord.objects.exists()


def test_bulk_writes_valid_items_and_reports_each_outcome(client_a, account_a):
    UsageRecord.objects.create(account=account_a, metric="logins", date=DAY, value=Decimal(1))
    payload = [
        item(metric="logins", value="4"),
        item(account="nobody"),
        item(value="7"),
        item(value="lots", day=DAY.replace(day=2)),
    ]
    response = client_a.post(BULK + "?all_or_none=false", payload, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, "updated"), (1, "error"), (2, "created"), (3, "error")]
    assert results[1]["error"] == {
        "code": "invalid",
        "message": "account: There is no account “nobody”.",
        "fields": {"account": ["There is no account “nobody”."]},
    }
    assert results[3]["error"]["fields"] == {"value": ["a finite number is required."]}
    assert stored() == [
        ("a-001", "active_users", DAY, Decimal(7)),
        ("a-001", "logins", DAY, Decimal(4)),
    ]


def test_bulk_with_a_bad_flag_is_400(client_a, account_a):
    response = client_a.post(BULK + "?all_or_none=maybe", [item()], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"all_or_none": ["Must be true or false."]}
    assert not UsageRecord.objects.exists()


# --- idempotency --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [URL, BULK])
def test_idempotency_key_replays_the_first_response(client_a, account_a, url):
    first = client_a.post(url, [item(value="5")], format="json", HTTP_IDEMPOTENCY_KEY="usage-1")
    assert first.status_code == 200
    UsageRecord.objects.update(value=Decimal(99))  # a replay must not write again
    again = client_a.post(url, [item(value="5")], format="json", HTTP_IDEMPOTENCY_KEY="usage-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert stored() == [("a-001", "active_users", DAY, Decimal(99))]
    other = client_a.post(url, [item(value="6")], format="json", HTTP_IDEMPOTENCY_KEY="usage-1")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_mismatch"
    assert stored() == [("a-001", "active_users", DAY, Decimal(99))]


# --- query counts -------------------------------------------------------------------------------


def post_queries(client, payload, url=URL) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, payload, format="json")
    assert response.status_code == 200, response.content
    return len(queries)


@pytest.mark.parametrize("url", [URL, BULK + "?all_or_none=false"])
def test_a_batch_costs_the_same_queries_whatever_its_size(client_a, partner_a, account_a, url):
    factories.AccountFactory(external_id="a-002", partner=partner_a)
    client_a.get(URL)  # the key's last-used time is written once a minute, not counted below
    small = post_queries(client_a, days(10), url)
    large = post_queries(client_a, days(1000, account="a-002"), url)
    replaced = post_queries(client_a, days(1000, account="a-002"), url)
    assert small == large == replaced
    assert UsageRecord.objects.count() == 1010


def test_list_costs_the_same_queries_for_3_and_30_records(client_a, account_a):
    client_a.get(URL)
    for n in range(3):
        factories.UsageRecordFactory(account=account_a, date=DAY + datetime.timedelta(days=n))
    with CaptureQueriesContext(connection) as small:
        assert len(client_a.get(URL).json()["results"]) == 3
    other = factories.AccountFactory(external_id="a-009", partner=account_a.partner)
    for n in range(27):
        factories.UsageRecordFactory(account=other, date=DAY + datetime.timedelta(days=n))
    with CaptureQueriesContext(connection) as large:
        assert len(client_a.get(URL).json()["results"]) == 30
    assert len(small) == len(large)


# --- GET usage/ ---------------------------------------------------------------------------------


def test_list_shape_filters_and_paging(client_a, account_a, partner_a):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)
    first = factories.UsageRecordFactory(account=account_a, metric="logins", date=DAY, value=Decimal("2.5"))
    factories.UsageRecordFactory(account=account_a, metric="active_users", date=DAY + datetime.timedelta(days=3))
    factories.UsageRecordFactory(account=other, metric="logins", date=DAY + datetime.timedelta(days=5))
    response = client_a.get(URL, {"limit": 2})
    assert response.status_code == 200
    page = response.json()
    assert page["results"][0] == {
        "id": first.pk,
        "account": "a-001",
        "metric": "logins",
        "date": "2026-03-01",
        "value": "2.5000",
        "created_at": first.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": first.updated_at.isoformat().replace("+00:00", "Z"),
    }
    assert len(page["results"]) == 2
    rest = client_a.get(URL, {"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(rest["results"]) == 1 and rest["next_cursor"] is None

    def listed(**params) -> list[tuple]:
        response = client_a.get(URL, params)
        assert response.status_code == 200, response.content
        return [(row["account"], row["metric"], row["date"]) for row in response.json()["results"]]

    assert listed(account="a-002") == [("a-002", "logins", "2026-03-06")]
    assert listed(metric="logins") == [("a-001", "logins", "2026-03-01"), ("a-002", "logins", "2026-03-06")]
    assert listed(date_from="2026-03-02", date_to="2026-03-05") == [("a-001", "active_users", "2026-03-04")]
    assert len(listed(include_deleted="true")) == 3


def test_updated_since(client_a, account_a):
    old = factories.UsageRecordFactory(account=account_a, date=DAY)
    new = factories.UsageRecordFactory(account=account_a, date=DAY + datetime.timedelta(days=1))
    UsageRecord.objects.filter(pk=old.pk).update(updated_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    response = client_a.get(URL, {"updated_since": "2026-02-01T00:00:00Z"})
    assert [row["id"] for row in response.json()["results"]] == [new.pk]
    assert timezone.now() > datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"include_deleted": "perhaps"}, "include_deleted"),
        ({"date_from": "2026-13-01"}, "date_from"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
def test_bad_list_parameters_are_400(client_a, params, field):
    response = client_a.get(URL, params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


# --- who may do what ----------------------------------------------------------------------------


def test_another_partners_account_is_unknown(client_b, account_a, account_b):
    response = client_b.post(URL, [item(account="b-001"), item(account="a-001")], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["items"] == [
        {
            "index": 1,
            "status": "error",
            "error": {
                "code": "invalid",
                "message": "account: There is no account “a-001”.",
                "fields": {"account": ["There is no account “a-001”."]},
            },
        }
    ]
    response = client_b.post(BULK + "?all_or_none=false", [item(account="b-001"), item(account="a-001")], format="json")
    assert [r["status"] for r in response.json()["results"]] == ["created", "error"]
    assert stored() == [("b-001", "active_users", DAY, Decimal(12))]


def test_scope_isolation_on_the_list(client_a, client_b, client_all, account_a, account_b):
    factories.UsageRecordFactory(account=account_a, date=DAY)
    factories.UsageRecordFactory(account=account_b, date=DAY)

    def accounts(client, **params) -> list[str]:
        response = client.get(URL, params)
        assert response.status_code == 200
        return sorted(row["account"] for row in response.json()["results"])

    assert accounts(client_a) == ["a-001"]
    assert accounts(client_b) == ["b-001"]
    assert accounts(client_all) == ["a-001", "b-001"]
    assert accounts(client_b, account="a-001") == []


def test_the_all_partner_writes_any_account(client_all, account_a, account_b):
    response = client_all.post(URL, [item(account="a-001"), item(account="b-001")], format="json")
    assert response.status_code == 200
    assert [row[0] for row in stored()] == ["a-001", "b-001"]


def test_a_deleted_account_is_unknown(client_a, account_a):
    account_a.deleted_at = timezone.now()
    account_a.save(update_fields=["deleted_at"])
    response = client_a.post(URL, [item()], format="json")
    assert response.status_code == 400
    assert not UsageRecord.objects.exists()


def test_sessions_csm_reads_leader_writes(client, csm_user, leader_api, account_a):
    client.force_login(csm_user)
    assert client.get(URL).status_code == 200
    assert client.post(URL, [item()], content_type="application/json").status_code == 403
    assert leader_api.post(URL, [item()], format="json").status_code == 200
    assert stored() == [("a-001", "active_users", DAY, Decimal(12))]


def test_without_a_key_is_401(client):
    response = client.get(URL)
    assert response.status_code == 401
