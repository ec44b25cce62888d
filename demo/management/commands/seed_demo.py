"""`manage.py seed_demo`: fill the database with a realistic, deterministic demo data set."""

import datetime
import re
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.models import Account
from demo import generator as demo

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class _BarStream:
    """Lets tqdm draw on a command's stderr wrapper without the wrapper's added newline and colour."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, style_func=lambda message: message, ending="")

    def flush(self) -> None:
        self._wrapper.flush()


class Command(BaseCommand):
    help = (
        "Create a realistic, deterministic demo data set: CSM users and an admin login, accounts with "
        "contacts, two years of subscription history and churns, tiers, touches, 120 days of usage and success "
        "plans from the playbooks. "
        "The same --accounts, --seed and --today always give the same data. Refuses to run on a database "
        "that already has accounts unless --flush or --if-empty is given; --flush asks before it deletes "
        "anything, unless --yes is given."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--accounts",
            type=int,
            default=200,
            help=f"How many accounts to create, 1 to {demo.MAX_ACCOUNTS:,} (default: 200). "
            f"About one CSM user is created per {demo.ACCOUNTS_PER_CSM} accounts, at least {demo.MIN_CSMS}.",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=42,
            help="Random seed (default: 42). The same seed, --accounts and --today give the same data.",
        )
        parser.add_argument(
            "--today",
            metavar="YYYY-MM-DD",
            help="The day the history ends on: subscriptions, touches and usage run up to it "
            "(default: today in the configured time zone; not later). Fix it for reproducible data.",
        )
        parser.add_argument(
            "--flush",
            action="store_true",
            help="First delete the existing accounts and everything attached to them (contacts, "
            "subscriptions, touches, usage, plans, health snapshots, alerts, revenue months) and the demo "
            "CSM users. Configuration (tiers, health models, alert rules, plan templates, partners) stays.",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="With --flush: delete without asking. Without a terminal to ask at, --flush needs it.",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing (and succeed) when the database already has accounts; for start-up scripts.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        accounts, seed = options["accounts"], options["seed"]
        if not isinstance(accounts, int) or not 1 <= accounts <= demo.MAX_ACCOUNTS:
            raise CommandError(f"--accounts must be a whole number from 1 to {demo.MAX_ACCOUNTS:,}; got {accounts}.")
        if options["flush"] and options["if_empty"]:
            raise CommandError("--flush and --if-empty contradict each other; give one of them.")
        today = self._parse_today(options["today"])
        if options["flush"] and not options["yes"]:
            self._confirm_flush(Account.objects.count())

        started = time.monotonic()
        interactive = self.stderr.isatty()
        with (
            tqdm(
                total=demo.seed_step_count(accounts),
                file=_BarStream(self.stderr),
                disable=not interactive,
                unit="step",
                dynamic_ncols=True,
                leave=False,
            ) as bar,
            transaction.atomic(),
        ):

            def say(message: str) -> None:
                # Lift the bar off the terminal line so the message does not land inside it.
                bar.clear()
                self.stdout.write(message)
                bar.refresh()

            existing = Account.objects.count()
            if existing and not options["flush"]:
                if options["if_empty"]:
                    say(f"Skipped: the database is not empty ({existing:,} accounts).")
                    return
                raise CommandError(
                    f"The database is not empty ({existing:,} accounts); nothing was changed. Use --flush to "
                    "replace them with demo data (this deletes all accounts and their data), or --if-empty "
                    "to skip seeding when data exists."
                )
            if options["flush"]:
                deleted = demo.demo_flush()
                summary = ", ".join(f"{label.lower()} {count:,}" for label, count in deleted.items() if count)
                say(f"Flushed: {summary or 'nothing to delete'}.")

            def on_progress(step: demo.Progress) -> None:
                bar.set_description(step.stage)
                bar.update(1)
                # Without a bar (logs, CI), a line per finished chunk still shows that work goes on.
                last_stage = demo.CHUNK_STAGES[-1]
                if not interactive and step.stage == last_stage and step.accounts_done < step.accounts_total:
                    say(f"  {step.accounts_done:,} of {step.accounts_total:,} accounts written")

            try:
                result = demo.demo_seed(accounts=accounts, seed=seed, today=today, on_progress=on_progress)
            except demo.DemoDataError as error:
                raise CommandError(str(error)) from error

        for stage in demo.STAGES:
            if stage == "MRR":
                continue
            self.stdout.write(f"{stage}: {result.counts.get(stage, 0):,}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready in {time.monotonic() - started:.1f} s (seed {seed}, history up to {today})."
            )
        )
        self.stdout.write(
            f"Health, tiers, revenue and alerts: run `manage.py recompute_metrics --date {today}` "
            "(`python3 dev.py run` does)."
        )
        self.stdout.write("Open http://127.0.0.1:8000/")
        if result.admin_login:
            self.stdout.write(f"Demo login: {demo.ADMIN_USERNAME} / {demo.ADMIN_PASSWORD}")
        else:
            self.stdout.write(
                f"Demo login: the existing {demo.ADMIN_USERNAME!r} user was left as it is (its own password); "
                "use a CSM login or `manage.py changepassword admin`."
            )
        self.stdout.write(f"CSM login: {result.csm_username} / {demo.CSM_PASSWORD}")

    def _confirm_flush(self, existing: int) -> None:
        """Ask at the terminal before --flush deletes accounts; with no terminal, refuse (--yes confirms)."""
        if not existing:
            return
        what = f"--flush deletes all {existing:,} accounts and everything attached to them"
        if not sys.stdin.isatty():
            raise CommandError(f"{what}; nothing was changed. Add --yes to confirm it without a terminal.")
        self.stdout.write(f"{what} (and the demo CSM users). Type yes to go on: ", ending="")
        self.stdout.flush()
        if sys.stdin.readline().strip().lower() != "yes":
            raise CommandError("Nothing was changed.")

    @staticmethod
    def _parse_today(value: str | None) -> datetime.date:
        if value is None:
            return timezone.localdate()
        message = f"--today must be a date like 2026-11-15 (YYYY-MM-DD); got {value!r}."
        # fromisoformat alone also takes forms like 20261115 or 2026-W46-7; ask for one spelling.
        if not isinstance(value, str) or not ISO_DAY.fullmatch(value):
            raise CommandError(message)
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise CommandError(message) from None
