"""The API group of the benchmark at a tiny size: real HTTP against gunicorn, every figure printed with
its floor, and the database left as it was."""

import datetime
import io
import re

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import Account, Partner, TierAssignment
from api.models import IdempotencyKey
from metrics.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark loads with PostgreSQL COPY"),
]
TODAY = datetime.date(2026, 6, 15)


def test_api_figures_run_over_http_and_leave_the_data_as_it_was():
    args = ("--accounts", "12", "--days", "60", "--today", TODAY.isoformat(), "--seed", "5")
    call_command("bench", *args, "--load-only", stdout=io.StringIO())
    accounts = sorted(Account.objects.values_list("external_id", "name", "employees", "updated_at"))
    usage = UsageRecord.objects.count()
    periods = TierAssignment.objects.count()

    out = io.StringIO()
    call_command("bench", *args, "--reuse", "--only", "api", stdout=out)
    lines = out.getvalue().splitlines()
    figures = [line for line in lines if " rows/s (floor " in line and re.search(r" \d+\.\dx ", line)]
    assert [line.split("  ")[0] for line in figures] == [
        "account sync (1000/page)",
        "usage ingest (new day)",
        "usage ingest (day again)",
        "account upsert (create)",
        "account upsert (update)",
    ]
    assert any(line.startswith("COPY metrics_usagerecord") for line in lines)

    assert sorted(Account.objects.values_list("external_id", "name", "employees", "updated_at")) == accounts
    assert UsageRecord.objects.count() == usage
    assert not UsageRecord.objects.filter(date__gt=TODAY).exists()
    assert TierAssignment.objects.count() == periods
    assert not Partner.objects.exists()
    assert not IdempotencyKey.objects.exists()
