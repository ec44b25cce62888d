"""The README's backup and restore procedure (pg_dump in custom format, pg_restore into a fresh database),
run end to end on a seeded database: every table of the project's apps comes back with its rows, and the
revenue months byte for byte."""

import os
import subprocess
from io import StringIO

import psycopg
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from metrics.tasks import nightly

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_dump and pg_restore back up PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]

APPS = ("accounts", "metrics", "success_plans", "api")
TODAY = "2026-03-15"


def url(name: str) -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def tables() -> list[str]:
    return sorted(
        model._meta.db_table
        for label in APPS
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
        if model._meta.managed
    )


def figures(conninfo: str) -> tuple[dict[str, int], str]:
    """Rows per table of the project's apps, and an md5 of the revenue months in primary-key order."""
    with psycopg.connect(conninfo, password=connection.settings_dict["PASSWORD"] or None) as db:
        counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables()}
        checksum = db.execute(
            "SELECT md5(coalesce(string_agg(m::text, E'\\n' ORDER BY m.id), '')) FROM metrics_revenuemonth m"
        ).fetchone()[0]
    return counts, checksum


def run(*command: str, env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command[0]} failed: {done.stderr}"


def test_pg_dump_and_pg_restore_bring_back_every_row(tmp_path):
    call_command("seed_demo", "--accounts", "40", "--seed", "7", "--today", TODAY, stdout=StringIO())
    nightly.delay(on=TODAY)  # revenue months, snapshots and alerts
    source = url(connection.settings_dict["NAME"])
    before = figures(source)
    assert before[0]["metrics_revenuemonth"] > 0 and before[0]["accounts_account"] == 40

    env = {**os.environ, "PGPASSWORD": connection.settings_dict["PASSWORD"] or ""}
    dump = tmp_path / "csm.dump"
    restored = f"{connection.settings_dict['NAME']}_restored"
    admin = url("postgres")
    # The commands of README.md, "Backup and restore".
    run("pg_dump", "--format=custom", "--no-owner", f"--file={dump}", source, env=env)
    run("dropdb", "--if-exists", f"--maintenance-db={admin}", restored, env=env)
    run("createdb", f"--maintenance-db={admin}", "--template=template0", restored, env=env)
    try:
        run(
            "pg_restore", "--no-owner", "--exit-on-error", "--single-transaction", f"--dbname={url(restored)}",
            str(dump), env=env,
        )  # fmt: skip
        after = figures(url(restored))
    finally:
        run("dropdb", f"--maintenance-db={admin}", restored, env=env)

    assert after == before
    print(f"\n{len(after[0])} tables, {sum(after[0].values())} rows and the revenue months' md5 {after[1]} restored")
    assert len(after[0]) == len(tables()) >= 30  # every table of the apps was compared
