"""An `own` partner reaches no other partner's object by any route of the API.

tests/api/test_scope.py checks the router's routes generically (lists, detail routes, references in
writes, bulk). Here: every API URL pattern the resolver serves is accounted for by a test (that file's,
or this one's for the routes it leaves out: creating with another partner's external id, usage
ingestion, and the routes outside the router), so a route added later fails until it is.
"""

import datetime
import json

import pytest

from metrics.models import UsageRecord
from tests.api.test_scope import (  # noqa: F401 -- generous_rate: an autouse fixture
    LIST_ROUTES,
    ROUTES,
    SYNCED_WRITES,
    generous_rate,
    input_fields,
    route_id,
    row_of,
    rows,
    scoped_references,
    url_of,
    without_ids,
)
from tests.security.urls import all_routes

API = "/api/v1/"
CREATES = [r for r in SYNCED_WRITES if r[2] == "create"]
USAGE_WRITES = [r for r in ROUTES if r[0] == "usage" and r[1] == "POST"]
# API patterns outside the router, and the test proving what a partner reaches through each.
OUTSIDE_THE_ROUTER = {
    "api/v1/accounts/<str:external_id>/health/": "test_health_of_another_partners_account_is_404 (here)",
    "api/v1/metrics/revenue/": "test_the_revenue_bridge_needs_scope_all (here)",
    "api/v1/schema/": "the OpenAPI document: no data",
    "api/v1/docs/": "Swagger UI: no data",
    "api/v1/redoc/": "Redoc: no data",
    "api/v1/": "any other path: a JSON 404",
}


def covered_by_scope_tests() -> set[str]:
    """The router routes tests/api/test_scope.py and this file check, by route id."""
    return (
        {route_id(r) for r in LIST_ROUTES}
        | {route_id(r) for r in ROUTES if r[3]}  # detail routes: another partner's object is 404
        | {route_id(r) for r in SYNCED_WRITES if scoped_references(r)}
        | {route_id(r) for r in SYNCED_WRITES if r[2] == "bulk"}
        | {route_id(r) for r in CREATES}
        | {route_id(r) for r in USAGE_WRITES}
    )


def router_pattern(route) -> str:
    template = route[5].replace("{prefix}", route[0]).replace("{trailing_slash}", "/")
    return template.replace("{lookup}", "").lstrip("^").rstrip("$")


def test_every_api_route_is_covered_by_an_isolation_test():
    missing = sorted(route_id(r) for r in ROUTES if route_id(r) not in covered_by_scope_tests())
    assert missing == []
    served = {r.route for r in all_routes() if r.route.startswith("api/")}
    outside = {route for route in served if "^" not in route}
    assert outside == set(OUTSIDE_THE_ROUTER)
    # Every router pattern served is one the scope tests walk (lookups aside).
    walked = {router_pattern(r) for r in ROUTES}
    for route in served - outside:
        pattern = route.removeprefix("api/v1/^").rstrip("$")
        assert any(
            pattern.replace("(?P<external_id>[^/]+)/", "").replace("(?P<pk>[0-9]+)/", "") == w.replace("//", "/")
            for w in walked
        ), route


@pytest.mark.parametrize("route", CREATES, ids=route_id)
def test_creating_with_another_partners_external_id_is_a_conflict(world, route):
    prefix = route[0]
    mine = row_of(world, prefix, "a-001")
    theirs = row_of(world, prefix, "b-001")
    before = rows(world["all"], prefix, {"include_deleted": "true"})
    body = {name: without_ids(mine[name]) for name in input_fields(route) if mine.get(name) is not None}
    body["external_id"] = theirs["external_id"]
    response = world["a"].post(url_of(route, ""), json.dumps(body), content_type="application/json")
    assert response.status_code == 409, (route_id(route), response.content[:300])
    assert response.json()["error"]["code"] == "conflict"
    assert rows(world["all"], prefix, {"include_deleted": "true"}) == before


@pytest.mark.parametrize("route", USAGE_WRITES, ids=route_id)
def test_usage_for_another_partners_account_is_refused(world, route):
    before = list(UsageRecord.objects.order_by("pk").values_list("account_id", "metric", "date", "value"))
    item = {"account": "b-001", "metric": "logins", "date": datetime.date(2026, 1, 5).isoformat(), "value": "9"}
    response = world["a"].post(url_of(route, ""), [item], format="json")
    assert response.status_code == 400, (route_id(route), response.content[:300])
    unknown = world["a"].post(url_of(route, ""), [{**item, "account": "zzz-none"}], format="json")
    assert response.json()["error"]["message"] == unknown.json()["error"]["message"]  # nothing leaks
    assert list(UsageRecord.objects.order_by("pk").values_list("account_id", "metric", "date", "value")) == before


def test_health_of_another_partners_account_is_404(world):
    assert world["a"].get(f"{API}accounts/b-001/health/").status_code == 404
    assert world["a"].get(f"{API}accounts/a-001/health/").status_code == 200
    assert world["b"].get(f"{API}accounts/b-001/health/").status_code == 200


def test_the_revenue_bridge_needs_scope_all(world):
    assert world["a"].get(f"{API}metrics/revenue/").status_code == 403
    assert world["all"].get(f"{API}metrics/revenue/").status_code == 200
