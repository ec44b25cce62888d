"""The one error type of the domain layer."""

import datetime
import math
from decimal import Decimal
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext as _

M = TypeVar("M", bound=models.Model)


class DomainError(ValidationError):
    """A change a service refuses, with a translated message (or messages per field) a user can act on.

    Services raise only this. It is a ValidationError, so model forms and the admin show it beside the
    fields it names; the API's exception handler turns it into a 400 body.
    """


def unstorable_values(instance: models.Model) -> dict[str, list[str]]:
    """Field values no database stores, which model validation lets through to fail at the database: text
    with NUL characters (PostgreSQL refuses them) or lone surrogates (not UTF-8), infinite or NaN numbers,
    and moments outside the years 1-9999 once in UTC."""
    errors: dict[str, list[str]] = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname, None)
        problem = None
        if isinstance(value, str):
            if "\x00" in value:
                problem = _("Null characters are not allowed.")
            elif not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    problem = _("The text is not valid Unicode.")
        elif (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, Decimal) and not value.is_finite()
        ):
            problem = _("A finite number is required.")
        elif isinstance(value, datetime.datetime) and value.tzinfo is not None:
            try:
                value.astimezone(datetime.UTC)
            except OverflowError:
                problem = _("The date and time is out of range.")
        if problem:
            errors[field.name] = [problem]
    return errors


def full_clean(instance: M, **kwargs) -> M:
    """`instance.full_clean()`, its errors raised as a DomainError."""
    unstorable = unstorable_values(instance)
    if unstorable:
        raise DomainError(unstorable)
    try:
        instance.full_clean(**kwargs)
    except DomainError:
        raise
    except ValidationError as error:
        raise DomainError(error.error_dict if hasattr(error, "error_dict") else error.error_list) from None
    return instance
