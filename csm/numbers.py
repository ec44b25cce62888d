"""Numbers from users and partners, checked against what every supported database reads back."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _

from csm.exceptions import DomainError

# SQLite keeps decimals as 8-byte floats and Django reads them back to 15 significant digits; PostgreSQL
# keeps numeric exactly. A value just under a column's limit (99999999999999.9999 in 18 digits, 4 after
# the point) would read back from SQLite as the limit itself, which no longer fits, and break every page
# listing it. The largest value allowed is the largest one with 15 significant digits below the limit, on
# every database, so a value is accepted or refused alike everywhere.
EXACT_DIGITS = 15


def decimal_bound(*, max_digits: int, decimal_places: int) -> Decimal:
    """The largest magnitude `clean_decimal` accepts for such a column (99999999999999.9 for 18, 4)."""
    whole_digits = max_digits - decimal_places
    step = Decimal(10) ** max(whole_digits - EXACT_DIGITS, -decimal_places)
    return Decimal(10) ** whole_digits - step


def clean_decimal(value: Any, *, max_digits: int, decimal_places: int) -> Decimal:
    """`value` rounded half away from zero (as PostgreSQL rounds) to `decimal_places`.

    DomainError unless it is a finite number within ±`decimal_bound(...)` once rounded.
    """
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise DomainError(_("a finite number is required.")) from None
    if not number.is_finite():
        raise DomainError(_("a finite number is required."))
    bound = decimal_bound(max_digits=max_digits, decimal_places=decimal_places)
    # A magnitude check first: rounding a huge number to the places would need more digits than Decimal has.
    rounded = None
    if number.adjusted() < max_digits - decimal_places:
        rounded = number.quantize(Decimal(1).scaleb(-decimal_places), rounding=ROUND_HALF_UP)
    if rounded is None or abs(rounded) > bound:
        raise DomainError(
            _("%(value)s is out of range; rounded to %(places)d places, it must lie between %(low)s and %(high)s.")
            % {"value": value, "places": decimal_places, "low": -bound, "high": bound}
        )
    return rounded
