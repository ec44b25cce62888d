"""The load test: partner systems and a workspace user at once against the production stack, then a check that
every write the server acknowledged is stored, once, with the value sent last.

The stack is scripts/prod.py (gunicorn, a real Celery worker running the recomputes the writes queue, beat) on
this process's PostgreSQL database and the Redis broker given. PARTNERS partner clients (scope `own`, each
with its own key and external-id prefix) upsert accounts and contacts one by one and in bulk, send usage in
bulk (now and then retrying a batch with its Idempotency-Key) and page through their changes with the cursor,
while a CS leader loads My day, the accounts list, account pages and the portfolio. The clients are
scripts/load_clients.py (locust) in a process of their own.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group
from django.db.models import Count
from django.utils import timezone

from accounts.models import Account, Contact, Partner
from accounts.services import partner_key_create
from api.models import IdempotencyKey
from csm.roles import LEADER_GROUP
from demo.bench import BenchError, Figure
from demo.stack import Stack
from metrics.models import UsageRecord

PARTNERS = 8
PREFIX = "load-"
LEADER = "load-leader"
CLIENTS = Path(settings.BASE_DIR) / "scripts" / "load_clients.py"


@dataclass
class LoadRun:
    """What the clients measured and acknowledged, and what the database holds afterwards."""

    result: dict
    problems: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for counts in self.result["statuses"].values() for s, n in counts.items() if s.startswith("5"))

    def report(self) -> str:
        total = self.result["total"]
        acked = self.result["acked"]
        lines = [
            f"{total['requests']:,} requests in {self.result['seconds']:.0f} s from {self.result['users']} clients "
            f"({total['rps']:.1f} requests/s), {total['failures']:,} errors, {self.server_errors} 5xx; "
            f"acknowledged: {len(acked['accounts']):,} accounts, {len(acked['contacts']):,} contacts, "
            f"{len(acked['usage']):,} usage rows; {self.result['counts'].get('replays', 0)} batches retried, "
            f"{self.result['counts'].get('sync pages', 0)} sync pages",
            f"{'endpoint':<32} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        ]
        for name, e in [*self.result["endpoints"].items(), ("all", total)]:
            lines.append(
                f"{name:<32} {e['requests']:>9,} {e['failures']:>7,} {e['p50_ms']:>8.0f} {e['p95_ms']:>8.0f} "
                f"{e['p99_ms']:>8.0f} {e['max_ms']:>8.0f}"
            )
        lines += [f"error: {e['name']}: {e['error']} (x{e['occurrences']})" for e in self.result["errors"][:20]]
        lines += [f"problem: {p}" for p in self.problems[:20]]
        return "\n".join(lines)


def prepare(*, partners: int = PARTNERS, account_ids: list[int] | None = None) -> dict:
    """Partners with keys (no practical rate limit: the figures are the server's, not the throttle's), a CS
    leader with a password, and the accounts whose pages the leader opens; returns the clients' configuration."""
    cleanup()
    keys = []
    for n in range(1, partners + 1):
        partner = Partner.objects.create(name=f"Load partner {n}", scope=Partner.Scope.OWN, rate_limit=1_000_000)
        _key, raw = partner_key_create(partner=partner, name="load")
        keys.append({"key": raw, "prefix": f"{PREFIX}p{n}-"})
    password = secrets.token_urlsafe(16)
    # Hashed as the server checks it, whatever hashers this process is configured with (tests use a fast one).
    hashed = PBKDF2PasswordHasher().encode(password, PBKDF2PasswordHasher().salt())
    leader = get_user_model().objects.create(username=LEADER, password=hashed, is_active=True)
    Group.objects.get(name=LEADER_GROUP).user_set.add(leader)
    if account_ids is None:
        account_ids = list(
            Account.objects.filter(deleted_at__isnull=True).order_by("pk").values_list("pk", flat=True)[:50]
        )
    return {
        "partners": keys,
        "workspace": {"username": LEADER, "password": password, "account_ids": account_ids},
        "today": timezone.localdate().isoformat(),
    }


def drive(stack: Stack, config: dict, *, seconds: float) -> dict:
    """Run the clients against the stack for `seconds`; returns what they measured and acknowledged."""
    with tempfile.TemporaryDirectory(prefix="csm-load-") as folder:
        config_path, result_path = Path(folder) / "config.json", Path(folder) / "result.json"
        config_path.write_text(json.dumps({**config, "host": stack.url, "seconds": seconds}))
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        done = subprocess.run(
            [sys.executable, str(CLIENTS), str(config_path), str(result_path)],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 300,
        )
        if done.returncode or not result_path.exists():
            raise BenchError(f"The load clients failed (exit code {done.returncode}):\n{done.stderr[-5000:]}")
        return json.loads(result_path.read_text())


def _stored_twice(kind: str, queryset, fields: tuple[str, ...]) -> list[str]:
    rows = queryset.values(*fields).annotate(n=Count("id")).filter(n__gt=1)
    return [f"{kind} {row} is stored {row['n']} times" for row in rows]


def _compare(kind: str, stored: dict[str, object], acked: dict[str, object]) -> list[str]:
    """Every acknowledged key is stored with the value sent last, and nothing stored went unacknowledged."""
    problems = []
    for key, sent in acked.items():
        if key not in stored:
            problems.append(f"{kind} {key} was acknowledged but is missing")
        elif stored[key] != sent:
            problems.append(f"{kind} {key} holds {stored[key]}, not the last value acknowledged, {sent}")
    extra = sorted(set(stored) - set(acked))
    if extra:
        problems.append(f"{len(extra)} {kind} rows are stored but were never acknowledged: {extra[:5]}")
    return problems


def check(result: dict) -> list[str]:
    """Every acknowledged write is stored with the value sent last, and nothing is stored twice."""
    acked = result["acked"]
    accounts = Account.objects.filter(external_id__startswith=PREFIX)
    contacts = Contact.objects.filter(external_id__startswith=PREFIX)
    usage = UsageRecord.objects.filter(account__external_id__startswith=PREFIX)
    problems = [
        *result["problems"],
        *_stored_twice("account", accounts, ("external_id",)),
        *_stored_twice("contact", contacts, ("external_id",)),
        *_stored_twice("usage", usage, ("account_id", "metric", "date")),
    ]
    stored_accounts = {
        row["external_id"]: {**row, "renewal_date": row["renewal_date"].isoformat()}
        for row in accounts.values("external_id", "name", "employees", "renewal_date")
    }
    problems += _compare(
        "account",
        {key: {k: v for k, v in row.items() if k != "external_id"} for key, row in stored_accounts.items()},
        acked["accounts"],
    )
    # An account a partner of scope `own` creates is its own: the prefix names the partner (load-p3- is 3).
    for external_id, partner in accounts.values_list("external_id", "partner__name"):
        number = external_id.removeprefix(PREFIX).split("-")[0].removeprefix("p")
        if partner != f"Load partner {number}":
            problems.append(f"account {external_id} belongs to {partner}, not to the partner that made it")
    problems += _compare(
        "contact",
        {
            row.pop("external_id"): {"account": row.pop("account__external_id"), **row}
            for row in contacts.values("external_id", "account__external_id", "name", "email", "title")
        },
        acked["contacts"],
    )
    problems += _compare(
        "usage",
        {
            f"{row['account__external_id']}|{row['metric']}|{row['date'].isoformat()}": row["value"]
            for row in usage.values("account__external_id", "metric", "date", "value")
        },
        {key: Decimal(value) for key, value in acked["usage"].items()},
    )
    return problems


def run(stack: Stack, *, seconds: float, account_ids: list[int] | None = None) -> LoadRun:
    config = prepare(account_ids=account_ids)
    result = drive(stack, config, seconds=seconds)
    return LoadRun(result, check(result))


def cleanup() -> None:
    """Remove what a load run leaves: its accounts (with their contacts and usage), partners, keys, leader."""
    partners = Partner.objects.filter(name__startswith="Load partner ")
    IdempotencyKey.objects.filter(client__in=[f"partner:{pk}" for pk in partners.values_list("pk", flat=True)]).delete()
    UsageRecord.objects.filter(account__external_id__startswith=PREFIX).delete()
    Contact.objects.filter(external_id__startswith=PREFIX).delete()
    Account.objects.filter(external_id__startswith=PREFIX).delete()
    partners.delete()
    get_user_model().objects.filter(username=LEADER).delete()


def run_figures(*, today: datetime.date, accounts: int, report: Callable[[str], None]) -> list[Figure]:
    """The bench's `load` group: BENCH_LOAD_SECONDS (default 60) of load on the bench database."""
    seconds = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "rediss://")):
        raise BenchError("The load figures need a Redis broker of their own for the stack: set CELERY_BROKER_URL.")
    report("  starting the production stack (migrate, collectstatic, check --deploy, gunicorn, worker, beat) …")
    stack = Stack(broker_url=broker).start()
    try:
        report(f"  {PARTNERS} partner clients and a workspace user for {seconds:.0f} s …")
        load = run(stack, seconds=seconds)
        stack.wait_idle()  # the recomputes the writes queued are done before their accounts are deleted
    finally:
        stack.close()
        cleanup()
    report(load.report())
    if load.problems or load.server_errors:
        raise BenchError(f"The load run lost or duplicated writes, or failed:\n{load.report()}")
    size = f"{accounts:,} accounts"
    return [
        Figure(
            f"load: {name}",
            size,
            e["p50_ms"] / 1000,
            None,
            0.0,
            None,
            note=f"{e['requests']:,} requests, p95 {e['p95_ms']:.0f} ms, p99 {e['p99_ms']:.0f} ms, "
            f"{e['failures']} errors",
        )
        for name, e in [*load.result["endpoints"].items(), ("all requests", load.result["total"])]
    ]
