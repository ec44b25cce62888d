"""The portfolio in the browser: from a figure to the accounts behind it."""

from playwright.sync_api import expect

from tests.e2e.conftest import check_page, figure, login


def test_a_csm_follows_a_portfolio_figure_to_the_accounts_behind_it(page, book):
    login(page, book.csm)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Portfolio").click()
    expect(page.get_by_role("heading", name="Portfolio", level=1)).to_be_visible()
    figures = page.locator("section[aria-labelledby=book-heading]")
    expect(figure(figures, "Paying accounts")).to_have_text("5")
    check_page(page, "portfolio")

    figure(figures, "MRR").get_by_role("link").click()
    # Northwind 6,000 + 800, Bluebird 2,500, Cedar 1,100, Lumen 600 and Orbit 3,000; Quill churned.
    expect(page.get_by_text("Total of 5 accounts")).to_be_visible()
    expect(page.locator("[data-figure=total]")).to_contain_text("14,000.00")
    expect(page.locator("[data-figure=stored]")).to_contain_text("14,000.00")
    rows = page.locator("table.drilldown tbody tr th")
    expect(rows).to_have_count(5)
    assert sorted(rows.all_inner_texts()) == sorted(
        a.name for a in (book.northwind, book.bluebird, book.cedar, book.lumen, book.orbit)
    )
    check_page(page, "drilldown")
    page.get_by_role("link", name="Northwind Analytics").click()
    expect(page.get_by_role("heading", name="Northwind Analytics", level=1)).to_be_visible()
