"""Commands that delete data ask first, unless given --yes; with no terminal to ask at, they refuse.

Every management command of the project is listed below as deleting data or not, so a command added
later fails the first test until it is placed.
"""

import datetime
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import Account
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.date(2026, 11, 2)
# The commands that delete data, and the option that makes them do it.
DELETING = {"seed_demo": "--flush", "bench": "(loading over existing accounts)"}
# The others, and why they delete nothing that a person entered.
NOT_DELETING = {
    "create_partner_key": "adds a partner and a key",
    "recompute_health": "replaces health snapshots, derived from the raw data, day by day",
    "recompute_revenue": "replaces the revenue months, derived from the subscriptions",
    "recompute_metrics": "runs the recomputes above for a day",
}


def project_commands() -> set[str]:
    found = set()
    for path in ROOT.glob("*/management/commands/*.py"):
        if path.name != "__init__.py" and ".venv" not in path.parts:
            found.add(path.stem)
    return found


def test_every_command_is_placed():
    assert project_commands() == set(DELETING) | set(NOT_DELETING)


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--accounts", "2", "--today", TODAY.isoformat(), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_flush_without_a_terminal_refuses_unless_yes():
    account = factories.AccountFactory(name="Someone's real customer")
    assert not sys.stdin.isatty()  # pytest's stdin: no one to ask
    with pytest.raises(CommandError, match=r"--flush deletes all 1 accounts.*nothing was changed.*--yes"):
        seed("--flush")
    assert Account.objects.filter(pk=account.pk).exists()
    seed("--flush", "--yes")
    assert not Account.objects.filter(pk=account.pk).exists()
    assert Account.objects.count() == 2


@pytest.mark.django_db
def test_flush_of_an_empty_database_needs_no_confirmation():
    assert "Flushed: nothing to delete." in seed("--flush")
    assert Account.objects.count() == 2


@pytest.mark.django_db
def test_the_benchmark_replaces_accounts_only_with_yes():
    account = factories.AccountFactory()
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="needs PostgreSQL"):
            call_command("bench", "--accounts", "1", stdout=StringIO())
    else:
        with pytest.raises(CommandError, match="This database has accounts; --yes replaces them"):
            call_command("bench", "--accounts", "1", "--load-only", stdout=StringIO())
    assert Account.objects.filter(pk=account.pk).exists()


# --- at a terminal: a real pseudo-terminal, in a process of its own, on a database of its own -------


def manage(database: str, *args: str, answer: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(DATABASE_URL=f"sqlite:///{database}", DJANGO_SETTINGS_MODULE="csm.settings")
    command = [sys.executable, "manage.py", *args]
    if answer is None:
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    main, terminal = os.openpty()
    try:
        os.write(main, answer.encode())
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, stdin=terminal)
    finally:
        os.close(main)
        os.close(terminal)


def accounts_in(database: str) -> int:
    result = manage(database, "shell", "-c", "from accounts.models import Account; print(Account.objects.count())")
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory):
    database = str(tmp_path_factory.mktemp("confirm") / "db.sqlite3")
    assert manage(database, "migrate", "-v", "0").returncode == 0
    assert manage(database, "seed_demo", "--accounts", "3", "--today", TODAY.isoformat()).returncode == 0
    return database


def test_at_a_terminal_flush_asks_and_anything_but_yes_changes_nothing(seeded_file):
    flush = ("seed_demo", "--accounts", "2", "--today", TODAY.isoformat(), "--flush")
    for answer in ("no\n", "\n", "y\n"):
        result = manage(seeded_file, *flush, answer=answer)
        assert result.returncode == 1
        assert "--flush deletes all 3 accounts and everything attached to them" in result.stdout
        assert "Nothing was changed." in result.stderr
        assert accounts_in(seeded_file) == 3
    refused = manage(seeded_file, *flush)  # no terminal
    assert refused.returncode == 1
    assert "Add --yes to confirm it without a terminal." in refused.stderr
    assert accounts_in(seeded_file) == 3
    result = manage(seeded_file, *flush, answer="yes\n")
    assert result.returncode == 0, result.stderr
    assert "Flushed:" in result.stdout
    assert accounts_in(seeded_file) == 2
