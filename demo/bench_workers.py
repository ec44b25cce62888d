"""Worker scaling for the benchmark: the nightly health chord on 1, 2 and 4 real Celery worker processes.

The chord is built as `metrics.tasks.nightly_workflow` builds it (health chunks of CHUNK_SIZE account ids,
each scoring the usage-lag day and the day itself, then the alert evaluation once all are done) and sent to
a worker started here (`celery -A csm worker --pool prefork --concurrency N`) on its own Redis database,
with the bench's database. The time runs from sending the chord to its alert evaluation's result (the best
of REPEATS runs after a warm-up, with their median); the results' completion times split it into the health
chunks and the alerts that wait for them.
"""

import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from celery import Celery, chord
from celery.result import allow_join_result
from django.conf import settings
from django.db import connection

from demo.bench import BenchError, Figure
from metrics.services.health import CHUNK_SIZE, id_ranges

BROKER = os.environ.get("BENCH_WORKER_BROKER", "redis://127.0.0.1:6379/14")
PROCESSES = (1, 2, 4)
START_TIMEOUT = 60  # seconds for a worker to answer a ping
RUN_TIMEOUT = 900  # seconds for one chord
REPEATS = 5  # timed runs per number of processes, after a warm-up: the best is reported (others share the CPU)
ROOT = Path(settings.BASE_DIR)


def client_app() -> Celery:
    """A Celery client of the bench broker, whatever this process's own settings say."""
    return Celery(
        "csm-bench",
        broker=BROKER,
        backend=BROKER,
        set_as_current=False,
        config_source={
            # Celery prefers the CELERY_BROKER_URL environment variable to `broker`; these two it does not.
            "broker_read_url": BROKER,
            "broker_write_url": BROKER,
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "broker_connection_retry_on_startup": True,
        },
    )


def database_url() -> str:
    """The URL of the database this process uses (the bench's), for the workers."""
    if connection.vendor != "postgresql":
        raise BenchError("The worker figures need the bench's PostgreSQL database (set DATABASE_URL).")
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{host}{port}/{quote(db['NAME'], safe='')}"


def start_worker(app: Celery, processes: int) -> tuple[subprocess.Popen, str]:
    """Start a prefork worker with `processes` child processes; returns it once it answers a ping."""
    name = f"bench{processes}-{os.getpid()}@localhost"
    env = {**os.environ, "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": BROKER, "DATABASE_URL": database_url()}
    command = [sys.executable, "-m", "celery", "-A", "csm", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(processes), "--hostname", name, "--loglevel", "WARNING", "--without-heartbeat"]
    command += ["--without-gossip", "--without-mingle"]
    # The worker's log goes to a file: a pipe nobody reads would fill and stop the worker mid-task.
    log = tempfile.TemporaryFile()
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    worker.log = log
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise BenchError(f"The worker stopped at start: {log_tail(worker)}")
        if any(name in reply for reply in app.control.ping(destination=[name], timeout=1.0) or []):
            return worker, name
    tail = log_tail(worker)
    stop_worker(worker)
    raise BenchError(f"The worker did not answer a ping within {START_TIMEOUT} s: {tail}")


def peak_mb(worker: subprocess.Popen) -> float:
    """The largest peak RSS (VmHWM) among the worker and its child processes, in MB (0 when unreadable)."""
    pids = [worker.pid]
    try:
        pids += [int(pid) for pid in Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()]
    except OSError:
        return 0.0
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def stop_worker(worker: subprocess.Popen) -> None:
    """A warm shutdown (SIGTERM), then SIGKILL if it does not end in time."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    worker.log.close()


def log_tail(worker: subprocess.Popen, size: int = 2000) -> str:
    worker.log.seek(0)
    return worker.log.read().decode(errors="replace")[-size:]


def health_chord(app: Celery, today: datetime.date):
    """The nightly workflow's health part: chunks in parallel, then alerts (see metrics.tasks)."""
    on, lag = today.isoformat(), settings.CSM_USAGE_LAG_DAYS
    chunks = [
        app.signature("metrics.tasks.recompute_health_chunk", args=(low, high, on, lag), immutable=True)
        for low, high in id_ranges(CHUNK_SIZE)
    ]
    if not chunks:
        raise BenchError("No accounts to score: load the bench data first.")
    return chord(chunks, app.signature("metrics.tasks.evaluate_alerts", kwargs={"on": on}))


def run_chord(app: Celery, today: datetime.date) -> tuple[float, float]:
    """Send the chord and wait for it; returns (seconds in all, seconds of the health chunks)."""
    workflow = health_chord(app, today)
    sent = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    result = workflow.apply_async()
    with allow_join_result():  # this process only waits; a worker that ran in it before would forbid that
        result.get(timeout=RUN_TIMEOUT, propagate=True)  # a chunk's error is raised here
    seconds = time.perf_counter() - started
    header = result.parent.results if result.parent is not None else []
    done = [child.date_done for child in header if child.date_done is not None]
    chunks = (max(done).replace(tzinfo=datetime.UTC) - sent).total_seconds() if done else seconds
    return seconds, min(chunks, seconds)


def run_figures(*, today: datetime.date, accounts: int, report: Callable[[str], None]) -> list[Figure]:
    """The health chord's time on 1, 2 and 4 worker processes, with the speed-up against one."""
    app = client_app()
    app.control.purge()
    chunks = len(id_ranges(CHUNK_SIZE))
    size = f"{accounts:,} accounts"
    figures: list[Figure] = []
    one = None
    for processes in PROCESSES:
        report(f"  health chord on {processes} worker process(es) …")
        worker, _name = start_worker(app, processes)
        try:
            run_chord(app, today)  # warm-up: each process opens its database connection
            runs = sorted(run_chord(app, today) for _ in range(REPEATS))
            peak = peak_mb(worker)
        except Exception as error:
            raise BenchError(f"The chord failed on {processes} process(es): {error!r}\n{log_tail(worker)}") from error
        finally:
            stop_worker(worker)
        seconds, chunk_seconds = runs[0]
        median = runs[len(runs) // 2][0]
        one = one or seconds
        figures.append(
            Figure(
                f"health chord, {processes} proc.",
                size,
                seconds,
                None,
                peak,
                None,
                note=(
                    f"speed-up {one / seconds:.2f}x vs 1; {chunks} chunks {chunk_seconds:.2f} s, "
                    f"alerts {seconds - chunk_seconds:.2f} s; best of {REPEATS}, median {median:.2f} s; "
                    f"{os.cpu_count()} cores"
                ),
            )
        )
    return figures
