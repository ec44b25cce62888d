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

    def handle(self, *args, date, first, last, accounts, **options):
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
