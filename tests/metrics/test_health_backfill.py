"""The health backfill: many days per pass give exactly the snapshots of recomputing each day on its own."""

import datetime
import random
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Account, Touch
from csm.exceptions import DomainError
from metrics.models import HealthModel, HealthSnapshot, UsageRecord
from metrics.services import health
from metrics.services.health import health_recompute, health_recompute_range
from success_plans.models import Initiative
from tests import factories
from tests.metrics.test_snapshot_compact import explained

pytestmark = pytest.mark.django_db

D = datetime.date
FIRST, LAST = D(2026, 5, 1), D(2026, 6, 14)  # 45 days: more than a few, so the backfill slides windows


def days(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    return [first + datetime.timedelta(days=k) for k in range((last - first).days + 1)]


def at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    """A moment in the deployment's time zone, so that touches fall near the edges of local days."""
    return timezone.make_aware(datetime.datetime(day.year, day.month, day.day, hour, minute))


def usage(account: Account, metric: str, values: dict[datetime.date, str]) -> None:
    UsageRecord.objects.bulk_create(
        UsageRecord(account=account, metric=metric, date=day, value=Decimal(value)) for day, value in values.items()
    )


def history() -> list[Account]:
    """Accounts covering each input's edge cases around the range, usage drawn from a seeded generator.

    Values are halves and quarters, exact in binary, so SQLite's sums are exact too.
    """
    rng = random.Random(11)
    window = days(FIRST - datetime.timedelta(days=75), LAST)
    accounts = []

    # Daily usage with gaps, seats that change and go to zero, touches at the edges of days, a plan whose
    # initiatives fall due inside the range, a renewal inside the range.
    steady = factories.AccountFactory(customer_since=D(2025, 3, 1), renewal_date=D(2026, 5, 20))
    factories.SubscriptionFactory(account=steady, start_date=D(2025, 3, 1))
    usage(steady, "active_users", {d: str(rng.randrange(0, 80) / 4) for d in window if rng.random() < 0.85})
    usage(steady, "seats_licensed", {d: ("0" if d == D(2026, 5, 10) else "20") for d in window[::7]})
    for moment, sentiment in [
        (at(D(2026, 2, 14), 9), 1),  # leaves the 90-day window during the range
        (at(D(2026, 4, 30), 23, 59), -1),
        (at(D(2026, 5, 1), 0, 0), None),  # no sentiment: counts for engagement only
        (at(D(2026, 5, 17), 12), 0),
        (at(D(2026, 6, 3), 18), 1),
    ]:
        factories.TouchFactory(account=steady, occurred_at=moment, sentiment=sentiment)
    deleted_touch = factories.TouchFactory(account=steady, occurred_at=at(D(2026, 6, 10), 10), sentiment=-1)
    Touch.objects.filter(pk=deleted_touch.pk).update(deleted_at=at(D(2026, 6, 11), 10))
    plan = factories.SuccessPlanFactory(account=steady)
    goal = factories.GoalFactory(plan=plan)
    factories.TargetFactory(goal=goal, baseline=0, target_value=100, current_value=70)
    factories.InitiativeFactory(goal=goal, due_date=D(2026, 5, 15), status=Initiative.Status.PLANNED)
    factories.InitiativeFactory(goal=goal, due_date=D(2026, 6, 1), status=Initiative.Status.IN_PROGRESS)
    factories.InitiativeFactory(goal=goal, due_date=D(2026, 5, 5), status=Initiative.Status.DONE)
    accounts.append(steady)

    # Pays only part of the range (a line ends, another starts later; a free line never counts); usage
    # stops long before the range, so the latest values come from before it; never touched, a customer
    # from the middle of the range.
    partial = factories.AccountFactory(
        customer_since=D(2026, 5, 20), renewal_date=None, tier=factories.default_tier("high-touch")
    )
    factories.SubscriptionFactory(account=partial, start_date=D(2026, 1, 1), end_date=D(2026, 5, 10))
    factories.SubscriptionFactory(account=partial, start_date=D(2026, 5, 25))
    factories.SubscriptionFactory(account=partial, start_date=D(2026, 5, 10), end_date=D(2026, 5, 25), mrr=0)
    usage(partial, "active_users", {d: "12.5" for d in days(D(2026, 1, 1), D(2026, 2, 10))})
    usage(partial, "seats_licensed", {D(2026, 1, 5): "25"})
    accounts.append(partial)

    # Usage that starts inside the range (the earlier window empty, then partly filled), no tier.
    newcomer = factories.AccountFactory(customer_since=D(2026, 4, 1), tier=None, renewal_date=D(2027, 1, 1))
    factories.SubscriptionFactory(account=newcomer, start_date=D(2026, 4, 1))
    usage(newcomer, "active_users", {d: str(rng.randrange(1, 40) / 2) for d in days(D(2026, 5, 12), LAST)})
    usage(newcomer, "seats_licensed", {d: "40" for d in days(D(2026, 5, 12), LAST)})
    factories.TouchFactory(account=newcomer, occurred_at=at(D(2026, 5, 30), 8), sentiment=1)
    accounts.append(newcomer)

    # Deleted: no snapshots, and its old ones in the range go.
    gone = factories.AccountFactory()
    factories.SubscriptionFactory(account=gone, start_date=D(2025, 1, 1))
    factories.TouchFactory(account=gone, occurred_at=at(D(2026, 5, 2), 10))
    factories.HealthSnapshotFactory(account=gone, date=D(2026, 5, 3))
    Account.objects.filter(pk=gone.pk).update(deleted_at=at(D(2026, 4, 1), 0))

    # A day in the range whose old snapshot no longer qualifies (no revenue then): it goes.
    factories.HealthSnapshotFactory(account=partial, date=D(2026, 5, 15))
    return accounts


def snapshots() -> dict[tuple[int, datetime.date], tuple]:
    return {
        (s.account_id, s.date): (s.score, s.band, s.model_version_id, s.components)
        for s in HealthSnapshot.objects.filter(date__gte=FIRST, date__lte=LAST)
    }


def shown() -> dict[int, tuple]:
    return dict(
        (pk, (score, band)) for pk, score, band in Account.objects.values_list("pk", "health_score", "health_band")
    )


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_backfill_gives_the_snapshots_of_recomputing_each_day(settings, zone):
    settings.TIME_ZONE = zone
    accounts = history()

    for day in days(FIRST, LAST):
        health_recompute(on=day)
    day_by_day, day_by_day_shown = snapshots(), shown()

    HealthSnapshot.objects.all().delete()
    Account.objects.update(health_score=None, health_band="")
    for account in accounts:  # the stale snapshots again
        factories.HealthSnapshotFactory(account=account, date=D(2026, 5, 15))
    written = health_recompute_range(first=FIRST, last=LAST)

    backfilled = snapshots()
    assert written == len(backfilled)
    assert backfilled == day_by_day
    assert shown() == day_by_day_shown
    # Every case was met: paying days only, the deleted account never, all components somewhere.
    scored = {pk for pk, _day in backfilled}
    assert scored == {a.pk for a in accounts}
    partial = accounts[1]
    assert {day for pk, day in backfilled if pk == partial.pk} == set(days(FIRST, D(2026, 5, 9))) | set(
        days(D(2026, 5, 25), LAST)
    )
    kinds_measured = {
        kind
        for snapshot in HealthSnapshot.objects.filter(date__gte=FIRST, date__lte=LAST)
        for kind, part in explained(snapshot).items()
        if part["raw"] is not None
    }
    assert kinds_measured == {
        "usage_trend",
        "usage_level",
        "engagement",
        "sentiment",
        "plan_progress",
        "renewal_proximity",
    }


def test_hand_computed_days_of_a_backfill():
    account = factories.AccountFactory(customer_since=D(2026, 1, 1), renewal_date=None)
    factories.SubscriptionFactory(account=account, start_date=D(2026, 1, 1))
    # active_users: 10 a day from 1 March, 20 a day from 31 May.
    usage(account, "active_users", {d: "10" for d in days(D(2026, 3, 1), D(2026, 5, 30))})
    usage(account, "active_users", {d: "20" for d in days(D(2026, 5, 31), LAST)})
    health_recompute_range(first=FIRST, last=LAST)
    parts = {s.date: explained(s) for s in HealthSnapshot.objects.filter(account=account)}
    # 1 May: 300 over 30 days against 300 -> 1.0 -> 100.
    assert parts[FIRST]["usage_trend"]["raw"] == 1.0
    # 14 June: 15 days at 10 and 15 at 20 = 450 against 300 -> 1.5.
    assert parts[LAST]["usage_trend"]["raw"] == 1.5
    # Never touched, a customer since 1 January: 120 days on 1 May / low-touch cadence 45 -> 2.666667.
    assert parts[FIRST]["engagement"]["raw"] == 2.666667
    assert parts[FIRST]["sentiment"]["raw"] is None


def test_a_backfill_works_a_chunk_of_ids_at_a_time(monkeypatch):
    accounts = history()
    health_recompute_range(first=FIRST, last=LAST)
    one_chunk = snapshots()
    HealthSnapshot.objects.all().delete()
    monkeypatch.setattr(health, "BACKFILL_IDS", 2)
    done = []
    health_recompute_range(first=FIRST, last=LAST, progress=lambda: done.append(1))
    assert snapshots() == one_chunk
    assert len(done) == len(health.id_ranges(2)) >= 2
    # Given ids: only those accounts are rebuilt.
    HealthSnapshot.objects.all().delete()
    health_recompute_range(first=FIRST, last=LAST, account_ids=[accounts[0].pk])
    assert snapshots() == {key: value for key, value in one_chunk.items() if key[0] == accounts[0].pk}


def test_a_backfill_without_a_usable_model_writes_nothing():
    history()
    before = snapshots()
    HealthModel.objects.update(is_active=False)
    with pytest.raises(DomainError, match="No health model is active"):
        health_recompute_range(first=FIRST, last=LAST)
    assert snapshots() == before


def test_the_backfill_workflow_gives_the_same_snapshots_chunk_by_chunk():
    from metrics.tasks import backfill_health_workflow

    history()
    health_recompute_range(first=FIRST, last=LAST)
    whole = snapshots()
    HealthSnapshot.objects.all().delete()
    results = backfill_health_workflow(FIRST.isoformat(), LAST.isoformat(), chunk_size=2).apply().get()
    assert len(results) == len(health.id_ranges(2))
    assert sum(results) == len(whole)
    assert snapshots() == whole


def test_a_full_recompute_in_passes_of_a_few_ids_gives_the_same_snapshots(monkeypatch):
    history()
    HealthSnapshot.objects.all().delete()  # only the two days' snapshots
    for day in (FIRST, LAST):
        health_recompute(on=day)
    one_pass, one_pass_shown = snapshots(), shown()
    HealthSnapshot.objects.all().delete()
    Account.objects.update(health_score=None, health_band="")
    monkeypatch.setattr(health, "PASS_IDS", 2)
    assert len(health.id_ranges(2)) >= 2
    health_recompute(days=[FIRST, LAST])
    assert snapshots() == one_pass
    assert shown() == one_pass_shown
