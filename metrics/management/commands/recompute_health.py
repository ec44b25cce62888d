import datetime
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from accounts.models import Account
from metrics.services.health import (
    HealthModelUnusable,
    backfill_scopes,
    health_recompute,
    health_recompute_range,
)


def parse_date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date; use YYYY-MM-DD.") from None


class Command(BaseCommand):
    help = (
        "Recompute health snapshots from raw data: today by default, one day with --date, or a range "
        "(backfill) with --from and --to. Recomputing a day replaces its snapshots."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="The day to recompute (YYYY-MM-DD). Default: today.")
        parser.add_argument("--from", dest="first", help="First day of a range to backfill (YYYY-MM-DD).")
        parser.add_argument("--to", dest="last", help="Last day of the range, inclusive (YYYY-MM-DD). Default: today.")
        parser.add_argument(
            "--account",
            dest="accounts",
            nargs="+",
            metavar="EXTERNAL_ID",
            help="Only these accounts, by external id. Default: every account.",
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Send a backfill's chunks of accounts to the Celery workers (one task each) instead of "
            "working here; without a broker they run here, one after another.",
        )

    def handle(self, *args, date, first, last, accounts, queue, **options):
        if date and (first or last):
            raise CommandError("Give either --date or --from/--to, not both.")
        if last and not first:
            raise CommandError("--to needs --from.")
        today = timezone.localdate()
        if date:
            first = last = parse_date(date)
        else:
            first = parse_date(first) if first else today
            last = parse_date(last) if last else today
        if last < first:
            raise CommandError(f"The range ends ({last}) before it starts ({first}).")

        account_ids = None
        if accounts:
            found = dict(Account.objects.filter(external_id__in=accounts).values_list("external_id", "pk"))
            missing = sorted(set(accounts) - set(found))
            if missing:
                raise CommandError(f"No account with external id: {', '.join(missing)}.")
            account_ids = list(found.values())

        days = (last - first).days + 1
        if queue:
            if account_ids is not None or days == 1:
                raise CommandError(
                    "--queue spreads a backfill of every account (--from without --account) over the workers."
                )
            from metrics.tasks import backfill_health_workflow

            result = backfill_health_workflow(first.isoformat(), last.isoformat()).apply_async()
            chunks = len(result.results)
            self.stdout.write(
                self.style.SUCCESS(f"Queued {chunks} chunk(s) of accounts for {days} day(s), {first} to {last}.")
            )
            return
        try:
            if days == 1:
                written = health_recompute(on=first, account_ids=account_ids)
            else:
                # A backfill works a chunk of account ids at a time over the whole range.
                chunks = len(backfill_scopes(account_ids=account_ids))
                with tqdm(total=chunks, unit="chunk", file=sys.stderr) as bar:
                    written = health_recompute_range(
                        first=first, last=last, account_ids=account_ids, progress=bar.update
                    )
        except HealthModelUnusable as error:
            raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(f"{written} snapshots written for {days} day(s), {first} to {last}."))
