"""The production stack (scripts/prod.py: gunicorn, a Celery worker and beat) started as a child process on
this process's database, for the load test, its bench figure and the stack's own tests.

The stack gets the database this process uses (under tests, the test database), the broker given, a random
SECRET_KEY and a free port on 127.0.0.1; its output goes to a temporary file, read back by `log()`.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings

from demo.bench_api import _children, _database_url, _free_port

SCRIPT = Path(settings.BASE_DIR) / "scripts" / "prod.py"
START_TIMEOUT = 420  # seconds: migrate, collectstatic (compressing every file) and check come first
READY_LINE = "==> Ready: serving on "


class StackError(RuntimeError):
    pass


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every process under `pid`, as (pid, start time), so a pid reused later is not mistaken for one of them."""
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append((child, _start_time(child)))
            todo.append(child)
    return found


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def still_running(processes: list[tuple[int, str]]) -> list[int]:
    """Those of `processes` that still exist (zombies included: nobody has reaped them)."""
    return [pid for pid, started in processes if started and _start_time(pid) == started]


class Stack:
    """`python scripts/prod.py` on a free port; `start()` returns once it says it is ready."""

    def __init__(self, *, broker_url: str, workers: int = 2, threads: int = 4, concurrency: int = 2) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": broker_url,
            "CACHE_URL": broker_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ALLOWED_HOSTS": "127.0.0.1",
            "CSM_HTTPS": "0",
        }
        self.args = ["--workers", str(workers), "--threads", str(threads), "--concurrency", str(concurrency)]
        self._log = tempfile.NamedTemporaryFile(prefix="csm-stack-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self) -> Stack:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--port", str(self.port), *self.args],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while READY_LINE not in self.log():
            if self.process.poll() is not None:
                raise StackError(f"The stack exited with code {self.process.returncode}:\n{self.log()[-5000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"The stack was not ready within {START_TIMEOUT} s:\n{self.log()[-5000:]}")
            time.sleep(0.5)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def processes(self) -> list[tuple[int, str]]:
        """The supervisor and everything under it: gunicorn and its workers, the worker and its pool, beat."""
        if not self.running:
            return []
        return [(self.process.pid, _start_time(self.process.pid)), *descendants(self.process.pid)]

    def wait_idle(self, timeout: float = 300) -> None:
        """Wait until the broker's queue is empty and the worker runs nothing, twice in a row: the recomputes the
        writes queued are done, so the database is quiet (a test's teardown may empty it)."""
        from celery import Celery
        from redis import Redis

        broker = self.env["CELERY_BROKER_URL"]
        client = Redis.from_url(broker)
        app = Celery(set_as_current=False, broker=broker, config_source={"broker_read_url": broker})
        idle_polls, deadline = 0, time.monotonic() + timeout
        try:
            while idle_polls < 2:
                if time.monotonic() > deadline:
                    raise StackError(f"The worker was still busy after {timeout} s:\n{self.log()[-3000:]}")
                busy = client.llen("celery")
                inspect = app.control.inspect(timeout=2)
                for answer in (inspect.active() or {}, inspect.reserved() or {}):
                    busy += sum(len(tasks) for tasks in answer.values())
                idle_polls = idle_polls + 1 if busy == 0 else 0
                time.sleep(0.5)
        finally:
            client.close()
            app.close()

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM to the supervisor, as a service manager stops it; returns its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
