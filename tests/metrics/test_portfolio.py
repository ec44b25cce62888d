"""The portfolio page and its drill-down, on subscription histories built by hand (SPEC 4 and 7).

The book (month-end MRR, first paid month in brackets):

    account  tier        Jan   Feb   Mar   Apr   May   Jun 2025 ... Jan 2026
    A        High touch  1000  1000  1300  1300  1300  1300          1300   price rise on 10 March (upsell)
    B        Low touch    500   500   500     0     0     0             0   churns in April ("Budget cut")
    C        High touch     0   800   800  1000  1000  1000          1000   new in February; Analytics
                                                                           from 5 April (cross-sell)
    D        Low touch    600   600   600   600   400   400           400   downgrade on 1 May
    E        Low touch    300     0     0     0   300   300           300   churns in February (no
                                                                           reason recorded), back in May

The bridge, month by month (start + new + reactivation + expansion - contraction - churned = end):

    Jan: 0 + 2400 (A, B, D, E) = 2400
    Feb: 2400 + 800 new (C) - 300 churned (E) = 2900
    Mar: 2900 + 300 expansion (A, upsell) = 3200
    Apr: 3200 + 200 expansion (C, cross-sell) - 500 churned (B) = 2900
    May: 2900 + 300 reactivation (E) - 200 contraction (D) = 3000
    Jun: 3000 = 3000
"""

import datetime
import re
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.urls import NoReverseMatch, reverse

from metrics.services.portfolio import portfolio_history_recompute
from metrics.services.revenue import revenue_recompute
from success_plans.models import Goal
from tests import factories

D = datetime.date
PORTFOLIO = reverse("metrics:portfolio")
DRILLDOWN = reverse("metrics:drilldown")
BRIDGE = ("start_mrr", "new_mrr", "reactivation_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "end_mrr")

# account: (tier slug, region, current MRR, [(product, mrr, start, end)])
BOOK = {
    "A": (
        "high-touch",
        "EMEA",
        1300,
        [("Platform", 1000, D(2025, 1, 1), D(2025, 3, 10)), ("Platform", 1300, D(2025, 3, 10), None)],
    ),
    "B": ("low-touch", "EMEA", 0, [("Platform", 500, D(2025, 1, 1), D(2025, 4, 1))]),
    "C": (
        "high-touch",
        "APAC",
        1000,
        [("Platform", 800, D(2025, 2, 1), None), ("Analytics", 200, D(2025, 4, 5), None)],
    ),
    "D": (
        "low-touch",
        "APAC",
        400,
        [("Platform", 600, D(2025, 1, 1), D(2025, 5, 1)), ("Platform Lite", 400, D(2025, 5, 1), None)],
    ),
    "E": (
        "low-touch",
        "APAC",
        300,
        [("Platform", 300, D(2025, 1, 1), D(2025, 2, 1)), ("Platform", 300, D(2025, 5, 1), None)],
    ),
}
# The bridge above as (start, new, reactivation, expansion, contraction, churned, end).
MONTHS = {
    D(2025, 1, 1): (0, 2400, 0, 0, 0, 0, 2400),
    D(2025, 2, 1): (2400, 800, 0, 0, 0, 300, 2900),
    D(2025, 3, 1): (2900, 0, 0, 300, 0, 0, 3200),
    D(2025, 4, 1): (3200, 0, 0, 200, 0, 500, 2900),
    D(2025, 5, 1): (2900, 0, 300, 0, 200, 0, 3000),
    D(2025, 6, 1): (3000, 0, 0, 0, 0, 0, 3000),
}


def build_book(prefix: str = "", owner=None, names: str = "ABCDE") -> dict:
    accounts = {}
    for name, (tier, region, mrr, lines) in BOOK.items():
        if name not in names:
            continue
        fields = {"owner": owner} if owner is not None else {}
        account = factories.AccountFactory(
            name=f"{prefix}{name}",
            tier=factories.default_tier(tier),
            region=region,
            mrr=Decimal(mrr),
            **fields,
        )
        for product, line_mrr, start, end in lines:
            factories.SubscriptionFactory(
                account=account, product=product, mrr=Decimal(line_mrr), start_date=start, end_date=end
            )
        accounts[name] = account
    # B's churn is recorded on the exclusive end of its line; E's first churn has no event.
    factories.ChurnEventFactory(account=accounts["B"], churned_on=D(2025, 4, 1), reason="Budget cut")
    return accounts


@pytest.fixture
def book(db):
    accounts = build_book()
    # A reached its first goal 60 days after its first paid day (1 January + 31 + 28 + 1 days).
    plan = factories.SuccessPlanFactory(account=accounts["A"], start_date=D(2025, 1, 1))
    factories.GoalFactory(plan=plan, status=Goal.Status.ACHIEVED, achieved_at=D(2025, 3, 2))
    recompute()
    return accounts


def recompute() -> None:
    """What the nightly revenue step stores: the bridge of the book's months, then the history figures."""
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 1, 1))
    portfolio_history_recompute()


def money(amount) -> str:
    return f"USD {Decimal(amount):,.2f}"


def section(html: str, css_class: str) -> str:
    """The HTML of the table with that class."""
    match = re.search(rf'<table class="{css_class}">(.*?)</table>', html, re.DOTALL)
    assert match, css_class
    return match.group(1)


# --- access ---------------------------------------------------------------------------------------


def test_every_role_reads_the_portfolio_and_an_outsider_is_refused(book, client, csm_user, leader, outsider):
    for user in (csm_user, leader):
        client.force_login(user)
        assert client.get(PORTFOLIO).status_code == 200
        assert client.get(DRILLDOWN, {"month": "2025-04", "figure": "churned_mrr"}).status_code == 200
    client.force_login(outsider)
    for url in (PORTFOLIO, f"{DRILLDOWN}?month=2025-04&figure=churned_mrr"):
        response = client.get(url)
        assert response.status_code == 403
        assert "Customer success" in response.content.decode()
        assert "Revenue bridge" not in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(book, client):
    response = client.get(PORTFOLIO)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- the page -------------------------------------------------------------------------------------


def test_empty_state_before_the_bridge_was_computed(csm_client):
    response = csm_client.get(PORTFOLIO)
    assert response.status_code == 200
    assert "recompute_revenue" in response.content.decode()
    assert "nightly run" in response.content.decode()


def test_bridge_table_shows_each_month_with_every_figure_a_drilldown(book, csm_client):
    response = csm_client.get(PORTFOLIO, {"from": "2025-01", "to": "2025-06"})
    assert response.status_code == 200
    shown = {
        month["row"].month: tuple(int(cell["value"]) for cell in month["cells"]) for month in response.context["months"]
    }
    assert shown == MONTHS
    table = section(response.content.decode(), "bridge")
    for month, figures in MONTHS.items():
        for figure, amount in zip(BRIDGE, figures, strict=True):
            link = f'<a href="{DRILLDOWN}?month={month:%Y-%m}&amp;figure={figure}&amp;segment_kind=all">'
            assert f"{link}{money(amount)}</a>" in table
    # Every money cell is a link: 6 months x 7 figures.
    assert table.count(f'<a href="{DRILLDOWN}?') == 42
    # April: GRR (3200 - 500) / 3200 = 84.375 %, NRR (3200 + 200 - 500) / 3200 = 90.625 %, rounded half
    # up to one decimal place.
    april = next(row for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL) if "April 2025" in row)
    assert "84.4 %" in april
    assert "90.6 %" in april


def test_default_range_is_the_last_twelve_stored_months_with_trailing_retention(book, csm_client):
    response = csm_client.get(PORTFOLIO)
    # Stored: January 2025 to January 2026, thirteen months.
    assert (response.context["first"], response.context["last"]) == (D(2025, 2, 1), D(2026, 1, 1))
    assert len(response.context["months"]) == 12
    html = response.content.decode()
    # Paying at the end of January 2025: A 1000, B 500, D 600, E 300 = 2400. In January 2026: A 1300,
    # B 0, D 400, E 300 = 2000 -> NRR 2000 / 2400 = 83.3 %; each capped at its base: 1000 + 0 + 400 + 300
    # = 1700 -> GRR 1700 / 2400 = 70.8 %.
    assert re.search(r'data-figure="trailing-nrr">83\.3 %<', html)
    assert re.search(r'data-figure="trailing-grr">70\.8 %<', html)
    assert len(response.context["charts"]) == 4
    assert all("<svg" in chart and "<script" not in chart for chart in response.context["charts"])


def test_segment_breakdown_of_the_last_month_links_to_segment_drilldowns(book, csm_client):
    response = csm_client.get(PORTFOLIO, {"from": "2025-01", "to": "2025-04", "segment": "tier"})
    segments = {segment["label"]: segment for segment in response.context["segments"]}
    # April, High touch: A 1300 + C 800 at the start, C's 200 cross-sell, 2300 at the end.
    # Low touch: B 500 + D 600 at the start, B's 500 churned, 600 at the end (E pays nothing in April).
    assert [int(cell["value"]) for cell in segments["High touch"]["cells"]] == [2100, 0, 0, 200, 0, 0, 2300]
    assert [int(cell["value"]) for cell in segments["Low touch"]["cells"]] == [1100, 0, 0, 0, 0, 500, 600]
    table = section(response.content.decode(), "segments")
    assert (
        f'<a href="{DRILLDOWN}?month=2025-04&amp;figure=churned_mrr&amp;segment_kind=tier&amp;segment=Low+touch">'
        f"{money(500)}</a>"
    ) in table
    # No tier has a base twelve months before April 2025: trailing retention is not computable.
    assert segments["High touch"]["row"].trailing_nrr is None


def test_segment_breakdown_shows_the_stored_trailing_retention(book, csm_client):
    response = csm_client.get(PORTFOLIO, {"to": "2026-01", "segment": "tier"})
    table = section(response.content.decode(), "segments")
    rows = dict(re.findall(r'<th scope="row">(?:<a [^>]*>)?([^<]+)(?:</a>)?</th>(.*?)</tr>', table, re.DOTALL))
    # High touch paying at the end of January 2025: A 1000; now 1300 -> NRR 130 %, GRR 100 %.
    assert "130.0 %" in rows["High touch"]
    assert "100.0 %" in rows["High touch"]
    # Low touch: B 500, D 600, E 300 = 1400; now 0 + 400 + 300 = 700 -> NRR = GRR = 50 %.
    assert rows["Low touch"].count("50.0 %") == 2


def test_cohorts_concentration_timing_churn_time_to_value_and_ltv(book, csm_client):
    response = csm_client.get(PORTFOLIO, {"from": "2025-01", "to": "2025-06"})
    context = response.context
    html = response.content.decode()

    # Cohorts: January 2025 (A, B, D, E: 2400) and February 2025 (C: 800).
    cohorts = {cohort["cohort"]: cohort for cohort in context["cohorts"]}
    january = cohorts[D(2025, 1, 1)]
    assert (january["accounts"], january["start_mrr"]) == (4, Decimal(2400))
    # One month later: 1000 + 500 + 600 + 0 = 2100 / 2400; three later: 1300 + 0 + 600 + 0 = 1900 / 2400.
    assert january["revenue"][1] == Decimal("0.875")
    assert january["revenue"][3] == Decimal("0.791667")
    assert january["logos"][1] == Decimal("0.75")
    assert january["logos"][3] == Decimal("0.5")
    # The cohort's accounts are its month's new MRR.
    assert january["url"] == f"{DRILLDOWN}?month=2025-01&figure=new_mrr&segment_kind=all"
    assert cohorts[D(2025, 2, 1)]["accounts"] == 1

    # Concentration: 4 paying accounts, the top ceil(0.8) = 1 is A: 12 x 1300 / 12 x 3000 = 43.3 %.
    assert re.search(r'data-figure="top-share">(<a [^>]*>)?43\.3 %', html)
    assert "USD 15,600" in html and "USD 36,000" in html

    # Upsell timing: A expanded two months after January, C two months after February.
    assert context["timing"]["distribution"] == {2: 2}
    assert "2 accounts expanded; median 2 months" in html

    # Churn, January to June: E in February (300, tenure 1 month), B in April (500, tenure 3 months).
    assert re.search(r'data-figure="churned-mrr"><a href="[^"]*portfolio/churn/[^"]*">USD 800\.00</a>', html)
    tenure = section(html, "tenure")
    assert re.search(
        r'<th scope="row">0–3</th><td class="num">(<a [^>]*>)?2(</a>)?</td>'
        r'<td class="num">(<a [^>]*>)?USD 800\.00(</a>)?</td>',
        tenure,
    )
    reasons = section(html, "reasons")
    assert re.search(r"Budget cut</th><td class=\"num\">(<a [^>]*>)?1", reasons)
    assert re.search(r"Not recorded</th><td class=\"num\">(<a [^>]*>)?1", reasons)

    # Time to value: A, 60 days, High touch.
    ttv = section(html, "ttv")
    assert re.search(r"High touch(</a>)?</th><td class=\"num\">60</td><td class=\"num\">1</td>", ttv)

    # LTV at June 2025. High touch never lost MRR: not estimable. Low touch monthly gross revenue churn,
    # February to June: 300/1400, 0/1100, 500/1100, 200/600, 0/700; mean 0.200433 (six places).
    # ARPA in June: (400 + 300) / 2 = 350; LTV = 350 x 0.8 / 0.200433 = 1396.98.
    churn_rate = ((Decimal(300) / 1400 + Decimal(500) / 1100 + Decimal(200) / 600) / 5).quantize(Decimal("0.000001"))
    assert churn_rate == Decimal("0.200433")
    ltv = section(html, "ltv")
    low = re.search(r"Low touch(?:</a>)?</th>(.*?)</tr>", ltv, re.DOTALL).group(1)
    assert money(350) in low
    assert "20.0 %" in low
    assert f"USD {(Decimal(350) * Decimal('0.8') / churn_rate).quantize(Decimal('0.01')):,}" in low
    high = re.search(r"High touch(?:</a>)?</th>(.*?)</tr>", ltv, re.DOTALL).group(1)
    assert "no churn" in high


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2025-13"}, "is not a month"),
        ({"to": "soon"}, "is not a month"),
        ({"from": "2025-06", "to": "2025-01"}, "ends before it starts"),
        ({"from": "2020-01", "to": "2025-06"}, "at most 60 months"),
        ({"segment": "planet"}, "Select a valid choice"),
    ],
)
def test_bad_range_or_segment_is_a_form_error(book, csm_client, params, message):
    response = csm_client.get(PORTFOLIO, params)
    assert response.status_code == 200
    assert message in response.content.decode()
    # The page still shows the default range.
    assert response.context["last"] == D(2026, 1, 1)


# --- the drill-down -------------------------------------------------------------------------------


def drilldown_rows(response) -> list[tuple[str, int, int, int]]:
    return [
        (row["name"], int(row["start"]), int(row["end"]), int(row["amount"]))
        for row in response.context["page_obj"].object_list
    ]


@pytest.mark.parametrize(
    ("params", "rows"),
    [
        # The January new MRR: A 1000, D 600, B 500, E 300, largest first.
        (
            {"month": "2025-01", "figure": "new_mrr"},
            [("A", 0, 1000, 1000), ("D", 0, 600, 600), ("B", 0, 500, 500), ("E", 0, 300, 300)],
        ),
        ({"month": "2025-02", "figure": "churned_mrr"}, [("E", 300, 0, 300)]),
        ({"month": "2025-03", "figure": "expansion_mrr"}, [("A", 1000, 1300, 300)]),
        ({"month": "2025-03", "figure": "upsell_mrr"}, [("A", 1000, 1300, 300)]),
        ({"month": "2025-04", "figure": "cross_sell_mrr"}, [("C", 800, 1000, 200)]),
        ({"month": "2025-05", "figure": "reactivation_mrr"}, [("E", 0, 300, 300)]),
        ({"month": "2025-05", "figure": "contraction_mrr"}, [("D", 600, 400, 200)]),
        # April's start, High touch only: A 1300, C 800.
        (
            {"month": "2025-04", "figure": "start_mrr", "segment_kind": "tier", "segment": "High touch"},
            [("A", 1300, 1300, 1300), ("C", 800, 1000, 800)],
        ),
        (
            {"month": "2025-04", "figure": "end_mrr", "segment_kind": "region", "segment": "APAC"},
            [("C", 800, 1000, 1000), ("D", 600, 600, 600)],
        ),
    ],
)
def test_drilldown_lists_the_accounts_behind_a_figure_adding_up_to_it(book, csm_client, params, rows):
    response = csm_client.get(DRILLDOWN, params)
    assert response.status_code == 200
    assert drilldown_rows(response) == rows
    expected = sum(row[3] for row in rows)
    assert response.context["total"] == expected
    assert response.context["stored"] == expected
    html = response.content.decode()
    assert re.search(rf'data-figure="total">{re.escape(money(expected))}<', html)
    assert re.search(rf'data-figure="stored">{re.escape(money(expected))}<', html)
    assert "changed since the bridge was stored" not in html


def test_drilldown_total_covers_every_page(db, csm_client):
    # 55 accounts start in March 2025 at 10, 11, ... 64: the first page shows 50 of them.
    for k in range(55):
        account = factories.AccountFactory(name=f"Acme {k:02d}")
        factories.SubscriptionFactory(account=account, mrr=Decimal(10 + k), start_date=D(2025, 3, 1), end_date=None)
    revenue_recompute(first=D(2025, 3, 1), last=D(2025, 3, 1))
    response = csm_client.get(DRILLDOWN, {"month": "2025-03", "figure": "new_mrr"})
    expected = sum(10 + k for k in range(55))  # 55 x 10 + 54 x 55 / 2 = 2035
    assert expected == 2035
    assert len(response.context["page_obj"].object_list) == 50
    assert response.context["total"] == expected == response.context["stored"]
    assert response.context["count"] == 55
    second = csm_client.get(DRILLDOWN, {"month": "2025-03", "figure": "new_mrr", "page": 2})
    assert [row["name"] for row in second.context["page_obj"].object_list] == [
        f"Acme {k:02d}" for k in range(4, -1, -1)
    ]


def test_drilldown_warns_when_the_stored_bridge_is_behind_the_lines(book, csm_client):
    factories.SubscriptionFactory(account=book["D"], product="Add-on", mrr=Decimal(50), start_date=D(2025, 3, 1))
    response = csm_client.get(DRILLDOWN, {"month": "2025-03", "figure": "expansion_mrr"})
    assert response.context["total"] == 350
    assert response.context["stored"] == 300
    assert "changed since the bridge was stored" in response.content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"figure": "new_mrr"},
        {"month": "2025-13", "figure": "new_mrr"},
        {"month": "2025-04", "figure": "arpa"},
        {"month": "2025-04", "figure": "new_mrr", "segment_kind": "planet"},
        {"month": "2999-01", "figure": "new_mrr"},
    ],
)
def test_bad_drilldown_parameters_are_a_400_page(book, csm_client, params):
    response = csm_client.get(DRILLDOWN, params)
    assert response.status_code == 400
    assert "Drill-down not available" in response.content.decode()


def test_drilldown_names_link_to_the_account_page_when_it_exists(book, csm_client):
    response = csm_client.get(DRILLDOWN, {"month": "2025-02", "figure": "churned_mrr"})
    try:
        url = reverse("metrics:account", args=[book["E"].pk])
    except NoReverseMatch:  # the account page is another part of the workspace
        url = None
    row = response.context["page_obj"].object_list[0]
    assert row["url"] == url
    if url:
        assert f'<a href="{url}">E</a>' in response.content.decode()


# --- speed ----------------------------------------------------------------------------------------


def test_fixed_number_of_queries_whatever_the_number_of_accounts(db, client, django_assert_max_num_queries):
    user = factories.csm_user(username="quinn")
    client.force_login(user)
    pages = (
        ("page", PORTFOLIO, {"segment": "owner"}, 10),
        ("range", PORTFOLIO, {"from": "2025-01", "to": "2025-06", "segment": "tier"}, 9),
        ("drilldown", DRILLDOWN, {"month": "2025-01", "figure": "new_mrr"}, 7),
    )
    # The page: session, user, groups (3); the stored bridge's bounds; the bridge rows of the range;
    # the stored history (cohorts, upsell timing, concentration, time to value); the stored churns of the
    # range, grouped; tiers; owners (by owner only); LTV. The drill-down: 3, the stored figure, the page of
    # rows with their count and total.
    counts = {}
    for size, names, copies in (("small", "ABC", 1), ("large", "ABCDE", 3)):  # 3 accounts, then 15 more
        for copy in range(copies):
            build_book(prefix=f"{size}{copy}-", owner=user, names=names)
        recompute()
        counted = {}
        for name, url, params, most in pages:
            with django_assert_max_num_queries(most) as captured:
                assert client.get(url, params).status_code == 200
            counted[name] = len(captured)
        counts[size] = counted
    assert counts["small"] == counts["large"]
    assert counts["large"] == {"page": 10, "range": 9, "drilldown": 5}


def accounts_list(**params) -> str | None:
    """The accounts list filtered so, while that page exists."""
    try:
        return f"{reverse('accounts:list')}?{urlencode(params)}"
    except NoReverseMatch:
        return None


def test_breakdown_by_region_owner_or_the_whole_book(book, csm_client, csm_user):
    for account in book.values():
        account.owner = csm_user if account.name in "AB" else None
        account.save(update_fields=["owner"])
    revenue_recompute(first=D(2025, 1, 1), last=D(2026, 1, 1))
    cases = {
        # April by region. EMEA: A 1300 + B 500 at the start, B's 500 churned. APAC: C 800 + D 600 at the
        # start, C's 200 cross-sell.
        "region": {
            "APAC": ([1400, 0, 0, 200, 0, 0, 1600], accounts_list(region="APAC")),
            "EMEA": ([1800, 0, 0, 0, 0, 500, 1300], accounts_list(region="EMEA")),
        },
        # By CSM: priya owns A and B; C, D and E have no owner.
        "owner": {
            "(none)": ([1400, 0, 0, 200, 0, 0, 1600], accounts_list(owner="none")),
            "Priya Khan": ([1800, 0, 0, 0, 0, 500, 1300], accounts_list(owner=csm_user.pk)),
        },
        "all": {"All accounts": ([3200, 0, 0, 200, 0, 500, 2900], None)},
    }
    for kind, expected in cases.items():
        response = csm_client.get(PORTFOLIO, {"from": "2025-01", "to": "2025-04", "segment": kind})
        shown = {
            segment["label"]: ([int(cell["value"]) for cell in segment["cells"]], segment["url"])
            for segment in response.context["segments"]
        }
        assert shown == expected, kind
        first_cell = response.context["segments"][0]["cells"][0]
        label = response.context["segments"][0]["label"]
        assert csm_client.get(first_cell["url"]).context["total"] == expected[label][0][0]


def test_a_range_past_the_history_says_so_and_shows_the_rest(book, csm_client):
    response = csm_client.get(PORTFOLIO, {"from": "2025-06", "to": "2030-05"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "The revenue history ends in" in html
    # The stored months still show, and the figures that do not depend on the range.
    assert len(response.context["months"]) == 8  # June 2025 to January 2026
    assert response.context["book"] is None
    assert response.context["cohorts"]


# --- the churn drill-down -------------------------------------------------------------------------

CHURN = reverse("metrics:churn_drilldown")


def churn_url(**params) -> str:
    return f"{CHURN}?{urlencode(params)}"


def churn_shown(response) -> list[tuple[str, datetime.date, int, int, str]]:
    return [
        (item["row"].name, item["row"].month, item["row"].tenure, int(item["row"].mrr), item["row"].reason)
        for item in response.context["rows"]
    ]


def test_churn_bands_and_reasons_on_the_portfolio_link_to_their_churns(book, csm_client):
    html = csm_client.get(PORTFOLIO, {"from": "2025-01", "to": "2025-06"}).content.decode()
    whole = churn_url(**{"from": "2025-01", "to": "2025-06"})
    band = churn_url(**{"from": "2025-01", "to": "2025-06", "tenure": "0–3"}).replace("&", "&amp;")
    budget = churn_url(**{"from": "2025-01", "to": "2025-06", "reason": "Budget cut"}).replace("&", "&amp;")
    unknown = churn_url(**{"from": "2025-01", "to": "2025-06", "reason": "not-recorded"}).replace("&", "&amp;")
    tenure = section(html, "tenure")
    # Both churns (E 300 after 1 month, B 500 after 3) are in the 0–3 band: its two figures link.
    assert f'<a href="{band}">2</a>' in tenure
    assert f'<a href="{band}">USD 800.00</a>' in tenure
    assert tenure.count("<a ") == 2  # the empty bands have nothing behind them
    reasons = section(html, "reasons")
    assert f'Budget cut</th><td class="num"><a href="{budget}">1</a>' in reasons
    assert f'Not recorded</th><td class="num"><a href="{unknown}">1</a>' in reasons
    assert f'data-figure="churned-accounts"><a href="{whole.replace("&", "&amp;")}">2</a>' in html


@pytest.mark.parametrize(
    ("params", "rows"),
    [
        # Every churn from January to June: E in February (300, 1 month, no event), B in April (500, 3 months).
        (
            {},
            [("E", D(2025, 2, 1), 1, 300, "Not recorded"), ("B", D(2025, 4, 1), 3, 500, "Budget cut")],
        ),
        (
            {"tenure": "0–3"},
            [("E", D(2025, 2, 1), 1, 300, "Not recorded"), ("B", D(2025, 4, 1), 3, 500, "Budget cut")],
        ),
        ({"tenure": "4–6"}, []),
        ({"reason": "Budget cut"}, [("B", D(2025, 4, 1), 3, 500, "Budget cut")]),
        ({"reason": "not-recorded"}, [("E", D(2025, 2, 1), 1, 300, "Not recorded")]),
        ({"reason": "Price"}, []),
        ({"tenure": "0–3", "reason": "Budget cut"}, [("B", D(2025, 4, 1), 3, 500, "Budget cut")]),
    ],
)
def test_churn_drilldown_lists_the_churns_behind_a_figure_adding_up_to_it(book, csm_client, params, rows):
    response = csm_client.get(CHURN, {"from": "2025-01", "to": "2025-06", **params})
    assert response.status_code == 200
    assert churn_shown(response) == rows
    expected = sum(row[3] for row in rows)
    assert response.context["total"] == expected
    assert response.context["count"] == len(rows)
    html = response.content.decode()
    assert re.search(rf'data-figure="total">{re.escape(money(expected))}<', html)
    assert re.search(rf'data-figure="count">{len(rows)}<', html)
    if not rows:
        assert "No account churned in these months." in html


def test_churn_drilldown_of_a_shorter_range_and_account_links(book, csm_client):
    response = csm_client.get(CHURN, {"from": "2025-03", "to": "2025-04"})
    assert churn_shown(response) == [("B", D(2025, 4, 1), 3, 500, "Budget cut")]
    try:
        url = reverse("metrics:account", args=[book["B"].pk])
    except NoReverseMatch:  # the account page is another part of the workspace
        url = None
    assert response.context["rows"][0]["url"] == url
    if url:
        assert f'<a href="{url}">B</a>' in response.content.decode()


def test_churn_drilldown_per_role(book, client, csm_user, leader, outsider):
    url = churn_url(**{"from": "2025-01", "to": "2025-06"})
    for user in (csm_user, leader):
        client.force_login(user)
        assert client.get(url).status_code == 200
    client.force_login(outsider)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"from": "2025-01"},
        {"from": "2025-13", "to": "2025-06"},
        {"from": "2025-06", "to": "2025-01"},
        {"from": "2020-01", "to": "2025-06"},  # more than 60 months
        {"from": "2025-01", "to": "2025-06", "tenure": "99+"},
        {"from": "2025-01", "to": "2025-06", "reason": "x" * 201},
        {"from": "2999-01", "to": "2999-02"},  # past the history
    ],
)
def test_bad_churn_drilldown_parameters_are_a_400_page(book, csm_client, params):
    response = csm_client.get(CHURN, params)
    assert response.status_code == 400
    assert "Drill-down not available" in response.content.decode()


def test_churn_drilldown_total_covers_every_page(db, csm_client):
    # 55 accounts paying 10, 11, ... 64 from January 2025 stop on 1 March: 55 churns in March, 2 months each.
    for k in range(55):
        account = factories.AccountFactory(name=f"Acme {k:02d}")
        factories.SubscriptionFactory(
            account=account, mrr=Decimal(10 + k), start_date=D(2025, 1, 1), end_date=D(2025, 3, 1)
        )
    portfolio_history_recompute()
    response = csm_client.get(CHURN, {"from": "2025-03", "to": "2025-03", "tenure": "0–3"})
    expected = sum(10 + k for k in range(55))  # 55 x 10 + 54 x 55 / 2 = 2035
    assert expected == 2035
    assert len(response.context["rows"]) == 50
    assert response.context["total"] == expected
    assert response.context["count"] == 55
    second = csm_client.get(CHURN, {"from": "2025-03", "to": "2025-03", "tenure": "0–3", "page": 2})
    # Most MRR first: the second page holds the five smallest.
    assert [item["row"].name for item in second.context["rows"]] == [f"Acme {k:02d}" for k in range(4, -1, -1)]
    assert second.context["total"] == expected


def test_churn_rows_add_up_to_the_churn_analysis_on_a_hand_built_history(db):
    from metrics.history import load_history
    from metrics.selectors import portfolio as selectors
    from metrics.selectors.revenue import churn_analysis

    x, y, z = (factories.AccountFactory(name=name) for name in "XYZ")
    # X pays 100 from January 2023 until 1 March 2025: churns in March 2025 after 26 months ("25+").
    factories.SubscriptionFactory(account=x, mrr=Decimal(100), start_date=D(2023, 1, 1), end_date=D(2025, 3, 1))
    factories.ChurnEventFactory(account=x, churned_on=D(2025, 3, 1), reason="Price")
    # Y pays 200 from October 2024 to 15 February 2025 (February's month end not covered): churns in
    # February after 4 months ("4–6"); back at 250 in April until 10 June: churns in June after 8 months
    # ("7–12"), its event recorded late in July.
    factories.SubscriptionFactory(account=y, mrr=Decimal(200), start_date=D(2024, 10, 1), end_date=D(2025, 2, 15))
    factories.SubscriptionFactory(account=y, mrr=Decimal(250), start_date=D(2025, 4, 1), end_date=D(2025, 6, 10))
    factories.ChurnEventFactory(account=y, churned_on=D(2025, 2, 15), reason="Price")
    factories.ChurnEventFactory(account=y, churned_on=D(2025, 7, 3), reason="Moved to a competitor")
    # Z pays 50 in January 2025 only: churns in February after 1 month ("0–3"), no event.
    factories.SubscriptionFactory(account=z, mrr=Decimal(50), start_date=D(2025, 1, 1), end_date=D(2025, 2, 1))

    history = load_history(until=D(2025, 7, 1))
    first, last = D(2025, 2, 1), D(2025, 6, 1)
    rows = selectors.churn_rows(first=first, last=last, history=history)
    assert [(row.name, row.month, row.tenure, row.band, int(row.mrr), row.reason) for row in rows] == [
        ("Y", D(2025, 2, 1), 4, "4–6", 200, "Price"),
        ("Z", D(2025, 2, 1), 1, "0–3", 50, "Not recorded"),
        ("X", D(2025, 3, 1), 26, "25+", 100, "Price"),
        ("Y", D(2025, 6, 1), 8, "7–12", 250, "Moved to a competitor"),
    ]
    analysis = churn_analysis(first=first, last=last, history=history)
    assert (analysis["churned_mrr"], analysis["churned_accounts"]) == (600, 4)
    expected_bands = {"0–3": (50, 1), "4–6": (200, 1), "7–12": (250, 1), "13–24": (0, 0), "25+": (100, 1)}
    assert {band: (group["mrr"], group["logos"]) for band, group in analysis["by_tenure"].items()} == expected_bands
    for band, (mrr, logos) in expected_bands.items():
        per_band = selectors.churn_rows(first=first, last=last, tenure=band, history=history)
        assert (selectors.churn_total(per_band), len(per_band)) == (mrr, logos)
    assert analysis["reasons"] == {"Price": 2, "Moved to a competitor": 1, "Not recorded": 1}
    for reason, count in analysis["reasons"].items():
        assert len(selectors.churn_rows(first=first, last=last, reason=reason, history=history)) == count


def test_churn_drilldown_runs_a_fixed_number_of_queries(db, client, django_assert_max_num_queries):
    user = factories.csm_user(username="quinn")
    client.force_login(user)
    # Session, user, groups (3); when the history was stored; the stored churns' count and MRR; their page
    # with the accounts' names.
    counts = {}
    for size, names, copies in (("small", "ABC", 1), ("large", "ABCDE", 3)):  # 3 accounts, then 15 more
        for copy in range(copies):
            build_book(prefix=f"{size}{copy}-", owner=user, names=names)
        portfolio_history_recompute()
        with django_assert_max_num_queries(6) as captured:
            response = client.get(CHURN, {"from": "2025-01", "to": "2025-06", "tenure": "0–3"})
        assert response.status_code == 200
        assert response.context["count"] == {"small": 1, "large": 7}[size]  # B; then 4 B and 3 E
        counts[size] = len(captured)
    assert counts["small"] == counts["large"]
