"""Numbers from users and partners, checked against what the database keeps exactly."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _

from csm.exceptions import DomainError

# SQLite keeps decimals as 8-byte floats and Django reads them back to 15 significant digits; PostgreSQL
# keeps numeric exactly. Holding every value to 15 digits makes both keep it exactly and refuse alike.
EXACT_DIGITS = 15


def clean_decimal(value: Any, *, max_digits: int, decimal_places: int) -> Decimal:
    """`value` rounded (half up) to `decimal_places`; DomainError unless it is a finite number that fits a
    DecimalField(max_digits, decimal_places) on every supported database after rounding."""
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise DomainError(_("Enter a number.")) from None
    if not number.is_finite():
        raise DomainError(_("Enter a number."))
    digits = min(max_digits, EXACT_DIGITS)
    limit = Decimal(10) ** (digits - decimal_places)
    rounded = number.quantize(Decimal(1).scaleb(-decimal_places), rounding=ROUND_HALF_UP)
    if abs(rounded) >= limit:
        raise DomainError(
            _("Enter a number between -%(limit)s and %(limit)s (exclusive).")
            % {"limit": number_format(limit, force_grouping=True)}
        )
    return rounded
