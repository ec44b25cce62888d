from django.core.management.base import BaseCommand, CommandError

from csm.exceptions import DomainError
from metrics.history import parse_month
from metrics.services.portfolio import portfolio_history_recompute
from metrics.services.revenue import revenue_recompute


class Command(BaseCommand):
    help = (
        "Recompute the monthly revenue bridge (start, new, reactivation, expansion, contraction, churn, "
        "end MRR and the rates) for every segment, then the portfolio's cohorts, upsell timing and churns up to "
        "the last month. Idempotent: a month's rows are replaced."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from", dest="first", metavar="YYYY-MM", help="First month. Default: the first with revenue."
        )
        parser.add_argument("--to", dest="last", metavar="YYYY-MM", help="Last month. Default: this month.")

    def handle(self, *args, first, last, **options):
        try:
            first = parse_month(first) if first else None
            last = parse_month(last) if last else None
            written = revenue_recompute(first=first, last=last)
            churns = portfolio_history_recompute(on=last)
        except DomainError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"{written} revenue-month rows written."))
        self.stdout.write(f"Cohorts and upsell timing stored; {churns} churn rows written.")
