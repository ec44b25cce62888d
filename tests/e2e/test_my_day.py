"""My day in the browser: a CSM signs in to their day and snoozes an alert in place."""

import datetime

from playwright.sync_api import expect

from metrics.models import Alert
from tests.e2e.conftest import check_page, figure, login


def test_a_csm_signs_in_to_their_day(page, book):
    login(page, book.csm)
    expect(page.get_by_role("heading", name="My day", level=1)).to_be_visible()
    figures = page.locator("section[aria-labelledby=book-title]")

    # Northwind, Bluebird, Cedar, Lumen and the churned Quill; not the colleague's Orbit.
    expect(figure(figures, "Accounts")).to_have_text("5")
    expect(figure(figures, "ARR")).to_have_text("USD 132,000")  # 12 x (6,800 + 2,500 + 1,100 + 600)
    expect(figure(figures, "Red")).to_have_text("1")  # Bluebird
    expect(figure(figures, "Green")).to_have_text("3")
    expect(figure(figures, "No score")).to_have_text("1")  # Quill, without revenue
    alerts = page.locator("section[aria-labelledby=alerts-title]")
    expect(alerts).to_contain_text("Bluebird Logistics")
    renewals = page.locator("section[aria-labelledby=renewals-title]")
    expect(renewals).to_contain_text("Bluebird Logistics")  # in 25 days
    expect(renewals).to_contain_text("Northwind Analytics")  # in 40 days
    expect(renewals).not_to_contain_text("Cedar Health")  # in 200 days
    expect(page.locator("section[aria-labelledby=overdue-title]")).to_contain_text("Bluebird Logistics")
    check_page(page, "my-day")


def test_a_csm_snoozes_an_alert_in_place(page, book):
    alert = Alert.objects.get(account=book.bluebird, rule__kind="health_red")
    login(page, book.csm)
    row = page.locator(f"#alert-{alert.pk}")
    expect(row).to_contain_text(alert.reason)
    page.evaluate("window.__before_swap = true")  # gone if the page reloads

    row.get_by_role("button", name="Snooze 7 days").click()

    expect(row.get_by_role("button", name="Snooze 7 days")).to_have_count(0)
    expect(row.get_by_role("button", name="Done")).to_be_visible()
    assert page.evaluate("window.__before_swap === true"), "the row should change in place, without a reload"
    alert.refresh_from_db()
    assert alert.status == Alert.Status.SNOOZED
    assert alert.snoozed_until == book.today + datetime.timedelta(days=7)
    check_page(page)
