"""The portfolio's stored history figures (cohorts, upsell timing, churns) and the paged drill-downs.

What the nightly revenue step stores must equal what the revenue selectors compute live from the
subscription lines, and what walking the whole history in memory gives, after any writes and a recompute.
"""

import datetime
import re
from decimal import Decimal

import hypothesis
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from hypothesis import strategies as st

from accounts.models import Account, Tier
from metrics.history import FIGURES, load_history, month_index, month_start
from metrics.models import AccountChurn, PortfolioHistory, RevenueMonth
from metrics.selectors import portfolio as selectors
from metrics.selectors import revenue
from metrics.services.portfolio import COHORT_MONTHS, portfolio_history_recompute
from metrics.services.revenue import revenue_recompute
from metrics.tasks import nightly_workflow
from success_plans.models import Goal
from tests import factories
from tests.metrics.test_portfolio import build_book
from tests.metrics.test_revenue_selectors import FIRST_DAY, build_generated_portfolio, portfolios

D = datetime.date
SegmentKind = RevenueMonth.SegmentKind
PORTFOLIO = reverse("metrics:portfolio")
DRILLDOWN = reverse("metrics:drilldown")
CHURN = reverse("metrics:churn_drilldown")


def all_stored_churns(first: datetime.date, last: datetime.date, **options) -> list[selectors.ChurnRow]:
    return [
        selectors.churn_row(values)
        for values in selectors.churn_rows_of(selectors.stored_churns(first=first, last=last, **options))
    ]


def assert_stored_equals_live(ranges) -> None:
    """Cohorts, upsell timing and each range's churn analysis and churns: stored = live (summed in the database
    from the lines) = the history walked in memory."""
    stored = selectors.stored_history()
    history = load_history()
    assert stored.cohorts == revenue.cohort_retention(months_after=COHORT_MONTHS)
    assert stored.cohorts == revenue.cohort_retention(months_after=COHORT_MONTHS, history=history)
    assert stored.upsell_timing == revenue.upsell_timing() == revenue.upsell_timing(history=history)
    assert stored.concentration == revenue.concentration()
    live_days = revenue.time_to_value()
    for figures in live_days["by_tier"].values():
        del figures["values"]  # each tier's list of days is not stored: the page shows medians and counts
    assert stored.time_to_value == live_days
    today = timezone.localdate()
    for first, last in ranges:
        live = revenue.churn_analysis(first=first, last=last, until=today)
        assert selectors.stored_churn_analysis(first=first, last=last) == live, (first, last)
        assert live == revenue.churn_analysis(first=first, last=last, history=history)
        assert all_stored_churns(first, last) == selectors.churn_rows(first=first, last=last, until=today)
        for band in selectors.tenure_bands():
            assert all_stored_churns(first, last, tenure=band) == selectors.churn_rows(
                first=first, last=last, tenure=band, until=today
            )
        for reason in live["reasons"]:
            assert all_stored_churns(first, last, reason=reason) == selectors.churn_rows(
                first=first, last=last, reason=reason, until=today
            )


@pytest.mark.django_db
def test_stored_figures_equal_the_live_computation_after_writes_and_a_recompute():
    book = build_book()
    ranges = [(D(2025, 1, 1), D(2025, 6, 1)), (D(2025, 2, 1), D(2025, 2, 1)), (D(2025, 4, 1), timezone.localdate())]
    written = portfolio_history_recompute()
    # Two churns (E in February 2025, B in April 2025), both new rows.
    assert written == 2
    assert [
        (row.account_id, row.month, row.tenure_months, row.mrr, row.reason) for row in AccountChurn.objects.all()
    ] == [
        (book["E"].pk, D(2025, 2, 1), 1, Decimal("300.00"), ""),
        (book["B"].pk, D(2025, 4, 1), 3, Decimal("500.00"), "Budget cut"),
    ]
    assert_stored_equals_live(ranges)
    e_churn = AccountChurn.objects.get(account=book["E"])

    # Writes: B comes back in July 2025 and churns again in October with a reason recorded late; E's
    # first churn gets a reason; C moves to Low touch and expands; A's line ends in March 2025, so A
    # churns then and its later line reactivates it (its first expansion is gone).
    factories.SubscriptionFactory(
        account=book["B"], mrr=Decimal(450), start_date=D(2025, 7, 1), end_date=D(2025, 10, 1)
    )
    factories.ChurnEventFactory(account=book["B"], churned_on=D(2025, 11, 3), reason="Moved to a competitor")
    factories.ChurnEventFactory(account=book["E"], churned_on=D(2025, 2, 1), reason="Price")
    Account.objects.filter(pk=book["C"].pk).update(tier=Tier.objects.get(slug="low-touch"))
    factories.SubscriptionFactory(account=book["C"], product="Seats", mrr=Decimal(90), start_date=D(2025, 8, 1))
    book["A"].subscriptions.filter(mrr=Decimal(1300)).update(start_date=D(2025, 4, 1))
    plan = factories.SuccessPlanFactory(account=book["D"], start_date=D(2025, 1, 1))
    factories.GoalFactory(plan=plan, status=Goal.Status.ACHIEVED, achieved_at=D(2025, 2, 15))
    Account.objects.filter(pk=book["D"].pk).update(mrr=Decimal(9000))
    # Before the recompute the stored figures are the night's: B's second churn is not there yet.
    assert AccountChurn.objects.count() == 2

    written = portfolio_history_recompute()
    assert_stored_equals_live(ranges + [(D(2025, 7, 1), D(2025, 12, 1))])
    stored = selectors.stored_history()
    # D reached its goal 45 days after its first paid day. Paying now (the accounts' MRR): A 1,300, C 1,000,
    # D 9,000 and E 300 (B churned), so the top 20 % is ceil(0.8) = 1 account, D.
    assert stored.time_to_value["by_tier"]["Low touch"] == {"median_days": Decimal(45), "count": 1}
    assert stored.concentration["top_accounts"] == 1
    assert stored.concentration["top_arr"] == 12 * Decimal(9000)
    # A's churn in March and B's in October are new, E's churn has its reason now: three rows written;
    # B's April churn did not change and was not rewritten.
    assert written == 3
    e_churn_after = AccountChurn.objects.get(account=book["E"])
    assert (e_churn_after.pk, e_churn_after.reason) == (e_churn.pk, "Price")
    b_april = AccountChurn.objects.get(account=book["B"], month=D(2025, 4, 1))
    assert b_april.updated_at < e_churn_after.updated_at

    # A churn that no longer happens is deleted: A's line runs on after all.
    book["A"].subscriptions.filter(mrr=Decimal(1000)).update(end_date=D(2025, 4, 1))
    assert portfolio_history_recompute() == 0
    assert not AccountChurn.objects.filter(account=book["A"]).exists()
    assert_stored_equals_live(ranges)
    assert PortfolioHistory.objects.count() == 1
    assert PortfolioHistory.objects.get().through == month_start(month_index(timezone.localdate()))


@hypothesis.settings(
    max_examples=15, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(
    portfolio=portfolios(), months=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=2)
)
@pytest.mark.django_db
def test_stored_figures_and_paged_drilldowns_equal_the_history_walked_in_memory(portfolio, months):
    lines, labels = portfolio
    build_generated_portfolio(lines, labels)
    portfolio_history_recompute()
    history = load_history()
    stored = selectors.stored_history()
    assert stored.cohorts == revenue.cohort_retention(months_after=COHORT_MONTHS, history=history)
    assert stored.upsell_timing == revenue.upsell_timing(history=history)
    for offset in months:
        month = month_start(month_index(FIRST_DAY) + offset)
        assert selectors.stored_churn_analysis(first=FIRST_DAY, last=month) == revenue.churn_analysis(
            first=FIRST_DAY, last=month, history=history
        )
        until = load_history(until=month)
        for figure in FIGURES:
            for kind, segment in (("all", ""), *((kind, label[kind]) for label in labels.values() for kind in label)):
                wanted = revenue.drilldown(
                    month=month, figure=figure, segment_kind=kind, segment=segment, history=until
                )
                # Pages of two, concatenated, are the whole list; each carries the full count and total.
                shown, number = [], 1
                while True:
                    page, at = selectors.drilldown_page(
                        month=month, figure=figure, segment_kind=kind, segment=segment, number=number, size=2
                    )
                    assert (page.count, page.total) == (len(wanted), sum((row["amount"] for row in wanted), Decimal(0)))
                    if at != number:
                        break  # past the last page: the last again
                    shown += page.rows
                    number += 1
                    if len(shown) >= len(wanted):
                        break
                assert shown == wanted, (month, figure, kind, segment)


@pytest.mark.django_db
def test_a_page_past_the_last_shows_the_last():
    for k in range(5):
        account = factories.AccountFactory(name=f"Acme {k}")
        factories.SubscriptionFactory(account=account, mrr=Decimal(10 + k), start_date=D(2025, 3, 1))
    options = {"month": D(2025, 3, 1), "figure": "new_mrr", "segment_kind": "all", "segment": "", "size": 2}
    page, number = selectors.drilldown_page(number=9, **options)
    # Five new accounts, 14 down to 10, two a page: the third and last page holds the smallest.
    assert number == 3
    assert [row["name"] for row in page.rows] == ["Acme 0"]
    assert (page.count, page.total) == (5, Decimal(60))
    empty, number = selectors.drilldown_page(**{**options, "figure": "churned_mrr"}, number=4)
    assert (empty.rows, empty.count, empty.total, number) == ([], 0, Decimal(0), 1)


@pytest.mark.django_db
def test_the_nightly_chain_and_the_command_store_the_history(capsys):
    build_book()
    on = timezone.localdate()
    nightly_workflow(on.isoformat()).apply()
    stored = PortfolioHistory.objects.get()
    assert stored.through == on.replace(day=1)
    assert AccountChurn.objects.count() == 2
    first_run = stored.computed_at

    AccountChurn.objects.all().delete()
    call_command("recompute_revenue", "--to", f"{on:%Y-%m}")
    printed = capsys.readouterr().out
    assert "Cohorts and upsell timing stored; 2 churn rows written." in printed
    assert PortfolioHistory.objects.get().computed_at > first_run
    assert AccountChurn.objects.count() == 2


@pytest.mark.django_db
def test_the_page_says_when_the_figures_were_computed_or_that_they_were_not(csm_client):
    build_book()
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 1, 1))
    html = csm_client.get(PORTFOLIO).content.decode()
    assert "Cohorts, upsell timing, churn, concentration and time to value are not computed yet" in html
    assert csm_client.get(PORTFOLIO).context["cohorts"] == []
    portfolio_history_recompute()
    computed = PortfolioHistory.objects.get().computed_at
    html = csm_client.get(PORTFOLIO).content.decode()
    shown = re.search(r'data-figure="history-computed">\s*(.*?)</p>', html, re.DOTALL).group(1)
    local = timezone.localtime(computed)
    day = re.search(r"as computed on (\w+)\.? (\d+), (\d{4}),", shown)
    assert (local.strftime("%B").startswith(day.group(1)), int(day.group(2)), int(day.group(3))) == (
        True,
        local.day,
        local.year,
    )
    assert f"over the history to {timezone.localdate():%B %Y}" in shown
    churn = csm_client.get(CHURN, {"from": "2025-01", "to": "2025-06"}).content.decode()
    assert "Churns as computed on" in churn


@pytest.mark.django_db
def test_charts_are_drawn_again_when_their_rows_change(csm_client):
    accounts = build_book()
    revenue_recompute(first=D(2025, 1, 1), last=D(2025, 6, 1))
    params = {"from": "2025-01", "to": "2025-06"}
    first = csm_client.get(PORTFOLIO, params).context["charts"]
    # pygal gives every chart it draws a random id: equal charts were drawn once.
    assert csm_client.get(PORTFOLIO, params).context["charts"] == first
    # A new line in June changes June's bridge row, so the charts are drawn anew with it.
    factories.SubscriptionFactory(account=accounts["D"], product="Add-on", mrr=Decimal(5000), start_date=D(2025, 6, 1))
    revenue_recompute(first=D(2025, 1, 1), last=D(2025, 6, 1))
    again = csm_client.get(PORTFOLIO, params).context["charts"]
    # June's 5,000 cross-sell (a product D never had) is in the new charts only.
    assert "USD 5,000" in "".join(again)
    assert "USD 5,000" not in "".join(first)


@pytest.mark.django_db
def test_bridge_drilldown_pages_take_one_query_for_the_rows(csm_client, django_assert_num_queries):
    for k in range(60):
        account = factories.AccountFactory(name=f"Acme {k:02d}")
        factories.SubscriptionFactory(account=account, mrr=Decimal(10 + k), start_date=D(2025, 3, 1))
    revenue_recompute(first=D(2025, 3, 1), last=D(2025, 3, 1))
    # Session, user, groups; the stored figure; the page of rows with their count and total.
    with django_assert_num_queries(5):
        response = csm_client.get(DRILLDOWN, {"month": "2025-03", "figure": "new_mrr", "page": "2"})
    assert [row["name"] for row in response.context["page_obj"].object_list] == [
        f"Acme {k:02d}" for k in range(9, -1, -1)
    ]
    assert response.context["count"] == 60
    assert response.context["total"] == response.context["stored"] == sum(10 + k for k in range(60))
    assert "Page 2 of 2" in response.content.decode()
