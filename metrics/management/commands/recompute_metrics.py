import time

from django.core.management.base import BaseCommand
from django.utils import timezone

from metrics.models import Alert, HealthSnapshot, RecomputeIssue
from metrics.tasks import nightly_workflow

from .recompute_health import parse_date


class Command(BaseCommand):
    help = (
        "Run the nightly recompute here and now, without a worker: MRR, tier rules, the revenue bridge, "
        "health snapshots (in account-id chunks, the day CSM_USAGE_LAG_DAYS back first) and alerts, in that "
        "order, all as of one day."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            help="Run every step as of this day (YYYY-MM-DD): MRR on it, tier rules, revenue months up to it, "
            "health and alerts. Default: today.",
        )

    def handle(self, *args, date, **options):
        on = parse_date(date) if date else timezone.localdate()
        started = time.monotonic()
        started_at = timezone.now()
        nightly_workflow(on.isoformat()).apply().get()
        # A configuration problem (say, no active health model) stops only the health step; say so.
        for message in RecomputeIssue.objects.filter(
            resolved_at__isnull=True, last_seen_at__gte=started_at
        ).values_list("message", flat=True):
            self.stderr.write(self.style.WARNING(message))
        elapsed = time.monotonic() - started
        snapshots = HealthSnapshot.objects.filter(date=on).count()
        open_alerts = Alert.objects.exclude(status=Alert.Status.DONE).count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Metrics recomputed for {on} in {elapsed:.1f} s: {snapshots} health snapshots, "
                f"{open_alerts} open or snoozed alerts."
            )
        )
