"""Snapshots store per component only [raw, score, weight] (or null without data), in the order of their
model version's components (order, id); readers take labels from the version. Values worked out by hand."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from metrics.models import HealthModel, HealthSnapshot
from metrics.selectors.health import latest_health, snapshot_components, snapshots_entries
from tests import factories

D = datetime.date
BEFORE_0010 = ("metrics", "0009_csm_without_partner_view")
LATEST = ("metrics", "0010_compact_snapshot_components")


def explained(snapshot: HealthSnapshot) -> dict[str, dict]:
    """A snapshot's stored entries by kind, read against its version's components in (order, id) order."""
    kinds = snapshot.model_version.components.order_by("order", "pk").values_list("kind", flat=True)
    return {
        kind: dict(zip(("raw", "score", "weight"), entry if entry is not None else (None, None, 0.0), strict=True))
        for kind, entry in zip(kinds, snapshot.components, strict=True)
    }


def two_component_model(version: int, first_order: int = 0) -> HealthModel:
    """Engagement then usage level (active_users / seats_licensed), unless `first_order` puts it after."""
    model = factories.HealthModelFactory(version=version)
    factories.HealthComponentFactory(model=model, kind="engagement", order=first_order)
    factories.HealthComponentFactory(
        model=model, kind="usage_level", metric="active_users", per_metric="seats_licensed", order=1, bad=0, good=1
    )
    return model


@pytest.mark.django_db
class TestReading:
    def test_entries_take_kind_and_metrics_from_the_version_in_component_order(self):
        # The usage level component is created second but ordered first (order 0 before engagement's 2).
        model = two_component_model(101, first_order=2)
        snapshot = factories.HealthSnapshotFactory(model_version=model, components=[[0.5, 50.0, 1.0], None])
        assert snapshots_entries([snapshot, None]) == [
            [
                {
                    "kind": "usage_level",
                    "metric": "active_users",
                    "per_metric": "seats_licensed",
                    "raw": 0.5,
                    "score": 50.0,
                    "weight": 1.0,
                },
                {"kind": "engagement", "metric": "", "per_metric": "", "raw": None, "score": None, "weight": 0.0},
            ],
            [],
        ]
        rows = snapshot_components(snapshot)
        assert [(r["label"], r["contribution"], r["has_data"]) for r in rows] == [
            ("Usage level", Decimal("50.00"), True),  # 50 x 1.0
            ("Engagement (days since touch / cadence)", Decimal("0.00"), False),
        ]

    def test_entries_that_do_not_line_up_with_the_version_are_left_out(self):
        model = two_component_model(102)
        # Three entries for two components, and one of the wrong shape: only the first lines up.
        snapshot = factories.HealthSnapshotFactory(
            model_version=model, components=[[1.0, 80.0, 1.0], [1, 2], [3, 4, 5]]
        )
        assert snapshots_entries([snapshot]) == [
            [{"kind": "engagement", "metric": "", "per_metric": "", "raw": 1.0, "score": 80.0, "weight": 1.0}]
        ]

    def test_many_snapshots_of_two_versions_read_the_components_once(self, django_assert_num_queries):
        old, new = two_component_model(101), two_component_model(102)
        account = factories.AccountFactory()
        for k in range(6):
            factories.HealthSnapshotFactory(
                account=account,
                date=D(2026, 5, 1) + datetime.timedelta(days=k),
                model_version=old if k < 3 else new,
                components=[[float(k), 10.0 * k, 0.5], [0.25, 25.0, 0.5]],
            )
        snapshots = list(HealthSnapshot.objects.filter(account=account).order_by("date"))
        with django_assert_num_queries(1):
            entries = snapshots_entries(snapshots)
        assert [[(e["kind"], e["raw"], e["score"]) for e in row] for row in entries] == [
            [("engagement", float(k), 10.0 * k), ("usage_level", 0.25, 25.0)] for k in range(6)
        ]

    def test_latest_health_and_its_change_read_the_versions_once(self, django_assert_num_queries):
        old, new = two_component_model(101), two_component_model(102)
        account = factories.AccountFactory()
        factories.HealthSnapshotFactory(
            account=account,
            date=D(2026, 5, 1),
            model_version=old,
            score=Decimal(40),
            components=[[1.6, 40.0, 1.0], None],
        )
        factories.HealthSnapshotFactory(
            account=account,
            date=D(2026, 5, 31),
            model_version=new,
            score=Decimal(70),
            components=[[1.1, 90.0, 0.5], [0.5, 50.0, 0.5]],
        )
        # The latest snapshot, the two compared (on or before each date), the versions' components.
        with django_assert_num_queries(4):
            snapshot, rows, change = latest_health(account=account, change=(D(2026, 5, 31), D(2026, 5, 10)))
        assert snapshot.date == D(2026, 5, 31)
        assert [(r["kind"], r["contribution"]) for r in rows] == [
            ("engagement", Decimal("45.00")),  # 90 x 0.5
            ("usage_level", Decimal("25.00")),  # 50 x 0.5
        ]
        lines = {line.kind: line for line in change.lines}
        assert (lines["engagement"].before_contribution, lines["engagement"].after_contribution) == (
            Decimal("40.00"),
            Decimal("45.00"),
        )
        assert lines["usage_level"].data_change == "gained"
        assert change.difference == Decimal(30)


@pytest.mark.django_db
def test_the_admin_shows_compact_components_with_their_kinds(admin_client):
    model = two_component_model(101)
    snapshot = factories.HealthSnapshotFactory(model_version=model, components=[[0.5, 100.0, 1.0], None])
    page = admin_client.get(f"/admin/metrics/healthsnapshot/{snapshot.pk}/change/").content.decode()
    assert "<td>Engagement (days since touch / cadence)</td><td>0.5</td><td>100.0</td><td>1.0</td>" in page
    assert "<td>Usage level</td><td>-</td><td>-</td><td>0.0</td>" in page


@pytest.mark.django_db
def test_a_recompute_stores_one_compact_entry_per_component():
    from metrics.services.health import health_model_publish, health_recompute

    model = health_model_publish(
        components=[
            {"kind": "sentiment", "weight": Decimal(1), "bad": Decimal(-1), "good": Decimal(1), "order": 0},
            {"kind": "plan_progress", "weight": Decimal(3), "bad": Decimal(0), "good": Decimal(1), "order": 1},
        ]
    )
    account = factories.AccountFactory(customer_since=D(2026, 1, 1))
    factories.SubscriptionFactory(account=account, start_date=D(2026, 1, 1))
    factories.TouchFactory(
        account=account, occurred_at=datetime.datetime(2026, 5, 20, 12, tzinfo=datetime.UTC), sentiment=0
    )
    assert health_recompute(on=D(2026, 6, 1), account_ids=[account.pk]) == 1
    snapshot = HealthSnapshot.objects.get(account=account)
    # Sentiment 0 on -1..1 -> 50; no plan: no data, so sentiment carries the whole weight.
    assert (snapshot.model_version_id, snapshot.components, snapshot.score) == (
        model.pk,
        [[0.0, 50.0, 1.0], None],
        Decimal(50),
    )


def _migrate(target: tuple[str, str] | None) -> None:
    """Migrate to `target`; None: every app's latest migration, as later tests expect the schema."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target] if target is not None else executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_compacts_snapshots_and_back():
    model = two_component_model(101)
    account = factories.AccountFactory()
    old_form = [
        {"kind": "engagement", "metric": "", "per_metric": "", "raw": 1.25, "score": 75.0, "weight": 1.0},
        {
            "kind": "usage_level",
            "metric": "active_users",
            "per_metric": "seats_licensed",
            "raw": None,
            "score": None,
            "weight": 0.0,
        },
    ]
    unmatched = [{"kind": "sentiment", "raw": 0.5, "score": 75.0, "weight": 1.0}]  # not the version's components
    _migrate(BEFORE_0010)
    try:
        kept, odd = (
            HealthSnapshot.objects.create(
                account=account, date=day, score=Decimal(75), band="green", model_version=model, components=stored
            )
            for day, stored in ((D(2026, 5, 1), old_form), (D(2026, 5, 2), unmatched))
        )
        _migrate(LATEST)
        kept.refresh_from_db()
        odd.refresh_from_db()
        assert kept.components == [[1.25, 75.0, 1.0], None]
        assert odd.components == unmatched
        assert snapshot_components(kept)[0]["kind"] == "engagement"

        _migrate(BEFORE_0010)
        kept.refresh_from_db()
        odd.refresh_from_db()
        assert (kept.components, odd.components) == (old_form, unmatched)
    finally:
        _migrate(None)
