"""The load test's clients (locust, as a library): partner systems syncing through the API and a workspace user
loading pages, against a running server, for a fixed time. Writes what it measured and every write the server
acknowledged to a JSON file, for the caller to check against the database.

    python scripts/load_clients.py CONFIG.json RESULT.json

CONFIG: {"host", "seconds", "partners": [{"key", "prefix"}, ...], "workspace": {"username", "password",
"account_ids"}, "today"}. One locust user per partner (each writes only external ids under its own prefix, one
request at a time, so its last acknowledged write of an id is the one that must be stored) and one workspace
user. It imports locust, which patches the standard library for gevent: run it in a process of its own.
"""

from __future__ import annotations

import datetime
import itertools
import json
import random
import re
import sys
import uuid
from collections import Counter, defaultdict

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment

CONFIG: dict = {}
ACKED: dict = {"accounts": {}, "contacts": {}, "usage": {}}
STATUSES: dict[str, Counter] = defaultdict(Counter)
PROBLEMS: list[str] = []
COUNTS: Counter = Counter()
METRICS = ("active_users", "logins")
ACCOUNTS_PER_BULK = 25
CONTACTS_PER_BULK = 25
USAGE_DAYS = 14
SYNC_PAGE = 50
SYNC_MAX_PAGES = 20


def _record(name: str, status: int) -> None:
    STATUSES[name][str(status)] += 1


class PartnerClient(FastHttpUser):
    """A partner's sync job: upserts accounts and contacts (one by one and in bulk), sends usage, reads changes."""

    fixed_count = 0  # set from the configuration: one per partner
    wait_time = between(0.0, 0.05)
    _next = itertools.count()

    def on_start(self) -> None:
        partner = CONFIG["partners"][next(PartnerClient._next) % len(CONFIG["partners"])]
        self.prefix = partner["prefix"]
        self.headers = {"Authorization": f"Bearer {partner['key']}", "Accept": "application/json"}
        self.rng = random.Random(self.prefix)
        self.accounts: list[str] = []  # acknowledged account external ids of this partner
        self.contacts: list[str] = []
        self.serial = itertools.count(1)
        self.started = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(minutes=1)
        self.today = datetime.date.fromisoformat(CONFIG["today"])

    # -- writes ---------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, name: str, body, *, key: str | None = None):
        headers = {**self.headers, "Content-Type": "application/json"}
        if method == "POST":
            headers["Idempotency-Key"] = key or uuid.uuid4().hex
        with self.client.request(
            method, path, name=name, data=json.dumps(body), headers=headers, catch_response=True
        ) as response:
            _record(name, response.status_code)
            if 200 <= response.status_code < 300:
                response.success()
                return response, response.json()
            response.failure(f"{response.status_code}: {(response.text or '')[:300]}")
            return response, None

    def _account_body(self, external_id: str) -> dict:
        version = next(self.serial)
        return {
            "external_id": external_id,
            "name": f"{external_id} v{version}",
            "employees": self.rng.randrange(1, 100_000),
            "industry": self.rng.choice(("Software", "Retail", "Finance")),
            "renewal_date": (self.today + datetime.timedelta(days=self.rng.randrange(1, 365))).isoformat(),
        }

    def _account_id(self) -> str:
        """Mostly an account written before (a re-write must end with its last value), sometimes a new one."""
        if self.accounts and self.rng.random() < 0.6:
            return self.rng.choice(self.accounts)
        return f"{self.prefix}acct-{next(self.serial):06d}"

    def _acked_account(self, body: dict) -> None:
        if body["external_id"] not in ACKED["accounts"]:
            self.accounts.append(body["external_id"])
        ACKED["accounts"][body["external_id"]] = {k: body[k] for k in ("name", "employees", "renewal_date")}

    @task(3)
    def put_account(self) -> None:
        body = self._account_body(self._account_id())
        _response, answer = self._send("PUT", f"/api/v1/accounts/{body['external_id']}/", "PUT accounts/{id}/", body)
        if answer is not None:
            self._acked_account(body)

    @task(2)
    def bulk_accounts(self) -> None:
        ids = list(dict.fromkeys(self._account_id() for _ in range(ACCOUNTS_PER_BULK)))
        items = [self._account_body(external_id) for external_id in ids]
        _response, answer = self._send("POST", "/api/v1/accounts/bulk/", "POST accounts/bulk/", items)
        if answer is not None:
            for item in items:
                self._acked_account(item)

    def _contact_body(self, external_id: str) -> dict:
        version = next(self.serial)
        return {
            "external_id": external_id,
            "account": self.rng.choice(self.accounts),
            "name": f"Contact {external_id} v{version}",
            "email": f"c{version}@{self.prefix.strip('-')}.example.com",
            "title": self.rng.choice(("CTO", "VP Ops", "Buyer", "Admin")),
        }

    def _contact_id(self) -> str:
        if self.contacts and self.rng.random() < 0.5:
            return self.rng.choice(self.contacts)
        return f"{self.prefix}contact-{next(self.serial):06d}"

    def _acked_contact(self, body: dict) -> None:
        if body["external_id"] not in ACKED["contacts"]:
            self.contacts.append(body["external_id"])
        ACKED["contacts"][body["external_id"]] = {k: body[k] for k in ("account", "name", "email", "title")}

    @task(2)
    def put_contact(self) -> None:
        if not self.accounts:
            return
        body = self._contact_body(self._contact_id())
        _response, answer = self._send("PUT", f"/api/v1/contacts/{body['external_id']}/", "PUT contacts/{id}/", body)
        if answer is not None:
            self._acked_contact(body)

    @task(1)
    def bulk_contacts(self) -> None:
        if not self.accounts:
            return
        ids = list(dict.fromkeys(self._contact_id() for _ in range(CONTACTS_PER_BULK)))
        items = [self._contact_body(external_id) for external_id in ids]
        _response, answer = self._send("POST", "/api/v1/contacts/bulk/", "POST contacts/bulk/", items)
        if answer is not None:
            for item in items:
                self._acked_contact(item)

    @task(3)
    def usage_bulk(self) -> None:
        """A few accounts' usage over recent days; days sent before get new values. Now and then the same request
        is sent again with the same Idempotency-Key, as after a timeout: it must be replayed, not written twice."""
        if not self.accounts:
            return
        accounts = self.rng.sample(self.accounts, min(5, len(self.accounts)))
        days = [self.today - datetime.timedelta(days=n) for n in range(USAGE_DAYS)]
        items = [
            {"account": a, "metric": m, "date": d.isoformat(), "value": self.rng.randrange(0, 5000)}
            for a in accounts
            for m in METRICS
            for d in self.rng.sample(days, 4)
        ]
        key = uuid.uuid4().hex
        response, answer = self._send("POST", "/api/v1/usage/bulk/", "POST usage/bulk/", items, key=key)
        if answer is None:
            return
        for item in items:
            ACKED["usage"][f"{item['account']}|{item['metric']}|{item['date']}"] = item["value"]
        if self.rng.random() < 0.2:
            again, replayed = self._send("POST", "/api/v1/usage/bulk/", "POST usage/bulk/ (retry)", items, key=key)
            COUNTS["replays"] += 1
            if replayed is not None and (again.headers.get("Idempotent-Replayed") != "true" or replayed != answer):
                PROBLEMS.append(f"a retried usage batch was not replayed: {again.headers}, {str(replayed)[:200]}")

    # -- reads ----------------------------------------------------------------------------------------

    @task(2)
    def sync(self) -> None:
        """Page through this partner's accounts changed since the run began, following the cursor."""
        since = self.started.isoformat().replace("+00:00", "Z")
        path = f"/api/v1/accounts/?updated_since={since}&include_deleted=true&limit={SYNC_PAGE}"
        for _page in range(SYNC_MAX_PAGES):
            with self.client.get(
                path, name="GET accounts/ (sync page)", headers=self.headers, catch_response=True
            ) as response:
                _record("GET accounts/ (sync page)", response.status_code)
                if response.status_code != 200:
                    response.failure(f"{response.status_code}: {(response.text or '')[:300]}")
                    return
                page = response.json()
                response.success()
            COUNTS["sync pages"] += 1
            foreign = [r["external_id"] for r in page["results"] if not r["external_id"].startswith(self.prefix)]
            if foreign:
                PROBLEMS.append(f"{self.prefix} synced accounts of another partner: {foreign[:5]}")
            if not page["next_cursor"]:
                return
            path = (
                f"/api/v1/accounts/?updated_since={since}&include_deleted=true&limit={SYNC_PAGE}"
                f"&cursor={page['next_cursor']}"
            )


class WorkspaceUser(FastHttpUser):
    """A CS leader in the workspace: My day, the accounts list, an account's 360 page, the portfolio."""

    fixed_count = 1
    wait_time = between(0.2, 0.5)

    def on_start(self) -> None:
        workspace = CONFIG["workspace"]
        self.account_ids = workspace["account_ids"]
        login = self.client.get("/login/", name="GET login/")
        _record("GET login/", login.status_code)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text or "")
        signed_in = self.client.post(
            "/login/",
            name="POST login/",
            data={
                "username": workspace["username"],
                "password": workspace["password"],
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
            headers={"Referer": f"{CONFIG['host']}/login/"},
        )
        _record("POST login/", signed_in.status_code)
        if "/login/" in signed_in.url:
            PROBLEMS.append("the workspace user could not sign in")

    def _page(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, catch_response=True) as response:
            _record(name, response.status_code)
            if response.status_code != 200 or "/login/" in (response.url or ""):
                response.failure(f"{response.status_code} at {response.url}")
            else:
                response.success()

    @task(3)
    def my_day(self) -> None:
        self._page("/", "GET / (My day)")

    @task(2)
    def accounts(self) -> None:
        self._page("/accounts/?sort=-arr", "GET accounts/")

    @task(3)
    def account(self) -> None:
        if self.account_ids:
            self._page(f"/account/{random.choice(self.account_ids)}/", "GET account/{id}/ (360)")  # noqa: S311

    @task(1)
    def portfolio(self) -> None:
        self._page("/portfolio/", "GET portfolio/")


def _entry(stats) -> dict:
    return {
        "requests": stats.num_requests,
        "failures": stats.num_failures,
        "p50_ms": stats.get_response_time_percentile(0.5),
        "p95_ms": stats.get_response_time_percentile(0.95),
        "p99_ms": stats.get_response_time_percentile(0.99),
        "max_ms": stats.max_response_time,
    }


def main() -> int:
    config_path, result_path = sys.argv[1:3]
    with open(config_path) as config_file:
        CONFIG.update(json.load(config_file))
    PartnerClient.fixed_count = len(CONFIG["partners"])
    # At the end each client finishes the request it is sending (stop_timeout): a request cut off mid-way could
    # be written without its acknowledgement being seen, and the check afterwards would not know its value.
    env = Environment(user_classes=[PartnerClient, WorkspaceUser], host=CONFIG["host"], events=events, stop_timeout=120)
    runner = env.create_local_runner()
    users = PartnerClient.fixed_count + WorkspaceUser.fixed_count
    started = datetime.datetime.now(tz=datetime.UTC)
    runner.start(users, spawn_rate=users)
    gevent.spawn_later(CONFIG["seconds"], runner.quit)
    runner.greenlet.join()
    seconds = (datetime.datetime.now(tz=datetime.UTC) - started).total_seconds()
    stats = env.stats
    result = {
        "seconds": seconds,
        "users": users,
        "total": {**_entry(stats.total), "rps": stats.total.num_requests / seconds},
        "endpoints": {f"{name}": _entry(entry) for (name, _method), entry in sorted(stats.entries.items())},
        "errors": [
            {"name": e.name, "error": str(e.error)[:300], "occurrences": e.occurrences} for e in stats.errors.values()
        ],
        "statuses": {name: dict(counts) for name, counts in STATUSES.items()},
        "counts": dict(COUNTS),
        "problems": PROBLEMS,
        "acked": ACKED,
    }
    with open(result_path, "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
