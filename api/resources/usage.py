"""usage/: daily product usage pushed by partners, one value per (account, metric, day).

A POST sends a list of records; each is upserted on (account, metric, date), so re-sending a day
replaces it. Every batch costs the same queries whatever its size: the accounts are resolved with one
query (within the caller's scope: another partner's account is unknown), whether each record creates
or replaces a day is read with one query, and `usage_records_upsert` writes the batch set-based.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

import django_filters
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view, inline_serializer
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Account
from csm.db import any_of
from csm.exceptions import DomainError
from csm.numbers import clean_decimal
from metrics.models import UsageRecord
from metrics.services.usage import VALUE, usage_records_upsert

from ..engine import EXTERNAL_ID_LENGTH, ApiView, Output, Reference, parse_flag, parse_since
from ..errors import BatchError, PayloadTooLarge, field_messages
from ..idempotency import idempotent
from ..pagination import SyncPagination
from ..schema import ALL_OR_NONE, IDEMPOTENCY_KEY, READ_ERRORS, SYNC_PARAMETERS, errors

USAGE_BULK_LIMIT = 10_000
PLAIN_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")  # a metric the input serializer takes as it is
USAGE_WRITE_ERRORS = (400, 401, 403, 413, 415, 422, 429)


@extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string"}], "example": "42.5"})
class UsageValueField(serializers.Field):
    """A number (JSON number or string), rounded half away from zero to 4 places; it must fit the column
    on every database (see `csm.numbers.clean_decimal`)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            raise serializers.ValidationError(_("A number is required."))
        try:
            return clean_decimal(data, **VALUE)
        except DomainError as error:
            raise serializers.ValidationError(error.messages) from None

    def to_representation(self, value):
        return f"{value:f}"


class UsageInputSerializer(serializers.Serializer):
    account = Reference(model=Account, help_text="The account's external id.")
    metric = serializers.SlugField(max_length=50, help_text="e.g. active_users, api_calls, logins, seats_licensed.")
    date = serializers.DateField(help_text="The day the value is for (YYYY-MM-DD).")
    value = UsageValueField(help_text="The day's value; kept to 4 decimal places.")


class UsageRecordSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.external_id", read_only=True, allow_null=True)
    value = serializers.DecimalField(max_digits=18, decimal_places=4, read_only=True)

    class Meta:
        model = UsageRecord
        fields = ["id", "account", "metric", "date", "value", "created_at", "updated_at"]
        read_only_fields = fields


USAGE_RESULT = inline_serializer(
    "UsageBatchResult",
    {
        "results": inline_serializer(
            "UsageItemResult",
            {
                "index": serializers.IntegerField(help_text="The item's position in the request, from 0."),
                "status": serializers.ChoiceField(choices=["created", "updated", "error"]),
                "account": serializers.CharField(required=False),
                "metric": serializers.CharField(required=False),
                "date": serializers.DateField(required=False),
                "error": inline_serializer(
                    "UsageItemError",
                    {
                        "code": serializers.CharField(),
                        "message": serializers.CharField(),
                        "fields": serializers.DictField(
                            child=serializers.ListField(child=serializers.CharField()), required=False
                        ),
                    },
                    required=False,
                ),
            },
            many=True,
        )
    },
)


class UsageFilterSet(django_filters.FilterSet):
    account = django_filters.CharFilter(field_name="account__external_id", help_text="An account's external id.")
    metric = django_filters.CharFilter(field_name="metric")
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte", help_text="Days on or after.")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte", help_text="Days on or before.")

    class Meta:
        model = UsageRecord
        fields: list[str] = []


def plain_item(item: dict) -> dict | None:
    """The item's validated data when it is plainly valid, exactly as `UsageInputSerializer` returns it
    (an account key, a slug without surrounding blanks, an ISO date, a number within the column), else
    None: the serializer then judges the item. A batch of 10,000 items is mostly plain, and this check
    costs a small part of the serializer's per-field machinery."""
    account, metric, day, value = item.get("account"), item.get("metric"), item.get("date"), item.get("value")
    if not (
        type(account) is str
        and len(account) <= EXTERNAL_ID_LENGTH
        and account.strip()
        and "\x00" not in account
        and type(metric) is str
        and PLAIN_SLUG.fullmatch(metric)
        and type(day) is str
        and type(value) in (int, float, str)
    ):
        return None
    try:
        return {
            "account": account,
            "metric": metric,
            "date": datetime.date.fromisoformat(day),
            "value": clean_decimal(value, **VALUE),
        }
    except (ValueError, DomainError):
        return None


@dataclass
class UsageRow:
    """One item of a usage POST: its validated data, and what went wrong or what writing it did."""

    index: int
    data: dict = field(default_factory=dict)
    error: dict | None = None
    account_id: int | None = None
    created: bool = False

    def fail(self, message: str, fields: dict | None = None) -> None:
        self.error = {"code": "invalid", "message": str(message), **({"fields": fields} if fields else {})}

    @property
    def key(self) -> tuple[int | None, str, datetime.date]:
        return self.account_id, self.data.get("metric", ""), self.data.get("date")

    def outcome(self) -> dict:
        if self.error is not None:
            return {"index": self.index, "status": "error", "error": self.error}
        return {
            "index": self.index,
            "status": "created" if self.created else "updated",
            "account": self.data["account"],
            "metric": self.data["metric"],
            "date": self.data["date"].isoformat(),
        }


def _first_message(fields: dict[str, list[str]]) -> str:
    for name, messages in fields.items():
        if messages:
            return messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
    return _("The item is not valid.")


@extend_schema_view(
    list=extend_schema(
        summary="List usage records changed since a time, oldest change first",
        parameters=SYNC_PARAMETERS,
        responses={200: UsageRecordSerializer(many=True), **errors(*READ_ERRORS)},
    ),
    create=extend_schema(
        summary="Upsert up to 10,000 usage records, all or none",
        description="Each record replaces the account's value of that metric on that day. Any invalid item "
        "(an unknown account, a bad value) fails the request with its index in `items`; nothing is written.",
        request=UsageInputSerializer(many=True),
        parameters=[IDEMPOTENCY_KEY],
        responses={200: USAGE_RESULT, **errors(*USAGE_WRITE_ERRORS)},
    ),
    bulk=extend_schema(
        summary="Upsert up to 10,000 usage records, reporting each item's outcome",
        description="As POST usage/; with all_or_none=false the valid items are written and each item "
        "reports created, updated or its error.",
        request=UsageInputSerializer(many=True),
        parameters=[ALL_OR_NONE, IDEMPOTENCY_KEY],
        responses={200: USAGE_RESULT, **errors(*USAGE_WRITE_ERRORS)},
    ),
)
class UsageViewSet(ApiView, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = UsageRecordSerializer
    pagination_class = SyncPagination
    filterset_class = UsageFilterSet
    queryset = UsageRecord.objects.none()  # the schema's model; requests use get_queryset

    def get_queryset(self):
        visible = Account.objects.visible_to(self.viewer).values("pk")
        return UsageRecord.objects.filter(account__in=visible).select_related("account")

    def filter_queryset(self, queryset):
        if self.action == "list":
            parse_flag(self.request.query_params, "include_deleted", False)  # usage has no tombstones
            since = parse_since(self.request.query_params)
            if since is not None:
                queryset = queryset.filter(updated_at__gte=since)
        return super().filter_queryset(queryset)

    def get_serializer_class(self):
        return UsageInputSerializer if self.action in ("create", "bulk") else UsageRecordSerializer

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        render = Output(UsageRecordSerializer())
        return self.get_paginated_response([render(obj) for obj in page])

    def create(self, request, *args, **kwargs):
        return idempotent(self, request, lambda: self.write_response(request, all_or_none=True))

    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request, *args, **kwargs):
        return idempotent(
            self,
            request,
            lambda: self.write_response(request, all_or_none=parse_flag(request.query_params, "all_or_none", True)),
        )

    # -- writing

    def write_response(self, request, *, all_or_none: bool) -> Response:
        items = request.data
        if not isinstance(items, list):
            raise exceptions.ValidationError({"non_field_errors": [_("A JSON array of objects is required.")]})
        if len(items) > USAGE_BULK_LIMIT:
            raise PayloadTooLarge(
                _("At most %(limit)s items per request; this one has %(count)s.")
                % {"limit": USAGE_BULK_LIMIT, "count": len(items)}
            )
        rows = self.write(items, all_or_none=all_or_none)
        return Response({"results": [row.outcome() for row in rows]})

    def parse(self, items: list[Any]) -> list[UsageRow]:
        """Each item validated: a plainly valid one by `plain_item`, any other by one serializer instance
        (its fields are built once per batch), which words its errors."""
        serializer = UsageInputSerializer()
        rows = []
        for index, item in enumerate(items):
            row = UsageRow(index)
            if not isinstance(item, dict):
                row.fail(_("Each item must be a JSON object."))
            elif (data := plain_item(item)) is not None:
                row.data = data
            else:
                try:
                    row.data = serializer.run_validation(item)
                except serializers.ValidationError as error:
                    fields = field_messages(error.detail)
                    row.fail(_first_message(fields), fields)
            rows.append(row)
        return rows

    def write(self, items: list[Any], *, all_or_none: bool) -> list[UsageRow]:
        rows = self.parse(items)
        with transaction.atomic():
            self.resolve_accounts([row for row in rows if row.error is None])
            self.mark_duplicates([row for row in rows if row.error is None])
            self.mark_existing([row for row in rows if row.error is None])
            self.refuse_if(rows, all_or_none)
            writing = [row for row in rows if row.error is None]
            if writing:
                self.save(writing)
        return rows

    def resolve_accounts(self, rows: list[UsageRow]) -> None:
        """All the batch's accounts in one query, within scope; unknown ones fail their items."""
        reference = UsageInputSerializer().fields["account"]
        wanted = {row.data["account"] for row in rows}
        found = dict(
            reference.candidates(self.viewer).filter(any_of("external_id", wanted)).values_list("external_id", "pk")
        )
        for row in rows:
            key = row.data["account"]
            if key in found:
                row.account_id = found[key]
            else:
                message = reference.unknown_message(key)
                row.fail(f"account: {message}", {"account": [message]})

    @staticmethod
    def mark_duplicates(rows: list[UsageRow]) -> None:
        seen: set[tuple] = set()
        for row in rows:
            if row.key in seen:
                message = _("This account, metric and date appear more than once in this request.")
                row.fail(message, {"non_field_errors": [message]})
            seen.add(row.key)

    @staticmethod
    def mark_existing(rows: list[UsageRow]) -> None:
        """Which items replace a stored day: one query over the batch's accounts, metrics and dates."""
        if not rows:
            return
        dates = [row.data["date"] for row in rows]
        stored = set(
            UsageRecord.objects.filter(
                any_of("account_id", {row.account_id for row in rows}),
                metric__in={row.data["metric"] for row in rows},
                date__range=(min(dates), max(dates)),
            ).values_list("account_id", "metric", "date")
        )
        for row in rows:
            row.created = row.key not in stored

    @staticmethod
    def save(rows: list[UsageRow]) -> None:
        """The service checks each record as the input serializer did (a slug, a date, `clean_decimal`),
        so the rows that reach it are written."""
        usage_records_upsert(
            records=[
                {
                    "account_id": row.account_id,
                    "metric": row.data["metric"],
                    "date": row.data["date"],
                    "value": row.data["value"],
                }
                for row in rows
            ]
        )

    @staticmethod
    def refuse_if(rows: list[UsageRow], all_or_none: bool) -> None:
        failed = [row for row in rows if row.error is not None]
        if not failed or not all_or_none:
            return
        message = ngettext(
            "%(count)s of %(total)s items cannot be written; nothing was written.",
            "%(count)s of %(total)s items cannot be written; nothing was written.",
            len(failed),
        ) % {"count": len(failed), "total": len(rows)}
        raise BatchError([row.outcome() for row in failed], message)
