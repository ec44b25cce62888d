"""Signing in through the real form, and the polite page for a user without a role."""

from tests.e2e.conftest import check_page, login


def test_a_user_without_a_role_sees_the_no_access_page(page, outsider):
    page.goto("/")
    assert "/login/" in page.url  # every page needs a sign-in
    check_page(page)
    login(page, outsider)
    assert page.get_by_role("heading", name="No access yet").is_visible()
    assert page.locator("nav[aria-label=Main]").count() == 0
    check_page(page)
    page.get_by_role("button", name="Sign out").click()
    assert "/login/" in page.url
