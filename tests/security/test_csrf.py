"""CSRF: every form posts with its token, and a post without one is refused (403), on every route.

The routes are walked from the root resolver (pages, admin and API alike), posted to by a signed-in
superuser, who may change anything, through a client that enforces CSRF checks as browsers meet them.
"""

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tests import factories
from tests.security.urls import all_routes

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# Routes a post without a token may reach, and why.
NO_TOKEN_NEEDED = {
    "api/v1/": "any other path under the API: a JSON 404, it reads and writes nothing",
}
ROUTES = [r for r in all_routes() if r.route not in NO_TOKEN_NEEDED]


@pytest.fixture
def leader_without_token(admin_user):
    """A superuser (a CS leader with every admin permission), so nothing but the token stands in the way."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    return client


def token_of(client) -> str:
    page = client.get(reverse("home")).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_post_without_the_token_is_refused(leader_without_token, route):
    data = {"title": "x", "name": "x", "status": "done"}
    response = leader_without_token.post(route.url, data)
    assert response.status_code == 403, (route.url, response.status_code)
    # The reason is the token, not the role or the object: the refusal says so, or (pages that render
    # every error alike) the same post with the token is not refused.
    if b"CSRF" not in response.content:
        with_token = leader_without_token.post(route.url, data, headers={"X-CSRFToken": token_of(leader_without_token)})
        assert with_token.status_code != 403, route.url


def test_signing_in_needs_the_token_too(csm_user):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "priya", "password": "pass-word-123"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_the_same_post_with_the_token_goes_through(leader, csm_user):
    """The refusals above are the token's doing: with it, the post of a form is taken."""
    account = factories.AccountFactory(owner=csm_user)
    alert = factories.AlertFactory(account=account, owner=csm_user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(leader)
    token = token_of(client)
    url = reverse("metrics:alert_done", args=[alert.pk])
    assert client.post(url, {}).status_code == 403
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    alert.refresh_from_db()
    assert alert.status == "done"


# --- every form in the templates carries the token ------------------------------------------------

POST_FORM = re.compile(r"<form\b[^>]*\bmethod=[\"']?post\b[^>]*>(?P<body>.*?)</form>", re.I | re.S)


def post_forms_of(text: str) -> list[str]:
    return [m["body"] for m in POST_FORM.finditer(text)]


def test_every_post_form_in_the_templates_has_the_token():
    checked = 0
    for path in sorted(TEMPLATES.rglob("*.html")):
        for body in post_forms_of(path.read_text()):
            checked += 1
            assert "{% csrf_token %}" in body, f"{path.relative_to(TEMPLATES)}: a post form without {{% csrf_token %}}"
    assert checked >= 10  # the walk did find the forms


def test_htmx_posts_send_the_token_from_the_layout():
    """Buttons that post with hx-post outside a form send the token in the header the layout sets."""
    base = (TEMPLATES / "base.html").read_text()
    assert """hx-headers='{"X-CSRFToken": "{{ csrf_token }}"}'""" in base


def test_every_post_form_on_rendered_pages_has_the_token(leader, csm_user):
    account = factories.AccountFactory(owner=csm_user)
    factories.AlertFactory(account=account, owner=leader)
    plan = factories.SuccessPlanFactory(account=account)
    goal = factories.GoalFactory(plan=plan)
    factories.TargetFactory(goal=goal)
    factories.InitiativeFactory(goal=goal)
    client = Client(enforce_csrf_checks=True)
    pages = [
        reverse("login"),
        reverse("home"),
        reverse("metrics:account", args=[account.pk]),
        reverse("plans:detail", args=[plan.pk]),
        reverse("plans:delete", args=[plan.pk]),
        reverse("plans:edit", args=[plan.pk]),
        reverse("accounts:new_touch", args=[account.pk]),
        "/admin/accounts/account/",
        f"/admin/accounts/account/{account.pk}/change/",
    ]
    forms = 0
    for url in pages:
        if url != reverse("login"):
            client.force_login(leader)
        response = client.get(url)
        assert response.status_code == 200, url
        for body in post_forms_of(response.content.decode()):
            forms += 1
            assert 'name="csrfmiddlewaretoken"' in body, url
    assert forms >= len(pages)
