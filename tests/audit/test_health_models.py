"""Publishing, activating and retiring health model versions is recorded, components included."""

from decimal import Decimal

import pytest

from audit.context import ActorKind, acting_as
from metrics.models import HealthComponent, HealthModel
from metrics.services.health import health_model_activate, health_model_publish
from tests.audit.conftest import actors, history_of

pytestmark = pytest.mark.django_db

COMPONENTS = [
    {"kind": "engagement", "weight": Decimal(2), "bad": Decimal(2), "good": Decimal(1)},
    {"kind": "renewal_proximity", "weight": Decimal(1), "bad": Decimal(30), "good": Decimal(180)},
]


def test_a_published_version_its_components_and_the_retired_version_are_recorded():
    retired = HealthModel.objects.get(is_active=True)  # the seeded default

    with acting_as(ActorKind.USER, "Priya"):
        model = health_model_publish(components=COMPONENTS, name="Sharper")

    by_priya = ("user", "Priya")
    assert actors(history_of(model)) == [("+", *by_priya)]
    components = HealthComponent.objects.filter(model=model).order_by("order")
    assert [actors(history_of(c)) for c in components] == [[("+", *by_priya)]] * 2
    assert [history_of(c)[0].kind for c in components] == ["engagement", "renewal_proximity"]
    assert [(row.is_active, row.actor_label) for row in history_of(retired)] == [(False, "Priya")]


def test_activating_again_records_both_versions_once():
    with acting_as(ActorKind.USER, "Priya"):
        first = health_model_publish(components=COMPONENTS, name="First")
        second = health_model_publish(components=COMPONENTS, name="Second")
        health_model_activate(model=first)
        health_model_activate(model=first)  # already active: nothing changes, nothing recorded

    assert [row.is_active for row in history_of(first)] == [True, False, True]
    assert [row.is_active for row in history_of(second)] == [True, False]
