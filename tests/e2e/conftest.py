"""Browser tests: Playwright drives Debian's chromium against pytest-django's live server.

The browser is shared by the package's tests; each test gets a fresh page (its own cookies). Every page a
flow visits is checked with axe-core (shipped inside axe-playwright-python) and photographed into docs/.
"""

import datetime
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from tests import factories

CHROMIUM = os.environ.get("CSM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
VIEWPORT = {"width": 1280, "height": 860}
PASSWORD = "pass-word-123"  # what tests.factories.UserFactory sets
BLOCKING_IMPACTS = ("critical", "serious")


def _is_e2e(item) -> bool:
    return Path(str(item.path)).is_relative_to(Path(__file__).parent)


def pytest_collection_modifyitems(items):
    for item in items:
        if _is_e2e(item):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def browser(django_db_setup, django_db_blocker):
    """One headless chromium for the package. Missing chromium fails in CI and skips elsewhere."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        message = f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)"
        if os.environ.get("CI"):
            pytest.fail(f"Browser tests must run in CI, but {message}.", pytrace=False)
        pytest.skip(f"browser tests need chromium; {message} to run them")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop marked running in this thread. Django then (1) refuses
    # ORM calls unless told they are safe (they are: nothing here is async) and (2) keeps this thread's
    # database connections per context instead of per thread: new connection objects, which lack the
    # rows the migrations seeded, serialized when the test database was made. Hand those over.
    seeded = {
        c.alias: c._test_serialized_contents for c in connections.all() if hasattr(c, "_test_serialized_contents")
    }
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        for alias, contents in seeded.items():
            connections[alias]._test_serialized_contents = contents
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
    finally:
        with django_db_blocker.unblock():
            connections.close_all()  # the per-context ones, or PostgreSQL cannot drop the test database
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server, transactional_db, django_db_serialized_rollback):
    """A fresh browser context (no cookies) on the live server. Script errors fail the test, and so does
    any request to another host: CSS, scripts and charts are served by the project, never a CDN. The
    database starts each test with the rows the migrations seed (serialized rollback)."""
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    elsewhere: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    context.on(
        "request",
        lambda request: None if request.url.startswith((live_server.url, "data:")) else elsewhere.append(request.url),
    )
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not elsewhere, f"Requests to other hosts: {elsewhere}"


def login(page, user, password: str = PASSWORD) -> None:
    """Sign in through the real form, as a person would."""
    page.goto("/login/")
    page.get_by_label("User name").fill(user.get_username())
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert "/login/" not in page.url, f"sign-in as {user.get_username()} failed"


def figure(scope, term: str):
    """The value (dd) of the term (dt) named `term` in a figures list inside `scope`."""
    return scope.locator("dl > div").filter(has=scope.page.locator("dt").get_by_text(term, exact=True)).locator("dd")


def axe_check(page) -> None:
    """Fail on axe-core violations of critical or serious impact, printing each with its elements."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    blocking = [v for v in results.response["violations"] if v["impact"] in BLOCKING_IMPACTS]
    if blocking:
        lines = [f"{len(blocking)} critical or serious accessibility violations on {page.url}:"]
        for violation in blocking:
            lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
            for node in violation["nodes"][:5]:
                lines.append(f"    {', '.join(map(str, node['target']))}: {node.get('failureSummary', '')}")
        report = "\n".join(lines)
        print(report)
        pytest.fail(report, pytrace=False)


def screenshot(page, name: str) -> None:
    """The page as the README shows it: docs/<name>.png."""
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def check_page(page, name: str | None = None) -> None:
    """Every page a flow visits: no blocking accessibility violation, and a screenshot when named."""
    axe_check(page)
    if name:
        screenshot(page, name)


# --- data: a small book of business, built through the factories and services ------------------


class Book:
    """Who and what the flows use; every field is a saved model."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)


def _months_ago(today: datetime.date, months: int) -> datetime.date:
    month = today.month - months - 1
    return datetime.date(today.year + month // 12, month % 12 + 1, 1)


def _usage(account, today, *, seats: int, active_then: int, active_now: int) -> list[dict]:
    """60 days of seats and active users moving in a straight line from `active_then` to `active_now`."""
    records = []
    for back in range(60, 0, -1):
        day = today - datetime.timedelta(days=back)
        active = active_now + (active_then - active_now) * back // 60
        records.append({"account_id": account.pk, "metric": "seats_licensed", "date": day, "value": str(seats)})
        records.append({"account_id": account.pk, "metric": "active_users", "date": day, "value": str(active)})
    return records


def build_book(*, csm, other_csm, leader) -> Book:
    """A demo-like book: four live accounts and a churned one for the CSM, one for a colleague, with
    revenue lines (an expansion, a contraction and a churn), contacts, touches, usage, a plan from a
    playbook and health scored a month ago and today."""
    from accounts.models import Account, Touch
    from accounts.services import (
        churn_events_record,
        recompute_batch,
        subscription_add,
        subscription_change_price,
        subscription_end,
        touch_log,
    )
    from metrics.services.usage import usage_records_upsert
    from metrics.tasks import nightly_workflow
    from success_plans.models import PlanTemplate
    from success_plans.services import plan_create_from_template

    today = timezone.localdate()
    now = timezone.now()
    stage = Account.LifecycleStage

    def account(name, owner, **fields):
        slug = name.lower().replace(" ", "-")
        fields.setdefault("customer_since", _months_ago(today, 14))
        return factories.AccountFactory(
            name=name, owner=owner, domain=f"{slug}.example.com", external_id=f"crm-{slug}", **fields
        )

    with recompute_batch(queue=False):  # the recompute below scores everything once
        northwind = account(
            "Northwind Analytics", csm, industry="Software", region="EMEA", country="DE",
            lifecycle_stage=stage.ADOPTION, renewal_date=today + datetime.timedelta(days=40),
        )  # fmt: skip
        bluebird = account(
            "Bluebird Logistics", csm, industry="Logistics", region="North America", country="US",
            lifecycle_stage=stage.RENEWAL, renewal_date=today + datetime.timedelta(days=25),
        )  # fmt: skip
        cedar = account(
            "Cedar Health", csm, industry="Healthcare", region="EMEA", country="NL",
            lifecycle_stage=stage.ADOPTION, renewal_date=today + datetime.timedelta(days=200),
        )  # fmt: skip
        lumen = account(
            "Lumen Retail", csm, industry="Retail", region="APAC", country="SG",
            lifecycle_stage=stage.ONBOARDING, renewal_date=today + datetime.timedelta(days=300),
            customer_since=_months_ago(today, 2),
        )  # fmt: skip
        quill = account("Quill Books", csm, industry="Retail", region="EMEA", country="GB")
        orbit = account(
            "Orbit Media", other_csm, industry="Media", region="North America", country="CA",
            lifecycle_stage=stage.ADOPTION, renewal_date=today + datetime.timedelta(days=120),
        )  # fmt: skip

        start = _months_ago(today, 12)
        line = subscription_add(account=northwind, product="Platform", mrr=Decimal("4000"), start_date=start)
        subscription_change_price(subscription=line, mrr=Decimal("6000"), on=_months_ago(today, 4))  # upsell
        addon_start = _months_ago(today, 2)
        subscription_add(account=northwind, product="Insights add-on", mrr=Decimal("800"), start_date=addon_start)
        subscription_add(account=bluebird, product="Platform", mrr=Decimal("2500"), start_date=start)
        line = subscription_add(account=cedar, product="Platform", mrr=Decimal("1500"), start_date=start)
        subscription_change_price(subscription=line, mrr=Decimal("1100"), on=_months_ago(today, 3))  # contraction
        subscription_add(account=lumen, product="Platform", mrr=Decimal("600"), start_date=_months_ago(today, 2))
        line = subscription_add(account=quill, product="Platform", mrr=Decimal("700"), start_date=start)
        subscription_end(subscription=line, end_date=_months_ago(today, 3))
        churn_events_record(events=[(quill.pk, _months_ago(today, 3), "Budget cut")])
        subscription_add(account=orbit, product="Platform", mrr=Decimal("3000"), start_date=start)

        contacts = {}
        for acct, name, title in [
            (northwind, "Ada Brandt", "VP Operations"),
            (northwind, "Jonas Weber", "Analytics lead"),
            (bluebird, "Maria Lopez", "Head of Logistics"),
            (cedar, "Pieter de Vries", "CIO"),
            (lumen, "Wei Ling Tan", "E-commerce manager"),
            (orbit, "Chloe Martin", "Director of Content"),
        ]:
            contacts[name] = factories.ContactFactory(account=acct, name=name, title=title)

        def touch(acct, days_ago, subject, sentiment, kind=Touch.Kind.CALL, contact=None, by=csm):
            touch_log(
                account=acct, csm=by, kind=kind, occurred_at=now - datetime.timedelta(days=days_ago),
                subject=subject, sentiment=sentiment, contacts=[contacts[contact]] if contact else [],
                notes=f"{subject}.",
            )  # fmt: skip

        touch(northwind, 40, "Quarterly business review", 1, Touch.Kind.MEETING, "Ada Brandt")
        touch(northwind, 6, "Insights add-on kick-off", 1, contact="Jonas Weber")
        touch(bluebird, 75, "Renewal pricing questions", -1, Touch.Kind.EMAIL, "Maria Lopez")
        touch(cedar, 20, "Usage review", 0, contact="Pieter de Vries")
        touch(lumen, 10, "Onboarding kick-off", 1, Touch.Kind.MEETING, "Wei Ling Tan")
        touch(orbit, 12, "Editorial workflow demo", 1, contact="Chloe Martin", by=other_csm)

        usage = []
        usage += _usage(northwind, today, seats=120, active_then=90, active_now=112)
        usage += _usage(bluebird, today, seats=80, active_then=60, active_now=18)
        usage += _usage(cedar, today, seats=50, active_then=30, active_now=31)
        usage += _usage(lumen, today, seats=40, active_then=5, active_now=22)
        usage += _usage(orbit, today, seats=60, active_then=40, active_now=44)
        usage_records_upsert(records=usage)

        playbooks = {template.name: template for template in PlanTemplate.objects.all()}
        adoption = playbooks["Adoption (Low touch)"]
        plan = plan_create_from_template(
            account=northwind, template=adoption, start_date=today - datetime.timedelta(days=30)
        )
        other_plan = plan_create_from_template(
            account=orbit, template=adoption, start_date=today - datetime.timedelta(days=20)
        )

    for day in (today - datetime.timedelta(days=30), today):
        nightly_workflow(day.isoformat()).apply().get()

    accounts = {a.pk: a for a in Account.objects.all()}
    return Book(
        csm=csm,
        other_csm=other_csm,
        leader=leader,
        northwind=accounts[northwind.pk],
        bluebird=accounts[bluebird.pk],
        cedar=accounts[cedar.pk],
        lumen=accounts[lumen.pk],
        quill=accounts[quill.pk],
        orbit=accounts[orbit.pk],
        plan=plan,
        other_plan=other_plan,
        playbooks=playbooks,
        today=today,
    )


@pytest.fixture
def book(live_server, csm_user, other_csm, leader):
    return build_book(csm=csm_user, other_csm=other_csm, leader=leader)
