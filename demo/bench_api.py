"""The partner API's throughput, end to end: real HTTP against gunicorn serving the bench database.

Each figure starts its own server (two sync-thread workers, keep-alive) with a partner key of an all-scope
partner, and drives it from client threads sending pre-built JSON bodies, as a partner's sync job would:

- usage ingest: one new day of the three bench metrics for every account, 10,000 rows per
  `POST usage/bulk/` (then the same rows again, which replaces them); floor: COPY of the same rows
  into the usage table, rolled back;
- account upsert: as many new accounts as the bench has, 1,000 per `POST accounts/bulk/` (the API's
  limit), then the same accounts changed; floor: COPY of the same rows into the accounts table, rolled back;
- incremental sync: every account through `GET accounts/?updated_since=…&limit=1000`, following `next`;
  floor: one SELECT of the same rows and columns in sync order.

Every POST carries an Idempotency-Key, as a retrying client's would. Recomputes the writes queue go to an
in-process broker and are not run: the figures are the API's own work. Peak memory is the larger of the
two workers' peak RSS. Afterwards the database is as it was: the new day, the new accounts, the partner,
its key and its idempotency records are deleted.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Account, Partner, Tier
from accounts.services import partner_key_create
from api.models import IdempotencyKey
from metrics.models import UsageRecord

from .bench import METRICS, Figure, measure, sql_fetch_all

USAGE_PER_REQUEST = 10_000
ACCOUNTS_PER_REQUEST = 1_000
PAGE = 1_000
WORKERS = 2
CLIENT_THREADS = 2
PARTNER_NAME = "Bench API partner"
NEW_ACCOUNT_PREFIX = "api-bench-"
ACCOUNT_COLUMNS = ("external_id", "name", "domain", "industry", "region", "country", "employees")
ACCOUNT_DATES = ("customer_since", "renewal_date")

SYNC_FLOOR = """
SELECT a.id, a.external_id, a.created_at, a.updated_at, a.deleted_at, a.name, a.domain, a.industry, a.region,
       a.country, a.employees, u.username, p.name, t.slug, a.tier_locked, a.lifecycle_stage, a.pricing_model,
       a.customer_since, a.renewal_date, a.churned_at, a.churn_reason, a.mrr, a.health_score, a.health_band,
       a.last_touch_at
FROM accounts_account a
LEFT JOIN auth_user u ON u.id = a.owner_id
LEFT JOIN accounts_partner p ON p.id = a.partner_id
LEFT JOIN accounts_tier t ON t.id = a.tier_id
WHERE a.deleted_at IS NULL AND a.updated_at >= %s
ORDER BY a.updated_at, a.id
"""


# --- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _database_url() -> str:
    """The URL of the database this process uses (under tests, the test database), for the server."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


class Server:
    """gunicorn serving the bench database on a free local port."""

    def __init__(self, key: str) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            # Recomputes are queued, as in production, but to a broker inside the process: none runs.
            "CELERY_BROKER_URL": "memory://",
            "CELERY_RESULT_BACKEND": "",
            "LOG_LEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore::UserWarning",  # whitenoise's note that static files are not collected
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "csm.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(WORKERS),
                "--worker-class",
                "gthread",
                "--threads",
                "1",
                "--keep-alive",
                "60",
                "--timeout",
                "300",
                "--log-level",
                "warning",
            ],
            cwd=settings.BASE_DIR,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                request("GET", self.port, "/api/v1/accounts/?limit=1", key=key)
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)

    def warm_up(self, key: str) -> None:
        """Requests that write nothing, from as many connections as workers, so each worker has loaded
        what a first request loads (translations, serializers, the URL map) before the clock starts."""
        paths = [("GET", "/api/v1/accounts/?limit=100", None)]
        paths += [("POST", f"/api/v1/{name}/bulk/", b"[]") for name in ("usage", "accounts")]

        def warm() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            for _ in range(3):
                for method, path, body in paths:
                    request(method, self.port, path, key=key, body=body, conn=conn)
            conn.close()

        in_threads(warm, WORKERS)

    def peak_mb(self) -> float:
        return max((_peak_mb(pid) for pid in _children(self.process.pid)), default=0.0)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def in_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def request(method: str, port: int, path: str, *, key: str | None, body: bytes | None = None, conn=None):
    """One request; returns (status, parsed JSON body). Reuses `conn` (keep-alive) when given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = uuid.uuid4().hex
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    if own:
        conn.close()
    return response.status, json.loads(raw) if raw else None


def post_all(port: int, key: str, path: str, bodies: list[bytes]) -> Callable[[], int]:
    """Send every body from CLIENT_THREADS threads, each on its own keep-alive connection."""

    def run() -> int:
        lock, position, failures = threading.Lock(), [0], []

        def worker() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            while True:
                with lock:
                    if position[0] >= len(bodies) or failures:
                        break
                    body = bodies[position[0]]
                    position[0] += 1
                status, answer = request("POST", port, path, key=key, body=body, conn=conn)
                if status != 200:
                    failures.append((status, str(answer)[:500]))
            conn.close()

        in_threads(worker, CLIENT_THREADS)
        if failures:
            raise RuntimeError(f"POST {path} failed: {failures[0]}")
        return len(bodies)

    return run


def sync_all(port: int, key: str, since: datetime.datetime, expected: int) -> Callable[[], int]:
    """Page through every account changed since `since`, following `next` on one keep-alive connection."""

    def run() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        path: str | None = f"/api/v1/accounts/?updated_since={since.isoformat().replace('+00:00', 'Z')}&limit={PAGE}"
        seen = 0
        while path:
            status, page = request("GET", port, path, key=key, conn=conn)
            if status != 200:
                raise RuntimeError(f"GET {path} failed: {status} {str(page)[:500]}")
            seen += len(page["results"])
            path = None
            if page["next"]:
                parts = urlsplit(page["next"])
                path = f"{parts.path}?{parts.query}"
        conn.close()
        if seen != expected:
            raise RuntimeError(f"The sync saw {seen} accounts, not {expected}.")
        return seen

    return run


# --- the data -----------------------------------------------------------------------------------


def _chunks(items: list, size: int) -> Iterator[list]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


def _bodies(items: list[dict], size: int) -> list[bytes]:
    return [json.dumps(chunk, separators=(",", ":")).encode() for chunk in _chunks(items, size)]


def usage_items(day: datetime.date) -> list[dict]:
    """A day of the bench metrics for every account, values derived from the account's number."""
    accounts = Account.objects.filter(external_id__startswith="bench-").order_by("pk")
    items = []
    for pk, external_id in accounts.values_list("pk", "external_id"):
        seats = 5 + pk % 495
        active = seats * (20 + pk % 80) // 100
        values = {"active_users": active, "logins": active * (1 + pk % 3), "seats_licensed": seats}
        items += [{"account": external_id, "metric": m, "date": day.isoformat(), "value": values[m]} for m in METRICS]
    return items


def account_items(count: int, today: datetime.date, *, version: int) -> list[dict]:
    """`count` accounts a partner sends; `version` 2 changes each one's name, size and renewal."""
    owners = list(Account.objects.filter(owner__isnull=False).values_list("owner__username", flat=True).distinct()[:50])
    tiers = list(Tier.objects.order_by("rank").values_list("slug", flat=True))
    items = []
    for n in range(1, count + 1):
        items.append(
            {
                "external_id": f"{NEW_ACCOUNT_PREFIX}{n:07d}",
                "name": f"API bench {n:07d}" + (" (renamed)" if version == 2 else ""),
                "domain": f"api-bench-{n}.example.com",
                "industry": ("Software", "Retail", "Finance")[n % 3],
                "region": ("EMEA", "AMER", "APAC")[n % 3],
                "country": "US",
                "employees": 10 + n % 5000 + (version - 1),
                "owner": owners[n % len(owners)] if owners else None,
                "tier": tiers[n % len(tiers)] if tiers else None,
                "customer_since": (today - datetime.timedelta(days=30 + n % 700)).isoformat(),
                "renewal_date": (today + datetime.timedelta(days=1 + (n + version) % 364)).isoformat(),
            }
        )
    return items


def copy_rolled_back(table: str, columns: tuple[str, ...], rows: list[tuple]) -> Callable[[], int]:
    """A floor: COPY the rows into the table, then roll back."""

    def run() -> int:
        quote = connection.ops.quote_name
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            transaction.set_rollback(True)
        return len(rows)

    return run


# --- the figures --------------------------------------------------------------------------------


@contextmanager
def bench_partner() -> Iterator[str]:
    """An all-scope partner with no practical rate limit, and its key; deleted with its records after."""
    Partner.objects.filter(name=PARTNER_NAME).delete()
    partner = Partner.objects.create(name=PARTNER_NAME, scope=Partner.Scope.ALL, rate_limit=1_000_000)
    _key, raw = partner_key_create(partner=partner, name="bench")
    try:
        yield raw
    finally:
        IdempotencyKey.objects.filter(client=f"partner:{partner.pk}").delete()
        partner.delete()


def timed_against_server(key: str, work: Callable[[int], Callable[[], int]]) -> tuple[float, float]:
    """Start a server, run `work(port)` in a measured child; returns (seconds, the workers' peak MB)."""
    server = Server(key)
    try:
        server.warm_up(key)
        seconds, _client_peak = measure(work(server.port))
        return seconds, server.peak_mb()
    finally:
        server.stop()


def _rate(rows: int, seconds: float, floor: float) -> str:
    return f"{rows / seconds:,.0f} rows/s (floor {rows / floor:,.0f} rows/s)"


def run_figures(*, today: datetime.date, accounts: int, report: Callable[[str], None]) -> list[Figure]:
    figures: list[Figure] = []
    now = datetime.datetime.now(tz=datetime.UTC)
    new_day = today + datetime.timedelta(days=1)
    UsageRecord.objects.filter(date__gt=today).delete()
    Account.objects.filter(external_id__startswith=NEW_ACCOUNT_PREFIX).delete()
    with bench_partner() as key:
        try:
            # -- incremental sync
            since = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
            expected = Account.objects.filter(deleted_at__isnull=True).count()
            report("  measuring account sync …")
            floor_seconds, floor_peak = measure(sql_fetch_all(SYNC_FLOOR, [since]))
            seconds, peak = timed_against_server(key, lambda port: sync_all(port, key, since, expected))
            figures.append(
                Figure(
                    f"account sync ({PAGE}/page)",
                    f"{expected:,} accounts",
                    seconds,
                    floor_seconds,
                    peak,
                    floor_peak,
                    note=_rate(expected, seconds, floor_seconds),
                    floor_sql=SYNC_FLOOR.strip(),
                )
            )

            # -- usage ingest: a new day, then the same day again
            items = usage_items(new_day)
            bodies = _bodies(items, USAGE_PER_REQUEST)
            ids = dict(Account.objects.values_list("external_id", "pk"))
            rows = [(ids[i["account"]], i["metric"], new_day, i["value"], now, now) for i in items]
            columns = ("account_id", "metric", "date", "value", "created_at", "updated_at")
            report("  measuring usage ingest …")
            floor_seconds, floor_peak = measure(copy_rolled_back(UsageRecord._meta.db_table, columns, rows))
            for label in ("new day", "day again"):
                seconds, peak = timed_against_server(
                    key, lambda port: post_all(port, key, "/api/v1/usage/bulk/", bodies)
                )
                figures.append(
                    Figure(
                        f"usage ingest ({label})",
                        f"{len(items):,} rows",
                        seconds,
                        floor_seconds,
                        peak,
                        floor_peak,
                        note=_rate(len(items), seconds, floor_seconds),
                        floor_sql=f"COPY {UsageRecord._meta.db_table} ({', '.join(columns)}) FROM STDIN "
                        f"(the same {len(items):,} rows, rolled back)",
                    )
                )

            # -- account upsert: new accounts, then the same accounts changed
            report("  measuring account upsert …")
            account_floor = None
            for version, label in ((1, "create"), (2, "update")):
                items = account_items(accounts, today, version=version)
                bodies = _bodies(items, ACCOUNTS_PER_REQUEST)
                if account_floor is None:
                    copy_columns = (*ACCOUNT_COLUMNS, *ACCOUNT_DATES, "tier_locked", "lifecycle_stage", "pricing_model")
                    copy_columns += ("churn_reason", "mrr", "health_band", "created_at", "updated_at")
                    rows = [
                        (
                            *(i[c] for c in ACCOUNT_COLUMNS + ACCOUNT_DATES),
                            False,
                            "onboarding",
                            "subscription",
                            "",
                            0,
                            "",
                            now,
                            now,
                        )
                        for i in items
                    ]
                    account_floor = measure(copy_rolled_back(Account._meta.db_table, copy_columns, rows))
                seconds, peak = timed_against_server(
                    key,
                    lambda port: post_all(port, key, "/api/v1/accounts/bulk/", bodies),  # noqa: B023
                )
                figures.append(
                    Figure(
                        f"account upsert ({label})",
                        f"{len(items):,} accounts",
                        seconds,
                        account_floor[0],
                        peak,
                        account_floor[1],
                        note=_rate(len(items), seconds, account_floor[0]),
                        floor_sql=f"COPY {Account._meta.db_table} (…) FROM STDIN "
                        f"(the same {len(items):,} accounts, rolled back)",
                    )
                )
        finally:
            UsageRecord.objects.filter(date__gt=today).delete()
            Account.objects.filter(external_id__startswith=NEW_ACCOUNT_PREFIX).delete()
    return figures
