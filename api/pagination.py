"""Keyset pagination in (updated_at, id) order, for incremental sync.

The cursor names the last row a page returned; the next page starts strictly after it. A row that
changes during a sync moves to the end (its updated_at grows), so it is seen again, and no unchanged
row is skipped or repeated, however the data changes between pages.
"""

import base64
import datetime
import json
from collections import OrderedDict

from django.db.models import Q
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(updated_at: datetime.datetime, pk: int) -> str:
    raw = json.dumps([updated_at.isoformat(), pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_CURSOR_LENGTH = 200


def decode_cursor(token: str) -> tuple[datetime.datetime, int]:
    try:
        if len(token) > MAX_CURSOR_LENGTH:
            raise ValueError
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        stamp, pk = json.loads(raw)
        when = datetime.datetime.fromisoformat(stamp)
        if when.tzinfo is None or not isinstance(pk, int) or isinstance(pk, bool) or not 0 <= pk < 2**63:
            raise ValueError
        when = when.astimezone(datetime.UTC)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise exceptions.ValidationError(
            {"cursor": [_("This cursor is not valid; start again without one.")]}
        ) from None
    return when, pk


class SyncPagination(BasePagination):
    cursor_query_param = "cursor"
    limit_query_param = "limit"

    def limit(self, request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw in (None, ""):
            return DEFAULT_LIMIT
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_LIMIT):
            raise exceptions.ValidationError({"limit": [_("A whole number from 1 to %(max)s.") % {"max": MAX_LIMIT}]})
        return int(raw)

    # The keyset: a date-time field then the id, ascending (the sync order) or descending.
    ordering_field = "updated_at"
    descending = False

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        limit = self.limit(request)
        field, sign, after = self.ordering_field, "-" if self.descending else "", "lt" if self.descending else "gt"
        queryset = queryset.order_by(f"{sign}{field}", f"{sign}pk")
        token = request.query_params.get(self.cursor_query_param)
        if token:
            when, pk = decode_cursor(token)
            # The redundant bound on the field alone lets an index on (field, id) start at the page rather
            # than at the first row (a row comparison would too, but PostgreSQL misjudges how many rows it keeps).
            queryset = queryset.filter(
                Q(**{f"{field}__{after}e": when}),
                Q(**{f"{field}__{after}": when}) | Q(**{field: when, f"pk__{after}": pk}),
            )
        rows = list(queryset[: limit + 1])
        self.has_next = len(rows) > limit
        rows = rows[:limit]
        if self.has_next:
            last = rows[-1]  # an object, or a dict of values() with the field and "pk"
            self.next_cursor = encode_cursor(
                *(last[field], last["pk"]) if isinstance(last, dict) else (getattr(last, field), last.pk)
            )
        else:
            self.next_cursor = None
        return rows

    def next_link(self) -> str | None:
        if self.next_cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self.next_cursor)

    def get_paginated_response(self, data) -> Response:
        return Response(OrderedDict([("next", self.next_link()), ("next_cursor", self.next_cursor), ("results", data)]))

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["next", "next_cursor", "results"],
            "properties": {
                "next": {"type": "string", "format": "uri", "nullable": True, "description": "The next page."},
                "next_cursor": {"type": "string", "nullable": True, "description": "The cursor of the next page."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The `next_cursor` of the previous page.",
                "schema": {"type": "string"},
            },
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
        ]
