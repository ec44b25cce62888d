"""The workers group of the benchmark at a tiny size: real prefork workers on Redis score the bench data."""

import datetime
import io
import os

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from metrics.models import HealthSnapshot

TODAY = datetime.date(2026, 6, 15)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark loads with PostgreSQL COPY")
@pytest.mark.skipif(
    not settings.CELERY_BROKER_URL and not os.environ.get("CSM_REQUIRE_WORKER"),
    reason="needs a real Redis (CELERY_BROKER_URL or CSM_REQUIRE_WORKER); the workers use BENCH_WORKER_BROKER",
)
def test_the_health_chord_runs_on_one_two_and_four_worker_processes():
    out = io.StringIO()
    call_command(
        "bench", "--accounts", "12", "--days", "60", "--today", TODAY.isoformat(), "--only", "workers", stdout=out
    )
    lines = out.getvalue().splitlines()
    for processes in (1, 2, 4):
        line = next(line for line in lines if line.startswith(f"health chord, {processes} proc."))
        assert "12 accounts" in line and "x vs 1" in line and "chunks" in line, line
    # The workers scored the bench data as of the reference day (and the usage-lag day before it).
    assert HealthSnapshot.objects.filter(date=TODAY).exists()
