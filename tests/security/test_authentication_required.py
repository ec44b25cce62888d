"""Every page and endpoint needs a sign-in (pages, admin) or credentials (API), and a role once signed in.

The URL patterns are walked from the root resolver, so a page added later is checked too. The only
patterns open to anyone are listed in PUBLIC, each with its reason.
"""

from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse

from tests.security.urls import Route, all_routes

pytestmark = pytest.mark.django_db

# Patterns anyone may open, by route (as the resolver spells it), and why.
PUBLIC = {
    "login/": "the workspace's sign-in page",
    "admin/login/": "the admin's sign-in page",
    "api/v1/schema/": "the OpenAPI document: the shape of the API, no data (partners generate clients from it)",
    "api/v1/docs/": "Swagger UI over the OpenAPI document: assets only, no data",
    "api/v1/redoc/": "Redoc over the OpenAPI document: assets only, no data",
    "api/v1/": "any other path under the API: a JSON 404 that names nothing",
}
# Static files are served by whitenoise ahead of the URL patterns (no pattern to walk): public by nature.

ROUTES = all_routes()


def kind(route: Route) -> str:
    if route.route.startswith("admin/"):
        return "admin"
    if route.route.startswith("api/"):
        return "api"
    return "page"


def sign_in_urls(route: Route) -> set[str]:
    """Where a visitor is sent to sign in: the workspace's page, or for the admin either page (the
    admin's own views send to theirs; LoginRequiredMiddleware, ahead of the model admins, to the other)."""
    pages = [reverse("login")] + (["/admin/login/"] if kind(route) == "admin" else [])
    return {f"{page}?next={quote(route.url)}" for page in pages}


def test_the_walk_finds_every_part_of_the_site():
    routes = {r.route for r in ROUTES}
    assert set(PUBLIC) <= routes
    assert {"admin", "api", "page"} == {kind(r) for r in ROUTES}
    assert {"", "portfolio/", "plans/<int:pk>/", "accounts/export.csv"} <= routes
    assert "api/v1/^accounts/(?P<external_id>[^/]+)/$" in routes


@pytest.mark.parametrize("route", [r for r in ROUTES if r.route not in PUBLIC], ids=str)
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_visitors_are_refused(route, method):
    response = getattr(Client(), method)(route.url)
    if kind(route) == "api":
        assert response.status_code == 401, (route.url, response.status_code)
        assert response.json()["error"]["code"] == "not_authenticated"
    else:
        assert response.status_code == 302, (route.url, response.status_code)
        assert response["Location"] in sign_in_urls(route)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.route not in PUBLIC], ids=str)
def test_a_signed_in_user_without_a_role_is_refused(route, outsider):
    client = Client()
    client.force_login(outsider)
    for method in ("get", "post"):
        response = getattr(client, method)(route.url)
        if route.name in ("logout", "admin:logout"):  # signing out stays possible
            assert response.status_code in (200, 302, 405), (route.url, method)
        elif kind(route) == "admin":  # not staff: the admin asks for another sign-in
            assert response.status_code == 302, (route.url, method, response.status_code)
            assert response["Location"] in sign_in_urls(route)
        else:
            assert response.status_code == 403, (route.url, method, response.status_code)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.route in PUBLIC], ids=str)
def test_the_public_exceptions_answer_anyone(route):
    response = Client().get(route.url)
    expected = 404 if route.route == "api/v1/" else 200
    assert response.status_code == expected
