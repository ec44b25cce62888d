"""Money and shares as users read them, formatted by the active locale."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.utils.formats import number_format

# Spreadsheets run a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """An exported cell a spreadsheet will not run: text starting with =, +, -, @, tab or CR gets a leading
    single quote (as OWASP advises). Numbers are not text: -5 stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


def _rounded(value: Decimal | float | int, decimal_pos: int) -> Decimal:
    # number_format cuts extra decimals off; a figure shown to users is rounded (half up) first.
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-decimal_pos), rounding=ROUND_HALF_UP)


def money(value: Decimal | None, decimal_pos: int = 2) -> str:
    """An amount in the deployment currency, grouped and formatted by the active locale; "-" when empty."""
    if value is None:
        return "-"
    amount = number_format(_rounded(value, decimal_pos), decimal_pos=decimal_pos, force_grouping=True)
    return f"{settings.CSM_CURRENCY} {amount}"


def percent(value: Decimal | float | None, decimal_pos: int = 0) -> str:
    """A fraction (1 = 100 %) as a percentage; "-" when it cannot be computed."""
    if value is None:
        return "-"
    return f"{number_format(_rounded(Decimal(str(value)) * 100, decimal_pos), decimal_pos=decimal_pos)} %"
