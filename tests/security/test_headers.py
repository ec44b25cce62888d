"""Security headers on every kind of page: the workspace, the admin, the API docs, the sign-in page.

A Content-Security-Policy that runs scripts only from this server's files or with the response's nonce
(never inline), frames denied, a same-origin referrer policy and no content sniffing.
"""

import base64
import hashlib
import re

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_secure_headers(response) -> dict[str, list[str]]:
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    csp = directives(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    scripts = csp["script-src"]
    assert "'unsafe-inline'" not in scripts
    assert "'unsafe-eval'" not in scripts
    assert all(source == "'self'" or source.startswith("'nonce-") for source in scripts), scripts
    assert "'unsafe-inline'" not in csp.get("script-src-attr", [])
    return csp


def inline_scripts(html: str) -> list[str]:
    """The opening tags of scripts with a body of their own (no src), but not JSON data blocks."""
    tags = re.findall(r"<script\b[^>]*>", html)
    return [t for t in tags if "src=" not in t and 'type="application/json"' not in t]


def assert_no_unapproved_inline_script(response, csp) -> None:
    nonces = [s.removeprefix("'nonce-").removesuffix("'") for s in csp["script-src"] if s.startswith("'nonce-")]
    for tag in inline_scripts(response.content.decode()):
        assert any(f'nonce="{nonce}"' in tag for nonce in nonces), tag
    # An inline event handler runs only when the policy names its hash (script-src-attr 'unsafe-hashes').
    allowed = csp.get("script-src-attr", [])
    for handler in re.findall(r"<[^>]+\son[a-z]+=\"([^\"]*)\"", response.content.decode()):
        digest = base64.b64encode(hashlib.sha256(handler.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed, handler


def test_the_workspace_page(csm_client):
    response = csm_client.get(reverse("home"))
    assert response.status_code == 200
    csp = assert_secure_headers(response)
    assert_no_unapproved_inline_script(response, csp)


def test_the_sign_in_page():
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    csp = assert_secure_headers(response)
    assert_no_unapproved_inline_script(response, csp)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/accounts/account/",
        "/admin/metrics/alertrule/add/",
        "/admin/django_celery_beat/periodictask/add/",
        "/admin/accounts/account/export/",
    ],
)
def test_the_admin(leader_client, url):
    response = leader_client.get(url)
    assert response.status_code == 200
    csp = assert_secure_headers(response)
    assert_no_unapproved_inline_script(response, csp)


@pytest.mark.parametrize("name", ["api:docs", "api:redoc"])
def test_the_api_docs_run_their_script_by_nonce(name):
    response = Client().get(reverse(name))
    assert response.status_code == 200
    csp = assert_secure_headers(response)
    assert_no_unapproved_inline_script(response, csp)
    if name == "api:docs":  # Swagger UI starts from an inline script: it carries the nonce
        nonce = next(s for s in csp["script-src"] if s.startswith("'nonce-"))
        assert f'<script nonce="{nonce[7:-1]}">' in response.content.decode()


def test_the_api_answers_with_the_headers_too(db):
    assert_secure_headers(Client().get("/api/v1/accounts/"))


def test_a_nonce_is_new_on_every_response():
    first = directives(Client().get(reverse("api:docs")))["script-src"]
    second = directives(Client().get(reverse("api:docs")))["script-src"]
    assert first != second
