"""The accounts list and the account page in the browser: filter, sort, open an account, log a touch."""

import re

from django.utils.formats import date_format
from playwright.sync_api import expect

from accounts.models import Touch
from tests.e2e.conftest import check_page, figure, login


def test_a_csm_filters_and_sorts_the_accounts_list(page, book):
    login(page, book.csm)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Accounts").click()
    expect(page.get_by_role("heading", name="Accounts", level=1)).to_be_visible()
    names = page.locator(".accounts-list tbody tr td:first-child")
    # Sorted by name: everyone's accounts.
    everyone = sorted(a.name for a in (book.northwind, book.bluebird, book.cedar, book.lumen, book.quill, book.orbit))
    expect(names).to_have_text(everyone)
    check_page(page, "accounts")

    filters = page.get_by_role("search", name="Filter accounts")
    # The CSM picker asks the server for the people matching what is typed and offers them in its list.
    picker = filters.get_by_label("CSM")
    picker.press_sequentially("Pri")
    expect(page.locator(f"#id_owner-options option[value={book.csm.username}]")).to_have_text("Priya Khan")
    expect(page.locator("#id_owner-options option[value=sam]")).to_have_count(0)
    picker.fill(book.csm.username)
    filters.get_by_label("Region").select_option("EMEA")
    filters.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"owner={book.csm.username}"))
    expect(picker).to_have_value(book.csm.username)
    expect(names).to_have_text(["Cedar Health", "Northwind Analytics", "Quill Books"])

    # ARR: Quill 0 (churned), Cedar 13,200, Northwind 81,600.
    arr_header = page.get_by_role("columnheader", name=re.compile("^ARR"))
    arr_header.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"ordering=arr"))
    expect(arr_header).to_have_attribute("aria-sort", "ascending")
    expect(names).to_have_text(["Quill Books", "Cedar Health", "Northwind Analytics"])
    arr_header.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"ordering=-arr"))
    expect(names).to_have_text(["Northwind Analytics", "Cedar Health", "Quill Books"])
    expect(page).to_have_url(re.compile(rf"owner={book.csm.username}"))  # sorting keeps the filters
    check_page(page)

    page.get_by_role("link", name="Northwind Analytics").click()
    expect(page.get_by_role("heading", name="Northwind Analytics", level=1)).to_be_visible()
    check_page(page)


def test_a_csm_logs_a_touch_and_sees_it_on_the_timeline_and_in_the_health_panel(page, book):
    account = book.bluebird
    today = date_format(book.today, "SHORT_DATE_FORMAT")  # as the page shows it
    login(page, book.csm)
    page.goto(f"/account/{account.pk}/")
    summary = page.locator("#account-summary")
    expect(summary.get_by_role("heading", name=account.name, level=1)).to_be_visible()
    timeline = page.locator("#account-timeline")
    expect(timeline).to_contain_text("Renewal pricing questions")
    health_before = figure(summary, "Health").inner_text()
    engagement = summary.get_by_role("row", name=re.compile("^Engagement")).get_by_role("cell").first
    expect(engagement).to_have_text("1.67")  # raw value: 75 days since the last touch / a 45-day cadence
    last_touch = figure(summary, "Last touch")
    expect(last_touch).not_to_have_text(today)
    check_page(page, "account")

    form = page.locator(f"#touch-form-{account.pk}")
    form.get_by_label("Kind").select_option(label="Meeting")
    form.get_by_label("Sentiment").select_option(label="Positive")
    form.get_by_label("Subject").fill("Renewal plan agreed with Maria")
    form.get_by_label("Maria Lopez").check()
    form.get_by_label("Notes").fill("Maria confirmed the renewal; two more depots go live next month.")
    form.get_by_role("button", name="Log touch").click()

    expect(page.get_by_role("status").filter(has_text="Touch logged: Renewal plan agreed with Maria.")).to_be_visible()
    expect(timeline).to_contain_text("Renewal plan agreed with Maria")
    expect(last_touch).to_have_text(today)
    expect(figure(summary, "Health")).not_to_have_text(health_before)
    expect(engagement).to_have_text("0")  # touched today
    touch = Touch.objects.get(account=account, subject="Renewal plan agreed with Maria")
    assert touch.csm == book.csm and touch.sentiment == 1 and touch.kind == "meeting"
    assert [c.name for c in touch.contacts.all()] == ["Maria Lopez"]
    check_page(page)
