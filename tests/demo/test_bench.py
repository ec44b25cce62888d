"""The scale benchmark's loader and report, at a tiny size (PostgreSQL: it loads with COPY)."""

import datetime
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Q, Sum

from accounts.models import Account, Subscription, Touch
from metrics.models import UsageRecord
from success_plans.models import SuccessPlan

pytestmark = pytest.mark.django_db(transaction=True)
TODAY = datetime.date(2026, 6, 15)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("bench", *args, stdout=out)
    return out.getvalue()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark loads with PostgreSQL COPY")
def test_bench_loads_the_data_set_and_prints_every_figure_against_its_floor():
    # The other groups (API, workspace, workers, health) have tests of their own.
    output = run("--accounts", "30", "--days", "60", "--today", TODAY.isoformat(), "--seed", "7", "--only", "engines")

    assert Account.objects.count() == 30
    assert SuccessPlan.objects.count() == 30
    assert UsageRecord.objects.count() == 30 * 60 * 3
    assert UsageRecord.objects.filter(date__gt=TODAY).count() == 0
    assert 30 * 5 <= Touch.objects.count() <= 30 * 15
    # Account.mrr is the sum of its lines live on the reference date.
    for account in Account.objects.all():
        live = Subscription.objects.filter(
            Q(end_date__isnull=True) | Q(end_date__gt=TODAY), account=account, start_date__lte=TODAY
        ).aggregate(total=Sum("mrr"))["total"]
        assert account.mrr == (live or Decimal("0.00"))
    figures = (
        "health recompute (full)",
        "revenue months (24), empty",
        "revenue months (24), again",
        "alert evaluation",
        "nightly chain",
    )
    for figure in figures:
        line = next(line for line in output.splitlines() if line.startswith(figure))
        assert "30 accounts" in line and line.split()[-3].endswith("x")
    assert "metrics_usagerecord" in output and "Floor queries:" in output
    # The nightly chain's floor is the floors of its steps, the health floor once per day it scores.
    assert "-- nightly chain: MRR on the day, the revenue floor, the health floor on the day and on the " in output
    assert "SELECT account_id, SUM(mrr) FROM accounts_subscription" in output

    # The same seed gives the same data; a database with accounts needs --yes.
    first = list(Subscription.objects.order_by("account_id", "start_date", "product").values_list("mrr", "start_date"))
    with pytest.raises(CommandError, match="--yes"):
        run("--accounts", "30", "--days", "60", "--today", TODAY.isoformat(), "--seed", "7")
    run("--accounts", "30", "--days", "60", "--today", TODAY.isoformat(), "--seed", "7", "--yes", "--load-only")
    again = list(Subscription.objects.order_by("account_id", "start_date", "product").values_list("mrr", "start_date"))
    assert again == first


def test_bench_refuses_bad_arguments():
    with pytest.raises(CommandError):
        run("--accounts", "0")
    with pytest.raises(CommandError, match="--only takes groups among"):
        run("--only", "engines,nonsense")
    with pytest.raises(CommandError):
        run("--days", "10")
