"""The Content-Security-Policy blocks nothing the product needs: pages, the admin and the API docs render
in chromium with no policy violation (the browser's report, not just the header's text)."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login

pytestmark = pytest.mark.e2e

LISTEN = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile));"
)


@pytest.fixture
def watched(page):
    """The page, recording every CSP violation the browser reports (events and console)."""
    console: list[str] = []
    page.add_init_script(LISTEN)
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    page.console_violations = console
    return page


def violations(page) -> list[str]:
    return page.evaluate("window.__violations") + page.console_violations


def test_the_workspace_and_the_admin_run_under_the_policy(watched, book):
    page = watched
    page.goto("/login/")
    assert violations(page) == []
    login(page, book.leader)
    for url, heading in [
        ("/", "My day"),
        (f"/account/{book.northwind.pk}/", book.northwind.name),
        (f"/plans/{book.plan.pk}/", book.plan.title),
        ("/portfolio/", "Portfolio"),
        ("/accounts/", "Accounts"),
        ("/admin/", "Site administration"),
        (f"/admin/accounts/account/{book.northwind.pk}/change/", None),
        ("/admin/metrics/healthmodel/", None),
        ("/admin/django_celery_beat/periodictask/add/", None),  # its inline script carries the nonce
        ("/admin/accounts/account/export/", None),
    ]:
        page.goto(url)
        if heading:
            expect(page.get_by_role("heading", name=heading).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert violations(page) == [], url


@pytest.fixture
def docs_page(browser, live_server):
    """A page of its own: Redoc reaches for its vendor's logo on another host, which the policy blocks."""
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.add_init_script(LISTEN)
    page.console_violations = []
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# Redoc's sidebar shows its vendor's logo from the vendor's server: the policy blocks it, nothing else.
REDOC_LOGO = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_the_api_docs_render_under_the_policy(docs_page, db):
    page = docs_page
    page.goto("/api/v1/docs/")
    expect(page.locator(".opblock").first).to_be_visible()  # Swagger UI drew the operations
    page.wait_for_load_state("networkidle")
    assert violations(page) == []
    page.goto("/api/v1/redoc/")
    expect(page.locator(".api-content").first).to_be_visible()  # Redoc drew the reference
    page.wait_for_load_state("networkidle")
    assert [v for v in violations(page) if not v.startswith(REDOC_LOGO)] == []
