"""Workspace page timings on the bench data: each page requested in-process through the full middleware
stack, as a signed-in CSM or CS leader, with its queries counted.

Server time is the time of one request through `django.test.Client` (routing, middleware, view, template).
Each page runs in a forked child (see `demo.bench.measure`), so its peak RSS is its own: two warm-up
requests, then `REPEATS` timed ones. A figure's time is the median; its floor is the median time of the
page's own SQL (the sum of its queries' times), so the ratio says how much the page adds to its queries.
"""

import datetime
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, Tier
from csm.roles import LEADER_GROUP
from demo.bench import BenchError, Figure, measure
from metrics.history import month_index, month_start
from metrics.models import Alert, HealthSnapshot, PortfolioHistory, RevenueMonth

REPEATS = 20
WARM_UP = 2
LEADER = "bench-leader"
CSM = "bench-csm-00001"
ACCOUNTS_PAGE = 50  # accounts.views.PAGE_SIZE


@dataclass(frozen=True)
class Page:
    name: str
    user: str
    url: str


@dataclass(frozen=True)
class Timing:
    seconds: list[float]
    sql_seconds: list[float]
    queries: int
    status: int


def prepare(*, today: datetime.date, report: Callable[[str], None]) -> None:
    """Give the pages something to show: the revenue bridge, today's health and alerts, when missing."""
    if not RevenueMonth.objects.filter(month=today.replace(day=1)).exists():
        report("  recomputing the revenue bridge (recompute_revenue) …")
        call_command("recompute_revenue", "--to", f"{today:%Y-%m}", stdout=_Quiet())
    if not PortfolioHistory.objects.exists():  # a bridge stored before the history figures were
        from metrics.services.portfolio import portfolio_history_recompute

        report("  storing the portfolio's history figures …")
        portfolio_history_recompute(on=today)
    if not HealthSnapshot.objects.filter(date=today).exists():
        report("  scoring health (recompute_health) …")
        call_command("recompute_health", "--date", today.isoformat(), stdout=_Quiet())
    if not Alert.objects.exists():
        from metrics.services.alerts import alerts_evaluate

        report("  evaluating alerts …")
        alerts_evaluate(on=today)
    # Fresh planner statistics, as autovacuum keeps them in production: rows written since the load (snapshots,
    # alerts) would otherwise be planned as the empty tables the load analysed.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


class _Quiet:
    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def bench_leader() -> None:
    """The CS leader who reads a CSM's day and the portfolio (made once, kept)."""
    user, _created = get_user_model().objects.get_or_create(username=LEADER, defaults={"password": "!"})
    user.groups.add(Group.objects.get(name=LEADER_GROUP))


def pages(*, today: datetime.date) -> list[Page]:
    """The pages measured, with the parameters a user would choose on this data."""
    users = get_user_model().objects
    csm = users.filter(username=CSM).first()
    if csm is None:
        raise BenchError(f"No user {CSM}: load the bench data first.")
    tier = Tier.objects.order_by("rank").values_list("slug", flat=True).first() or ""
    filters = {"tier": tier, "health_band": "red", "ordering": "-arr"}
    matching = Account.objects.alive().filter(tier__slug=tier, health_band="red").count()
    deep = max(1, math.ceil(matching / ACCOUNTS_PAGE))
    account = Account.objects.alive().filter(owner=csm).order_by("-mrr", "pk").values_list("pk", flat=True).first()
    last = RevenueMonth.objects.filter(segment_kind="all").order_by("-month").values_list("month", flat=True).first()
    month = last or today.replace(day=1)
    first = month_start(month_index(month) - 11)  # the portfolio's default: twelve months to `month`
    return [
        Page("my day (CSM)", CSM, "/"),
        Page("my day (leader, a CSM's)", LEADER, f"/?csm={csm.pk}"),
        Page("accounts list", CSM, "/accounts/"),
        Page("accounts, a CSM typed by name", CSM, f"/accounts/?{urlencode({'owner': CSM, 'ordering': '-arr'})}"),
        Page("owner picker suggestions", CSM, f"/accounts/owners/?{urlencode({'owner': CSM[:-2]})}"),
        Page("accounts filtered, p1", CSM, f"/accounts/?{urlencode(filters)}"),
        Page(f"accounts filtered, p{deep}", CSM, f"/accounts/?{urlencode({**filters, 'page': deep})}"),
        Page("account 360", CSM, f"/account/{account}/"),
        Page("portfolio", LEADER, "/portfolio/"),
        Page("portfolio drill-down", LEADER, f"/portfolio/drilldown/?month={month:%Y-%m}&figure=expansion_mrr"),
        Page("churn drill-down", LEADER, f"/portfolio/churn/?from={first:%Y-%m}&to={month:%Y-%m}"),
    ]


def time_page(page: Page, repeats: int = REPEATS) -> Timing:
    """Request the page `WARM_UP + repeats` times as its user; the timed ones' server and SQL times."""
    client = Client(HTTP_HOST=(settings.ALLOWED_HOSTS or ["localhost"])[0].replace("*", "localhost"))
    client.force_login(get_user_model().objects.get(username=page.user))
    seconds, sql_seconds, queries, status = [], [], 0, 0
    for run in range(WARM_UP + repeats):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(page.url, secure=True)
            elapsed = time.perf_counter() - started
        status = response.status_code
        if status != 200:
            raise BenchError(f"{page.name}: {page.url} answered {status}.")
        if run >= WARM_UP:
            seconds.append(elapsed)
            # The session and user lookups of the signed-in request count too: every page pays them.
            sql_seconds.append(sum(float(query["time"]) for query in captured.captured_queries))
            queries = len(captured.captured_queries)
    return Timing(seconds, sql_seconds, queries, status)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `share` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def run_figures(*, today: datetime.date, accounts: int, report: Callable[[str], None]) -> list[Figure]:
    """Median and p95 server time and queries of each workspace page; its floor is its own SQL time."""
    prepare(today=today, report=report)
    bench_leader()
    size = f"{accounts:,} accounts"
    context = multiprocessing.get_context("fork")
    figures = []
    for page in pages(today=today):
        report(f"  measuring {page.name} …")
        results = context.Queue()
        _seconds, peak = measure(lambda page=page, results=results: results.put(time_page(page)))
        timing: Timing = results.get()
        figures.append(
            Figure(
                page.name,
                size,
                statistics.median(timing.seconds),
                statistics.median(timing.sql_seconds),
                peak,
                None,
                note=(
                    f"median {statistics.median(timing.seconds) * 1000:.0f} ms, "
                    f"p95 {percentile(timing.seconds, 0.95) * 1000:.0f} ms, {timing.queries} queries, "
                    f"floor = its SQL; {page.url}"
                ),
                floor_sql=f"Page floors: the sum of each page's query times, median of {REPEATS} requests.",
            )
        )
    return figures
