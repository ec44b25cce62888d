"""`manage.py bench`: the scale benchmark on PostgreSQL (see demo/bench.py)."""

import datetime
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from accounts.models import Account
from demo import bench


class Command(BaseCommand):
    help = (
        "Load a deterministic data set of N accounts with PostgreSQL COPY (D days of usage for three metrics, "
        "two years of revenue lines, about ten touches and a success plan per account), then time the health "
        "recompute, the revenue months, the alert evaluation and the nightly chain, each against the bare SQL "
        "that reads the same data (its floor), with the peak memory of each. Replaces the database's "
        "accounts and everything hanging off them: run it on a database of its own."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--accounts", type=int, default=100_000, help="Accounts to generate (default 100,000).")
        parser.add_argument("--days", type=int, default=90, help="Days of usage per account (default 90).")
        parser.add_argument("--seed", type=int, default=1, help="Seed of the generators (default 1).")
        parser.add_argument("--today", help="The reference date, YYYY-MM-DD (default: today).")
        parser.add_argument(
            "--only",
            default=",".join(bench.GROUPS),
            help=f"Comma-separated groups of figures to measure (default: all of {', '.join(bench.GROUPS)}).",
        )
        parser.add_argument("--load-only", action="store_true", help="Load the data set and measure nothing.")
        parser.add_argument("--reuse", action="store_true", help="Measure the data already loaded; load nothing.")
        parser.add_argument(
            "--yes", action="store_true", help="Replace existing accounts without asking (they are deleted)."
        )

    def handle(
        self,
        *args,
        accounts: int,
        days: int,
        seed: int,
        today: str | None,
        reuse: bool,
        yes: bool,
        only: str,
        load_only: bool,
        **opts,
    ):
        if not 1 <= accounts <= 10_000_000:
            raise CommandError("--accounts must be from 1 to 10,000,000.")
        if not 60 <= days <= 3650:
            raise CommandError("--days must be from 60 (the usage trend reads 60 days) to 3,650.")
        try:
            day = datetime.date.fromisoformat(today) if today else timezone.localdate()
        except ValueError:
            raise CommandError(f"--today {today!r} is not a date (YYYY-MM-DD).") from None
        groups = [name.strip() for name in only.split(",") if name.strip()]
        unknown = [name for name in groups if name not in bench.GROUPS]
        if unknown or not groups:
            raise CommandError(
                f"--only takes groups among {', '.join(bench.GROUPS)}; not {', '.join(unknown) or only!r}."
            )
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark needs PostgreSQL: set DATABASE_URL to a database of its own.")
        say = self.stdout.write
        if not reuse:
            if Account.objects.exists() and not yes:
                raise CommandError("This database has accounts; --yes replaces them (everything of theirs is deleted).")
            say(f"Loading {accounts:,} accounts with {days} days of usage (COPY) …")
            started = time.perf_counter()
            bench.bench_load(accounts=accounts, days=days, seed=seed, today=day, report=say)
            say(f"Loaded in {time.perf_counter() - started:.1f} s.")
            if load_only:
                return
        counts = bench.bench_counts()
        say("Data: " + ", ".join(f"{name} {value:,}" for name, value in counts.items()))
        say("Measuring (each step and its floor in a process of its own) …")
        figures = [
            figure
            for group in groups
            for figure in bench.run_group(group, today=day, accounts=counts["accounts"], report=say)
        ]
        say("")
        header = f"{'figure':<26} {'data':>18} {'time s':>9} {'floor s':>9} {'ratio':>7} {'peak MB':>9} {'floor MB':>9}"
        say(f"{header}  note")
        for f in figures:
            ratio = f"{f.ratio:.1f}x" if f.ratio else "-"
            floor_mb = f"{f.floor_peak_mb:.0f}" if f.floor_peak_mb is not None else "-"
            say(
                f"{f.name:<26} {f.size:>18} {f.seconds:>9.2f} {f.floor_seconds or 0:>9.2f} {ratio:>7} "
                f"{f.peak_mb:>9.0f} {floor_mb:>9}  {f.note}".rstrip()
            )
        say("")
        say(f"{'table':<28} {'rows':>12} {'table MB':>10} {'index MB':>10} {'MB per 1M rows':>16}")
        for table, rows, table_bytes, index_bytes in bench.storage_sizes():
            per_million = (table_bytes + index_bytes) / rows * 1_000_000 / 2**20 if rows else 0
            table_mb, index_mb = table_bytes / 2**20, index_bytes / 2**20
            say(f"{table:<28} {rows:>12,} {table_mb:>10.1f} {index_mb:>10.1f} {per_million:>16.1f}")
        say("")
        say("Floor queries:")
        printed: set[str] = set()
        for f in figures:
            for query in f.floor_sql.split("\n\n"):
                if query and query not in printed:
                    printed.add(query)
                    say(query)
                    say("")
