"""contacts/: every method, the primary-contact rule, bulk writes, query counts and scope isolation."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Contact
from tests import factories

URL = "/api/v1/contacts/"
FIELDS = {
    "id",
    "external_id",
    "created_at",
    "updated_at",
    "deleted_at",
    "account",
    "name",
    "email",
    "title",
    "role",
    "is_primary",
}
UTC = datetime.UTC


def detail(external_id: str) -> str:
    return f"{URL}{external_id}/"


def body(**fields) -> dict:
    return {
        "account": "a-001",
        "name": "Ada Lovelace",
        "email": "ada@alpha.example",
        "title": "CTO",
        "role": "economic_buyer",
        "is_primary": False,
        **fields,
    }


def stored(contact: Contact) -> tuple:
    contact.refresh_from_db()
    return (
        contact.account.external_id,
        contact.name,
        contact.email,
        contact.title,
        contact.role,
        contact.is_primary,
        contact.deleted_at is not None,
    )


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["external_id"] for row in response.json()["results"]]


def stamp(contact: Contact, when: datetime.datetime) -> None:
    Contact.objects.filter(pk=contact.pk).update(updated_at=when)


@pytest.fixture
def ann(account_a):
    return factories.ContactFactory(
        account=account_a,
        external_id="c-ann",
        name="Ann Lee",
        email="ann@alpha.example",
        title="CFO",
        role=Contact.Role.ECONOMIC_BUYER,
        is_primary=True,
    )


@pytest.fixture
def bob(account_b):
    return factories.ContactFactory(
        account=account_b,
        external_id="c-bob",
        name="Bob Ray",
        email="bob@bravo.example",
        role=Contact.Role.CHAMPION,
    )


# --- reading ------------------------------------------------------------------------------------


def test_list_renders_contacts_with_their_account_external_id(client_a, ann):
    response = client_a.get(URL)

    assert response.status_code == 200
    page = response.json()
    assert (page["next"], page["next_cursor"]) == (None, None)
    (row,) = page["results"]
    assert set(row) == FIELDS
    assert {k: v for k, v in row.items() if k not in ("created_at", "updated_at")} == {
        "id": ann.pk,
        "external_id": "c-ann",
        "deleted_at": None,
        "account": "a-001",
        "name": "Ann Lee",
        "email": "ann@alpha.example",
        "title": "CFO",
        "role": "economic_buyer",
        "is_primary": True,
    }


def test_list_syncs_by_updated_since_and_include_deleted_in_change_order(client_a, account_a):
    old, new, gone = (factories.ContactFactory(account=account_a, external_id=f"c-{n}") for n in range(3))
    stamp(new, datetime.datetime(2026, 3, 1, tzinfo=UTC))
    stamp(old, datetime.datetime(2026, 1, 1, tzinfo=UTC))
    Contact.objects.filter(pk=gone.pk).update(
        deleted_at=datetime.datetime(2026, 2, 1, tzinfo=UTC), updated_at=datetime.datetime(2026, 2, 1, tzinfo=UTC)
    )

    assert ids(client_a.get(URL)) == ["c-0", "c-1"]
    assert ids(client_a.get(URL, {"include_deleted": "true"})) == ["c-0", "c-2", "c-1"]
    assert ids(client_a.get(URL, {"updated_since": "2026-02-01T00:00:00Z", "include_deleted": "true"})) == [
        "c-2",
        "c-1",
    ]
    assert ids(client_a.get(URL, {"updated_since": "2026-02-01T00:00:01Z"})) == ["c-1"]
    assert ids(client_a.get(URL, {"limit": 1})) == ["c-0"]


def test_list_filters(client_a, partner_a, account_a):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)
    factories.ContactFactory(account=account_a, external_id="c-1", role="champion", is_primary=True, email="X@a.io")
    factories.ContactFactory(account=account_a, external_id="c-2", role="admin", email="y@a.io")
    factories.ContactFactory(account=other, external_id="c-3", role="champion", is_primary=True, email="x@a.io")

    def listed(**params) -> list[str]:
        return sorted(ids(client_a.get(URL, params)))

    assert listed(account="a-001") == ["c-1", "c-2"]
    assert listed(account="a-002") == ["c-3"]
    assert listed(account="nope") == []
    assert listed(role="champion") == ["c-1", "c-3"]
    assert listed(is_primary="true") == ["c-1", "c-3"]
    assert listed(is_primary="false") == ["c-2"]
    assert listed(email="x@a.io") == ["c-1", "c-3"]
    assert listed(account="a-001", role="champion") == ["c-1"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"role": "boss"}, "role"), ({"is_primary": "maybe"}, "is_primary"), ({"include_deleted": "x"}, None)],
)
def test_bad_filter_values_are_400_in_the_error_shape(client_a, ann, params, field):
    response = client_a.get(URL, params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"]
    assert list(error["fields"]) == [field or next(iter(params))]


def test_retrieve_and_unknown_is_404(client_a, ann):
    response = client_a.get(detail("c-ann"))
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["account"]) == (ann.pk, "a-001")

    missing = client_a.get(detail("nope"))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


# --- writing one --------------------------------------------------------------------------------


def test_post_creates_a_contact(client_a, account_a):
    response = client_a.post(URL, body(external_id="c-new"), format="json")

    assert response.status_code == 201, response.content
    contact = Contact.objects.get(external_id="c-new")
    assert stored(contact) == ("a-001", "Ada Lovelace", "ada@alpha.example", "CTO", "economic_buyer", False, False)
    assert response.json()["id"] == contact.pk
    assert response.json()["account"] == "a-001"


def test_post_with_an_existing_external_id_is_409_and_changes_nothing(client_a, ann):
    response = client_a.post(URL, body(external_id="c-ann", name="Someone else"), format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Contact.objects.count() == 1
    assert stored(ann) == ("a-001", "Ann Lee", "ann@alpha.example", "CFO", "economic_buyer", True, False)


def test_post_field_errors_are_400_and_write_nothing(client_a, account_a):
    response = client_a.post(URL, body(external_id="c-new", role="boss", email="not an email"), format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"role", "email"}
    assert Contact.objects.count() == 0


def test_post_without_account_is_400(client_a, account_a):
    missing = client_a.post(URL, {"external_id": "c-new", "name": "Ada"}, format="json")
    null = client_a.post(URL, body(external_id="c-new", account=None), format="json")

    assert missing.status_code == 400
    assert list(missing.json()["error"]["fields"]) == ["account"]
    assert null.status_code == 400
    assert list(null.json()["error"]["fields"]) == ["account"]
    assert Contact.objects.count() == 0


def test_put_creates_then_the_same_put_changes_nothing(client_a, account_a):
    first = client_a.put(detail("c-new"), body(), format="json")
    assert first.status_code == 201, first.content
    contact = Contact.objects.get(external_id="c-new")
    expected = ("a-001", "Ada Lovelace", "ada@alpha.example", "CTO", "economic_buyer", False, False)
    assert stored(contact) == expected
    updated_at = contact.updated_at

    again = client_a.put(detail("c-new"), body(), format="json")

    assert again.status_code == 200
    assert again.json()["id"] == contact.pk
    assert Contact.objects.count() == 1
    assert stored(contact) == expected
    assert contact.updated_at == updated_at  # not even a sync echo


def test_put_updates_an_existing_contact(client_a, ann):
    response = client_a.put(detail("c-ann"), body(name="Ann Lee-Smith", is_primary=True), format="json")

    assert response.status_code == 200
    assert stored(ann) == ("a-001", "Ann Lee-Smith", "ada@alpha.example", "CTO", "economic_buyer", True, False)


def test_put_with_another_external_id_in_the_body_is_400(client_a, ann):
    response = client_a.put(detail("c-ann"), body(external_id="c-other"), format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["external_id"]
    assert not Contact.objects.filter(external_id="c-other").exists()


def test_patch_changes_only_the_fields_given(client_a, ann):
    response = client_a.patch(detail("c-ann"), {"title": "COO"}, format="json")

    assert response.status_code == 200
    assert response.json()["title"] == "COO"
    assert stored(ann) == ("a-001", "Ann Lee", "ann@alpha.example", "COO", "economic_buyer", True, False)


def test_patch_of_an_unknown_contact_is_404_and_creates_nothing(client_a, account_a):
    response = client_a.patch(detail("nope"), {"title": "COO"}, format="json")

    assert response.status_code == 404
    assert Contact.objects.count() == 0


def test_delete_leaves_a_tombstone_that_is_no_longer_primary(client_a, ann):
    response = client_a.delete(detail("c-ann"))

    assert response.status_code == 204
    assert stored(ann) == ("a-001", "Ann Lee", "ann@alpha.example", "CFO", "economic_buyer", False, True)
    assert ids(client_a.get(URL)) == []
    assert ids(client_a.get(URL, {"include_deleted": "true"})) == ["c-ann"]
    assert client_a.get(detail("c-ann")).json()["deleted_at"] is not None
    # Deleting again changes nothing.
    deleted_at = ann.deleted_at
    assert client_a.delete(detail("c-ann")).status_code == 204
    ann.refresh_from_db()
    assert ann.deleted_at == deleted_at


def test_a_stale_put_does_not_resurrect_a_tombstone_and_deleted_false_does(client_a, ann):
    assert client_a.delete(detail("c-ann")).status_code == 204

    stale = client_a.put(detail("c-ann"), body(name="Stale"), format="json")

    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "deleted"
    assert stored(ann) == ("a-001", "Ann Lee", "ann@alpha.example", "CFO", "economic_buyer", False, True)

    restored = client_a.put(detail("c-ann"), body(name="Back", deleted=False), format="json")

    assert restored.status_code == 200, restored.content
    assert restored.json()["deleted_at"] is None
    assert stored(ann) == ("a-001", "Back", "ada@alpha.example", "CTO", "economic_buyer", False, False)


def test_put_with_deleted_true_deletes(client_a, ann):
    response = client_a.put(detail("c-ann"), body(deleted=True), format="json")

    assert response.status_code == 200
    assert stored(ann)[-1] is True


# --- the primary contact ------------------------------------------------------------------------


def test_a_new_primary_contact_demotes_the_previous_one(client_a, ann, account_a):
    response = client_a.post(URL, body(external_id="c-new", is_primary=True), format="json")

    assert response.status_code == 201
    assert Contact.objects.get(external_id="c-new").is_primary is True
    ann.refresh_from_db()
    assert ann.is_primary is False
    assert list(Contact.objects.filter(account=account_a, is_primary=True).values_list("external_id", flat=True)) == [
        "c-new"
    ]


def test_two_new_primaries_of_one_account_in_a_bulk_are_refused(client_a, ann):
    items = [body(external_id="c-1", is_primary=True), body(external_id="c-2", is_primary=True)]

    response = client_a.post(f"{URL}bulk/", items, format="json")

    assert response.status_code == 400
    (item,) = response.json()["error"]["items"]
    assert (item["index"], list(item["error"]["fields"])) == (1, ["is_primary"])
    assert list(Contact.objects.values_list("external_id", "is_primary")) == [("c-ann", True)]


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_is_all_or_none_with_errors_by_index(client_a, ann):
    items = [
        body(external_id="c-1"),
        body(external_id="c-2", role="boss"),
        body(external_id="c-3", account="nope"),
        "not an object",
    ]

    response = client_a.post(f"{URL}bulk/", items, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert [(i["index"], i["status"], sorted(i["error"].get("fields", {}))) for i in error["items"]] == [
        (1, "error", ["role"]),
        (2, "error", ["account"]),
        (3, "error", []),
    ]
    assert list(Contact.objects.values_list("external_id", flat=True)) == ["c-ann"]


def test_bulk_writes_the_valid_items_when_not_all_or_none(client_a, ann):
    items = [
        body(external_id="c-1", name="One"),
        body(external_id="c-2", role="boss"),
        body(external_id="c-ann", name="Ann Updated"),
    ]

    response = client_a.post(f"{URL}bulk/?all_or_none=false", items, format="json")

    assert response.status_code == 200
    results = response.json()["results"]
    one = Contact.objects.get(external_id="c-1")
    assert [(r["index"], r["status"], r.get("external_id")) for r in results] == [
        (0, "created", "c-1"),
        (1, "error", None),
        (2, "updated", "c-ann"),
    ]
    assert (results[0]["id"], results[2]["id"]) == (one.pk, ann.pk)
    assert list(results[1]["error"]["fields"]) == ["role"]
    assert sorted(Contact.objects.values_list("external_id", "name")) == [("c-1", "One"), ("c-ann", "Ann Updated")]


def test_bulk_writes_take_the_same_queries_for_3_and_30_items(client_a, account_a):
    assert client_a.get(URL).status_code == 200  # the key's last use is recorded once

    def write(first: int, count: int) -> int:
        items = [body(external_id=f"c-{n}", name=f"Contact {n}") for n in range(first, first + count)]
        with CaptureQueriesContext(connection) as queries:
            response = client_a.post(f"{URL}bulk/", items, format="json")
        assert response.status_code == 200, response.content
        return len(queries)

    assert write(0, 3) == write(100, 30)
    assert Contact.objects.filter(account=account_a).count() == 33


def test_list_pages_take_the_same_queries_for_3_and_30_rows(client_a, account_a):
    assert client_a.get(URL).status_code == 200

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client_a.get(URL, {"limit": 1000})
        assert response.status_code == 200
        return len(queries)

    factories.ContactFactory.create_batch(3, account=account_a)
    small = list_queries()
    factories.ContactFactory.create_batch(27, account=account_a)
    assert list_queries() == small
    assert len(client_a.get(URL).json()["results"]) == 30


# --- scope --------------------------------------------------------------------------------------


def test_scope_lists_and_filters(client_a, client_b, client_all, ann, bob):
    assert ids(client_a.get(URL)) == ["c-ann"]
    assert ids(client_b.get(URL)) == ["c-bob"]
    assert ids(client_b.get(URL, {"account": "a-001"})) == []
    assert ids(client_b.get(URL, {"email": "ann@alpha.example"})) == []
    assert sorted(ids(client_all.get(URL))) == ["c-ann", "c-bob"]
    assert ids(client_all.get(URL, {"account": "a-001"})) == ["c-ann"]


def test_scope_detail_routes_are_404_outside_it(client_b, client_all, ann):
    assert client_b.get(detail("c-ann")).status_code == 404
    assert client_b.patch(detail("c-ann"), {"title": "Hacked"}, format="json").status_code == 404
    assert client_b.delete(detail("c-ann")).status_code == 404
    assert stored(ann) == ("a-001", "Ann Lee", "ann@alpha.example", "CFO", "economic_buyer", True, False)
    assert client_all.get(detail("c-ann")).status_code == 200


def test_scope_writes_naming_another_partners_account_are_unknown(client_b, account_a, bob):
    single = client_b.post(URL, body(external_id="c-x"), format="json")
    put = client_b.put(detail("c-y"), body(), format="json")
    bulk = client_b.post(
        f"{URL}bulk/", [body(external_id="c-z", account="b-001"), body(external_id="c-w")], format="json"
    )
    moved = client_b.patch(detail("c-bob"), {"account": "a-001"}, format="json")

    for response in (single, put, moved):
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"account": ["There is no account “a-001”."]}
    assert bulk.status_code == 400
    assert [(i["index"], i["error"]["fields"]) for i in bulk.json()["error"]["items"]] == [
        (1, {"account": ["There is no account “a-001”."]})
    ]
    assert list(Contact.objects.values_list("external_id", "account__external_id")) == [("c-bob", "b-001")]


def test_scope_put_on_an_external_id_held_by_another_partner_is_409(client_b, ann, bob):
    single = client_b.put(detail("c-ann"), body(account="b-001", name="Mine now"), format="json")
    bulk = client_b.post(f"{URL}bulk/?all_or_none=false", [body(external_id="c-ann", account="b-001")], format="json")

    assert single.status_code == 409
    assert single.json()["error"]["code"] == "conflict"
    assert bulk.json()["results"][0]["error"]["code"] == "conflict"
    assert stored(ann) == ("a-001", "Ann Lee", "ann@alpha.example", "CFO", "economic_buyer", True, False)
    assert Contact.objects.count() == 2


def test_scope_all_writes_to_any_account(client_all, account_a, account_b):
    response = client_all.post(
        f"{URL}bulk/", [body(external_id="c-1"), body(external_id="c-2", account="b-001")], format="json"
    )

    assert response.status_code == 200
    assert sorted(Contact.objects.values_list("external_id", "account__external_id")) == [
        ("c-1", "a-001"),
        ("c-2", "b-001"),
    ]


def test_a_retried_post_with_an_idempotency_key_writes_once(client_a, account_a):
    headers = {"HTTP_IDEMPOTENCY_KEY": "contact-retry-1"}
    first = client_a.post(URL, body(external_id="c-new", is_primary=True), format="json", **headers)
    again = client_a.post(URL, body(external_id="c-new", is_primary=True), format="json", **headers)
    other = client_a.post(URL, body(external_id="c-other"), format="json", **headers)

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert list(Contact.objects.values_list("external_id", "is_primary")) == [("c-new", True)]
