"""Success plans in the browser: a plan from a playbook, an initiative marked done in place, and a CSM
refused a change to a colleague's plan."""

import re

from playwright.sync_api import expect

from success_plans.models import Initiative, SuccessPlan
from tests.e2e.conftest import check_page, login


def test_a_csm_creates_a_plan_from_a_playbook_and_completes_an_initiative(page, book):
    login(page, book.csm)
    page.goto(f"/plans/account/{book.lumen.pk}/")
    check_page(page)
    page.get_by_role("link", name="New plan").click()
    expect(page.get_by_role("heading", name="New success plan")).to_be_visible()
    check_page(page)

    page.get_by_label("Onboarding (High touch)").check()
    page.get_by_role("button", name="Create the plan").click()

    expect(page).to_have_url(re.compile(r"/plans/\d+/$"))
    plan = SuccessPlan.objects.get(account=book.lumen)
    assert page.url.endswith(f"/plans/{plan.pk}/")
    assert plan.template.name == "Onboarding (High touch)"
    expect(page.get_by_role("heading", name=re.compile("Onboarding"), level=1)).to_be_visible()
    kickoff = Initiative.objects.get(goal__plan=plan, title="Kick-off with the executive sponsor")
    row = page.locator(f"#initiative-{kickoff.pk}")
    expect(row).to_contain_text("Planned")
    check_page(page, "plan")

    page.evaluate("window.__before_swap = true")  # gone if the page reloads
    row.get_by_role("button", name="Mark done").click()
    expect(row).to_contain_text("Done")
    expect(row.get_by_role("button", name="Reopen")).to_be_visible()
    assert page.evaluate("window.__before_swap === true"), "the row should change in place, without a reload"
    kickoff.refresh_from_db()
    assert kickoff.status == Initiative.Status.DONE
    check_page(page)


def test_a_csm_cannot_change_a_colleagues_plan(page, book):
    login(page, book.csm)
    page.goto(f"/plans/{book.other_plan.pk}/")
    expect(page.get_by_role("heading", name=book.other_plan.title, level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Edit the plan")).to_have_count(0)  # readable, not editable
    expect(page.get_by_role("button", name="Mark done")).to_have_count(0)
    check_page(page)

    response = page.goto(f"/plans/{book.other_plan.pk}/edit/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not yours to change")).to_be_visible()
    check_page(page)
    title = book.other_plan.title
    book.other_plan.refresh_from_db()
    assert book.other_plan.title == title
