"""Health figures (bench group "health"): the full recompute, the nightly pass over today and the usage-lag
day, the event-driven recompute of 100 accounts in a warm worker, and the 365-day backfill.

Each is timed against bare SQL reading what it must read (its floor), in the same run. The backfill is
timed on the first accounts only and its rate extrapolated to every account (see its note).
"""

import datetime
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from django.conf import settings
from django.db.models import Max, Min

from accounts.models import Account
from demo.bench import HEALTH_FLOOR, Figure, measure, sql_fetch_all
from metrics.models import UsageRecord

INCREMENTAL_ACCOUNTS = 100
INCREMENTAL_RUNS = 9
BACKFILL_DAYS = 365
BACKFILL_ACCOUNTS = 1000  # accounts the backfill is timed on; its rate is extrapolated to all

# The floor of a few accounts: the health floor's reads restricted to their ids.
ACCOUNTS_FLOOR = (
    HEALTH_FLOOR.replace("WHERE date > %(d)s::date - 60", "WHERE account_id = ANY(%(ids)s) AND date > %(d)s::date - 60")
    .replace("WHERE occurred_at < %(d)s::date + 1", "WHERE account_id = ANY(%(ids)s) AND occurred_at < %(d)s::date + 1")
    .replace("WHERE start_date <= %(d)s", "WHERE account_id = ANY(%(ids)s) AND start_date <= %(d)s")
    .rstrip()
    + "\nWHERE a.id = ANY(%(ids)s)\n"
)

# The backfill's floor: every usage value and touch of the accounts over the range and the 60 days before.
BACKFILL_FLOOR = """
SELECT account_id, metric, date, value FROM metrics_usagerecord
WHERE account_id >= %(low)s AND account_id < %(high)s AND metric IN ('active_users', 'seats_licensed')
  AND date > %(first)s::date - 60 AND date <= %(last)s
UNION ALL
SELECT account_id, 'touch', occurred_at::date, sentiment FROM accounts_touch
WHERE account_id >= %(low)s AND account_id < %(high)s AND occurred_at < %(last)s::date + 1
"""


def _median_of_runs(work: Callable[[], object], runs: int, out: str) -> Callable[[], None]:
    """Run `work` once to warm the process, then `runs` times; the timings go to the file `out`."""

    def run() -> None:
        work()
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            work()
            timings.append(time.perf_counter() - started)
        with open(out, "w") as handle:
            json.dump(timings, handle)

    return run


def _timed_runs(work: Callable[[], object], runs: int) -> tuple[list[float], float]:
    """(the timings of `runs` warm runs, the child's peak RSS in MB)."""
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    try:
        _seconds, peak = measure(_median_of_runs(work, runs, path))
        with open(path) as timings:
            return json.load(timings), peak
    finally:
        os.unlink(path)


def run_figures(*, today: datetime.date, accounts: int, report: Callable[[str], None]) -> list[Figure]:
    from metrics.services.health import health_recompute, health_recompute_range
    from metrics.tasks import recompute_accounts

    size = f"{accounts:,} accounts"
    figures = []
    floor = sql_fetch_all(HEALTH_FLOOR, {"d": today})

    report("  measuring health recompute (full) …")
    floor_seconds, floor_peak = measure(floor)
    seconds, peak = measure(lambda: health_recompute(on=today))
    figures.append(
        Figure(
            "health recompute (full)", size, seconds, floor_seconds, peak, floor_peak, floor_sql=HEALTH_FLOOR.strip()
        )
    )

    lag = settings.CSM_USAGE_LAG_DAYS
    nightly_days = [today - datetime.timedelta(days=lag), today] if lag else [today]
    report("  measuring health, today and the lag day …")
    floor_seconds, floor_peak = measure(lambda: [sql_fetch_all(HEALTH_FLOOR, {"d": d})() for d in nightly_days])
    seconds, peak = measure(lambda: health_recompute(days=nightly_days))
    figures.append(
        Figure(
            f"health, today and {lag} day(s) back",
            size,
            seconds,
            floor_seconds,
            peak,
            floor_peak,
            note="the nightly chunks' pass, all chunks at once; floor: the health floor once per day",
            floor_sql="The health floor, once per day.",
        )
    )

    ids = list(Account.objects.order_by("pk").values_list("pk", flat=True)[:INCREMENTAL_ACCOUNTS])
    report(f"  measuring incremental ({len(ids)} accounts) …")
    floor_runs, floor_peak = _timed_runs(sql_fetch_all(ACCOUNTS_FLOOR, {"d": today, "ids": ids}), INCREMENTAL_RUNS)
    runs, peak = _timed_runs(lambda: recompute_accounts(ids), INCREMENTAL_RUNS)
    figures.append(
        Figure(
            f"incremental ({len(ids)} accounts)",
            f"{len(ids)} of {accounts:,} accounts",
            statistics.median(runs),
            statistics.median(floor_runs),
            peak,
            floor_peak,
            note=(
                f"recompute_accounts task body in a warm process: median of {INCREMENTAL_RUNS} runs "
                f"(min {min(runs) * 1000:.0f} ms, max {max(runs) * 1000:.0f} ms); MRR, tier, targets, health, alerts"
            ),
            floor_sql=ACCOUNTS_FLOOR.strip(),
        )
    )

    figures.append(_backfill_figure(today, accounts, report, health_recompute_range))
    return figures


def _backfill_figure(today: datetime.date, accounts: int, report, health_recompute_range) -> Figure:
    first = today - datetime.timedelta(days=BACKFILL_DAYS - 1)
    bounds = Account.objects.aggregate(low=Min("pk"))
    low = bounds["low"] or 1
    high = low + BACKFILL_ACCOUNTS
    sample = Account.objects.filter(pk__gte=low, pk__lt=high).count()
    report(f"  measuring health backfill ({BACKFILL_DAYS} days, {sample:,} accounts) …")
    floor = sql_fetch_all(BACKFILL_FLOOR, {"low": low, "high": high, "first": first, "last": today})
    floor_seconds, floor_peak = measure(floor)
    written = []

    def backfill() -> None:
        count = health_recompute_range(first=first, last=today, id_range=(low, high))
        with open(counted, "w") as handle:
            handle.write(str(count))

    handle, counted = tempfile.mkstemp()
    os.close(handle)
    try:
        seconds, peak = measure(backfill)
        with open(counted) as result:
            written.append(int(result.read() or 0))
    finally:
        os.unlink(counted)
    usage_days = UsageRecord.objects.aggregate(first=Min("date"), last=Max("date"))
    history = (usage_days["last"] - usage_days["first"]).days + 1 if usage_days["first"] else 0
    rate = written[0] / seconds if seconds else 0
    whole = accounts * BACKFILL_DAYS * (written[0] / max(sample * BACKFILL_DAYS, 1))
    minutes = whole / rate / 60 if rate else 0
    return Figure(
        f"health backfill ({BACKFILL_DAYS} days)",
        f"{sample:,} accounts × {BACKFILL_DAYS} days",
        seconds,
        floor_seconds,
        peak,
        floor_peak,
        note=(
            f"{written[0]:,} snapshots, {rate:,.0f}/s on one worker; all {accounts:,} accounts ≈ {whole:,.0f} "
            f"snapshots ≈ {minutes:.0f} min on one worker (chunks of ids run in parallel on several, sharing "
            f"the database's writes); {history} days of usage loaded"
        ),
        floor_sql=BACKFILL_FLOOR.strip(),
    )
