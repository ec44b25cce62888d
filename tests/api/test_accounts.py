"""accounts/: every method, tier history, tombstones, filters, sessions, and query counts."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.filters import AccountFilterSet
from accounts.models import Account, TierAssignment
from tests import factories

URL = "/api/v1/accounts/"


def detail(external_id: str) -> str:
    return f"{URL}{external_id}/"


def ids(response) -> list[str]:
    return [row["external_id"] for row in response.json()["results"]]


def row_of(external_id: str) -> dict:
    return Account.objects.filter(external_id=external_id).values().get()


# --- reading ------------------------------------------------------------------------------------


def test_detail_renders_every_field(client_all, account_a):
    account_a.mrr = "1250.00"
    account_a.health_score = "72.5"
    account_a.health_band = Account.HealthBand.YELLOW
    account_a.renewal_date = datetime.date(2027, 3, 31)
    account_a.save()
    body = client_all.get(detail("a-001")).json()
    assert body == {
        "id": account_a.pk,
        "external_id": "a-001",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "deleted_at": None,
        "name": "Alpha",
        "domain": "a-001.example.com",
        "industry": "Software",
        "region": "EMEA",
        "country": "DE",
        "employees": 250,
        "owner": account_a.owner.username,
        "partner": "Partner A",
        "tier": "low-touch",
        "tier_locked": False,
        "lifecycle_stage": "onboarding",
        "pricing_model": "subscription",
        "customer_since": "2025-01-01",
        "renewal_date": "2027-03-31",
        "churned_at": None,
        "churn_reason": "",
        "mrr": "1250.00",
        "health_score": "72.5",
        "health_band": "yellow",
        "last_touch_at": None,
    }
    account_a.refresh_from_db()
    assert body["updated_at"] == account_a.updated_at.isoformat().replace("+00:00", "Z")


def test_list_in_sync_order(client_all, account_a, account_b):
    Account.objects.filter(pk=account_a.pk).update(updated_at=timezone.now() + datetime.timedelta(seconds=5))
    response = client_all.get(URL)
    assert response.status_code == 200
    assert ids(response) == ["b-001", "a-001"]
    assert response.json()["next"] is None


def test_list_query_count_does_not_grow_with_rows(client_all):
    def count(n: int) -> int:
        Account.objects.all().delete()
        partner = factories.PartnerFactory()
        for _ in range(n):
            factories.AccountFactory(partner=partner)
        client_all.get(URL)  # the key's last use is written at most once a minute
        with CaptureQueriesContext(connection) as queries:
            response = client_all.get(URL)
        assert len(response.json()["results"]) == n
        return len(queries)

    assert count(3) == count(30)


# --- creating and upserting ---------------------------------------------------------------------


def test_post_creates_and_own_partner_becomes_its_partner(client_a, partner_a):
    response = client_a.post(URL, {"external_id": "new-1", "name": "Newco", "country": "FR"}, format="json")
    assert response.status_code == 201
    row = row_of("new-1")
    assert (row["name"], row["country"], row["partner_id"]) == ("Newco", "FR", partner_a.pk)
    assert response.json()["partner"] == "Partner A"
    # The creator sees it; another own partner does not.
    assert client_a.get(detail("new-1")).status_code == 200


def test_all_partner_creating_an_account_does_not_become_its_partner(client_all, client_a):
    assert client_all.post(URL, {"external_id": "new-2", "name": "Newco"}, format="json").status_code == 201
    assert row_of("new-2")["partner_id"] is None
    assert client_a.get(detail("new-2")).status_code == 404


def test_post_of_an_existing_external_id_is_a_conflict(client_a, account_a):
    response = client_a.post(URL, {"external_id": "a-001", "name": "Again"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert row_of("a-001")["name"] == "Alpha"


def test_put_creates_then_identical_put_changes_nothing(client_a, partner_a):
    body = {"name": "Putco", "domain": "putco.io", "employees": 12, "tier": "high-touch", "tier_locked": True}
    first = client_a.put(detail("put-1"), body, format="json")
    assert first.status_code == 201
    before = row_of("put-1")
    assert (before["name"], before["employees"], before["partner_id"]) == ("Putco", 12, partner_a.pk)
    assert TierAssignment.objects.filter(account_id=before["id"]).count() == 1

    second = client_a.put(detail("put-1"), body, format="json")
    assert second.status_code == 200
    assert row_of("put-1") == before  # updated_at included
    assert second.json() == first.json()
    assert TierAssignment.objects.filter(account_id=before["id"]).count() == 1
    assert Account.objects.count() == 1


def test_put_changes_what_it_gives_and_keeps_the_rest(client_a, account_a):
    response = client_a.put(detail("a-001"), {"name": "Alpha Two", "employees": 99}, format="json")
    assert response.status_code == 200
    row = row_of("a-001")
    assert (row["name"], row["employees"], row["domain"], row["country"]) == (
        "Alpha Two",
        99,
        "a-001.example.com",
        "DE",
    )
    assert row["updated_at"] > account_a.updated_at


def test_put_external_id_in_body_must_match_url(client_a, account_a):
    response = client_a.put(detail("a-001"), {"external_id": "a-002", "name": "X"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"external_id": ["It differs from the external id in the URL."]}


def test_tier_set_through_the_api_opens_a_period_with_source_api(client_a, account_a):
    high = factories.default_tier("high-touch")
    response = client_a.patch(detail("a-001"), {"tier": "high-touch", "tier_locked": True}, format="json")
    assert response.status_code == 200
    assert response.json()["tier"] == "high-touch"
    open_period = TierAssignment.objects.get(account=account_a, ended_at__isnull=True)
    assert (open_period.tier_id, open_period.source, open_period.assigned_by_id) == (high.pk, "api", None)
    assert row_of("a-001")["tier_id"] == high.pk


def test_leader_setting_a_tier_is_recorded_as_assigned_by_them(leader_api, leader, account_a):
    response = leader_api.patch(detail("a-001"), {"tier": "tech-touch", "tier_locked": True}, format="json")
    assert response.status_code == 200
    open_period = TierAssignment.objects.get(account=account_a, ended_at__isnull=True)
    assert (open_period.tier.slug, open_period.source, open_period.assigned_by_id) == ("tech-touch", "api", leader.pk)


def test_unknown_tier_or_owner_is_a_field_error(client_a, account_a):
    response = client_a.patch(detail("a-001"), {"tier": "platinum", "owner": "nobody"}, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields == {"owner": ["There is no user “nobody”."], "tier": ["There is no tier “platinum”."]}


def test_patch_changes_only_the_given_fields(client_a, account_a, csm_user):
    response = client_a.patch(detail("a-001"), {"owner": "priya", "renewal_date": "2027-01-15"}, format="json")
    assert response.status_code == 200
    row = row_of("a-001")
    assert (row["owner_id"], row["renewal_date"], row["name"]) == (csm_user.pk, datetime.date(2027, 1, 15), "Alpha")


def test_patch_of_a_missing_account_is_404(client_a):
    response = client_a.patch(detail("nope"), {"name": "X"}, format="json")
    assert response.status_code == 404
    assert not Account.objects.exists()


# --- deleting -----------------------------------------------------------------------------------


def test_delete_leaves_a_tombstone(client_a, account_a):
    assert client_a.delete(detail("a-001")).status_code == 204
    row = row_of("a-001")
    assert row["deleted_at"] is not None
    shown = client_a.get(detail("a-001")).json()
    assert shown["deleted_at"] == row["deleted_at"].isoformat().replace("+00:00", "Z")
    assert ids(client_a.get(URL)) == []
    assert ids(client_a.get(URL, {"include_deleted": "true"})) == ["a-001"]
    # Deleting again is harmless.
    assert client_a.delete(detail("a-001")).status_code == 204
    assert row_of("a-001")["deleted_at"] == row["deleted_at"]


def test_stale_put_does_not_resurrect_a_tombstone(client_a, account_a):
    client_a.delete(detail("a-001"))
    before = row_of("a-001")
    response = client_a.put(detail("a-001"), {"name": "Stale"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "deleted"
    assert row_of("a-001") == before
    # Saying it is deleted changes nothing either.
    assert client_a.put(detail("a-001"), {"name": "Stale", "deleted": True}, format="json").status_code == 200
    assert row_of("a-001") == before


def test_deleted_false_restores(client_a, account_a):
    client_a.delete(detail("a-001"))
    response = client_a.put(detail("a-001"), {"name": "Back", "deleted": False}, format="json")
    assert response.status_code == 200
    row = row_of("a-001")
    assert (row["deleted_at"], row["name"]) == (None, "Back")
    assert ids(client_a.get(URL)) == ["a-001"]


def test_deleted_true_in_a_put_deletes(client_a, account_a):
    response = client_a.put(detail("a-001"), {"name": "Alpha", "deleted": True}, format="json")
    assert response.status_code == 200
    assert response.json()["deleted_at"] is not None
    assert row_of("a-001")["deleted_at"] is not None


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_creates_and_updates(client_a, partner_a, account_a):
    items = [{"external_id": "a-001", "name": "Alpha 2"}, {"external_id": "a-002", "name": "Alpha Two"}]
    response = client_a.post(f"{URL}bulk/", items, format="json")
    assert response.status_code == 200
    new = Account.objects.get(external_id="a-002")
    assert response.json() == {
        "results": [
            {"index": 0, "status": "updated", "id": account_a.pk, "external_id": "a-001"},
            {"index": 1, "status": "created", "id": new.pk, "external_id": "a-002"},
        ]
    }
    assert (row_of("a-001")["name"], new.name, new.partner_id) == ("Alpha 2", "Alpha Two", partner_a.pk)


def test_bulk_all_or_none_writes_nothing_when_an_item_is_bad(client_a, account_a):
    items = [{"external_id": "a-001", "name": "Changed"}, {"external_id": "a-003"}, "not an object"]
    response = client_a.post(f"{URL}bulk/", items, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert [(item["index"], item["error"]["code"]) for item in error["items"]] == [(1, "invalid"), (2, "invalid")]
    assert error["items"][0]["error"]["fields"] == {"name": ["This field is required."]}
    assert row_of("a-001")["name"] == "Alpha"
    assert Account.objects.count() == 1


def test_bulk_not_all_or_none_writes_the_valid_items(client_a, account_a, account_b):
    items = [{"external_id": "a-002", "name": "Ok"}, {"external_id": "b-001", "name": "Theirs"}, {"name": ["x"]}]
    response = client_a.post(f"{URL}bulk/?all_or_none=false", items, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, "created"), (1, "error"), (2, "error")]
    assert results[1]["error"]["code"] == "conflict"
    assert row_of("a-002")["name"] == "Ok"
    assert row_of("b-001")["name"] == "Bravo"


def test_bulk_repeated_external_id_is_refused(client_a):
    items = [{"external_id": "x", "name": "One"}, {"external_id": "x", "name": "Two"}]
    response = client_a.post(f"{URL}bulk/", items, format="json")
    assert response.status_code == 400
    assert [item["index"] for item in response.json()["error"]["items"]] == [1]
    assert not Account.objects.exists()


def test_bulk_query_count_does_not_grow_with_items(client_a, partner_a):
    def count(n: int) -> int:
        Account.objects.all().delete()
        TierAssignment.objects.all().delete()
        for i in range(n // 2):
            factories.AccountFactory(partner=partner_a, external_id=f"q{n}-{i}")
        items = [
            {"external_id": f"q{n}-{i}", "name": f"Q {i}", "tier": "high-touch", "tier_locked": True, "owner": "priya"}
            for i in range(n)
        ]
        client_a.get(URL)  # the key's last use is written at most once a minute
        with CaptureQueriesContext(connection) as queries:
            response = client_a.post(f"{URL}bulk/", items, format="json")
        assert response.status_code == 200, response.json()
        statuses = [r["status"] for r in response.json()["results"]]
        assert statuses == ["updated"] * (n // 2) + ["created"] * (n - n // 2)
        assert Account.objects.filter(name__startswith="Q ", tier__slug="high-touch").count() == n
        assert TierAssignment.objects.filter(source="api", ended_at__isnull=True).count() == n
        return len(queries)

    factories.csm_user(username="priya")
    assert count(3) == count(30)


# --- filters ------------------------------------------------------------------------------------


@pytest.fixture
def filter_accounts(partner_a):
    today = timezone.localdate()
    high = factories.default_tier("high-touch")
    owner = factories.csm_user(username="owner1")

    def make(external_id, **fields):
        return factories.AccountFactory(external_id=external_id, partner=partner_a, **fields)

    make("f-1", name="Red Acme", tier=high, health_band="red", renewal_date=today + datetime.timedelta(days=10))
    make("f-2", name="Green Co", health_band="green", renewal_date=today + datetime.timedelta(days=100), owner=owner)
    make("f-3", name="Acme Labs", tier=None, health_band="", region="APAC", renewal_date=None)
    make("f-4", name="Yellow Ltd", tier=high, health_band="yellow", renewal_date=today + datetime.timedelta(days=40))
    gone = make("f-5", name="Gone Acme", tier=high, health_band="red")
    gone.deleted_at = timezone.now()
    gone.save()
    return today, owner


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tier": "high-touch"}, {"f-1", "f-4"}),
        ({"tier": "none"}, {"f-3"}),
        ({"health_band": "red"}, {"f-1"}),
        ({"health_band": "none"}, {"f-3"}),
        ({"renewal_before": "+50"}, {"f-1", "f-4"}),
        ({"renewal_after": "+50"}, {"f-2"}),
        ({"renewal_within": "30"}, {"f-1"}),
        ({"q": "acme"}, {"f-1", "f-3"}),
        ({"q": "f-2"}, {"f-2"}),
        ({"region": "APAC"}, {"f-3"}),
        ({"owner": "owner"}, {"f-2"}),
        ({"tier": "high-touch", "health_band": "yellow"}, {"f-4"}),
    ],
)
def test_filters_match_the_workspace_filterset(client_a, filter_accounts, params, expected):
    today, owner = filter_accounts
    params = dict(params)
    for name in ("renewal_before", "renewal_after"):
        if name in params:
            params[name] = (today + datetime.timedelta(days=int(params[name]))).isoformat()
    if params.get("owner") == "owner":
        params["owner"] = str(owner.pk)
    response = client_a.get(URL, params)
    assert response.status_code == 200
    assert set(ids(response)) == expected
    workspace = AccountFilterSet(params, queryset=Account.objects.all())
    assert {a.external_id for a in workspace.qs} == expected
    # With tombstones, the deleted account matching the filter is listed too.
    with_deleted = set(ids(client_a.get(URL, {**params, "include_deleted": "true"})))
    assert with_deleted - expected <= {"f-5"}


def test_bad_filter_value_is_a_field_error(client_a):
    response = client_a.get(URL, {"health_band": "purple", "renewal_before": "soon"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"health_band", "renewal_before"}


def test_filters_do_not_hide_an_object_from_its_url(client_a, account_a):
    assert client_a.get(detail("a-001"), {"health_band": "red"}).status_code == 200


# --- sessions -----------------------------------------------------------------------------------


def test_csm_session_reads_but_does_not_write(csm_user, account_a):
    client = APIClient()
    client.force_login(csm_user)
    assert ids(client.get(URL)) == ["a-001"]
    assert client.get(detail("a-001")).status_code == 200
    for response in (
        client.put(detail("a-001"), {"name": "CSM"}, format="json"),
        client.patch(detail("a-001"), {"name": "CSM"}, format="json"),
        client.post(URL, {"name": "CSM"}, format="json"),
        client.delete(detail("a-001")),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert row_of("a-001")["name"] == "Alpha"
    assert row_of("a-001")["deleted_at"] is None


def test_leader_session_writes(leader_api, account_a):
    assert leader_api.patch(detail("a-001"), {"name": "By lead"}, format="json").status_code == 200
    assert leader_api.put(detail("l-1"), {"name": "Lead co"}, format="json").status_code == 201
    assert row_of("a-001")["name"] == "By lead"
    assert row_of("l-1")["partner_id"] is None
    assert leader_api.delete(detail("l-1")).status_code == 204


def test_user_without_role_is_403_and_anonymous_is_401(outsider, account_a):
    client = APIClient()
    client.force_login(outsider)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    anonymous = APIClient().get(URL)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_bulk_of_one_bad_item_still_lists_items(client_a, account_b):
    response = client_a.post(f"{URL}bulk/", [{"external_id": "b-001", "name": "Theirs"}], format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert [(item["index"], item["error"]["code"]) for item in error["items"]] == [(0, "conflict")]
    assert row_of("b-001")["name"] == "Bravo"
