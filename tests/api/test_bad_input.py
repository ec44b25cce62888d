"""Whatever a client sends, the API answers in its error shape and never with a 500.

Every route of every resource registered on the router is covered, so a resource added later is
covered too: bodies that are not JSON, of the wrong shape, too deep or too large; every writable field
given wrong types, huge numbers, bad dates, unknown references and NUL characters; every list's
filter and sync parameters given odd values; odd ids in the URL.
"""

import json

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from api.engine import SyncedViewSet
from api.urls import router
from tests import factories

API = "/api/v1/"
OK_STATUSES = {200, 201, 204}


def routes() -> list[tuple]:
    """(prefix, HTTP method, action, detail, viewset, URL template) for each route the router serves."""
    found = []
    for prefix, viewset, _basename in router.registry:
        for route in router.get_routes(viewset):
            for method, action in route.mapping.items():
                if hasattr(viewset, action):
                    found.append((prefix, method.upper(), action, route.detail, viewset, route.url))
    return found


ROUTES = routes()
BODY_ROUTES = [r for r in ROUTES if r[1] in ("POST", "PUT", "PATCH")]
LIST_ROUTES = [r for r in ROUTES if r[2] == "list"]


def route_id(route) -> str:
    return f"{route[1]} {route[0]} {route[2]}"


def url_of(route, lookup: str) -> str:
    prefix, _method, _action, _detail, _viewset, template = route
    path = template.lstrip("^").rstrip("$")
    path = path.replace("{prefix}", prefix).replace("{trailing_slash}", "/")
    path = path.replace("{lookup}", lookup)
    return API + path


def input_fields(route) -> list[str]:
    """The writable fields of the route's input serializer."""
    _prefix, _method, action, _detail, viewset, _url = route
    view = viewset()
    view.action, view.request, view.format_kwarg, view.kwargs = action, None, None, {}
    serializer = view.get_serializer_class()()
    return [name for name, field in serializer.fields.items() if not field.read_only]


def assert_error_shape(body: dict) -> None:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "fields", "items"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    for name, messages in error.get("fields", {}).items():
        assert isinstance(name, str) and messages and all(isinstance(m, str) for m in messages), error
    for item in error.get("items", []):
        assert isinstance(item["index"], int) and item["status"] == "error", item
        assert isinstance(item["error"]["code"], str) and isinstance(item["error"]["message"], str), item


def check(response, context) -> None:
    assert response.status_code < 500, (context, response.status_code, response.content[:1000])
    # Bad input is caught before the database sees it: on PostgreSQL a refused statement would leave
    # the test's transaction unusable.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), context
        assert_error_shape(response.json())
    elif response.status_code in (200, 201) and isinstance(response.json(), dict):
        for result in response.json().get("results", []):
            if isinstance(result, dict) and result.get("status") == "error":
                assert isinstance(result["error"]["code"], str), (context, result)


@pytest.fixture(autouse=True)
def generous_rate():
    with override_settings(CSM_API_RATE_PER_MINUTE=1_000_000):
        yield


@pytest.fixture
def seeded(partner_all):
    """One object of every kind, visible to the all partner."""
    account = factories.AccountFactory(external_id="seed-acct", owner=factories.csm_user(username="seedcsm"))
    contact = factories.ContactFactory(account=account, external_id="seed-contact")
    factories.SubscriptionFactory(account=account, external_id="seed-sub")
    touch = factories.TouchFactory(account=account, external_id="seed-touch")
    touch.contacts.add(contact)
    plan = factories.SuccessPlanFactory(account=account, external_id="seed-plan")
    goal = factories.GoalFactory(plan=plan)
    factories.TargetFactory(goal=goal)
    factories.InitiativeFactory(goal=goal)
    factories.UsageRecordFactory(account=account)
    factories.AlertFactory(account=account)
    return account


@pytest.fixture
def api(client_all, seeded):
    return client_all


def first_row(client, route) -> dict:
    list_url = API + route[0] + "/"
    response = client.get(list_url)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    return results[0] if results else {}


def lookup_of(route, row: dict) -> str:
    viewset = route[4]
    field = getattr(viewset, "lookup_field", "pk")
    value = row.get(field) if field != "pk" else row.get("id")
    return str(value if value is not None else "none")


def without_ids(value):
    """Nested parts as a new object's: without the ids of the parts they were read from."""
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k != "id"}
    return value


def baseline(route, row: dict, external_id: str = "fuzz-new") -> dict:
    """A valid body built from an existing object's output (references are keys both ways)."""
    fields = input_fields(route)
    body = {name: without_ids(row[name]) for name in fields if name in row and row[name] is not None}
    if "external_id" in fields:
        body["external_id"] = external_id
    return body


def target(route, row: dict) -> str:
    """The lookup a route's URL names: a new external id for PUT, else an existing object's."""
    return "fuzz-new" if route[2] == "update" else lookup_of(route, row)


def item_id(route, row: dict, index: int) -> str:
    """Each item its own external id, except where the URL names the object."""
    return target(route, row) if route[3] else f"fuzz-{index}"


STANDARD_WRITES = ("create", "update", "partial_update", "bulk")


@pytest.mark.parametrize(
    "route", [r for r in BODY_ROUTES if issubclass(r[4], SyncedViewSet) and r[2] in STANDARD_WRITES], ids=route_id
)
def test_the_baseline_body_is_valid(api, route):
    """The bodies below differ from a valid one in one field, so each bad value reaches the services."""
    row = first_row(api, route)
    body = baseline(route, row, item_id(route, row, 0))
    raw = json.dumps([body] if route[2] == "bulk" else body)
    response = send(api, route[1], url_of(route, target(route, row)), raw)
    assert response.status_code in OK_STATUSES, (route, response.content[:500])


def send(client, method: str, url: str, raw: str | bytes, content_type: str = "application/json"):
    return getattr(client, method.lower())(url, data=raw, content_type=content_type)


# Raw JSON values: wrong types, huge and negative numbers, bad dates, NUL characters, odd strings.
BAD_VALUES = [
    "null",
    "true",
    "0",
    "-1",
    "1.5",
    "1e400",
    "-1e400",
    "1" + "0" * 30,
    "-" + "9" * 30,
    "1" + "0" * 5000,
    '""',
    '"   "',
    '"text"',
    '"' + "x" * 10_000 + '"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"2026-02-30"',
    '"9999-12-31"',
    '"0001-01-01"',
    '"9999-12-31T23:59:59-23:00"',
    '"0001-01-01T00:00:00+14:00"',
    '"unknown-reference"',
    "[]",
    '["a", 1, null]',
    "{}",
    '{"a": {"b": [1]}}',
    "[[[[[[[[[[1]]]]]]]]]]",
]


def with_field(body: dict, name: str, raw_value: str) -> str:
    rest = json.dumps({k: v for k, v in body.items() if k != name})
    return f'{{"{name}": {raw_value}' + (", " + rest[1:] if rest != "{}" else "}")


@pytest.mark.parametrize("route", BODY_ROUTES, ids=route_id)
def test_wrong_values_in_every_field(api, route):
    row = first_row(api, route)
    url = url_of(route, target(route, row))
    fields = input_fields(route)
    for value in BAD_VALUES:
        items = [with_field(baseline(route, row, item_id(route, row, i)), name, value) for i, name in enumerate(fields)]
        if route[1] == "POST":
            # All items in one list (bulk writes, creates that take lists), valid ones written.
            check(send(api, "POST", url + "?all_or_none=false", "[" + ", ".join(items) + "]"), (route, value))
            check(send(api, "POST", url, "[" + ", ".join(items) + "]"), (route, value))
        if route[2] != "bulk":
            for name, item in zip(fields, items, strict=True):
                check(send(api, route[1], url, item), (route, name, value))


@pytest.mark.parametrize("route", BODY_ROUTES, ids=route_id)
def test_bodies_of_the_wrong_shape_or_size(api, route, settings):
    row = first_row(api, route)
    url = url_of(route, lookup_of(route, row))
    body = json.dumps(baseline(route, row))
    for raw in (
        b"not json",
        b"{",
        b"",
        b"\xff\xfe\x00",
        b"null",
        b"1",
        b'"a string"',
        b"true",
        b"NaN",
        b'{"a": Infinity}',
        body.encode(),  # an object where a list may be expected
        f"[{body}]".encode(),  # a list where an object may be expected
        f"[{body}, 1, null, []]".encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 40 + b"]" * 40,
        b'{"name": "\\ud800"}',
    ):
        check(send(api, route[1], url, raw), (route, raw[:50]))
    # Not JSON at all.
    check(send(api, route[1], url, "name=x", "application/x-www-form-urlencoded"), (route, "form"))
    check(send(api, route[1], url, body, "text/plain"), (route, "text"))
    # 10 MB: refused before it is read.
    huge = '{"name": "' + "x" * 10_000_000 + '"}'
    response = send(api, route[1], url, huge)
    assert response.status_code == 413, route
    check(response, (route, "10 MB"))


@pytest.mark.parametrize("route", [r for r in BODY_ROUTES if r[2] == "bulk"], ids=route_id)
def test_too_many_bulk_items_is_413(api, route):
    limit = getattr(route[4], "bulk_limit", 10_000)
    url = url_of(route, "")
    response = send(api, "POST", url, "[" + ", ".join(["{}"] * (limit + 1)) + "]")
    assert response.status_code == 413, (route, response.content[:300])
    check(response, route)
    if limit < 10_000:
        check(send(api, "POST", url, "[" + ", ".join(["{}"] * 10_001) + "]"), route)


ODD_PARAM_VALUES = [
    "",
    "zzz",
    "none",
    "-1",
    "0",
    "²",
    "9" * 30,
    "9" * 5000,
    "1e400",
    "9999-12-31",
    "0001-01-01",
    "9999-12-31T23:59:59-23:00",
    "2026-02-30",
    "a\x00b",
    "' OR 1=1 --",
    "x" * 10_000,
    "[]",
    "ü",
]


@pytest.mark.parametrize("route", LIST_ROUTES, ids=route_id)
def test_odd_query_parameters(api, route):
    viewset = route[4]
    names = ["updated_since", "include_deleted", "cursor", "limit", "all_or_none", "unknown", "ordering"]
    filterset = getattr(viewset, "filterset_class", None)
    if filterset is not None:
        names += list(filterset.base_filters)
    url = url_of(route, "")
    for name in names:
        for value in ODD_PARAM_VALUES:
            check(api.get(url, {name: value}), (route, name, value))
    check(api.get(url, {name: ODD_PARAM_VALUES for name in names}), (route, "all at once"))


@pytest.mark.parametrize("route", [r for r in ROUTES if r[3]], ids=route_id)
def test_odd_ids_in_the_url(api, route):
    for lookup in ("%00", "a%00b", "x" * 5000, "%C3%BC", "%ED%A0%80", "..", "null", "-1", "9" * 30, "%20"):
        url = url_of(route, lookup)
        body = "{}" if route[1] in ("PUT", "PATCH", "POST") else None
        response = send(api, route[1], url, body) if body else getattr(api, route[1].lower())(url)
        check(response, (route, lookup))


def test_a_signed_in_leader_gets_the_same_errors(leader, seeded):
    client = APIClient()
    client.force_login(leader)
    for route in BODY_ROUTES:
        url = url_of(route, "fuzz-new")
        check(send(client, route[1], url, b"not json"), route)
        check(send(client, route[1], url, b"[" * 100_000), route)


def test_every_route_is_covered():
    """The router's resources all have body routes and list routes checked here."""
    prefixes = {prefix for prefix, _viewset, _basename in router.registry}
    assert {r[0] for r in LIST_ROUTES} == prefixes
    assert {"accounts", "contacts", "subscriptions", "touches", "success-plans", "usage"} <= {r[0] for r in BODY_ROUTES}


def test_nul_in_any_value_of_a_repeated_parameter_is_400(api):
    for query in ("q=a%00b&q=ok", "q=ok&q=a%00b", "a%00b=1"):
        response = api.get(f"{API}accounts/?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["fields"] == {
            ("ab" if query.startswith("a%00") else "q"): ["Must not contain NUL characters."]
        }
