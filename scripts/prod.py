"""The production stack on this machine: gunicorn, a Celery worker and Celery beat, with production settings.

    python3 dev.py prod [--port 8000] [--workers 2] [--threads 4] [--concurrency 2]
    make prod ARGS="--port 8000"

Needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis) in the environment. Runs `migrate`,
`collectstatic` and `check --deploy`, then starts the three processes with DEBUG=0, bound to 127.0.0.1, and
supervises them: Ctrl-C or SIGTERM stops all three (each with its own children); if one of them dies, the
others are stopped too and the exit code is 1. SECRET_KEY comes from the environment, or from the file
`.secret_key` in the project (made on the first start, readable only by its owner). Served over plain HTTP,
so CSM_HTTPS defaults to 0 here and `check --deploy` fails only on errors, printing its HTTPS warnings;
with CSM_HTTPS=1 (behind a proxy that terminates TLS) it fails on warnings too.

Standard library only: it supervises processes and imports nothing of the project.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET_FILE = ROOT / ".secret_key"
STOP_TIMEOUT = 30  # seconds each process has to finish its requests and tasks before it is killed
READY_TIMEOUT = 180
# What each process prints once it serves (gunicorn is also asked over TCP).
READY_LINES = {"worker": " ready.", "beat": "beat: Starting..."}
_TRUE = {"1", "true", "yes", "on"}


class Stop(Exception):
    """A stop signal arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def fail(message: str) -> None:
    print(f"prod: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def secret_key(path: Path) -> str:
    """SECRET_KEY from the environment, else from `path`, made (64 random characters, mode 0600) if missing."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        say(f"Made a new SECRET_KEY in {path} (keep it: sessions and password resets depend on it)")
    key = path.read_text().strip()
    if len(key) < 50:
        fail(f"The SECRET_KEY in {path} is shorter than 50 characters; delete the file to make a new one.")
    return key


def production_env(secret_file: Path) -> dict[str, str]:
    """The environment of every process: the caller's, checked, with the production settings forced."""
    env = dict(os.environ)
    database = env.get("DATABASE_URL", "")
    if not database.startswith(("postgres://", "postgresql://")):
        fail(
            "DATABASE_URL must name a PostgreSQL database, e.g. postgres://user:pass@127.0.0.1:5432/csm"
            + (f" (it is {database.split('://')[0]}://…)" if database else " (it is not set)")
        )
    broker = env.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "rediss://")):
        fail(
            "CELERY_BROKER_URL must name a Redis database, e.g. redis://127.0.0.1:6379/0"
            + (f" (it is {broker.split('://')[0]}://…)" if broker else " (it is not set)")
        )
    env["SECRET_KEY"] = secret_key(secret_file)
    env["DEBUG"] = "0"
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.setdefault("CSM_HTTPS", "0")  # served over plain HTTP on 127.0.0.1; 1 behind a TLS proxy
    # Several web processes and the worker: one shared count per partner (API throttle) and per address
    # (sign-in throttle), kept in the broker's Redis unless CACHE_URL says otherwise.
    env.setdefault("CACHE_URL", broker)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env)
    if result.returncode:
        fail(f"manage.py {' '.join(args)} failed (exit code {result.returncode}); nothing was started.")


def prepare(env: dict[str, str]) -> None:
    say("Migrating the database")
    manage(env, "migrate", "--no-input", "-v", "1")
    say("Collecting static files (hashed names, compressed; served by whitenoise)")
    manage(env, "collectstatic", "--no-input", "-v", "0")
    if env["CSM_HTTPS"].strip().lower() in _TRUE:
        say("Checking the deployment settings (check --deploy, any warning fails)")
        manage(env, "check", "--deploy", "--fail-level", "WARNING")
    else:
        say("Checking the deployment settings (check --deploy; errors fail)")
        say("  Served over plain HTTP (CSM_HTTPS=0), so its warnings about HTTPS, HSTS and secure cookies below are")
        say("  expected here; behind a proxy that terminates TLS, set CSM_HTTPS=1 and they must all be gone.")
        manage(env, "check", "--deploy", "--fail-level", "ERROR")


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGTERM if this supervisor dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Process:
    """One supervised process, in a process group of its own; its output goes to ours, each line prefixed."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], output_lock: threading.Lock) -> None:
        self.name = name
        self.ready = threading.Event()
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the terminal's Ctrl-C reaches the supervisor alone, which stops each in turn
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._lock = output_lock
        self._reader = threading.Thread(target=self._copy_output, daemon=True)
        self._reader.start()

    def _copy_output(self) -> None:
        marker = READY_LINES.get(self.name)
        for raw in self.popen.stdout:
            line = raw.decode(errors="replace").rstrip()
            if marker and marker in line:
                self.ready.set()
            with self._lock:
                print(f"{self.name:>6} | {line}", flush=True)

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def kill_group(self) -> None:
        """Kill whatever is left in the process's group (a pool child or a web worker that outlived it)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def finish_output(self) -> None:
        self._reader.join(timeout=5)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop_all(processes: list[Process]) -> None:
    """SIGTERM to each (gunicorn finishes its requests, the worker its tasks), SIGKILL after STOP_TIMEOUT."""
    for signum in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C does not interrupt the stopping
        signal.signal(signum, signal.SIG_IGN)
    say("Stopping gunicorn, the worker and beat")
    for process in processes:
        if process.popen.poll() is None:
            process.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        try:
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{process.name} did not stop within {STOP_TIMEOUT} s; killing it")
        process.kill_group()
        process.popen.wait()
        process.finish_output()
    say("Stopped")


def supervise(args: argparse.Namespace, env: dict[str, str]) -> int:
    python = sys.executable
    commands = {
        "web": [python, "-m", "gunicorn", "csm.wsgi:application", "--bind", f"127.0.0.1:{args.port}"]
        + ["--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads)]
        + ["--access-logfile", "-", "--graceful-timeout", str(STOP_TIMEOUT - 5), "--timeout", "120"],
        "worker": [python, "-m", "celery", "-A", "csm", "worker", "--loglevel", "INFO"]
        + ["--concurrency", str(args.concurrency), "--hostname", f"csm-{os.getpid()}@%h"]
        + ["--without-gossip", "--without-mingle"],
        "beat": [python, "-m", "celery", "-A", "csm", "beat", "--loglevel", "INFO"],
    }
    lock = threading.Lock()
    processes: list[Process] = []
    try:
        for name, command in commands.items():
            processes.append(Process(name, command, env, lock))
        deadline = time.monotonic() + READY_TIMEOUT
        announced = False
        while True:
            for process in processes:
                if process.popen.poll() is not None:
                    say(f"{process.name} exited (code {process.popen.returncode}); stopping the others")
                    stop_all(processes)
                    return 1
            if not announced:
                web_up = port_open(args.port)
                if web_up and all(p.ready.is_set() for p in processes if p.name in READY_LINES):
                    announce(args, env)
                    announced = True
                elif time.monotonic() > deadline:
                    waiting = [p.name for p in processes if p.name in READY_LINES and not p.ready.is_set()]
                    say(f"Not ready after {READY_TIMEOUT} s ({', '.join(waiting + ([] if web_up else ['web']))})")
                    stop_all(processes)
                    return 1
            time.sleep(0.2)
    except Stop as stop:
        say(f"{stop} received")
        stop_all(processes)
        return 0


def announce(args: argparse.Namespace, env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{args.port}/"
    python = Path(sys.executable)
    manage_py = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    say(
        f"Ready: serving on {url} (gunicorn, {args.workers} workers x {args.threads} threads), "
        f"a Celery worker ({args.concurrency} processes) and Celery beat"
    )
    say(f"Sign in at {url}login/. No user yet? In another shell, with the same DATABASE_URL:")
    say(f"    {manage_py} manage.py createsuperuser")
    say(f"Partner API keys: {manage_py} manage.py create_partner_key NAME --scope all   (API at {url}api/v1/)")
    say("Stop with Ctrl-C (or SIGTERM): gunicorn, the worker and beat all stop.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The production stack on 127.0.0.1: gunicorn, worker and beat.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="default 8000 ($PORT)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--secret-key-file", type=Path, default=SECRET_FILE, help="default .secret_key")
    args = parser.parse_args(argv)
    for name in ("port", "workers", "threads", "concurrency"):
        if getattr(args, name) < 1 or (name == "port" and args.port > 65535):
            fail(f"--{name} {getattr(args, name)} is out of range.")

    def on_signal(signum: int, _frame) -> None:
        raise Stop(signum)

    # A signal during the set-up stops the manage.py step under way (subprocess.run kills it) and exits.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        env = production_env(args.secret_key_file)
        if port_open(args.port):
            fail(f"Something already listens on 127.0.0.1:{args.port}; pick another --port.")
        prepare(env)
        return supervise(args, env)
    except Stop as stop:
        say(f"{stop} received before the stack started; nothing is left running")
        return 0


if __name__ == "__main__":
    sys.exit(main())
