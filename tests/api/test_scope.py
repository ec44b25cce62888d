"""Scope isolation on every route of the router: two `own` partners and an `all` partner.

An own partner sees, filters, references and changes only what hangs off its own accounts; another
partner's object is a 404 (its existence never leaks), and a PUT naming another partner's external id
is a 409 that changes nothing.
"""

import json

import pytest
from django.test import override_settings

from accounts.models import Account
from api.engine import Reference, SyncedViewSet
from tests import factories
from tests.api.test_bad_input import BODY_ROUTES, LIST_ROUTES, ROUTES, input_fields, route_id, url_of, without_ids

API = "/api/v1/"


def seed(account: Account, tag: str) -> None:
    """One object of every kind on `account`, external ids starting with `tag`."""
    contact = factories.ContactFactory(account=account, external_id=f"{tag}-contact")
    factories.SubscriptionFactory(account=account, external_id=f"{tag}-sub")
    touch = factories.TouchFactory(account=account, external_id=f"{tag}-touch")
    touch.contacts.add(contact)
    plan = factories.SuccessPlanFactory(account=account, external_id=f"{tag}-plan")
    goal = factories.GoalFactory(plan=plan)
    factories.TargetFactory(goal=goal)
    factories.InitiativeFactory(goal=goal)
    factories.UsageRecordFactory(account=account)
    factories.AlertFactory(account=account)


@pytest.fixture(autouse=True)
def generous_rate():
    with override_settings(CSM_API_RATE_PER_MINUTE=1_000_000):
        yield


@pytest.fixture
def world(account_a, account_b, client_a, client_b, client_all):
    seed(account_a, "a")
    seed(account_b, "b")
    factories.AccountFactory(external_id="n-001", partner=None)  # no partner: only `all` sees it
    return {"a": client_a, "b": client_b, "all": client_all}


def owner_of(prefix: str, row: dict) -> str:
    """The external id of the account a listed row belongs to."""
    return row["external_id"] if prefix == "accounts" else row["account"]


def rows(client, prefix: str, params: dict | None = None) -> list[dict]:
    response = client.get(f"{API}{prefix}/", {"limit": 1000, **(params or {})})
    assert response.status_code == 200, (prefix, response.content[:300])
    return response.json()["results"]


def row_of(world, prefix: str, account: str) -> dict:
    """An object of `prefix` on `account`, as the all partner lists it."""
    return next(r for r in rows(world["all"], prefix, {"include_deleted": "true"}) if owner_of(prefix, r) == account)


def lookup(route, row: dict) -> str:
    field = getattr(route[4], "lookup_field", "pk")
    return str(row["id"] if field == "pk" else row[field])


@pytest.mark.parametrize("route", LIST_ROUTES, ids=route_id)
def test_lists_show_only_the_scope(world, route):
    prefix = route[0]
    for who, accounts in (("a", {"a-001"}), ("b", {"b-001"})):
        listed = rows(world[who], prefix, {"include_deleted": "true"})
        assert listed, (prefix, who)
        assert {owner_of(prefix, r) for r in listed} == accounts, (prefix, who)
    everything = {owner_of(prefix, r) for r in rows(world["all"], prefix)}
    assert {"a-001", "b-001"} <= everything


@pytest.mark.parametrize("route", LIST_ROUTES, ids=route_id)
def test_filters_do_not_reach_outside_the_scope(world, route):
    prefix = route[0]
    filterset = getattr(route[4], "filterset_class", None)
    names = set(filterset.base_filters) if filterset is not None else set()
    for name, value in (("account", "b-001"), ("q", "b-001"), ("q", "Bravo")):
        if name in names:
            assert rows(world["a"], prefix, {name: value}) == [], (prefix, name)
            assert rows(world["b"], prefix, {name: value}), (prefix, name)


@pytest.mark.parametrize("route", [r for r in ROUTES if r[3]], ids=route_id)
def test_another_partners_object_is_404(world, route):
    prefix, method = route[0], route[1]
    theirs = row_of(world, prefix, "b-001")
    before = rows(world["all"], prefix, {"include_deleted": "true"})
    url = url_of(route, lookup(route, theirs))
    # A body that would be valid, so only the scope refuses it.
    fields = input_fields(route) if method in ("PUT", "PATCH") else []
    body = json.dumps({name: without_ids(theirs[name]) for name in fields if theirs.get(name) is not None} or [])
    response = world["a"].generic(method, url, body, content_type="application/json")
    expected = 409 if route[2] == "update" else 404
    assert response.status_code == expected, (route_id(route), response.content[:300])
    assert response.json()["error"]["code"] == ("conflict" if expected == 409 else "not_found")
    assert rows(world["all"], prefix, {"include_deleted": "true"}) == before
    # The owner reaches it.
    if method == "GET":
        assert world["b"].get(url).status_code == 200


SYNCED_WRITES = [r for r in BODY_ROUTES if issubclass(r[4], SyncedViewSet) and r[2] in ("create", "update", "bulk")]


def scoped_references(route) -> list[str]:
    view = route[4]()
    view.action, view.request, view.format_kwarg, view.kwargs = route[2], None, None, {}
    fields = view.get_serializer_class()().fields
    return [name for name, f in fields.items() if isinstance(f, Reference) and f.scoped and not f.read_only]


@pytest.mark.parametrize("route", [r for r in SYNCED_WRITES if scoped_references(r)], ids=route_id)
def test_references_to_another_partners_objects_are_unknown(world, route):
    prefix = route[0]
    mine = row_of(world, prefix, "a-001")
    theirs = row_of(world, prefix, "b-001")
    fields = input_fields(route)
    base = {name: without_ids(mine[name]) for name in fields if mine.get(name) is not None}
    for name in scoped_references(route):
        body = {**base, "external_id": "a-new", name: theirs[name]}
        nonexistent = {**body, name: ["zzz-none"] if isinstance(theirs[name], list) else "zzz-none"}
        url = url_of(route, "a-new")
        payload, missing = ([body], [nonexistent]) if route[2] == "bulk" else (body, nonexistent)
        response = world["a"].generic(route[1], url, json.dumps(payload), content_type="application/json")
        assert response.status_code == 400, (route_id(route), name, response.content[:300])
        error = response.json()["error"]
        fields_of = error["items"][0]["error"]["fields"] if route[2] == "bulk" else error["fields"]
        assert list(fields_of) == [name]
        # Word for word what a key that does not exist gets, so nothing leaks.
        other = world["a"].generic(route[1], url, json.dumps(missing), content_type="application/json").json()
        other_fields = other["error"]["items"][0]["error"]["fields"] if route[2] == "bulk" else other["error"]["fields"]
        assert fields_of[name][0].replace(json.dumps(theirs[name]).strip('"[]'), "?") == other_fields[name][0].replace(
            "zzz-none", "?"
        )
        assert world["a"].get(f"{API}{prefix}/a-new/").status_code == 404


@pytest.mark.parametrize("route", [r for r in SYNCED_WRITES if r[2] == "bulk"], ids=route_id)
def test_bulk_naming_another_partners_external_id_changes_nothing(world, route):
    prefix = route[0]
    theirs = row_of(world, prefix, "b-001")
    before = rows(world["all"], prefix, {"include_deleted": "true"})
    mine = row_of(world, prefix, "a-001")
    fields = input_fields(route)
    item = {name: without_ids(mine[name]) for name in fields if mine.get(name) is not None}
    items = [{**item, "external_id": theirs["external_id"]}]
    url = url_of(route, "")
    response = world["a"].post(url, items, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["items"][0]["error"]["code"] == "conflict"
    response = world["a"].post(url + "?all_or_none=false", items, format="json")
    assert response.json()["results"][0]["error"]["code"] == "conflict"
    assert rows(world["all"], prefix, {"include_deleted": "true"}) == before


def test_the_all_partner_reaches_every_account(world):
    assert {r["external_id"] for r in rows(world["all"], "accounts")} == {"a-001", "b-001", "n-001"}
    assert world["all"].patch(f"{API}accounts/b-001/", {"name": "By all"}, format="json").status_code == 200
    assert Account.objects.get(external_id="b-001").name == "By all"
    assert world["a"].get(f"{API}accounts/n-001/").status_code == 404
    assert world["a"].put(f"{API}accounts/n-001/", {"name": "Grab"}, format="json").status_code == 409
    assert Account.objects.get(external_id="n-001").partner_id is None


def test_a_partners_own_account_cannot_be_moved_to_another_partner(world, partner_b):
    """The partner is not writable: an own partner's account stays its own."""
    response = world["a"].patch(f"{API}accounts/a-001/", {"partner": "Partner B"}, format="json")
    assert response.status_code == 200
    assert Account.objects.get(external_id="a-001").partner.name == "Partner A"
