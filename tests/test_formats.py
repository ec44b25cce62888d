"""Money and percentages are rounded, not cut, and grouped by locale."""

from decimal import Decimal

from django.test import override_settings
from django.utils import translation

from csm.formats import money, percent


@override_settings(CSM_CURRENCY="USD")
def test_money_rounds_half_up_and_groups():
    with translation.override("en"):
        assert money(Decimal("1234567.125")) == "USD 1,234,567.13"
        assert money(Decimal("1234.994"), 0) == "USD 1,235"
        assert money(None) == "-"


def test_percent_rounds_half_up():
    with translation.override("en"):
        assert percent(Decimal("0.84375"), 1) == "84.4 %"
        assert percent(Decimal("0.845")) == "85 %"
        assert percent(None) == "-"
