"""Signing in through the real form, and the polite page for a user without a role."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import check_page, login


def test_a_user_without_a_role_sees_the_no_access_page(page, outsider):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))  # every page needs a sign-in
    check_page(page)
    login(page, outsider)
    expect(page.get_by_role("heading", name="No access yet")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    check_page(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
