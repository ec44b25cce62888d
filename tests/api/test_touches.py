"""touches/: every method, contacts and CSM references, the account's last touch, bulk writes, query counts
and scope isolation."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, Contact, Touch
from tests import factories

URL = "/api/v1/touches/"
FIELDS = {
    "id",
    "external_id",
    "created_at",
    "updated_at",
    "deleted_at",
    "account",
    "csm",
    "contacts",
    "kind",
    "occurred_at",
    "duration_minutes",
    "subject",
    "notes",
    "sentiment",
    "next_step",
    "next_step_due",
    "source",
}
UTC = datetime.UTC
JUNE_3 = datetime.datetime(2025, 6, 3, 9, 30, tzinfo=UTC)
MAY_1 = datetime.datetime(2025, 5, 1, 14, 0, tzinfo=UTC)


def detail(external_id: str) -> str:
    return f"{URL}{external_id}/"


def body(**fields) -> dict:
    return {
        "account": "a-001",
        "csm": "priya",
        "contacts": ["c-ann"],
        "kind": "meeting",
        "occurred_at": "2025-06-03T09:30:00Z",
        "duration_minutes": 45,
        "subject": "Quarterly review",
        "notes": "Renewal looks safe.",
        "sentiment": 1,
        "next_step": "Send the proposal",
        "next_step_due": "2025-06-10",
        **fields,
    }


def stored(touch: Touch) -> tuple:
    touch.refresh_from_db()
    return (
        touch.account.external_id,
        touch.csm.username if touch.csm else None,
        sorted(touch.contacts.values_list("external_id", flat=True)),
        touch.kind,
        touch.occurred_at,
        touch.subject,
        touch.sentiment,
        touch.source,
        touch.deleted_at is not None,
    )


def last_touch(account: Account) -> datetime.datetime | None:
    account.refresh_from_db()
    return account.last_touch_at


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["external_id"] for row in response.json()["results"]]


@pytest.fixture
def ann(account_a):
    return factories.ContactFactory(account=account_a, external_id="c-ann", name="Ann Lee")


@pytest.fixture
def cy(account_a):
    return factories.ContactFactory(account=account_a, external_id="c-cy", name="Cy Young")


@pytest.fixture
def call(account_a, csm_user, ann):
    """A call with Ann logged in the workspace on 1 May 2025, with the account's last touch to match."""
    touch = factories.TouchFactory(
        account=account_a, csm=csm_user, external_id="t-call", occurred_at=MAY_1, subject="Check-in"
    )
    touch.contacts.set([ann])
    Account.objects.filter(pk=account_a.pk).update(last_touch_at=MAY_1)
    return touch


@pytest.fixture
def bravo_touch(account_b):
    return factories.TouchFactory(account=account_b, external_id="t-bravo", csm=None, occurred_at=MAY_1)


# --- reading ------------------------------------------------------------------------------------


def test_list_renders_touches_with_their_references(client_a, call, cy):
    call.contacts.add(cy)

    response = client_a.get(URL)

    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert set(row) == FIELDS
    assert {k: v for k, v in row.items() if k not in ("created_at", "updated_at", "contacts")} == {
        "id": call.pk,
        "external_id": "t-call",
        "deleted_at": None,
        "account": "a-001",
        "csm": "priya",
        "kind": "call",
        "occurred_at": "2025-05-01T14:00:00Z",
        "duration_minutes": None,
        "subject": "Check-in",
        "notes": "",
        "sentiment": 1,
        "next_step": "",
        "next_step_due": None,
        "source": "workspace",
    }
    assert sorted(row["contacts"]) == ["c-ann", "c-cy"]


def test_list_syncs_by_updated_since_and_include_deleted_in_change_order(client_a, account_a):
    old, new, gone = (factories.TouchFactory(account=account_a, external_id=f"t-{n}") for n in range(3))
    Touch.objects.filter(pk=new.pk).update(updated_at=datetime.datetime(2026, 3, 1, tzinfo=UTC))
    Touch.objects.filter(pk=old.pk).update(updated_at=datetime.datetime(2026, 1, 1, tzinfo=UTC))
    Touch.objects.filter(pk=gone.pk).update(
        deleted_at=datetime.datetime(2026, 2, 1, tzinfo=UTC), updated_at=datetime.datetime(2026, 2, 1, tzinfo=UTC)
    )

    assert ids(client_a.get(URL)) == ["t-0", "t-1"]
    assert ids(client_a.get(URL, {"include_deleted": "true"})) == ["t-0", "t-2", "t-1"]
    assert ids(client_a.get(URL, {"updated_since": "2026-02-01T00:00:00Z", "include_deleted": "1"})) == ["t-2", "t-1"]


def test_list_filters(client_a, partner_a, account_a, csm_user, other_csm):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)
    factories.TouchFactory(account=account_a, external_id="t-1", kind="call", csm=csm_user, occurred_at=MAY_1)
    factories.TouchFactory(
        account=account_a, external_id="t-2", kind="qbr", csm=other_csm, occurred_at=JUNE_3, source="api"
    )
    factories.TouchFactory(
        account=other,
        external_id="t-3",
        kind="call",
        csm=None,
        occurred_at=datetime.datetime(2025, 7, 1, tzinfo=UTC),
        source="import",
    )

    def listed(**params) -> list[str]:
        return sorted(ids(client_a.get(URL, params)))

    assert listed(account="a-001") == ["t-1", "t-2"]
    assert listed(account="a-002") == ["t-3"]
    assert listed(kind="call") == ["t-1", "t-3"]
    assert listed(source="api") == ["t-2"]
    assert listed(source="workspace") == ["t-1"]
    assert listed(csm="sam") == ["t-2"]
    assert listed(csm="nobody") == []
    # Both bounds inclusive; a date-time with an offset is read in its own zone.
    assert listed(occurred_after="2025-06-03T09:30:00Z") == ["t-2", "t-3"]
    assert listed(occurred_before="2025-06-03T09:30:00Z") == ["t-1", "t-2"]
    assert listed(occurred_after="2025-06-03T11:30:01+02:00") == ["t-3"]
    assert listed(occurred_after="2025-05-01T00:00:00Z", occurred_before="2025-06-30T00:00:00Z", kind="qbr") == ["t-2"]


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "lunch"},
        {"source": "fax"},
        {"occurred_after": "yesterday"},
        {"occurred_before": "2025-13-01T00:00"},
        # Past the calendar's end in UTC: refused here, not by the database.
        {"occurred_after": "9999-12-31T23:59:59-23:00"},
        {"occurred_before": "0001-01-01T00:00:00+05:00"},
    ],
)
def test_bad_filter_values_are_400_in_the_error_shape(client_a, call, params):
    response = client_a.get(URL, params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("invalid", list(params))


def test_retrieve_and_unknown_is_404(client_a, call):
    response = client_a.get(detail("t-call"))

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["contacts"]) == (call.pk, ["c-ann"])
    assert client_a.get(detail("nope")).status_code == 404


# --- writing one, and the account's last touch --------------------------------------------------


def test_post_creates_an_api_touch_and_sets_the_last_touch(client_a, call, account_a, cy):
    response = client_a.post(
        URL, body(external_id="t-new", contacts=["c-ann", "c-cy"], source="workspace"), format="json"
    )

    assert response.status_code == 201, response.content
    touch = Touch.objects.get(external_id="t-new")
    assert stored(touch) == (
        "a-001",
        "priya",
        ["c-ann", "c-cy"],
        "meeting",
        JUNE_3,
        "Quarterly review",
        1,
        "api",
        False,
    )
    assert (touch.duration_minutes, touch.notes, touch.next_step, touch.next_step_due) == (
        45,
        "Renewal looks safe.",
        "Send the proposal",
        datetime.date(2025, 6, 10),
    )
    assert response.json()["source"] == "api"
    assert sorted(response.json()["contacts"]) == ["c-ann", "c-cy"]
    assert last_touch(account_a) == JUNE_3


def test_an_earlier_touch_leaves_the_last_touch(client_a, account_a, csm_user, ann):
    Account.objects.filter(pk=account_a.pk).update(last_touch_at=JUNE_3)
    factories.TouchFactory(account=account_a, occurred_at=JUNE_3)

    response = client_a.post(URL, body(external_id="t-old", occurred_at="2025-05-01T14:00:00Z"), format="json")

    assert response.status_code == 201
    assert last_touch(account_a) == JUNE_3


def test_post_with_an_existing_external_id_is_409_and_changes_nothing(client_a, call, account_a):
    response = client_a.post(URL, body(external_id="t-call"), format="json")

    assert response.status_code == 409
    assert Touch.objects.count() == 1
    assert stored(call) == ("a-001", "priya", ["c-ann"], "call", MAY_1, "Check-in", 1, "workspace", False)
    assert last_touch(account_a) == MAY_1


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"kind": "lunch"}, ["kind"]),
        ({"sentiment": 2}, ["sentiment"]),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, ["occurred_at"]),
        ({"occurred_at": "not a time"}, ["occurred_at"]),
        ({"duration_minutes": 2**40}, ["duration_minutes"]),
        ({"csm": "nobody"}, ["csm"]),
        ({"contacts": ["c-nobody"]}, ["contacts"]),
        ({"contacts": "c-ann"}, ["contacts"]),
        ({"subject": ""}, ["subject"]),
    ],
)
def test_bad_values_are_400_and_write_nothing(client_a, account_a, csm_user, ann, fields, errors):
    response = client_a.post(URL, body(external_id="t-new", **fields), format="json")

    assert response.status_code == 400, response.content
    assert sorted(response.json()["error"]["fields"]) == errors
    assert Touch.objects.count() == 0
    assert last_touch(account_a) is None


def test_an_inactive_csm_is_unknown(client_a, account_a, csm_user, ann):
    csm_user.is_active = False
    csm_user.save()

    response = client_a.post(URL, body(external_id="t-new"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"csm": ["There is no user “priya”."]}


def test_contacts_of_another_account_are_refused(client_a, partner_a, account_a, csm_user, ann):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)
    factories.ContactFactory(account=other, external_id="c-other", name="Otto Other")

    response = client_a.post(URL, body(external_id="t-new", contacts=["c-ann", "c-other"]), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"contacts": ["Not contacts of this account: Otto Other."]}
    assert Touch.objects.count() == 0


def test_deleted_contacts_are_unknown(client_a, account_a, csm_user, ann):
    Contact.objects.filter(pk=ann.pk).update(deleted_at=JUNE_3)

    response = client_a.post(URL, body(external_id="t-new"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"contacts": ["There is no contact “c-ann”."]}


def test_put_creates_then_the_same_put_changes_nothing(client_a, account_a, csm_user, ann):
    first = client_a.put(detail("t-new"), body(), format="json")
    assert first.status_code == 201, first.content
    touch = Touch.objects.get(external_id="t-new")
    expected = ("a-001", "priya", ["c-ann"], "meeting", JUNE_3, "Quarterly review", 1, "api", False)
    assert stored(touch) == expected
    updated_at = touch.updated_at
    links = list(Touch.contacts.through.objects.values_list("pk", "contact_id"))

    again = client_a.put(detail("t-new"), body(), format="json")

    assert again.status_code == 200
    assert again.json()["id"] == touch.pk
    assert Touch.objects.count() == 1
    assert list(Touch.contacts.through.objects.values_list("pk", "contact_id")) == links
    assert stored(touch) == expected
    assert touch.updated_at == updated_at  # not even a sync echo
    assert last_touch(account_a) == JUNE_3


def test_a_put_changing_only_the_contacts_changes_them(client_a, account_a, csm_user, ann, cy):
    assert client_a.put(detail("t-new"), body(), format="json").status_code == 201
    touch = Touch.objects.get(external_id="t-new")
    updated_at = touch.updated_at

    response = client_a.put(detail("t-new"), body(contacts=["c-ann", "c-cy"]), format="json")

    assert response.status_code == 200
    assert stored(touch)[2] == ["c-ann", "c-cy"]
    assert touch.updated_at > updated_at


def test_put_of_a_workspace_touch_keeps_its_source(client_a, call, account_a):
    response = client_a.put(detail("t-call"), body(source="api"), format="json")

    assert response.status_code == 200
    assert stored(call) == ("a-001", "priya", ["c-ann"], "meeting", JUNE_3, "Quarterly review", 1, "workspace", False)
    assert last_touch(account_a) == JUNE_3


def test_patch_keeps_contacts_left_out_and_replaces_contacts_given(client_a, call, cy, account_a):
    kept = client_a.patch(detail("t-call"), {"subject": "Renewal call"}, format="json")
    assert kept.status_code == 200
    assert stored(call) == ("a-001", "priya", ["c-ann"], "call", MAY_1, "Renewal call", 1, "workspace", False)

    replaced = client_a.patch(detail("t-call"), {"contacts": ["c-cy"]}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["contacts"] == ["c-cy"]
    assert stored(call)[2] == ["c-cy"]

    cleared = client_a.patch(detail("t-call"), {"contacts": []}, format="json")
    assert cleared.status_code == 200
    assert cleared.json()["contacts"] == []
    assert stored(call)[2] == []


def test_patch_moving_the_touch_later_moves_the_last_touch(client_a, call, account_a):
    response = client_a.patch(detail("t-call"), {"occurred_at": "2025-06-03T09:30:00Z", "csm": None}, format="json")

    assert response.status_code == 200
    assert stored(call)[:2] == ("a-001", None)
    assert last_touch(account_a) == JUNE_3


def test_delete_leaves_a_tombstone_and_the_last_touch_falls_back(client_a, call, account_a):
    client_a.post(URL, body(external_id="t-new"), format="json")
    assert last_touch(account_a) == JUNE_3

    response = client_a.delete(detail("t-new"))

    assert response.status_code == 204
    assert stored(Touch.objects.get(external_id="t-new"))[-1] is True
    assert last_touch(account_a) == MAY_1
    assert ids(client_a.get(URL)) == ["t-call"]
    assert sorted(ids(client_a.get(URL, {"include_deleted": "true"}))) == ["t-call", "t-new"]


def test_a_stale_put_does_not_resurrect_a_tombstone_and_deleted_false_does(client_a, call, account_a):
    assert client_a.delete(detail("t-call")).status_code == 204
    assert last_touch(account_a) is None

    stale = client_a.put(detail("t-call"), body(), format="json")

    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "deleted"
    assert stored(call) == ("a-001", "priya", ["c-ann"], "call", MAY_1, "Check-in", 1, "workspace", True)
    assert last_touch(account_a) is None

    restored = client_a.put(detail("t-call"), body(deleted=False, contacts=[]), format="json")

    assert restored.status_code == 200, restored.content
    assert stored(call) == ("a-001", "priya", [], "meeting", JUNE_3, "Quarterly review", 1, "workspace", False)
    assert last_touch(account_a) == JUNE_3


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_is_all_or_none_with_errors_by_index(client_a, call, account_a):
    items = [
        body(external_id="t-1"),
        body(external_id="t-2", kind="lunch"),
        body(external_id="t-3", contacts=["c-nobody"]),
        body(external_id="t-4", occurred_at="2999-01-01T00:00:00Z"),
    ]

    response = client_a.post(f"{URL}bulk/", items, format="json")

    assert response.status_code == 400
    assert [(i["index"], sorted(i["error"]["fields"])) for i in response.json()["error"]["items"]] == [
        (1, ["kind"]),
        (2, ["contacts"]),
        (3, ["occurred_at"]),
    ]
    assert list(Touch.objects.values_list("external_id", flat=True)) == ["t-call"]
    assert last_touch(account_a) == MAY_1


def test_bulk_writes_the_valid_items_when_not_all_or_none(client_a, call, cy, account_a):
    items = [
        body(external_id="t-1", contacts=["c-cy"], occurred_at="2025-05-20T08:00:00Z"),
        body(external_id="t-2", csm="nobody"),
        body(external_id="t-call", subject="Check-in, moved", contacts=[]),
    ]

    response = client_a.post(f"{URL}bulk/?all_or_none=false", items, format="json")

    assert response.status_code == 200
    assert [(r["index"], r["status"]) for r in response.json()["results"]] == [
        (0, "created"),
        (1, "error"),
        (2, "updated"),
    ]
    assert list(response.json()["results"][1]["error"]["fields"]) == ["csm"]
    new = Touch.objects.get(external_id="t-1")
    assert stored(new) == (
        "a-001",
        "priya",
        ["c-cy"],
        "meeting",
        datetime.datetime(2025, 5, 20, 8, tzinfo=UTC),
        "Quarterly review",
        1,
        "api",
        False,
    )
    assert stored(call) == ("a-001", "priya", [], "meeting", JUNE_3, "Check-in, moved", 1, "workspace", False)
    assert Touch.objects.count() == 2
    assert last_touch(account_a) == JUNE_3


def test_bulk_writes_take_the_same_queries_for_3_and_30_items(client_a, account_a, csm_user, ann, cy):
    assert client_a.get(URL).status_code == 200  # the key's last use is recorded once

    def write(first: int, count: int, contacts: list[str]) -> int:
        items = [body(external_id=f"t-{n}", contacts=contacts) for n in range(first, first + count)]
        with CaptureQueriesContext(connection) as queries:
            response = client_a.post(f"{URL}bulk/", items, format="json")
        assert response.status_code == 200, response.content
        return len(queries)

    assert write(0, 3, ["c-ann", "c-cy"]) == write(100, 30, ["c-ann", "c-cy"])
    assert Touch.objects.filter(account=account_a, source="api").count() == 33
    assert Touch.contacts.through.objects.count() == 66
    # Updates, each touch's contacts replaced.
    assert write(0, 3, ["c-cy"]) == write(100, 30, ["c-cy"])
    assert Touch.objects.count() == 33
    assert set(Touch.contacts.through.objects.values_list("contact__external_id", flat=True)) == {"c-cy"}
    assert Touch.contacts.through.objects.count() == 33


def test_list_pages_take_the_same_queries_for_3_and_30_rows(client_a, account_a, ann, cy):
    assert client_a.get(URL).status_code == 200

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client_a.get(URL, {"limit": 1000, "kind": "call"})
        assert response.status_code == 200
        return len(queries)

    def add(count: int) -> None:
        for touch in factories.TouchFactory.create_batch(count, account=account_a):
            touch.contacts.set([ann, cy])

    add(3)
    small = list_queries()
    add(27)
    assert list_queries() == small
    assert len(client_a.get(URL).json()["results"]) == 30


# --- scope --------------------------------------------------------------------------------------


def test_scope_lists_and_filters(client_a, client_b, client_all, call, bravo_touch):
    assert ids(client_a.get(URL)) == ["t-call"]
    assert ids(client_b.get(URL)) == ["t-bravo"]
    assert ids(client_b.get(URL, {"account": "a-001"})) == []
    assert ids(client_b.get(URL, {"csm": "priya"})) == []
    assert sorted(ids(client_all.get(URL))) == ["t-bravo", "t-call"]
    assert ids(client_all.get(URL, {"account": "a-001"})) == ["t-call"]


def test_scope_detail_routes_are_404_outside_it(client_b, client_all, call, account_a):
    assert client_b.get(detail("t-call")).status_code == 404
    assert client_b.patch(detail("t-call"), {"subject": "Hacked"}, format="json").status_code == 404
    assert client_b.delete(detail("t-call")).status_code == 404
    assert stored(call) == ("a-001", "priya", ["c-ann"], "call", MAY_1, "Check-in", 1, "workspace", False)
    assert last_touch(account_a) == MAY_1
    assert client_all.get(detail("t-call")).status_code == 200


def test_scope_writes_naming_another_partners_account_or_contacts_are_unknown(client_b, call, account_b, bravo_touch):
    single = client_b.post(URL, body(external_id="t-x", contacts=[]), format="json")
    put = client_b.put(detail("t-y"), body(contacts=[]), format="json")
    bulk = client_b.post(
        f"{URL}bulk/", [body(external_id="t-z", account="b-001", contacts=[]), body(external_id="t-w")], format="json"
    )
    contacts = client_b.patch(detail("t-bravo"), {"contacts": ["c-ann"]}, format="json")

    for response in (single, put):
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"account": ["There is no account “a-001”."]}
    assert bulk.status_code == 400
    assert [(i["index"], sorted(i["error"]["fields"])) for i in bulk.json()["error"]["items"]] == [
        (1, ["account", "contacts"])
    ]
    assert contacts.status_code == 400
    assert contacts.json()["error"]["fields"] == {"contacts": ["There is no contact “c-ann”."]}
    assert sorted(Touch.objects.values_list("external_id", flat=True)) == ["t-bravo", "t-call"]
    assert list(bravo_touch.contacts.all()) == []
    assert last_touch(account_b) is None


def test_scope_put_on_an_external_id_held_by_another_partner_is_409(client_b, call, account_a, account_b):
    response = client_b.put(detail("t-call"), body(account="b-001", contacts=[]), format="json")

    assert response.status_code == 409
    assert stored(call) == ("a-001", "priya", ["c-ann"], "call", MAY_1, "Check-in", 1, "workspace", False)
    assert (last_touch(account_a), last_touch(account_b)) == (MAY_1, None)


def test_scope_all_sees_and_writes_every_account(client_all, call, account_b):
    response = client_all.put(detail("t-b2"), body(account="b-001", contacts=[]), format="json")

    assert response.status_code == 201
    assert stored(Touch.objects.get(external_id="t-b2"))[0] == "b-001"
    assert last_touch(account_b) == JUNE_3


# --- retries, references without external ids, sessions -----------------------------------------


def test_a_retried_post_with_an_idempotency_key_writes_once(client_a, account_a, csm_user, ann):
    headers = {"HTTP_IDEMPOTENCY_KEY": "touch-retry-1"}
    first = client_a.post(URL, body(external_id="t-new"), format="json", **headers)
    again = client_a.post(URL, body(external_id="t-new"), format="json", **headers)
    other = client_a.post(URL, body(external_id="t-other"), format="json", **headers)

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert list(Touch.objects.values_list("external_id", flat=True)) == ["t-new"]
    assert Touch.contacts.through.objects.count() == 1


def test_references_without_external_ids_render_as_null(client_all, csm_user):
    account = factories.AccountFactory(external_id=None)
    contact = factories.ContactFactory(account=account, external_id=None)
    touch = factories.TouchFactory(account=account, csm=csm_user, external_id="t-ws", occurred_at=MAY_1)
    touch.contacts.set([contact])

    response = client_all.get(detail("t-ws"))

    assert response.status_code == 200
    assert (response.json()["account"], response.json()["contacts"]) == (None, [None])


def test_a_leaders_session_writes_and_a_csms_only_reads(leader_api, client, csm_user, account_a, ann):
    created = leader_api.post(URL, body(external_id="t-new"), format="json")
    assert created.status_code == 201, created.content
    assert stored(Touch.objects.get(external_id="t-new"))[7] == "api"

    client.force_login(csm_user)
    assert [row["external_id"] for row in client.get(URL).json()["results"]] == ["t-new"]
    refused = client.patch(detail("t-new"), {"subject": "Mine"}, content_type="application/json")
    assert refused.status_code == 403
    assert Touch.objects.get(external_id="t-new").subject == "Quarterly review"
