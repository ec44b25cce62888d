"""Health scores against hand-computed cases (SPEC 3, metrics/)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, Subscription
from metrics.models import HealthComponent, HealthModel, HealthSnapshot, UsageRecord
from metrics.services.health import band_for, component_score, health_recompute, health_recompute_range
from success_plans.models import Initiative
from tests import factories
from tests.metrics.test_snapshot_compact import explained

pytestmark = pytest.mark.django_db

D = datetime.date
ON = D(2026, 6, 30)


def at(day: datetime.date, hour: int = 10) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, hour, tzinfo=datetime.UTC)


def usage(account, metric, first, last, value):
    day, rows = first, []
    while day <= last:
        rows.append(UsageRecord(account=account, metric=metric, date=day, value=Decimal(value)))
        day += datetime.timedelta(days=1)
    UsageRecord.objects.bulk_create(rows)


@pytest.fixture
def account():
    account = factories.AccountFactory(customer_since=D(2025, 1, 1), renewal_date=None)
    factories.SubscriptionFactory(account=account, start_date=D(2025, 1, 1))
    factories.TouchFactory(account=account, occurred_at=at(D(2026, 5, 1)), sentiment=1)
    factories.TouchFactory(account=account, occurred_at=at(D(2026, 4, 15)), sentiment=-1)
    factories.TouchFactory(account=account, occurred_at=at(D(2026, 3, 1)), sentiment=-1)  # outside 90 days
    return account


class TestComponentMaths:
    @pytest.mark.parametrize(
        ("raw", "bad", "good", "expected"),
        [
            ("0.8", "0.6", "1.0", "50"),
            ("1.2", "0.6", "1.0", "100"),  # clamped above
            ("0.1", "0.6", "1.0", "0"),  # clamped below
            ("1.5", "2", "1", "50"),  # inverted: bad > good
            ("2.5", "2", "1", "0"),
            ("0.5", "2", "1", "100"),
            ("90", "30", "180", "40"),
        ],
    )
    def test_maps_raw_values_to_0_100(self, raw, bad, good, expected):
        score = component_score(raw=Decimal(raw), bad=Decimal(bad), good=Decimal(good))
        assert score == Decimal(expected)

    @pytest.mark.parametrize(
        ("score", "band"),
        [("0", "red"), ("39.9", "red"), ("40.0", "yellow"), ("69.9", "yellow"), ("70.0", "green"), ("100", "green")],
    )
    def test_band_edges(self, score, band):
        model = HealthModel.objects.get(is_active=True)
        assert band_for(score=Decimal(score), model=model) == band


def test_every_component_on_a_hand_computed_account(account):
    # Usage trend: 30 days at 10 against 30 days at 12.5 -> 300 / 375 = 0.8 -> 50.
    usage(account, "active_users", ON - datetime.timedelta(days=59), ON - datetime.timedelta(days=30), "12.5")
    usage(account, "active_users", ON - datetime.timedelta(days=29), ON, "10")
    # Usage level: 10 active users of 20 seats = 0.5 -> 50.
    usage(account, "seats_licensed", ON - datetime.timedelta(days=5), ON, "20")
    # Plan progress: targets at 0.5 and 0.25 (a target that goes down) -> 0.375, one overdue initiative
    # -> 0.275 -> 12.5.
    plan = factories.SuccessPlanFactory(account=account)
    goal = factories.GoalFactory(plan=plan)
    factories.TargetFactory(goal=goal, baseline=10, target_value=110, current_value=60)
    factories.TargetFactory(goal=goal, baseline=30, target_value=10, current_value=25)
    factories.InitiativeFactory(goal=goal, due_date=D(2026, 6, 1), status=Initiative.Status.IN_PROGRESS)
    factories.InitiativeFactory(goal=goal, due_date=D(2026, 6, 1), status=Initiative.Status.DONE)
    factories.InitiativeFactory(goal=goal, due_date=D(2026, 7, 1), status=Initiative.Status.PLANNED)
    # Renewal in 90 days -> (90 - 30) / 150 = 40.
    Account.objects.filter(pk=account.pk).update(renewal_date=ON + datetime.timedelta(days=90))

    assert health_recompute(on=ON) == 1
    snapshot = HealthSnapshot.objects.get(account=account, date=ON)
    parts = explained(snapshot)
    assert parts["usage_trend"]["raw"] == 0.8 and parts["usage_trend"]["score"] == 50.0
    assert parts["usage_level"]["raw"] == 0.5 and parts["usage_level"]["score"] == 50.0
    # Engagement: last touch 1 May, 60 days before 30 June, low-touch cadence 45 -> 1.333333 -> 66.7.
    assert parts["engagement"]["raw"] == 1.333333 and parts["engagement"]["score"] == 66.7
    # Sentiment: +1 and -1 within 90 days (1 March is outside) -> 0 -> 50.
    assert parts["sentiment"]["raw"] == 0.0 and parts["sentiment"]["score"] == 50.0
    assert parts["plan_progress"]["raw"] == 0.275 and parts["plan_progress"]["score"] == 12.5
    assert parts["renewal_proximity"]["raw"] == 90.0 and parts["renewal_proximity"]["score"] == 40.0
    # (25*50 + 20*50 + 20*66.667 + 15*50 + 10*12.5 + 10*40) / 100 = 48.583 -> 48.6, yellow.
    assert snapshot.score == Decimal("48.6")
    assert snapshot.band == "yellow"
    assert snapshot.model_version.is_active
    assert sum(c["weight"] for c in explained(snapshot).values()) == pytest.approx(1.0)
    account.refresh_from_db()
    assert (account.health_score, account.health_band) == (Decimal("48.6"), "yellow")


def test_missing_components_renormalise_the_weights(account):
    # Only engagement (66.667, weight 20) and sentiment (50, weight 15) have data.
    health_recompute(on=ON)
    snapshot = HealthSnapshot.objects.get(account=account, date=ON)
    parts = explained(snapshot)
    assert {k for k, c in parts.items() if c["raw"] is not None} == {"engagement", "sentiment"}
    assert parts["usage_trend"]["weight"] == 0.0 and parts["usage_trend"]["score"] is None
    assert parts["engagement"]["weight"] == pytest.approx(20 / 35, abs=1e-6)
    # (20 * 66.667 + 15 * 50) / 35 = 59.52 -> 59.5
    assert snapshot.score == Decimal("59.5")
    assert snapshot.band == "yellow"


def test_usage_trend_has_no_data_when_the_earlier_window_is_empty(account):
    usage(account, "active_users", ON - datetime.timedelta(days=29), ON, "10")
    health_recompute(on=ON)
    parts = explained(HealthSnapshot.objects.get(account=account))
    assert parts["usage_trend"]["raw"] is None
    assert parts["usage_level"]["raw"] is None  # no seats_licensed to divide by


def test_never_touched_account_counts_engagement_from_customer_since():
    account = factories.AccountFactory(customer_since=D(2026, 5, 31), tier=factories.default_tier("high-touch"))
    factories.SubscriptionFactory(account=account, start_date=D(2026, 5, 31))
    health_recompute(on=ON)
    parts = explained(HealthSnapshot.objects.get(account=account))
    # 30 days / cadence 14 = 2.142857 -> beyond bad (2) -> 0; the only component with data.
    assert parts["engagement"]["raw"] == 2.142857
    snapshot = HealthSnapshot.objects.get(account=account)
    assert (snapshot.score, snapshot.band) == (Decimal("0.0"), "red")


def test_no_snapshot_without_any_component_or_without_mrr():
    no_data = factories.AccountFactory(customer_since=None, tier=None)
    factories.SubscriptionFactory(account=no_data, start_date=D(2025, 1, 1))
    churned = factories.AccountFactory()
    factories.SubscriptionFactory(account=churned, start_date=D(2025, 1, 1), end_date=D(2026, 6, 30))
    assert health_recompute(on=ON) == 0
    assert not HealthSnapshot.objects.exists()


def test_recomputing_a_day_replaces_its_snapshots(account):
    health_recompute(on=ON)
    first = HealthSnapshot.objects.get(account=account, date=ON)
    health_recompute(on=ON)
    again = HealthSnapshot.objects.get(account=account, date=ON)
    assert HealthSnapshot.objects.count() == 1
    assert (again.pk, again.score, again.components) == (first.pk, first.score, first.components)
    # When the account stops qualifying (its line ends before that day), the day's snapshot goes.
    Subscription.objects.filter(account=account).update(end_date=ON)
    assert health_recompute(on=ON) == 0
    assert not HealthSnapshot.objects.exists()
    account.refresh_from_db()
    assert account.health_score is None and account.health_band == ""


def test_backfill_builds_history_from_raw_data(account):
    first, last = D(2026, 6, 1), ON
    written = health_recompute_range(first=first, last=last)
    assert written == 30
    scores = dict(HealthSnapshot.objects.filter(account=account).values_list("date", "score"))
    assert len(scores) == 30
    # On 1 June: last touch 1 May = 31 days / 45 -> 0.688889 -> 100; sentiment mean 0 -> 50.
    # (20 * 100 + 15 * 50) / 35 = 78.57 -> 78.6
    assert scores[first] == Decimal("78.6")
    assert scores[ON] == Decimal("59.5")
    account.refresh_from_db()
    assert account.health_score == Decimal("59.5")  # follows the latest snapshot


def test_backfilling_an_older_day_leaves_the_latest_score_on_the_account(account):
    health_recompute(on=ON)
    health_recompute(on=D(2026, 6, 1))
    account.refresh_from_db()
    assert account.health_score == Decimal("59.5")


def test_a_snapshot_keeps_the_model_version_that_made_it(account):
    health_recompute(on=ON)
    old_model = HealthModel.objects.get(is_active=True)
    HealthModel.objects.update(is_active=False)
    new_model = factories.HealthModelFactory(is_active=True)
    factories.HealthComponentFactory(model=new_model, kind=HealthComponent.Kind.SENTIMENT, bad=-1, good=1)
    health_recompute(on=D(2026, 7, 1))
    versions = dict(HealthSnapshot.objects.values_list("date", "model_version"))
    assert versions == {ON: old_model.pk, D(2026, 7, 1): new_model.pk}


def make_accounts(n: int) -> None:
    tier = factories.default_tier()
    owner = factories.UserFactory()
    accounts = Account.objects.bulk_create(
        Account(name=f"Bulk {i}", tier=tier, owner=owner, customer_since=D(2026, 1, 1), renewal_date=D(2026, 9, 1))
        for i in range(n)
    )
    Subscription.objects.bulk_create(
        Subscription(account=a, product="Platform", mrr=Decimal(100), start_date=D(2026, 1, 1)) for a in accounts
    )
    UsageRecord.objects.bulk_create(
        UsageRecord(account=a, metric=m, date=ON - datetime.timedelta(days=k), value=Decimal(5 + k % 7))
        for a in accounts
        for m in ("active_users", "seats_licensed")
        for k in range(0, 60, 3)
    )


def count_queries() -> tuple[int, int]:
    """Queries of a recompute of a day without snapshots, then of the same day again over them."""
    HealthSnapshot.objects.filter(date=ON).delete()
    with CaptureQueriesContext(connection) as new_day:
        health_recompute(on=ON)
    with CaptureQueriesContext(connection) as again:
        health_recompute(on=ON)
    return len(new_day), len(again)


def test_query_count_does_not_grow_with_the_number_of_accounts():
    make_accounts(10)
    small = count_queries()
    make_accounts(490)
    large = count_queries()
    assert HealthSnapshot.objects.filter(date=ON).count() == 500
    assert small == large


def test_publishing_a_new_version_retires_the_old_one_and_keeps_history(account):
    from django.core.exceptions import ValidationError

    from metrics.services.health import health_model_components, health_model_publish

    health_recompute(on=ON)
    old = HealthModel.objects.get(is_active=True)
    components = health_model_components(old)
    for component in components:
        component["weight"] = Decimal(1) if component["kind"] == "sentiment" else Decimal(0)
    new = health_model_publish(components=components, name="Sentiment only")
    assert (new.version, new.is_active) == (old.version + 1, True)
    assert not HealthModel.objects.get(pk=old.pk).is_active
    health_recompute(on=ON + datetime.timedelta(days=1))
    snapshots = dict(HealthSnapshot.objects.values_list("date", "model_version__version"))
    assert snapshots == {ON: old.version, ON + datetime.timedelta(days=1): new.version}
    # Sentiment mean 0 on a -0.5..0.5 scale -> 50, the only weighted component.
    assert HealthSnapshot.objects.get(date=ON + datetime.timedelta(days=1)).score == Decimal("50.0")

    with pytest.raises(ValidationError, match="at least one component with a weight above zero"):
        health_model_publish(components=[{**components[0], "weight": Decimal(0)}])
    with pytest.raises(ValidationError):
        health_model_publish(components=[{"kind": "sentiment", "weight": Decimal(1), "bad": 1, "good": 1}])
    assert HealthModel.objects.count() == 2
    assert HealthModel.objects.get(is_active=True) == new


def test_engagement_is_zero_days_when_the_customer_starts_after_the_date():
    # A signed contract is billed from 1 June but the customer relationship starts on 10 July: on 30 June the
    # account has been a customer for 0 days (raw 0 -> score 100), never a negative ratio.
    account = factories.AccountFactory(customer_since=D(2026, 7, 10), tier=factories.default_tier("high-touch"))
    factories.SubscriptionFactory(account=account, start_date=D(2026, 6, 1))
    health_recompute(on=ON)
    snapshot = HealthSnapshot.objects.get(account=account)
    parts = explained(snapshot)
    assert (parts["engagement"]["raw"], parts["engagement"]["score"]) == (0.0, 100.0)
    assert (snapshot.score, snapshot.band) == (Decimal("100.0"), "green")


def test_a_range_that_ends_before_it_starts_is_a_domain_error():
    from csm.exceptions import DomainError

    with pytest.raises(DomainError, match="The range ends before it starts"):
        health_recompute_range(first=ON, last=ON - datetime.timedelta(days=1))


def test_a_deleted_account_gets_no_new_snapshots(account):
    health_recompute(on=ON - datetime.timedelta(days=1))
    Account.objects.filter(pk=account.pk).update(deleted_at=at(ON))
    assert health_recompute(on=ON) == 0
    assert list(HealthSnapshot.objects.filter(account=account).values_list("date", flat=True)) == [
        ON - datetime.timedelta(days=1)
    ]


class TestAModelThatCannotScore:
    def test_weights_summing_to_zero_refuse_and_keep_existing_snapshots(self, account):
        from metrics.services.health import HealthModelUnusable

        health_recompute(on=ON)
        HealthComponent.objects.update(weight=0)
        with pytest.raises(HealthModelUnusable, match="weights that sum to zero") as error:
            health_recompute(on=ON)
        assert error.value.code == "health-model-without-weight"
        assert HealthSnapshot.objects.filter(account=account, date=ON).count() == 1

    def test_no_active_model_refuses_and_keeps_existing_snapshots(self, account):
        from csm.exceptions import DomainError
        from metrics.services.health import HealthModelUnusable

        health_recompute(on=ON)
        HealthModel.objects.update(is_active=False)
        with pytest.raises(HealthModelUnusable, match="No health model is active") as error:
            health_recompute(on=ON)
        assert isinstance(error.value, DomainError)
        assert error.value.code == "no-active-health-model"
        assert HealthSnapshot.objects.filter(account=account, date=ON).count() == 1


class TestActivation:
    def test_deactivating_and_activating_a_version_keeps_its_components(self, account):
        from metrics.services.health import health_model_activate, health_model_deactivate, health_model_publish

        health_recompute(on=ON)
        old = HealthModel.objects.get(is_active=True)
        new = health_model_publish(components=[{"kind": "sentiment", "weight": Decimal(1), "bad": -1, "good": 1}])
        health_model_activate(model=old)
        assert list(HealthModel.objects.filter(is_active=True)) == [old]
        assert old.components.count() == 6 and new.components.count() == 1
        health_model_deactivate(model=old)
        assert not HealthModel.objects.filter(is_active=True).exists()
        assert HealthModel.objects.count() == 2

    def test_a_version_without_weight_cannot_be_activated(self):
        from csm.exceptions import DomainError
        from metrics.services.health import health_model_activate

        model = factories.HealthModelFactory()
        factories.HealthComponentFactory(model=model, weight=0)
        with pytest.raises(DomainError, match="at least one component with a weight above zero"):
            health_model_activate(model=model)
        assert not HealthModel.objects.get(pk=model.pk).is_active


def snapshot_rows(day: datetime.date) -> list[tuple]:
    return list(
        HealthSnapshot.objects.filter(date=day)
        .order_by("account_id")
        .values_list("account_id", "score", "band", "model_version_id", "components")
    )


def test_a_day_without_snapshots_gets_those_a_rerun_over_stored_ones_gives(account):
    other = factories.AccountFactory(customer_since=D(2025, 1, 1), renewal_date=D(2026, 9, 1))
    factories.SubscriptionFactory(account=other, start_date=D(2025, 1, 1))
    for each in (account, other):
        usage(each, "active_users", ON - datetime.timedelta(days=59), ON - datetime.timedelta(days=30), 10)
        usage(each, "active_users", ON - datetime.timedelta(days=29), ON, 8)
        usage(each, "seats_licensed", ON - datetime.timedelta(days=59), ON, 20)

    assert health_recompute(on=ON) == 2  # a new day: written straight into the table on PostgreSQL
    new_day = snapshot_rows(ON)
    # Over a stored snapshot (with other figures), the same day is upserted: the same snapshots.
    HealthSnapshot.objects.filter(date=ON, account=other).update(score=Decimal("1.0"), band="red", components=[])
    assert health_recompute(on=ON) == 2
    assert snapshot_rows(ON) == new_day
    assert [row[0] for row in new_day] == [account.pk, other.pk]
    # Trend 8 * 30 / (10 * 30) = 0.8 scores 50 (bad 0.6, good 1.0) in both.
    trends = [explained(s)["usage_trend"] for s in HealthSnapshot.objects.filter(date=ON).order_by("account_id")]
    assert [(t["raw"], t["score"]) for t in trends] == [(0.8, 50.0), (0.8, 50.0)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL copies new snapshots straight in")
def test_new_snapshots_that_clash_with_a_stored_one_replace_it(account):
    from metrics.services.health import snapshots_write

    model = HealthModel.objects.get(is_active=True)
    stamp = datetime.datetime(2026, 6, 30, 12, tzinfo=datetime.UTC)
    HealthSnapshot.objects.create(account=account, date=ON, score=Decimal("10.0"), band="red", model_version=model)
    rows = [(account.pk, ON, Decimal("75.5"), "green", model.pk, "[null]", stamp, stamp)]

    assert snapshots_write(rows, fresh=True) == 1

    snapshot = HealthSnapshot.objects.get(account=account, date=ON)
    assert (snapshot.score, snapshot.band, snapshot.components) == (Decimal("75.5"), "green", [None])
