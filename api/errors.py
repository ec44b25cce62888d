"""One error shape for every API response that is not a success:

    {"error": {"code": "invalid", "message": "…", "fields": {"name": ["…"]}}}
    {"error": {"code": "invalid", "message": "…", "items": [{"index": 3, "code": "invalid", "fields": {…}}]}}

`fields` appears with field errors, `items` with a bulk request's per-item errors. Codes: invalid,
parse_error, not_authenticated, authentication_failed, permission_denied, not_found, method_not_allowed,
not_acceptable, conflict, deleted, payload_too_large, unsupported_media_type, idempotency_mismatch,
throttled, server_error.
"""

import logging

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, IntegrityError
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = gettext_lazy("The request conflicts with the current state of the object.")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = gettext_lazy("The request is too large.")


class IdempotencyMismatch(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_mismatch"
    default_detail = gettext_lazy("This Idempotency-Key was used with another request.")


class BatchError(exceptions.APIException):
    """Items of a bulk request that cannot be written: `items` is a list of per-item error dicts."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, items: list[dict], message: str) -> None:
        super().__init__(message)
        self.items = items


class ItemError(exceptions.APIException):
    """One object that cannot be written, with its status (400, 404 or 409), code and field errors."""

    def __init__(self, *, status_code: int, code: str, message: str, fields: dict | None = None) -> None:
        super().__init__(message, code)
        self.status_code = status_code
        self.code = code
        self.fields = fields or {}


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": str(message), **{k: v for k, v in extra.items() if v is not None}}}


def field_messages(detail) -> dict[str, list[str]]:
    """DRF or Django validation details as {field: [messages]}; nested paths are joined with dots."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                name = "non_field_errors" if key in (NON_FIELD_ERRORS, "non_field_errors") else str(key)
                walk(f"{prefix}.{name}" if prefix else name, inner)
        elif isinstance(value, list | tuple):
            if all(not isinstance(v, dict | list | tuple) for v in value):
                out.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in value)
            else:
                for position, inner in enumerate(value):
                    walk(f"{prefix}[{position}]", inner)
        else:
            out.setdefault(prefix or "non_field_errors", []).append(str(value))

    walk("", detail)
    return out


def domain_fields(error: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(error, "error_dict"):
        return field_messages({name: [str(m) for m in messages] for name, messages in error.message_dict.items()})
    return {"non_field_errors": [str(m) for m in error.messages]}


def _first(fields: dict[str, list[str]]) -> str:
    for name, messages in fields.items():
        if messages:
            return messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
    return _("The request is not valid.")


def exception_handler(exc, context):
    """Every error as the one shape above; database errors and out-of-range values that slip past
    validation are 400/409, never 500."""
    headers = {}
    if isinstance(exc, BatchError):
        return Response(error_body("invalid", exc.detail, items=exc.items), status=exc.status_code)
    if isinstance(exc, ItemError):
        fields = exc.fields or None
        return Response(error_body(exc.code, exc.detail, fields=fields), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        fields = domain_fields(exc)
        return Response(error_body("invalid", _first(fields), fields=fields), status=400)
    if isinstance(exc, OverflowError):
        # A date-time or number from the request beyond what Python or the database can hold (a
        # filter's 9999-12-31T23:59:59-23:00 is past year 9999 in UTC): the input's fault.
        logger.info("API request with a value out of range: %s", exc)
        exc = exceptions.ValidationError({"non_field_errors": [_("A value is out of range.")]})
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, IntegrityError):
        logger.warning("API write refused by a database constraint: %s", exc)
        exc = Conflict(_("The change conflicts with another object (a value that must be unique, or a rule)."))
    elif isinstance(exc, DataError):
        logger.warning("API write refused by the database: %s", exc)
        exc = exceptions.ValidationError({"non_field_errors": [_("A value does not fit its field.")]})
    elif isinstance(exc, DatabaseError):
        return None  # a real fault: let it surface
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    headers = {k: v for k, v in response.headers.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    if isinstance(exc, exceptions.ValidationError):
        fields = field_messages(exc.detail)
        body = error_body("invalid", _first(fields), fields=fields)
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        if isinstance(exc, exceptions.Throttled):
            code = "throttled"
        body = error_body(code, exc.detail if isinstance(exc.detail, str) else _first(field_messages(exc.detail)))
    return Response(body, status=response.status_code, headers=headers)
