"""Money and shares as users read them, formatted by the active locale."""

from decimal import Decimal

from django.conf import settings
from django.utils.formats import number_format


def money(value: Decimal | None, decimal_pos: int = 2) -> str:
    """An amount in the deployment currency, grouped and formatted by the active locale; "-" when empty."""
    if value is None:
        return "-"
    return f"{settings.CSM_CURRENCY} {number_format(value, decimal_pos=decimal_pos, force_grouping=True)}"


def percent(value: Decimal | float | None, decimal_pos: int = 0) -> str:
    """A fraction (1 = 100 %) as a percentage; "-" when it cannot be computed."""
    if value is None:
        return "-"
    return f"{number_format(Decimal(str(value)) * 100, decimal_pos=decimal_pos)} %"
