"""The one error type of the domain layer."""

from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import models

M = TypeVar("M", bound=models.Model)


class DomainError(ValidationError):
    """A change a service refuses, with a translated message (or messages per field) a user can act on.

    Services raise only this. It is a ValidationError, so model forms and the admin show it beside the
    fields it names; the API's exception handler turns it into a 400 body.
    """


def full_clean(instance: M, **kwargs) -> M:
    """`instance.full_clean()`, its errors raised as a DomainError."""
    try:
        instance.full_clean(**kwargs)
    except DomainError:
        raise
    except ValidationError as error:
        raise DomainError(error.error_dict if hasattr(error, "error_dict") else error.error_list) from None
    return instance
