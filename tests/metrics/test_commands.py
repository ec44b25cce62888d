"""The recompute commands: clear errors for bad input, idempotent runs, figures printed."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from metrics.models import HealthSnapshot, RevenueMonth
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def paying():
    account = factories.AccountFactory(external_id="acme", customer_since=datetime.date(2026, 1, 1))
    factories.SubscriptionFactory(account=account, mrr=Decimal(100), start_date=datetime.date(2026, 1, 1))
    return account


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_recompute_health_backfills_a_range_for_chosen_accounts(paying):
    other = factories.AccountFactory(customer_since=datetime.date(2026, 1, 1))
    factories.SubscriptionFactory(account=other, start_date=datetime.date(2026, 1, 1))
    output = run("recompute_health", "--from", "2026-03-01", "--to", "2026-03-10", "--account", "acme")
    assert "10 snapshots written for 10 day(s), 2026-03-01 to 2026-03-10." in output
    assert set(HealthSnapshot.objects.values_list("account__external_id", flat=True)) == {"acme"}
    run("recompute_health", "--from", "2026-03-01", "--to", "2026-03-10", "--account", "acme")
    assert HealthSnapshot.objects.count() == 10


@pytest.mark.skipif(not settings.CELERY_TASK_ALWAYS_EAGER, reason="with a broker the chunks go to a worker")
def test_recompute_health_queue_sends_a_backfill_to_the_workers_in_chunks(paying):
    other = factories.AccountFactory(customer_since=datetime.date(2026, 1, 1))
    factories.SubscriptionFactory(account=other, start_date=datetime.date(2026, 1, 1))
    output = run("recompute_health", "--from", "2026-03-01", "--to", "2026-03-05", "--queue")
    # Without a broker the one chunk (both accounts' ids are close) runs here: 2 accounts x 5 days.
    assert "Queued 1 chunk(s) of accounts for 5 day(s), 2026-03-01 to 2026-03-05." in output
    assert HealthSnapshot.objects.count() == 10
    assert set(HealthSnapshot.objects.values_list("account_id", flat=True)) == {paying.pk, other.pk}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2026-03-01", "--account", "acme", "--queue"],
            "--queue spreads a backfill of every account (--from without --account) over the workers.",
        ),
        (
            ["--date", "2026-03-01", "--queue"],
            "--queue spreads a backfill of every account (--from without --account) over the workers.",
        ),
        (["--date", "2026-13-01"], "'2026-13-01' is not a date; use YYYY-MM-DD."),
        (["--date", "2026-01-01", "--from", "2026-01-01"], "Give either --date or --from/--to, not both."),
        (["--to", "2026-01-01"], "--to needs --from."),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "The range ends (2026-01-01) before it starts (2026-02-01)."),
        (["--account", "nope", "acme"], "No account with external id: nope."),
    ],
)
def test_recompute_health_rejects_bad_input(paying, args, message):
    with pytest.raises(CommandError) as error:
        run("recompute_health", *args)
    assert str(error.value) == message
    assert not HealthSnapshot.objects.exists()


def test_recompute_revenue(paying):
    # A second account: 40 from 15 January, 60 from 1 March (an expansion), gone from 1 April (a churn).
    other = factories.AccountFactory(customer_since=datetime.date(2026, 1, 15))
    factories.SubscriptionFactory(
        account=other, mrr=Decimal(40), start_date=datetime.date(2026, 1, 15), end_date=datetime.date(2026, 3, 1)
    )
    factories.SubscriptionFactory(
        account=other, mrr=Decimal(60), start_date=datetime.date(2026, 3, 1), end_date=datetime.date(2026, 4, 1)
    )
    printed = run("recompute_revenue", "--from", "2026-01", "--to", "2026-04")
    assert f"{RevenueMonth.objects.count()} revenue-month rows written." in printed
    rows = RevenueMonth.objects.filter(segment_kind="all").order_by("month")
    figures = [
        (r.start_mrr, r.new_mrr, r.expansion_mrr, r.churned_mrr, r.end_mrr, r.end_accounts, r.grr, r.nrr) for r in rows
    ]
    assert figures == [
        # January: both new (100 + 40); no start, so no rates.
        (0, 140, 0, 0, 140, 2, None, None),
        # February: nothing moves.
        (140, 0, 0, 0, 140, 2, 1, 1),
        # March: the second account grows from 40 to 60.
        (140, 0, 20, 0, 160, 2, 1, Decimal("1.142857")),  # 160 / 140, to six places
        # April: it churns its 60; GRR = NRR = 100 / 160.
        (160, 0, 0, 60, 100, 1, Decimal("0.625"), Decimal("0.625")),
    ]
    count = RevenueMonth.objects.count()
    run("recompute_revenue", "--from", "2026-01", "--to", "2026-04")
    assert RevenueMonth.objects.count() == count
    with pytest.raises(CommandError, match="'2026-1x' is not a month; use YYYY-MM."):
        run("recompute_revenue", "--from", "2026-1x")
    with pytest.raises(CommandError, match="ends before it starts"):
        run("recompute_revenue", "--from", "2026-03", "--to", "2026-01")


def test_recompute_metrics_runs_everything(paying):
    output = run("recompute_metrics", "--date", "2026-03-31")
    assert "Metrics recomputed for 2026-03-31" in output
    assert "1 health snapshots" in output
    assert HealthSnapshot.objects.filter(date=datetime.date(2026, 3, 31)).count() == 1
    assert RevenueMonth.objects.filter(segment_kind="all").exists()


def test_without_an_active_model_recompute_metrics_runs_the_other_steps_and_warns(paying):
    from metrics.models import HealthModel

    HealthModel.objects.update(is_active=False)
    err = StringIO()
    out = StringIO()
    call_command("recompute_metrics", "--date", "2026-03-31", stdout=out, stderr=err)
    assert "No health model is active, so health scores were not recomputed; activate one." in err.getvalue()
    assert "0 health snapshots" in out.getvalue()
    assert RevenueMonth.objects.filter(segment_kind="all").exists()
    with pytest.raises(CommandError, match="No health model is active"):
        run("recompute_health", "--date", "2026-03-31")


def test_recompute_metrics_uses_the_date_in_every_step():
    """31 March 2026: the line (9,000 a month) still ran, so every step sees a high-touch account."""
    from django.utils import timezone

    from accounts.models import Account, TierAssignment
    from metrics.models import Alert

    day = datetime.date(2026, 3, 31)
    account = factories.AccountFactory(tier=factories.default_tier("tech-touch"), customer_since=None)
    factories.SubscriptionFactory(
        account=account, mrr=Decimal(9000), start_date=datetime.date(2026, 1, 1), end_date=datetime.date(2026, 5, 1)
    )
    factories.TouchFactory(account=account, occurred_at=datetime.datetime(2026, 3, 1, 10, tzinfo=datetime.UTC))
    Account.objects.filter(pk=account.pk).update(last_touch_at=datetime.datetime(2026, 3, 1, 10, tzinfo=datetime.UTC))

    run("recompute_metrics", "--date", day.isoformat())

    account.refresh_from_db()
    assert account.mrr == Decimal(9000)  # MRR on the day (today it is 0)
    assert account.tier.slug == "high-touch"  # the tier rule saw that MRR
    started = TierAssignment.objects.get(account=account, ended_at__isnull=True).started_at
    assert started == timezone.make_aware(datetime.datetime(2026, 3, 31))  # stamped on the day
    months = set(RevenueMonth.objects.filter(segment_kind="all").values_list("month", flat=True))
    assert months == {datetime.date(2026, 1, 1), datetime.date(2026, 2, 1), datetime.date(2026, 3, 1)}
    assert set(HealthSnapshot.objects.values_list("date", flat=True)) == {day, day - datetime.timedelta(days=1)}
    # Alerts as of that day: 30 days without a touch against high touch's 14 (today it would be months).
    assert Alert.objects.get(account=account, rule__kind="touch_overdue").reason == (
        "No touch for 30 days; High touch cadence is 14 days"
    )
