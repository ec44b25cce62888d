"""Why health changed, against figures worked out by hand (metrics/selectors/health.py)."""

import datetime
from decimal import Decimal

import pytest

from metrics.selectors.health import band_changes, health_change, health_history
from metrics.services.health import health_model_publish, health_recompute
from tests import factories

pytestmark = pytest.mark.django_db

D = datetime.date
BEFORE = D(2026, 5, 1)
AFTER = D(2026, 5, 31)


def entry(kind, score, weight, raw=None, metric=""):
    return {
        "kind": kind,
        "label": kind,
        "metric": metric,
        "per_metric": "",
        "raw": raw,
        "score": score,
        "weight": weight,
    }


def snapshot(account, day, score, components, model=None, band="yellow"):
    fields = {"account": account, "date": day, "score": Decimal(score), "band": band, "components": components}
    if model is not None:
        fields["model_version"] = model
    return factories.HealthSnapshotFactory(**fields)


def lines_by_kind(change) -> dict[str, object]:
    return {line.kind: line for line in change.lines}


@pytest.fixture
def account():
    return factories.AccountFactory()


@pytest.fixture
def model():
    return factories.HealthModelFactory(name="Test model", version=101)


def test_the_split_adds_up_with_a_rounding_line_and_components_gaining_and_losing_data(account, model):
    # Four components of equal weight; three have data before, a different three after.
    snapshot(
        account,
        BEFORE,
        "23.3",  # (10 + 20 + 40) / 3 = 23.333… -> 23.3
        [
            entry("engagement", 10.0, 0.333333, raw=1.9),
            entry("sentiment", 20.0, 0.333333, raw=-0.3),
            entry("renewal_proximity", 40.0, 0.333333, raw=90.0),
            entry("usage_trend", None, 0.0, metric="active_users"),
        ],
        model=model,
    )
    snapshot(
        account,
        AFTER,
        "58.3",  # (80 + 40 + 55) / 3 = 58.333… -> 58.3
        [
            entry("engagement", 80.0, 0.333333, raw=1.2),
            entry("sentiment", None, 0.0),
            entry("renewal_proximity", 40.0, 0.333333, raw=90.0),
            entry("usage_trend", 55.0, 0.333333, raw=0.82, metric="active_users"),
        ],
        model=model,
    )

    change = health_change(account=account, first=BEFORE, second=AFTER)

    assert change.complete
    assert change.before.date == BEFORE
    assert change.after.date == AFTER
    assert change.difference == Decimal("35.0")
    assert not change.model_changed
    lines = lines_by_kind(change)
    # score x weight to 0.01: 10 x 0.333333 = 3.33333 -> 3.33; 80 x 0.333333 = 26.66664 -> 26.67
    assert lines["engagement"].before_contribution == Decimal("3.33")
    assert lines["engagement"].after_contribution == Decimal("26.67")
    assert lines["engagement"].change == Decimal("23.34")
    assert lines["engagement"].data_change == ""
    assert lines["engagement"].label == "Engagement (days since touch / cadence)"
    assert lines["engagement"].before.raw == Decimal("1.9")
    # 20 x 0.333333 = 6.66666 -> 6.67; no data after
    assert lines["sentiment"].before_contribution == Decimal("6.67")
    assert lines["sentiment"].after_contribution == Decimal("0.00")
    assert lines["sentiment"].change == Decimal("-6.67")
    assert lines["sentiment"].data_change == "lost"
    # 40 x 0.333333 = 13.33332 -> 13.33 on both sides
    assert lines["renewal_proximity"].change == Decimal("0.00")
    # no data before; 55 x 0.333333 = 18.333315 -> 18.33
    assert lines["usage_trend"].before_contribution == Decimal("0.00")
    assert lines["usage_trend"].after_contribution == Decimal("18.33")
    assert lines["usage_trend"].data_change == "gained"
    assert lines["usage_trend"].metric == "active_users"
    # before: 3.33 + 6.67 + 13.33 = 23.33 -> rounding 23.3 - 23.33 = -0.03
    # after: 26.67 + 13.33 + 18.33 = 58.33 -> rounding 58.3 - 58.33 = -0.03
    assert lines["rounding"].before_contribution == Decimal("-0.03")
    assert lines["rounding"].after_contribution == Decimal("-0.03")
    assert lines["rounding"].change == Decimal("0.00")
    assert change.lines[-1].is_rounding
    # 23.34 - 6.67 + 0 + 18.33 + 0 = 35.00
    assert sum(line.change for line in change.lines) == Decimal("35.0")


def test_a_model_version_change_is_named_and_its_components_gain_and_lose_data(account, model):
    default = factories.active_health_model()
    snapshot(
        account,
        BEFORE,
        "62.5",  # 50 x 0.5 + 75 x 0.5 = 62.5
        [
            entry("engagement", 50.0, 0.5),
            entry("usage_level", 75.0, 0.5, metric="active_users"),
        ],
        model=default,
    )
    snapshot(
        account,
        AFTER,
        "67.7",  # 60 x 0.6 + 79.25 x 0.4 = 36 + 31.7 = 67.7
        [
            entry("engagement", 60.0, 0.6),
            entry("plan_progress", 79.3, 0.4),  # stored to 0.1: 79.25 -> 79.3
        ],
        model=model,
        band="yellow",
    )

    change = health_change(account=account, first=BEFORE, second=AFTER)

    assert change.model_changed
    assert change.before.model_name == "Default v1"
    assert change.after.model_name == "Test model v101"
    lines = lines_by_kind(change)
    assert [line.kind for line in change.lines] == ["engagement", "plan_progress", "usage_level", "rounding"]
    assert lines["engagement"].change == Decimal("11.00")  # 50 x 0.5 = 25.00 -> 60 x 0.6 = 36.00
    assert lines["plan_progress"].before is None  # not in the old model
    assert lines["plan_progress"].after_contribution == Decimal("31.72")  # 79.3 x 0.4
    assert lines["plan_progress"].data_change == "gained"
    assert lines["usage_level"].after is None  # not in the new model
    assert lines["usage_level"].change == Decimal("-37.50")
    assert lines["usage_level"].data_change == "lost"
    # before: 25.00 + 37.50 = 62.50 -> rounding 0.00; after: 36.00 + 31.72 = 67.72 -> rounding -0.02
    assert lines["rounding"].before_contribution == Decimal("0.00")
    assert lines["rounding"].after_contribution == Decimal("-0.02")
    # 11.00 + 31.72 - 37.50 - 0.02 = 5.20 = 67.7 - 62.5
    assert change.difference == Decimal("5.2")
    assert sum(line.change for line in change.lines) == Decimal("5.2")


def test_reads_the_latest_snapshot_before_each_date_and_takes_the_dates_in_order(account, model):
    snapshot(account, D(2026, 4, 20), "40.0", [entry("engagement", 40.0, 1.0)], model=model)
    snapshot(account, D(2026, 5, 20), "70.0", [entry("engagement", 70.0, 1.0)], model=model, band="green")
    snapshot(account, D(2026, 6, 20), "90.0", [entry("engagement", 90.0, 1.0)], model=model, band="green")

    change = health_change(account=account, first=AFTER, second=BEFORE)  # given the wrong way round

    assert (change.first, change.second) == (BEFORE, AFTER)
    assert change.before.date == D(2026, 4, 20)
    assert change.after.date == D(2026, 5, 20)
    assert change.difference == Decimal("30.0")
    assert lines_by_kind(change)["engagement"].change == Decimal("30.00")


def test_a_side_without_a_snapshot_has_no_data_rather_than_a_guess(account, model):
    snapshot(account, AFTER, "70.0", [entry("engagement", 70.0, 1.0)], model=model, band="green")

    change = health_change(account=account, first=BEFORE, second=AFTER)

    assert change.before is None
    assert not change.complete
    assert change.difference is None
    assert not change.model_changed
    engagement = lines_by_kind(change)["engagement"]
    assert engagement.before_contribution is None
    assert engagement.after_contribution == Decimal("70.00")
    assert engagement.change is None
    assert engagement.data_change == ""
    assert lines_by_kind(change)["rounding"].after_contribution == Decimal("0.00")


def test_no_snapshot_at_all(account):
    change = health_change(account=account, first=BEFORE, second=AFTER)

    assert change.before is None
    assert change.after is None
    assert change.lines == []
    assert change.difference is None


def test_the_split_of_two_recomputed_days_worked_out_by_hand():
    health_model_publish(
        name="Engagement and renewal",
        components=[
            {"kind": "engagement", "weight": Decimal(20), "bad": Decimal(2), "good": Decimal(1)},
            {"kind": "renewal_proximity", "weight": Decimal(10), "bad": Decimal(30), "good": Decimal(180)},
        ],
    )
    tier = factories.TierFactory(touch_cadence_days=30)
    account = factories.AccountFactory(tier=tier, renewal_date=D(2026, 8, 29), customer_since=D(2025, 1, 1))
    factories.SubscriptionFactory(account=account, start_date=D(2025, 1, 1))
    factories.TouchFactory(account=account, occurred_at=datetime.datetime(2026, 4, 16, 12, tzinfo=datetime.UTC))
    health_recompute(on=BEFORE)
    health_recompute(on=AFTER)

    change = health_change(account=account, first=BEFORE, second=AFTER)

    # Weights 20 and 10 of 30: stored 0.666667 and 0.333333.
    # 1 May: touch 15 days ago / 30 = 0.5 -> engagement 100; renewal in 120 days -> (120-30)/150 = 60.
    #   score 100 x 2/3 + 60 x 1/3 = 86.666… -> 86.7; contributions 66.67 + 20.00 = 86.67; rounding 0.03
    # 31 May: 45 days / 30 = 1.5 -> engagement 50; renewal in 90 days -> (90-30)/150 = 40.
    #   score 50 x 2/3 + 40 x 1/3 = 46.666… -> 46.7; contributions 33.33 + 13.33 = 46.66; rounding 0.04
    assert change.before.score == Decimal("86.7")
    assert change.after.score == Decimal("46.7")
    lines = lines_by_kind(change)
    assert lines["engagement"].before_contribution == Decimal("66.67")
    assert lines["engagement"].after_contribution == Decimal("33.33")
    assert lines["renewal_proximity"].before_contribution == Decimal("20.00")
    assert lines["renewal_proximity"].after_contribution == Decimal("13.33")
    assert lines["rounding"].before_contribution == Decimal("0.03")
    assert lines["rounding"].after_contribution == Decimal("0.04")
    # -33.34 - 6.67 + 0.01 = -40.00
    assert [line.change for line in change.lines] == [Decimal("-33.34"), Decimal("-6.67"), Decimal("0.01")]
    assert change.difference == Decimal("-40.0")


def test_history_and_band_changes(account, model):
    snapshot(account, D(2026, 5, 1), "35.0", [], model=model, band="red")
    snapshot(account, D(2026, 5, 2), "38.0", [], model=model, band="red")
    snapshot(account, D(2026, 5, 3), "45.0", [], model=model, band="yellow")
    snapshot(account, D(2026, 5, 4), "72.0", [], model=model, band="green")
    snapshot(account, D(2026, 5, 5), "71.0", [], model=model, band="green")
    snapshot(account, D(2026, 5, 6), "69.0", [], model=model, band="yellow")

    points = health_history(account=account, since=D(2026, 5, 2), until=D(2026, 5, 6))

    assert [p.date.day for p in points] == [2, 3, 4, 5, 6]
    changes = band_changes(points)
    assert [(c.date.day, c.previous, c.band, c.score) for c in changes] == [
        (3, "red", "yellow", Decimal("45.0")),
        (4, "yellow", "green", Decimal("72.0")),
        (6, "green", "yellow", Decimal("69.0")),
    ]
