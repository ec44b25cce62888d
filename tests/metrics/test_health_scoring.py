"""Scoring in floats gives exactly the Decimal scores (SPEC 3, metrics/): same score, band and explanation,
or it defers to Decimal when a rounding is too close to call."""

import random
from decimal import Decimal

import pytest

from metrics.models import HealthModel
from metrics.services.health import Inexact, Scorer
from tests import factories

pytestmark = pytest.mark.django_db


def exact_and_fast(scorer: Scorer, raws: list[Decimal | None]):
    exact = scorer.combine(raws)
    fast = scorer.combine_fast([None if raw is None else float(raw) for raw in raws])
    return exact, fast


def assert_same(exact, fast) -> bool:
    """True when floats decided; then every figure is the Decimal one, to the character."""
    if fast is Inexact:
        return False
    if exact is None:
        assert fast is None
        return True
    assert (str(fast.score), fast.band, fast.components) == (str(exact.score), exact.band, exact.components)
    return True


def random_raw(rng: random.Random, kind: str) -> Decimal | None:
    if rng.random() < 0.15:
        return None
    if kind == "usage_trend":
        return Decimal(rng.randrange(0, 4000)) / Decimal(rng.randrange(1, 3000))
    if kind == "usage_level":
        return Decimal(rng.randrange(0, 500)) / Decimal(rng.choice([4, 8, 20, 25, 40, 100, 333]))
    if kind == "engagement":
        return Decimal(rng.randrange(0, 200)) / Decimal(rng.choice([14, 30, 45, 90]))
    if kind == "sentiment":
        count = rng.randrange(1, 12)
        return Decimal(repr(rng.randrange(-count, count + 1) / count))
    if kind == "plan_progress":
        return max(Decimal(rng.randrange(0, 101)) / 100 - Decimal("0.1") * rng.randrange(0, 4), Decimal(0))
    return Decimal(rng.randrange(0, 365))


def test_floats_give_the_decimal_scores_of_the_default_model():
    scorer = Scorer(HealthModel.objects.get(is_active=True))
    rng = random.Random(5)
    decided = 0
    for _ in range(20_000):
        raws = [random_raw(rng, c.kind) for c in scorer.components]
        decided += assert_same(*exact_and_fast(scorer, raws))
    assert decided > 19_000  # floats decide nearly always


@pytest.mark.parametrize(
    "raws",
    [
        # Raw values on the thresholds (an inverted one: engagement's bad is 2), at rounding ties of the
        # shown raw (half a millionth) and of the shown score (a twentieth of a point), and no data at all.
        ["0.6", "0.2", "2", "-0.5", "0.2", "30"],
        ["1.0", "0.8", "1", "0.5", "0.8", "180"],
        ["0.7000005", "0.4999995", "1.5", "0", None, None],
        ["0.0000004", "-0.0000004", None, None, None, None],
        ["0.61875", "0.20375", "1.99875", "-0.49875", "0.20375", "30.1875"],
        [None, None, None, None, None, None],
    ],
)
def test_edges_are_the_decimal_scores(raws):
    scorer = Scorer(HealthModel.objects.get(is_active=True))
    assert_same(*exact_and_fast(scorer, [None if raw is None else Decimal(raw) for raw in raws]))


def test_an_inverted_component_at_its_bad_threshold_shows_the_decimal_zero():
    model = factories.HealthModelFactory()
    factories.HealthComponentFactory(model=model, kind="engagement", weight=1, bad=2, good=1)
    scorer = Scorer(model)
    exact, fast = exact_and_fast(scorer, [Decimal(2)])
    assert fast is Inexact  # Decimal's zero is negative here
    assert exact.components == "[[2.0, -0.0, 1.0]]"  # [raw, score, weight]
