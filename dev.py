#!/usr/bin/env python3
"""Set up and run the project with nothing but Python 3.11 on the machine.

    python3 dev.py run     virtualenv + requirements, migrate, seed demo data if empty, recompute, serve on :8000
    python3 dev.py test    virtualenv + requirements, then the whole test suite (pytest arguments pass through)
    python3 dev.py lint    ruff check and ruff format --check
    python3 dev.py prod    the production stack on 127.0.0.1:8000: gunicorn, Celery worker and beat (scripts/prod.py)

The virtualenv lives in .venv and is reinstalled only when a requirements file changes.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".requirements.sha256"
REQUIREMENTS = [ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*args: str | Path, env: dict | None = None) -> None:
    result = subprocess.run([str(a) for a in args], cwd=ROOT, env=env)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        say(f"Creating the virtualenv in {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in REQUIREMENTS)).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    say("Installing requirements")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", ROOT / "requirements-dev.txt")
    STAMP.write_text(digest)


def manage(*args: str) -> None:
    run(PYTHON, ROOT / "manage.py", *args)


def command_run(args: list[str]) -> None:
    ensure_venv()
    say("Migrating the database")
    manage("migrate", "--no-input", "-v", "0")
    say("Seeding demo data (skipped when the database already has accounts)")
    manage("seed_demo", "--if-empty")
    say("Recomputing MRR, tiers, health and alerts")
    manage("recompute_metrics")
    addr = args[0] if args else "127.0.0.1:8000"
    say(f"Serving on http://{addr}/  (stop with Ctrl-C); demo login: admin / admin")
    manage("runserver", addr)


def command_test(args: list[str]) -> None:
    ensure_venv()
    run(PYTHON, "-m", "pytest", *args)


def command_lint(args: list[str]) -> None:
    ensure_venv()
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")


def command_prod(args: list[str]) -> None:
    """Hand over to scripts/prod.py in the virtualenv: signals (Ctrl-C, SIGTERM) reach it directly."""
    ensure_venv()
    script = ROOT / "scripts" / "prod.py"
    os.execv(PYTHON, [str(PYTHON), str(script), *args])


COMMANDS = {"run": command_run, "test": command_test, "lint": command_lint, "prod": command_prod}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
