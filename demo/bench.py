"""The scale benchmark: a deterministic data set loaded with PostgreSQL COPY, then each engine timed
against the bare SQL that does the same reading work (its floor), in the same run.

Each figure runs in a forked child process, so its peak RSS is its own. The data set: N accounts, each
with one to three revenue lines over two years (some churned, some with a price change), about ten
touches in the last year, D days of usage for three metrics, an open tier period and one active success
plan with a goal, a target and an initiative. Everything is drawn from per-account generators seeded by
(seed, account number), so the same arguments give the same data.
"""

import datetime
import importlib
import multiprocessing
import queue
import random
import resource
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from celery.result import allow_join_result
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, connections, models
from django.utils import timezone

from accounts.models import Account, Subscription, Tier, TierAssignment, Touch
from csm.roles import CSM_GROUP
from metrics.models import Alert, HealthSnapshot, RevenueMonth, UsageRecord
from success_plans.models import Goal, Initiative, SuccessPlan, Target

ACCOUNTS_PER_CSM = 40
METRICS = ("active_users", "logins", "seats_licensed")
INDUSTRIES = ("Software", "Retail", "Finance", "Health", "Manufacturing", "Media")
REGIONS = ("EMEA", "AMER", "APAC")
KINDS = ("call", "meeting", "email", "qbr", "training", "chat")
HISTORY_DAYS = 730


class BenchError(RuntimeError):
    pass


@dataclass
class Figure:
    name: str
    size: str
    seconds: float
    floor_seconds: float | None
    peak_mb: float
    floor_peak_mb: float | None
    note: str = ""  # what the columns do not say: a rate, a percentile, queries per page
    floor_sql: str = ""  # the floor's query (or how the floor was measured), printed under the table

    @property
    def ratio(self) -> float | None:
        return self.seconds / self.floor_seconds if self.floor_seconds else None


# --- loading ------------------------------------------------------------------------------------


def _columns(model: type[models.Model], names: Iterable[str]) -> list[str]:
    return [model._meta.get_field(name).column for name in names]


def copy_rows(model: type[models.Model], names: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """Stream rows into the model's table with COPY; returns how many."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _columns(model, names))
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _reset_sequences(*models_: type[models.Model]) -> None:
    with connection.cursor() as cursor:
        for model in models_:
            table = model._meta.db_table
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)",
                [table],
            )


def _rng(seed: int, number: int) -> random.Random:
    return random.Random(seed * 1_000_003 + number)


def bench_load(*, accounts: int, days: int, seed: int, today: datetime.date, report: Callable[[str], None]) -> dict:
    """Replace the bench tables' rows with a fresh data set; returns the row counts."""
    if connection.vendor != "postgresql":
        raise BenchError("The benchmark needs PostgreSQL (set DATABASE_URL).")
    now = timezone.now()
    tiers = list(Tier.objects.order_by("rank"))
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE metrics_usagerecord, metrics_healthsnapshot, metrics_alert, metrics_revenuemonth, "
            "success_plans_targetmeasurement, success_plans_initiative, success_plans_target, success_plans_goal, "
            "success_plans_successplan, accounts_touch_contacts, accounts_touch, accounts_contact, "
            "accounts_subscription, accounts_tierassignment, accounts_churnevent, accounts_account CASCADE"
        )
    csm_ids = _bench_csms(max(1, accounts // ACCOUNTS_PER_CSM))
    counts: dict[str, int] = {}
    plans = [_plan(number, seed, today, tiers, csm_ids) for number in range(1, accounts + 1)]

    def timed(label: str, model, names, rows) -> None:
        started = time.perf_counter()
        counts[label] = copy_rows(model, names, rows)
        report(f"  {label:<14} {counts[label]:>12,} rows  {time.perf_counter() - started:6.1f} s")

    timed(
        "accounts",
        Account,
        (
            "id",
            "name",
            "external_id",
            "domain",
            "industry",
            "region",
            "country",
            "employees",
            "owner",
            "tier",
            "tier_locked",
            "lifecycle_stage",
            "pricing_model",
            "customer_since",
            "renewal_date",
            "churn_reason",
            "mrr",
            "health_band",
            "last_touch_at",
            "created_at",
            "updated_at",
        ),  # fmt: skip
        (
            (
                p["id"],
                f"Bench {p['id']:07d}",
                f"bench-{p['id']:07d}",
                "",
                p["industry"],
                p["region"],
                "US",
                p["employees"],
                p["owner"],
                p["tier"],
                False,
                "adoption",
                "subscription",
                p["since"],
                p["renewal"],
                "",
                p["mrr"],
                "",
                p["last_touch"],
                now,
                now,
            )
            for p in plans
        ),  # fmt: skip
    )
    timed(
        "tier periods",
        TierAssignment,
        ("account", "tier", "started_at", "source", "reason", "created_at", "updated_at"),
        ((p["id"], p["tier"], now, "rule", "", now, now) for p in plans),
    )
    timed(
        "revenue lines",
        Subscription,
        ("account", "product", "mrr", "quantity", "start_date", "end_date", "created_at", "updated_at"),
        ((p["id"], product, mrr, 1, start, end, now, now) for p in plans for product, mrr, start, end in p["lines"]),
    )
    timed(
        "touches",
        Touch,
        (
            "account",
            "csm",
            "kind",
            "occurred_at",
            "subject",
            "notes",
            "sentiment",
            "next_step",
            "source",
            "created_at",
            "updated_at",
        ),  # fmt: skip
        _touch_rows(plans, seed, today, now),
    )
    timed(
        "usage",
        UsageRecord,
        ("account", "metric", "date", "value", "created_at", "updated_at"),
        _usage_rows(plans, seed, days, today, now),
    )
    timed(
        "success plans",
        SuccessPlan,
        (
            "id",
            "account",
            "title",
            "status",
            "owner",
            "success_definition",
            "start_date",
            "status_reason",
            "created_at",
            "updated_at",
        ),  # fmt: skip
        (
            (p["id"], p["id"], "Adoption", "active", p["owner"], "", today - datetime.timedelta(days=60), "", now, now)
            for p in plans
        ),  # fmt: skip
    )
    timed(
        "goals",
        Goal,
        (
            "id",
            "plan",
            "title",
            "description",
            "priority",
            "status",
            "status_reason",
            "order",
            "created_at",
            "updated_at",
        ),  # fmt: skip
        ((p["id"], p["id"], "Adopt", "", 2, "in_progress", "", 0, now, now) for p in plans),
    )
    timed(
        "targets",
        Target,
        (
            "goal",
            "name",
            "unit",
            "baseline",
            "target_value",
            "current_value",
            "measured_at",
            "usage_metric",
            "order",
            "created_at",
            "updated_at",
        ),  # fmt: skip
        ((p["id"], "Active users", "users", 0, 100, p["progress"], now, "", 0, now, now) for p in plans),
    )
    timed(
        "initiatives",
        Initiative,
        ("goal", "title", "status", "due_date", "status_reason", "order", "created_at", "updated_at"),
        (
            (p["id"], "Training", "planned", today + datetime.timedelta(days=p["id"] % 40 - 10), "", 0, now, now)
            for p in plans
        ),  # fmt: skip
    )
    _reset_sequences(Account, SuccessPlan, Goal)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return counts


def _bench_csms(count: int) -> list[int]:
    user_model = get_user_model()
    names = [f"bench-csm-{n:05d}" for n in range(1, count + 1)]
    existing = set(user_model.objects.filter(username__in=names).values_list("username", flat=True))
    user_model.objects.bulk_create(
        [user_model(username=name, password="!") for name in names if name not in existing], batch_size=2000
    )
    users = list(user_model.objects.filter(username__in=names).order_by("username").values_list("pk", flat=True))
    Group.objects.get(name=CSM_GROUP).user_set.add(*users)
    return users


def _plan(number: int, seed: int, today: datetime.date, tiers: list[Tier], csm_ids: list[int]) -> dict:
    rng = _rng(seed, number)
    since = today - datetime.timedelta(days=rng.randrange(30, HISTORY_DAYS))
    base = Decimal(rng.choice((99, 250, 600, 1500, 4000, 9000, 15000)))
    lines: list[tuple[str, Decimal, datetime.date, datetime.date | None]] = []
    churned = rng.random() < 0.08
    end = since + datetime.timedelta(days=rng.randrange(30, max(31, (today - since).days))) if churned else None
    if not churned and rng.random() < 0.3 and (today - since).days > 90:
        change = since + datetime.timedelta(days=rng.randrange(60, (today - since).days))
        lines += [("Core", base, since, change), ("Core", base * Decimal("1.2"), change, None)]
    else:
        lines.append(("Core", base, since, end))
    stop = end or today
    if rng.random() < 0.35 and (stop - since).days > 1:
        add_on = since + datetime.timedelta(days=rng.randrange(0, (stop - since).days - 1))
        lines.append(("Add-on", (base / 4).quantize(Decimal("0.01")), add_on, end))
    mrr = sum((m for _p, m, s, e in lines if s <= today and (e is None or today < e)), Decimal(0))
    arr = mrr * 12
    tier = next((t for t in tiers if t.min_arr is None or arr >= t.min_arr), tiers[-1])
    renewal = today + datetime.timedelta(days=rng.randrange(1, 365))
    return {
        "id": number,
        "since": since,
        "lines": lines,
        "mrr": mrr,
        "tier": tier.pk,
        "owner": csm_ids[number % len(csm_ids)],
        "industry": INDUSTRIES[number % len(INDUSTRIES)],
        "region": REGIONS[number % len(REGIONS)],
        "employees": rng.randrange(10, 5000),
        "renewal": renewal,
        "last_touch": None,
        "progress": Decimal(rng.randrange(0, 100)),
        "seats": rng.randrange(5, 500),
    }


def _touch_rows(plans: list[dict], seed: int, today: datetime.date, now: datetime.datetime) -> Iterator[tuple]:
    for p in plans:
        rng = _rng(seed, p["id"] + 10_000_000)
        for _ in range(rng.randrange(5, 16)):
            day = today - datetime.timedelta(days=rng.randrange(0, 365))
            moment = datetime.datetime.combine(day, datetime.time(rng.randrange(8, 18)), tzinfo=datetime.UTC)
            sentiment = rng.choice((-1, 0, 0, 1, 1))
            yield (p["id"], p["owner"], rng.choice(KINDS), moment, "Check-in", "", sentiment, "", "import", now, now)


def _usage_rows(
    plans: list[dict], seed: int, days: int, today: datetime.date, now: datetime.datetime
) -> Iterator[tuple]:
    first = today - datetime.timedelta(days=days - 1)
    for p in plans:
        rng = _rng(seed, p["id"] + 20_000_000)
        seats = p["seats"]
        level = rng.uniform(0.2, 1.0)
        drift = rng.uniform(-0.004, 0.004)
        for offset in range(days):
            day = first + datetime.timedelta(days=offset)
            active = max(0, int(seats * min(1.0, max(0.0, level + drift * offset)) * rng.uniform(0.9, 1.1)))
            yield (p["id"], "active_users", day, active, now, now)
            yield (p["id"], "logins", day, active * rng.randrange(1, 4), now, now)
            yield (p["id"], "seats_licensed", day, seats, now, now)


# --- measuring ----------------------------------------------------------------------------------


def _child(work: Callable[[], object], results) -> None:
    connections.close_all()  # the child opens its own connection
    try:
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        results.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, None))
    except BaseException:  # the parent reports it: a child that dies silently would leave it waiting
        results.put((0.0, 0.0, traceback.format_exc()))
    finally:
        connections.close_all()


def measure(work: Callable[[], object]) -> tuple[float, float]:
    """Run `work` in a forked child; returns (seconds, the child's peak RSS in MB)."""
    connections.close_all()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    process = context.Process(target=_child, args=(work, results))
    process.start()
    while True:
        try:
            seconds, peak, error = results.get(timeout=1)
            break
        except queue.Empty:
            if not process.is_alive() and results.empty():
                raise BenchError(f"A measured step died (exit code {process.exitcode}).") from None
    process.join()
    if error is not None:
        raise BenchError(f"A measured step failed:\n{error}")
    return seconds, peak


def sql_fetch_all(sql: str, params: list) -> Callable[[], int]:
    """A floor: run the query and read every row it returns, as an implementation must."""

    def run() -> int:
        count = 0
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(10_000):
                count += len(rows)
        return count

    return run


HEALTH_FLOOR = """
WITH usage AS (
    SELECT account_id,
           SUM(value) FILTER (WHERE metric = 'active_users' AND date > %(d)s::date - 30) AS recent,
           SUM(value) FILTER (WHERE metric = 'active_users' AND date <= %(d)s::date - 30) AS earlier,
           MAX(value) FILTER (WHERE metric = 'active_users' AND date = %(d)s::date) AS active_now,
           MAX(value) FILTER (WHERE metric = 'seats_licensed' AND date = %(d)s::date) AS seats_now
    FROM metrics_usagerecord
    WHERE date > %(d)s::date - 60 AND date <= %(d)s::date AND metric IN ('active_users', 'seats_licensed')
    GROUP BY account_id
), touches AS (
    SELECT account_id, MAX(occurred_at) AS last_touch,
           AVG(sentiment) FILTER (WHERE occurred_at > %(d)s::date - 90) AS sentiment
    FROM accounts_touch WHERE occurred_at < %(d)s::date + 1 GROUP BY account_id
), mrr AS (
    SELECT account_id, SUM(mrr) AS mrr FROM accounts_subscription
    WHERE start_date <= %(d)s AND (end_date IS NULL OR end_date > %(d)s) GROUP BY account_id
)
SELECT a.id, u.recent, u.earlier, u.active_now, u.seats_now, t.last_touch, t.sentiment, m.mrr
FROM accounts_account a
LEFT JOIN usage u ON u.account_id = a.id
LEFT JOIN touches t ON t.account_id = a.id
LEFT JOIN mrr m ON m.account_id = a.id
"""

# The MRR refresh's floor: every account's MRR on the day.
MRR_FLOOR = """
SELECT account_id, SUM(mrr) FROM accounts_subscription
WHERE start_date <= %(d)s AND (end_date IS NULL OR end_date > %(d)s) GROUP BY account_id
"""

REVENUE_FLOOR = """
SELECT s.account_id, month_end, SUM(s.mrr)
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 month') AS m(month_start)
CROSS JOIN LATERAL (SELECT (m.month_start + interval '1 month' - interval '1 day')::date AS month_end) e
JOIN accounts_subscription s ON s.start_date <= e.month_end AND (s.end_date IS NULL OR s.end_date > e.month_end)
GROUP BY s.account_id, month_end
"""


def storage_sizes() -> list[tuple[str, int, int, int]]:
    """(table, rows, table bytes, index bytes) for usage and health snapshots."""
    out = []
    with connection.cursor() as cursor:
        for model in (UsageRecord, HealthSnapshot):
            table = model._meta.db_table
            cursor.execute(
                f"SELECT COUNT(*), pg_table_size(%s), pg_indexes_size(%s) FROM {table}",
                [table, table],
            )
            rows, table_bytes, index_bytes = cursor.fetchone()
            out.append((table, rows, table_bytes, index_bytes))
    return out


def month_bounds(today: datetime.date, months: int = 24) -> tuple[datetime.date, datetime.date]:
    last = today.replace(day=1)
    year, month = divmod(last.year * 12 + last.month - 1 - (months - 1), 12)
    return datetime.date(year, month + 1, 1), last


# Groups of figures `--only` selects, in the order they run: name -> "module.function", each called as
# function(today=..., accounts=..., report=...) and returning a list of Figure.
GROUPS = {
    "engines": "demo.bench.run_figures",
    "workspace": "demo.bench_web.run_figures",
    "workers": "demo.bench_workers.run_figures",
    "api": "demo.bench_api.run_figures",
    "health": "demo.bench_health.run_figures",
    "load": "demo.bench_load.run_figures",
}


def run_group(name: str, *, today: datetime.date, accounts: int, report: Callable[[str], None]) -> list[Figure]:
    module, function = GROUPS[name].rsplit(".", 1)
    return getattr(importlib.import_module(module), function)(today=today, accounts=accounts, report=report)


def run_figures(*, today: datetime.date, accounts: int, report: Callable[[str], None]) -> list[Figure]:
    """Time each engine and its floor; returns the figures."""
    from metrics.services.alerts import alerts_evaluate
    from metrics.services.health import health_recompute
    from metrics.services.revenue import revenue_recompute
    from metrics.tasks import nightly_workflow

    first, last = month_bounds(today)
    health_floor = sql_fetch_all(HEALTH_FLOOR, {"d": today})
    revenue_floor = sql_fetch_all(REVENUE_FLOOR, {"first": first, "last": last})
    size = f"{accounts:,} accounts"
    # The nightly chain's floor: the floors of the steps it runs, one after another. It refreshes MRR,
    # builds the bridge, scores health on the day and on the usage-lag day, then evaluates alerts, which
    # read what health reads (tier rules and usage-linked targets are left out: they read little).
    lag_day = today - datetime.timedelta(days=settings.CSM_USAGE_LAG_DAYS)
    nightly_floors = [
        sql_fetch_all(MRR_FLOOR, {"d": today}),
        revenue_floor,
        health_floor,
        *([sql_fetch_all(HEALTH_FLOOR, {"d": lag_day})] if lag_day != today else []),
        health_floor,
    ]
    nightly_sql = (
        f"-- nightly chain: MRR on the day, the revenue floor, the health floor on the day and on the "
        f"usage-lag day ({lag_day}), the health floor again for alerts\n{MRR_FLOOR.strip()}"
    )

    def new_day() -> None:
        """The night's case: no snapshot of the day yet (a rerun leaves unchanged ones alone, which is cheaper)."""
        HealthSnapshot.objects.filter(date=today).delete()

    def no_bridge() -> None:
        RevenueMonth.objects.all().delete()

    def keep() -> None:
        pass

    def bridge() -> None:
        revenue_recompute(first=first, last=last)

    def nightly() -> None:
        # Run here, eagerly; a worker started earlier in this process (tests) would otherwise forbid the
        # chain's waiting on its steps' results.
        with allow_join_result():
            nightly_workflow(on=today.isoformat()).apply()

    # (name, prepare (not timed), work, floor, floor query)
    steps = [
        ("health recompute (full)", new_day, lambda: health_recompute(on=today), health_floor, HEALTH_FLOOR),
        ("revenue months (24), empty", no_bridge, bridge, revenue_floor, REVENUE_FLOOR),
        ("revenue months (24), again", keep, bridge, revenue_floor, REVENUE_FLOOR),
        ("alert evaluation", keep, lambda: alerts_evaluate(on=today), health_floor, HEALTH_FLOOR),
        (
            "nightly chain",
            new_day,
            nightly,
            lambda: [floor() for floor in nightly_floors],
            f"{nightly_sql}\n\n{HEALTH_FLOOR.strip()}\n\n{REVENUE_FLOOR.strip()}",
        ),
    ]
    figures = []
    for name, prepare, work, floor, floor_sql in steps:
        report(f"  measuring {name} …")
        prepare()
        floor_seconds, floor_peak = measure(floor)
        seconds, peak = measure(work)
        figures.append(Figure(name, size, seconds, floor_seconds, peak, floor_peak, floor_sql=floor_sql.strip()))
    return figures


def bench_counts() -> dict[str, int]:
    return {
        "accounts": Account.objects.count(),
        "usage rows": UsageRecord.objects.count(),
        "touches": Touch.objects.count(),
        "snapshots": HealthSnapshot.objects.count(),
        "revenue rows": RevenueMonth.objects.count(),
        "open alerts": Alert.objects.filter(status="open").count(),
    }
