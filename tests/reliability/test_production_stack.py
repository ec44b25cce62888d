"""The production stack as `python3 dev.py prod` starts it (scripts/prod.py): gunicorn, a Celery worker and beat
with DEBUG=0 on the test's PostgreSQL database and Redis, driven over HTTP, then stopped with SIGTERM."""

import datetime
import http.client
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from accounts.models import Account, Partner, Subscription
from accounts.services import partner_key_create
from metrics.models import HealthSnapshot
from tests.reliability.conftest import needs_stack

SCRIPT = Path(settings.BASE_DIR) / "scripts" / "prod.py"


def get(stack, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def api(stack, method: str, path: str, key: str, body) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"}
    conn.request(method, f"/api/v1/{path}", body=json.dumps(body), headers=headers)
    response = conn.getresponse()
    answer = json.loads(response.read() or b"null")
    conn.close()
    return response.status, answer


def wait_for(condition, what: str, stack, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s; the stack's output:\n{stack.log()[-6000:]}")
        time.sleep(0.5)
    return result


@needs_stack
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
class TestProductionStack:
    def test_the_login_page_is_served_with_hashed_static_files_from_whitenoise(self, stack):
        page = get(stack, "/login/")
        assert page.status == 200
        html = page.body.decode()
        # collectstatic ran: the stylesheet is linked under its content-hashed name (ManifestStaticFilesStorage).
        css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', html)
        assert css, html[:2000]
        asset = get(stack, css.group(1), {"Accept-Encoding": "gzip"})
        assert asset.status == 200
        assert asset.getheader("Content-Type").startswith("text/css")
        # whitenoise serves hashed files as cacheable forever, compressed when the browser accepts it.
        assert "immutable" in asset.getheader("Cache-Control")
        assert asset.getheader("Content-Encoding") == "gzip"
        # Production settings: no debug page for an unknown URL, and the security headers are sent.
        missing = get(stack, "/no-such-page/")
        assert missing.status in (302, 404)
        assert b"Traceback" not in missing.body
        assert page.getheader("X-Frame-Options") == "DENY"
        assert "script-src" in page.getheader("Content-Security-Policy")

    def test_a_touch_logged_through_the_api_is_scored_by_the_worker(self, stack):
        partner = Partner.objects.create(name="Billing", scope=Partner.Scope.ALL)
        _key, raw = partner_key_create(partner=partner, name="stack")
        status, body = api(stack, "PUT", "accounts/stack-001/", raw, {"name": "Stack Corp"})
        assert (status, body["external_id"]) == (201, "stack-001"), body
        start = (timezone.localdate() - datetime.timedelta(days=40)).isoformat()
        status, body = api(
            stack,
            "PUT",
            "subscriptions/stack-sub-1/",
            raw,
            {"account": "stack-001", "product": "Platform", "mrr": "1200.00", "quantity": 1, "start_date": start},
        )
        assert status == 201, body
        status, body = api(
            stack,
            "PUT",
            "touches/stack-touch-1/",
            raw,
            {
                "account": "stack-001",
                "kind": "call",
                "subject": "Kick-off",
                "occurred_at": timezone.now().isoformat(),
                "sentiment": 1,
            },
        )
        assert status == 201, body
        account = Account.objects.get(external_id="stack-001")
        # The web process queued the recompute on Redis; only the worker process can have written this.
        snapshot = wait_for(
            lambda: HealthSnapshot.objects.filter(account=account, date=timezone.localdate()).first(),
            "the worker's health recompute",
            stack,
        )
        assert snapshot.score is not None
        account.refresh_from_db()
        assert account.mrr == Decimal("1200.00")  # the recompute refreshed MRR from the revenue line
        assert "metrics.tasks.recompute_accounts" in stack.log()

    def test_beat_sends_a_scheduled_task_that_the_worker_runs(self, stack):
        # An account whose stored MRR is out of date with its revenue line; written without the services, so
        # nothing is queued: only the scheduled MRR refresh can bring it up to date.
        account = Account.objects.create(name="Beat Corp", external_id="beat-001")
        Subscription.objects.create(
            account=account,
            product="Platform",
            mrr=Decimal("300.00"),
            quantity=1,
            start_date=timezone.localdate() - datetime.timedelta(days=10),
        )
        assert Account.objects.get(pk=account.pk).mrr == 0
        every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(
            name="Stack test: refresh MRR", task="metrics.tasks.refresh_mrr", interval=every_second, one_off=True
        )

        def refreshed() -> bool:
            # Beat rereads the schedule when the change stamp moves, but overlooks the first stamp it sees after
            # none (a database just flushed by the test before): moving it on each poll makes the second count.
            PeriodicTasks.update_changed()
            return Account.objects.get(pk=account.pk).mrr == Decimal("300.00")

        wait_for(refreshed, "the MRR refresh scheduled by beat", stack)
        assert re.search(r"beat \| .*Scheduler: Sending due task Stack test: refresh MRR", stack.log())

    def test_sigterm_stops_every_process(self, stack):
        processes = stack.processes()
        # The supervisor, gunicorn's master and its 2 workers, the Celery worker and its 2 pool processes, beat.
        assert len(processes) >= 1 + (1 + 2) + (1 + 2) + 1, processes
        assert stack.stop() == 0
        from demo.stack import still_running

        deadline = time.monotonic() + 10
        while (left := still_running(processes)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], f"processes left behind: {left}\n{stack.log()[-3000:]}"
        log = stack.log()
        assert "==> SIGTERM received" in log
        assert "==> Stopped" in log


def run_script(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--port", "1", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "DATABASE_URL must name a PostgreSQL database"),
        ({"DATABASE_URL": "sqlite:///db.sqlite3"}, "DATABASE_URL must name a PostgreSQL database"),
        ({"DATABASE_URL": "postgres://u@127.0.0.1/csm"}, "CELERY_BROKER_URL must name a Redis database"),
        (
            {"DATABASE_URL": "postgres://u@127.0.0.1/csm", "CELERY_BROKER_URL": "memory://"},
            "CELERY_BROKER_URL must name a Redis database",
        ),
    ],
)
def test_the_script_refuses_to_start_without_postgresql_and_redis(variables, message):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    result = run_script({**env, **variables})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Migrating" not in result.stdout  # nothing ran


def test_a_missing_secret_key_is_made_once_and_kept_private(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("prod_script", SCRIPT)
    prod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prod)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    path = tmp_path / ".secret_key"
    first = prod.secret_key(path)
    assert len(first) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert prod.secret_key(path) == first  # kept: sessions survive a restart
    monkeypatch.setenv("SECRET_KEY", "x" * 60)
    assert prod.secret_key(path) == "x" * 60  # the environment wins
