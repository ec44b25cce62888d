"""Faults in the background work, with real worker processes (`celery -A csm worker --pool solo`) on Redis
and the test's PostgreSQL database.

Each fault is placed deterministically: the test holds a row lock (FOR UPDATE) on a health snapshot the
recompute must overwrite, waits until the worker's database session is seen waiting on that lock (so the
recompute is inside its transaction, part of its snapshots written but not committed), then strikes:
SIGKILL of the worker process, or pg_terminate_backend of its session. The outcome is compared, row by row,
with a clean run of the same day on the same data (the deterministic demo book, seeded again).
"""

import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from decimal import Decimal
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from accounts.models import Account, TierAssignment
from demo.bench_workers import ROOT, database_url, log_tail, stop_worker
from metrics.models import Alert, HealthSnapshot, RevenueMonth
from metrics.services.health import id_ranges
from metrics.tasks import nightly_workflow, recompute_health_chunk
from tests import factories

DAY = "2026-03-15"  # the day the demo book ends on and the runs score
ACCOUNTS = 24
CHUNK = 8  # account ids per health chunk: three chunks
VISIBILITY = 3  # seconds a delivered task stays unacknowledged before Redis may deliver it again
WAIT = 120  # seconds any step may take before the test gives up
STAMPS = ("created_at", "updated_at")

needs_worker = pytest.mark.skipif(
    not os.environ.get("CSM_REQUIRE_WORKER")
    and not (connection.vendor == "postgresql" and settings.CELERY_BROKER_URL.startswith("redis://")),
    reason="needs PostgreSQL and a Redis CELERY_BROKER_URL; CI's PostgreSQL run sets them and CSM_REQUIRE_WORKER",
)
pytestmark = [needs_worker, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


# --- workers, locks and sessions ---------------------------------------------------------------------


class Worker:
    """A `celery -A csm worker --pool solo` (or prefork, one child) process on the test's database and broker."""

    def __init__(self, label: str, pool: str = "solo", **env: str) -> None:
        self.name = f"{label}-{os.getpid()}@localhost"
        broker = settings.CELERY_BROKER_URL
        environ = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND or broker,
            "CSM_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY),
            **env,
        }
        command = [sys.executable, "-m", "celery", "-A", "csm", "worker", "--pool", pool, "--concurrency", "1"]
        command += ["--hostname", self.name, "--loglevel", "INFO", "--without-heartbeat", "--without-gossip"]
        command += ["--without-mingle"]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=self.log, stderr=subprocess.STDOUT)
        self.process.log = self.log

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT)

    def kill_child(self) -> None:
        """SIGKILL the prefork pool's child process (the one running the task), as the OOM killer would."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)

    def stop(self) -> None:
        stop_worker(self.process)

    def check_alive(self) -> None:
        assert self.process.poll() is None, f"the worker stopped: {log_tail(self.process)}"

    def text(self) -> str:
        return log_tail(self.process, 100_000)


@contextmanager
def workers():
    """Start workers with `start(label)`; every one still running is stopped at the end, and the broker
    purged, so the next test finds no task of this one."""
    from csm.celery import app

    started: list[Worker] = []

    def start(label: str, **env: str) -> Worker:
        started.append(Worker(label, **env))
        return started[-1]

    app.conf.task_always_eager = False
    app.control.purge()
    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        app.control.purge()
        app.conf.task_always_eager = True


def conninfo() -> str:
    return database_url().replace("postgres://", "postgresql://", 1)


@contextmanager
def snapshot_locked(snapshot: HealthSnapshot):
    """Hold a row lock on `snapshot` from another session until the block ends (then roll back)."""
    with psycopg.connect(conninfo()) as session:
        session.execute("SELECT 1 FROM metrics_healthsnapshot WHERE id = %s FOR UPDATE", [snapshot.pk])
        yield session
        session.rollback()


def waiting_session(worker: Worker, other_than: int | None = None) -> int:
    """The pid of the database session that waits on a row lock (the worker's), once there is one."""
    deadline = time.monotonic() + WAIT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND pid <> pg_backend_pid()"
            )
            pids = [pid for (pid,) in cursor.fetchall() if pid != other_than]
            if pids:
                assert len(pids) == 1, pids
                return pids[0]
            worker.check_alive()
            time.sleep(0.05)
    raise AssertionError(f"no session waited on the lock within {WAIT} s: {worker.text()}")


def session_gone(pid: int) -> None:
    deadline = time.monotonic() + WAIT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if not cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"session {pid} still open after {WAIT} s")


# --- the book and what the runs derive from it --------------------------------------------------------


def seed(*, again: bool = False) -> HealthSnapshot:
    """The demo book as of DAY (the same rows each time), with one snapshot of DAY already stored for the
    first account of the second health chunk, as an earlier event-driven recompute would leave: the row a
    run must overwrite, which the tests lock. Returns that snapshot."""
    args = ["--accounts", str(ACCOUNTS), "--seed", "11", "--today", DAY]
    call_command("seed_demo", *args, *(["--flush", "--yes"] if again else []), stdout=StringIO(), stderr=StringIO())
    second_chunk = id_ranges(CHUNK)[1]
    account = Account.objects.filter(pk__gte=second_chunk[0], pk__lt=second_chunk[1]).order_by("pk").first()
    day = datetime.date.fromisoformat(DAY)
    return factories.HealthSnapshotFactory(account=account, date=day, score=Decimal("50.0"), band="yellow")


def rows(queryset, *names: str) -> list[tuple]:
    return sorted(queryset.values_list(*names), key=repr)


def derived() -> dict[str, list[tuple]]:
    """Everything the nightly run derives, keyed by what survives a reseed (external ids, user names);
    the times rows were written at are left out."""
    user = get_user_model()
    return {
        "snapshots": rows(
            HealthSnapshot.objects, "account__external_id", "date", "score", "band", "model_version", "components"
        ),
        "revenue months": rows(
            RevenueMonth.objects,
            *(f.attname for f in RevenueMonth._meta.concrete_fields if f.name not in ("id", *STAMPS)),
        ),
        "alerts": rows(
            Alert.objects,
            "rule",
            "account__external_id",
            "status",
            "owner__username",
            "due",
            "reason",
            "snoozed_until",
            "closed_reason",
            "closed_by",
        ),
        "accounts": rows(
            Account._base_manager,
            "external_id",
            "mrr",
            "tier__slug",
            "health_score",
            "health_band",
            "last_touch_at",
            "owner__username",
        ),
        "tier history": rows(
            TierAssignment.objects, "account__external_id", "tier__slug", "started_at", "ended_at", "source", "reason"
        ),
        "users": rows(user.objects, "username"),
    }


def snapshot_days(low: int, high: int) -> list[tuple]:
    return rows(HealthSnapshot.objects.filter(account_id__gte=low, account_id__lt=high), "account_id", "date", "score")


def clean_run() -> dict[str, list[tuple]]:
    """Seed the book again and run the whole nightly workflow, with no fault, on the worker still running.
    (A worker started now would, at its start, deliver again any task the other had held for longer than
    the short visibility timeout: a clean run must not see that.)"""
    seed(again=True)
    nightly_workflow(DAY, chunk_size=CHUNK).apply_async().get(timeout=WAIT)
    return derived()


# --- the tests --------------------------------------------------------------------------------------


def test_a_worker_killed_mid_chain_leaves_nothing_partial_and_the_redelivered_run_equals_a_clean_one():
    locked = seed()
    first, second, third = id_ranges(CHUNK)
    before = {"second": snapshot_days(*second), "third": snapshot_days(*third), "alerts": Alert.objects.count()}
    assert before["second"] == [(locked.account_id, locked.date, Decimal("50.0"))]

    with workers() as start:
        doomed = start("doomed")
        with snapshot_locked(locked) as session:
            result = nightly_workflow(DAY, chunk_size=CHUNK).apply_async()
            # MRR, tiers, revenue, targets and the first health chunk are done; the second chunk has written
            # its rows up to the locked one, inside its transaction, and waits.
            pid = waiting_session(doomed)
            doomed.kill()
            killed_at = time.monotonic()
            session.rollback()
        session_gone(pid)  # its session saw the client gone and rolled back

        # Nothing partial: the first chunk's snapshots are there, none of the second chunk's (the stored one
        # unchanged) nor the third's, and the alerts, which wait for every chunk, were not evaluated.
        assert snapshot_days(*first)
        assert snapshot_days(*second) == before["second"]
        assert snapshot_days(*third) == before["third"]
        assert Alert.objects.count() == before["alerts"]
        assert RevenueMonth.objects.exists()
        assert result.state == "PENDING"

        # A new worker started once the visibility timeout has passed takes the lost task back at start.
        time.sleep(max(0.0, killed_at + VISIBILITY + 0.5 - time.monotonic()))
        restarted = time.monotonic()
        start("rescuer")
        result.get(timeout=WAIT)
        print(f"\nredelivered and finished {time.monotonic() - restarted:.1f} s after the new worker started")
        after_fault = derived()
        assert snapshot_days(*second) != before["second"] and Alert.objects.count() > before["alerts"]

        clean = clean_run()

    for name, expected in clean.items():
        assert after_fault[name] == expected, name
    print("rows compared: " + ", ".join(f"{len(v)} {k}" for k, v in clean.items()))


def test_a_pool_process_killed_mid_chunk_has_its_task_run_again_by_the_next_one():
    """With the prefork pool, a child killed mid-task (out of memory, say) is replaced, and the task, rejected
    back to the queue (reject_on_worker_lost), runs again at once, without the visibility timeout."""
    locked = seed()
    second = id_ranges(CHUNK)[1]
    before = snapshot_days(*second)

    with workers() as start:
        worker = start("prefork", pool="prefork")
        with snapshot_locked(locked) as session:
            result = nightly_workflow(DAY, chunk_size=CHUNK).apply_async()
            pid = waiting_session(worker)
            worker.kill_child()
            killed_at = time.monotonic()
            # The new child takes the chunk again and waits on the lock in its turn (the killed child's
            # session waits too: it learns its client is gone only once it gets the lock). Nothing of the
            # chunk is committed.
            waiting_session(worker, other_than=pid)
            print(f"\nthe chunk ran again {time.monotonic() - killed_at:.1f} s after its process was killed")
            assert snapshot_days(*second) == before  # (the third chunk may have run meanwhile)
            session.rollback()
        result.get(timeout=WAIT)
        worker.check_alive()
        after_fault = derived()
        clean = clean_run()

    for name, expected in clean.items():
        assert after_fault[name] == expected, name


def test_a_recompute_whose_database_session_is_terminated_rolls_back_and_its_retry_succeeds():
    locked = seed()
    low, high = id_ranges(ACCOUNTS * 2)[0]  # one chunk: every account
    before = snapshot_days(low, high)

    with workers() as start:
        worker = start("worker")
        with snapshot_locked(locked):
            result = recompute_health_chunk.delay(low, high, DAY, settings.CSM_USAGE_LAG_DAYS)
            pid = waiting_session(worker)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
                assert cursor.fetchone()[0] is True
            terminated_at = time.monotonic()
            session_gone(pid)
            # The retry, on a new connection of the same worker process, waits on the lock in its turn: the
            # terminated transaction left nothing behind.
            retry = waiting_session(worker, other_than=pid)
            assert retry != pid
            print(f"\nretried on a new connection {time.monotonic() - terminated_at:.1f} s after the termination")
            assert snapshot_days(low, high) == before
        written = result.get(timeout=WAIT)
        log = worker.text()
        after_fault = derived()

        seed(again=True)  # and the same recompute on the same worker, with no fault
        clean = recompute_health_chunk.delay(*id_ranges(ACCOUNTS * 2)[0], DAY, settings.CSM_USAGE_LAG_DAYS)
        assert clean.get(timeout=WAIT) == written

    assert "terminating connection due to administrator command" in log and "Retry in" in log, log
    assert written > ACCOUNTS  # two days scored
    clean_rows = derived()
    for name, expected in clean_rows.items():
        assert after_fault[name] == expected, name
    print(
        f"{written} snapshots written; rows compared: {len(clean_rows['snapshots'])} snapshots, "
        f"{len(clean_rows['accounts'])} accounts"
    )
