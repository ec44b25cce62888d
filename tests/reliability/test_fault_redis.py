"""Redis restarting while tasks are queued, with a private redis-server on a free port, the application served
by gunicorn and the test's PostgreSQL database.

What is lost: Redis keeps the queue in memory only, unless it writes an append-only file. Restarted without
one, it comes back empty: the recomputes queued by writes that committed (their requests answered) are gone;
the writes themselves are in PostgreSQL, and the nightly run, which recomputes every account, makes what the
lost tasks would have made. With `appendonly yes` and `appendfsync always` every queued task survives even a
crash. A write made while Redis is down still commits and answers; the enqueue error is logged.
"""

import base64
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import redis
import requests
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Account, Partner, Touch
from accounts.services import partner_key_create
from demo.bench_workers import ROOT, database_url, log_tail, stop_worker
from metrics.models import Alert, HealthSnapshot
from metrics.tasks import recompute_accounts
from tests import factories
from tests.reliability.test_faults import WAIT, Worker, needs_worker, rows

pytestmark = [needs_worker, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ACCOUNTS = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def until(check, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


class PrivateRedis:
    """A redis-server of this test alone (never the shared one), started and stopped at will."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.port, self.directory, self.options = free_port(), directory, options
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port, socket_timeout=5)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--dir", str(self.directory), *self.options]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until(self._answers, "redis-server answering")

    def _answers(self) -> bool:
        try:
            return self.client.ping()
        except redis.ConnectionError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=WAIT)
        self.client.connection_pool.disconnect()

    def queued(self) -> list[dict]:
        """The task messages waiting in the default queue, oldest first: name and arguments."""
        messages = [json.loads(raw) for raw in reversed(self.client.lrange("celery", 0, -1))]
        return [{"task": m["headers"]["task"], "args": json.loads(base64.b64decode(m["body"]))[0]} for m in messages]


class Server:
    """gunicorn serving the application on the test's database, queueing tasks on `broker`."""

    def __init__(self, broker: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
        }
        command = [sys.executable, "-m", "gunicorn", "csm.wsgi:application", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", "1", "--timeout", "60"]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.process.log = self.log
        until(self._answers, "gunicorn answering")

    def _answers(self) -> bool:
        assert self.process.poll() is None, log_tail(self.process)
        try:
            return requests.get(f"{self.url}/api/v1/accounts/", timeout=WAIT).status_code == 401
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        stop_worker(self.process)


def book() -> tuple[list[Account], dict[str, str]]:
    """Accounts with revenue and a partner key that sees them all; returns them and the API headers."""
    accounts = []
    for n in range(ACCOUNTS):
        account = factories.AccountFactory(external_id=f"r-{n}", customer_since=datetime.date(2025, 1, 1))
        factories.SubscriptionFactory(account=account, mrr=Decimal(900), start_date=datetime.date(2025, 1, 1))
        Account.objects.filter(pk=account.pk).update(mrr=Decimal(900))
        accounts.append(account)
    _key, raw = partner_key_create(partner=factories.PartnerFactory(scope=Partner.Scope.ALL), name="tests")
    return accounts, {"Authorization": f"Bearer {raw}"}


def log_touch(server: Server, headers: dict, account: Account) -> requests.Response:
    body = {
        "external_id": f"t-{account.external_id}",
        "account": account.external_id,
        "csm": account.owner.username,
        "kind": "call",
        "occurred_at": timezone.now().isoformat(),
        "subject": "Check-in",
        "sentiment": 1,
    }
    return requests.post(f"{server.url}/api/v1/touches/", json=body, headers=headers, timeout=WAIT)


def health(accounts: list[Account]) -> dict[str, list[tuple]]:
    """What a recompute of `accounts` makes: today's snapshots, the accounts' health and their alerts."""
    ids = [a.pk for a in accounts]
    return {
        "snapshots": rows(
            HealthSnapshot.objects.filter(account_id__in=ids, date=timezone.localdate()),
            "account_id",
            "score",
            "band",
            "components",
        ),
        "accounts": rows(Account.objects.filter(pk__in=ids), "pk", "mrr", "tier", "health_score", "health_band"),
        "alerts": rows(Alert.objects.filter(account_id__in=ids), "rule", "account_id", "status", "reason", "due"),
    }


def test_tasks_queued_before_a_restart_without_persistence_are_lost_and_the_nightly_run_repairs_them(tmp_path):
    accounts, headers = book()
    broker = PrivateRedis(tmp_path, "--appendonly", "no")
    broker.start()
    server = Server(broker.url)
    try:
        for account in accounts[:3]:
            assert log_touch(server, headers, account).status_code == 201
        queued = broker.queued()
        assert queued == [{"task": "metrics.tasks.recompute_accounts", "args": [[a.pk]]} for a in accounts[:3]]

        broker.stop()
        # Redis down: the write commits and answers; the enqueue error is logged.
        response = log_touch(server, headers, accounts[3])
        assert response.status_code == 201, response.content
        assert Touch.objects.filter(account=accounts[3]).exists()
        log = log_tail(server.process, 100_000)
        assert f"Could not queue metrics.tasks.recompute_accounts([{accounts[3].pk}],) after commit" in log, log
        lost = [*queued, {"task": "metrics.tasks.recompute_accounts", "args": [[accounts[3].pk]]}]

        broker.start()
        assert broker.queued() == []  # all four recomputes are gone
    finally:
        server.stop()
        broker.stop()

    # What was lost: the health of the accounts touched (their touches and last touch are stored).
    assert Touch.objects.count() == ACCOUNTS
    assert not HealthSnapshot.objects.filter(account__in=accounts).exists()
    assert all(a.last_touch_at for a in Account.objects.all())

    # The repair: the nightly run (here, in-process, as `manage.py recompute_metrics` runs it).
    call_command("recompute_metrics", stdout=StringIO())
    repaired = health(accounts)
    assert len(repaired["snapshots"]) == ACCOUNTS
    # The lost tasks, run now with their own arguments, find nothing to change.
    for message in lost:
        recompute_accounts.apply(args=message["args"]).get()
    assert health(accounts) == repaired


def test_tasks_queued_on_a_redis_with_an_append_only_file_survive_a_crash(tmp_path):
    accounts, headers = book()
    broker = PrivateRedis(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    broker.start()
    server = Server(broker.url)
    worker = None
    try:
        for account in accounts:
            assert log_touch(server, headers, account).status_code == 201
        assert len(broker.queued()) == ACCOUNTS
        broker.stop(signal.SIGKILL)  # a crash: nothing is flushed at exit
        broker.start()
        assert broker.queued() == [{"task": "metrics.tasks.recompute_accounts", "args": [[a.pk]]} for a in accounts]
        worker = Worker("aof", CELERY_BROKER_URL=broker.url, CELERY_RESULT_BACKEND=broker.url)
        until(lambda: broker.client.llen("celery") == 0 and HealthSnapshot.objects.count() == ACCOUNTS, "all run")
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        broker.stop()
    assert set(HealthSnapshot.objects.values_list("account_id", flat=True)) == {a.pk for a in accounts}
