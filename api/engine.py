"""The shared base of every synced resource: scope, lookups by external id, upserts, bulk writes, sync lists.

A resource declares a model, a serializer (input validation and the output shape) and three hooks that
call its services: `check_rows` (what is wrong, without writing), `save_rows` (the bulk write) and,
optionally, `delete_objects`. Everything else is here, once:

- Scope: every query starts from `Model.objects.visible_to(viewer)`; an object outside it is a 404,
  and a PUT naming an external id held outside it is a 409 that changes nothing.
- Writes of one object are batches of one, so single and bulk writes run the same code, in a fixed
  number of queries per batch: references are resolved with one query per kind, existing objects are
  loaded with one query, and the services write set-based.
- Concurrent writers of the same external id wait for each other (`csm.db.lock_keys`), so two clients
  upserting one id at the same moment make one object and see no error.
- A tombstone stays deleted unless the body says `"deleted": false`.
- An item that changes nothing writes nothing: an identical PUT keeps `updated_at`, so syncs stay quiet.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_filters import utils as filter_utils
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.fields import SkipField
from rest_framework.response import Response
from rest_framework.validators import UniqueValidator

from accounts.services import soft_delete_many, soft_restore_many
from csm.db import any_of, lock_keys

from .authentication import viewer_of
from .errors import BatchError, ItemError, PayloadTooLarge, field_messages
from .idempotency import idempotent
from .pagination import SyncPagination
from .parsers import max_body_bytes

CREATE, UPSERT, PATCH = "create", "upsert", "patch"
DETAIL_ACTIONS = ("retrieve", "update", "partial_update", "destroy")
MAX_INT = 2_147_483_647  # the smallest integer column bound of the databases we run on
EXTERNAL_ID_LENGTH = 100
TRUE_VALUES = {"true", "1", "yes"}
FALSE_VALUES = {"false", "0", "no"}


def parse_flag(params, name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in TRUE_VALUES:
        return True
    if raw.lower() in FALSE_VALUES:
        return False
    raise exceptions.ValidationError({name: [_("Must be true or false.")]})


def parse_since(params, name: str = "updated_since") -> datetime.datetime | None:
    """An ISO 8601 date-time (a date means its midnight, UTC when no offset is given)."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        when = parse_datetime(raw)
        if when is None:
            day = parse_date(raw)
            when = datetime.datetime.combine(day, datetime.time()) if day else None
        if when is not None:
            # In UTC, so a time near the calendar's ends fails here rather than in the database driver.
            when = (when if timezone.is_aware(when) else when.replace(tzinfo=datetime.UTC)).astimezone(datetime.UTC)
    except (ValueError, OverflowError):
        when = None
    if when is None:
        raise exceptions.ValidationError({name: [_("An ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z.")]})
    return when


# --- references ---------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class Reference(serializers.Field):
    """Another object, named by its key (its external id; a tier's slug; a user's username).

    On input it is a string, resolved by the view for a whole batch at once (`resolve_references`),
    within the caller's scope: an object outside it is "unknown", exactly like one that does not exist.
    On output it is the object's key.
    """

    default_error_messages = {
        "invalid": "A string of at most {max_length} characters is required.",
    }

    def __init__(self, *, model=None, key: str = "external_id", scoped: bool = True, **kwargs) -> None:
        self.model, self.key, self.scoped = model, key, scoped
        super().__init__(**kwargs)

    def target_model(self):
        return self.model or get_user_model()

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data.strip() or len(data) > EXTERNAL_ID_LENGTH or "\x00" in data:
            self.fail("invalid", max_length=EXTERNAL_ID_LENGTH)
        return data

    def to_representation(self, value):
        return getattr(value, self.key)

    def candidates(self, viewer) -> models.QuerySet:
        model = self.target_model()
        if self.scoped:
            return model.objects.visible_to(viewer).filter(deleted_at__isnull=True)
        if model is get_user_model():
            return model.objects.filter(is_active=True)
        return model.objects.all()

    def unknown_message(self, value: str) -> str:
        return _("There is no %(model)s “%(key)s”.") % {
            "model": self.target_model()._meta.verbose_name,
            "key": value,
        }


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class ReferenceList(Reference):
    """Several objects of one kind, by key (a touch's contacts)."""

    def to_internal_value(self, data):
        if not isinstance(data, list) or len(data) > 1000:
            raise serializers.ValidationError(_("A list of at most 1000 keys is required."))
        return [super(ReferenceList, self).to_internal_value(item) for item in data]

    def to_representation(self, value):
        return [getattr(item, self.key) for item in value.all()]


# --- serializers --------------------------------------------------------------------------------


class SyncedSerializer(serializers.ModelSerializer):
    """Base of the resources' serializers: the synced fields, no per-item uniqueness queries (the view
    checks external ids for the whole batch), and integer bounds the same on every database."""

    id = serializers.IntegerField(read_only=True)
    external_id = serializers.CharField(
        max_length=EXTERNAL_ID_LENGTH,
        required=False,
        allow_null=True,
        help_text="The partner system's id; unique across the deployment. It is the URL's lookup.",
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    deleted_at = serializers.DateTimeField(read_only=True, allow_null=True)
    deleted = serializers.BooleanField(
        write_only=True,
        required=False,
        help_text="true deletes the object (a tombstone partners can sync); false brings a deleted one back. "
        "A deleted object is never changed by a write that does not say false.",
    )

    SYNC_FIELDS = ("id", "external_id", "created_at", "updated_at", "deleted_at", "deleted")

    class Meta:
        validators: list = []

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, serializers.IntegerField):
            kwargs["max_value"] = min(kwargs.get("max_value", MAX_INT), MAX_INT)
            kwargs["min_value"] = max(kwargs.get("min_value", -MAX_INT - 1), -MAX_INT - 1)
        kwargs["validators"] = [v for v in kwargs.get("validators", []) if not isinstance(v, UniqueValidator)]
        return field_class, kwargs

    def validate_external_id(self, value):
        if value is not None and (not value.strip() or "/" in value):
            raise serializers.ValidationError(_("Must not be empty or contain “/”."))
        return value


class Output:
    """The serializer's output without its per-row machinery: each field's own `to_representation`,
    read straight off the object (references must be select_related / prefetched by the view)."""

    def __init__(self, serializer: serializers.Serializer) -> None:
        self.fields = [
            (name, field.source_attrs, field) for name, field in serializer.fields.items() if not field.write_only
        ]

    def __call__(self, obj) -> dict:
        out = {}
        for name, attrs, field_ in self.fields:
            value = obj
            for attr in attrs:
                value = getattr(value, attr, None) if value is not None else None
            out[name] = None if value is None else field_.to_representation(value)
        return out

    def columns(self, model: type[models.Model]) -> list[tuple[str, str, serializers.Field | None]] | None:
        """How to render rows read with `values()`, which skips building objects: each output field's name,
        its column's lookup path and the field whose `to_representation` applies (None for a reference, whose
        value is its key). None when a field needs the object (a list of references, a property, a method)."""
        out = []
        for name, attrs, field_ in self.fields:
            if isinstance(field_, ReferenceList) or not attrs or field_.source == "*":
                return None
            path = [*attrs, field_.key] if isinstance(field_, Reference) else list(attrs)
            current = model
            for step in path[:-1]:
                relation = _model_field(current, step)
                if relation is None or not relation.concrete or not (relation.many_to_one or relation.one_to_one):
                    return None
                current = relation.related_model
            column = _model_field(current, path[-1])
            if column is None or not column.concrete or column.is_relation:
                return None
            out.append((name, "__".join(path), None if isinstance(field_, Reference) else field_))
        return out

    @staticmethod
    def from_values(columns: list[tuple[str, str, serializers.Field | None]], row: dict) -> dict:
        out = {}
        for name, path, field_ in columns:
            value = row[path]
            out[name] = value if value is None or field_ is None else field_.to_representation(value)
        return out


def _model_field(model: type[models.Model], name: str) -> models.Field | None:
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


# --- plain input --------------------------------------------------------------------------------


class PlainInput:
    """A serializer's validation of plainly valid items, without its per-field machinery.

    For each writable field of a kind listed in `_plain_value`, a value of the exact JSON type the field
    takes as it is (a trimmed string, an int, a bool, an ISO date, a known choice, a reference key) is
    checked by the field's own validators and `validate_<name>` method, then the serializer's `validate`,
    giving what `run_validation` gives. Any other value, any failure, or a serializer with other kinds of
    fields returns None: the serializer then validates the item and words its errors, so results and
    messages are the serializer's. Building a thousand items' data this way costs a fraction of DRF's.
    """

    def __init__(self, serializer: serializers.Serializer) -> None:
        self.serializer = serializer
        fields = list(serializer._writable_fields)
        supported = all(_plain_kind(f) is not None and f.source_attrs == [f.field_name] for f in fields)
        self.fields = (
            [(f.field_name, f, _plain_kind(f), getattr(serializer, f"validate_{f.field_name}", None)) for f in fields]
            if supported and not serializer.validators
            else None
        )

    def __call__(self, item: dict) -> dict | None:
        if self.fields is None:
            return None
        partial = getattr(self.serializer, "partial", False)
        data = {}
        try:
            for name, field_, kind, validate in self.fields:
                if name in item:
                    value = item[name]
                    if value is None:
                        if not field_.allow_null:
                            return None
                    else:
                        value = _plain_value(kind, field_, value)
                        if value is _NOT_PLAIN:
                            return None
                        for validator in field_.validators:
                            if getattr(validator, "requires_context", False):
                                validator(value, field_)
                            else:
                                validator(value)
                elif partial:
                    continue
                elif field_.required:
                    return None
                else:
                    try:
                        value = field_.get_default()
                    except SkipField:
                        continue
                data[name] = validate(value) if validate is not None else value
            return self.serializer.validate(data)
        except (serializers.ValidationError, DjangoValidationError):
            return None


_NOT_PLAIN = object()


def _plain_kind(field_: serializers.Field) -> str | None:
    if isinstance(field_, ReferenceList):
        return None
    if isinstance(field_, Reference):
        return "reference"
    if type(field_) is serializers.DateField and ISO_8601 not in getattr(field_, "input_formats", [ISO_8601]):
        return None
    return {
        serializers.CharField: "text",
        serializers.IntegerField: "integer",
        serializers.BooleanField: "boolean",
        serializers.DateField: "date",
        serializers.ChoiceField: "choice",
    }.get(type(field_))


def _plain_value(kind: str, field_: serializers.Field, value: Any) -> Any:
    """The field's internal value of a plainly valid JSON value (as its `to_internal_value` gives), else
    _NOT_PLAIN."""
    kind_of = type(value)
    if kind == "text":
        plain = kind_of is str and value == value.strip() and (value != "" or field_.allow_blank)
    elif kind == "reference":
        plain = kind_of is str and value.strip() and len(value) <= EXTERNAL_ID_LENGTH and "\x00" not in value
    elif kind == "integer":
        plain = kind_of is int
    elif kind == "boolean":
        plain = kind_of is bool
    elif kind == "date":
        if kind_of is not str:
            return _NOT_PLAIN
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            return _NOT_PLAIN
    elif kind == "choice":
        if kind_of is not str or value == "" or value not in field_.choice_strings_to_values:
            return _NOT_PLAIN
        return field_.choice_strings_to_values[value]
    else:
        plain = False
    return value if plain else _NOT_PLAIN


# --- rows of a write ----------------------------------------------------------------------------


@dataclass
class Row:
    """One item of a write: its position, validated data, the object it writes, and what went wrong."""

    index: int
    item: Any
    data: dict = field(default_factory=dict)
    parse_error: dict | None = None
    error: dict | None = None
    existing: Any = None
    instance: Any = None
    resolved: dict = field(default_factory=dict)
    unchanged: bool = False  # an existing object the item leaves as it is: nothing to check or save

    def fail(self, status_code: int, code: str, message: str, fields: dict | None = None) -> None:
        self.error = {"status": status_code, "code": code, "message": str(message), "fields": fields or {}}

    @property
    def ok(self) -> bool:
        return self.parse_error is None and self.error is None

    @property
    def created(self) -> bool:
        return self.existing is None

    def reset(self) -> None:
        self.error, self.existing, self.instance, self.resolved, self.unchanged = None, None, None, {}, False


def item_error(error: dict) -> ItemError:
    return ItemError(status_code=error["status"], code=error["code"], message=error["message"], fields=error["fields"])


class FilterBackend(DjangoFilterBackend):
    """django-filter, also refusing what its forms let through but no database takes: date-times that
    leave the calendar when moved to UTC (9999-12-31T23:59:59-23:00)."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            raise filter_utils.translate_validation(filterset.errors)
        bad = {}
        for name, value in filterset.form.cleaned_data.items():
            bounds = (value.start, value.stop) if isinstance(value, slice) else (value,)
            for bound in bounds:
                if isinstance(bound, datetime.datetime) and timezone.is_aware(bound):
                    try:
                        bound.astimezone(datetime.UTC)
                    except OverflowError:
                        bad[name] = [_("This date-time is out of range.")]
        if bad:
            raise exceptions.ValidationError(bad)
        return filterset.qs


def check_url_text(values: dict) -> None:
    """Refuse NUL characters in the path's and the query's values (no database stores them in text)."""
    bad = {}
    for name, value in values.items():
        texts = value if isinstance(value, list) else [value]
        if "\x00" in name or any("\x00" in str(text) for text in texts):
            bad[name.replace("\x00", "")] = [_("Must not contain NUL characters.")]
    if bad:
        raise exceptions.ValidationError(bad)


# --- the viewset --------------------------------------------------------------------------------


class ApiView:
    """Mixed into every API view: the API authenticates itself (keys or session), so Django's
    login-required middleware leaves it alone."""

    filter_backends = [FilterBackend]

    @classmethod
    def as_view(cls, *args, **kwargs):
        view = super().as_view(*args, **kwargs)
        view.login_required = False
        return view

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isascii() and length.isdigit() and int(length) > max_body_bytes():
            raise PayloadTooLarge(_("The request body is larger than %(limit)s bytes.") % {"limit": max_body_bytes()})
        check_url_text({**dict(request.query_params.lists()), **kwargs})

    @property
    def viewer(self):
        return viewer_of(self.request)


class SyncedViewSet(ApiView, viewsets.GenericViewSet):
    model: type[models.Model]
    lookup_field = "external_id"
    lookup_value_regex = "[^/]+"
    pagination_class = SyncPagination
    bulk_limit = 1000
    prefetch_related: tuple[str, ...] = ()

    # -- reading

    def serializer_fields(self) -> dict[str, serializers.Field]:
        """The serializer's fields, built once per request: building them costs milliseconds, and a batch
        asks for them per item."""
        if not hasattr(self, "_serializer_fields"):
            self._serializer_fields = self.get_serializer().fields
        return self._serializer_fields

    def references(self) -> dict[str, Reference]:
        if not hasattr(self, "_references"):
            self._references = {
                name: f for name, f in self.serializer_fields().items() if isinstance(f, Reference) and not f.read_only
            }
        return self._references

    def scoped_queryset(self) -> models.QuerySet:
        """Everything the viewer may see, tombstones included."""
        return self.model.objects.visible_to(self.viewer)

    def output_relations(self) -> list[str]:
        """The single-object relations the output reads (references, and sources such as `partner.name`),
        as select_related paths."""
        paths = set()
        for f in self.serializer_fields().values():
            if f.write_only or isinstance(f, ReferenceList) or f.source == "*":
                continue
            attrs = f.source_attrs if isinstance(f, Reference) else f.source_attrs[:-1]
            model, path = self.model, []
            for attr in attrs:
                try:
                    relation = model._meta.get_field(attr)
                except FieldDoesNotExist:
                    break
                if not (relation.many_to_one or relation.one_to_one):
                    break
                path.append(attr)
                model = relation.related_model
            if path:
                paths.add("__".join(path))
        return sorted(paths)

    def get_queryset(self) -> models.QuerySet:
        queryset = self.scoped_queryset()
        many = [f.source for f in self.serializer_fields().values() if isinstance(f, ReferenceList)]
        return queryset.select_related(*self.output_relations()).prefetch_related(*many, *self.prefetch_related)

    def filter_queryset(self, queryset):
        if self.action in DETAIL_ACTIONS:
            return queryset  # the list's filters do not hide an object from its own URL
        if self.action == "list":
            if not parse_flag(self.request.query_params, "include_deleted", False):
                queryset = queryset.filter(deleted_at__isnull=True)
            since = parse_since(self.request.query_params)
            if since is not None:
                queryset = queryset.filter(updated_at__gte=since)
        return super().filter_queryset(queryset)

    def output(self) -> Output:
        if not hasattr(self, "_output"):
            self._output = Output(self.get_serializer())
        return self._output

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        render = self.output()
        columns = render.columns(self.model) if type(render) is Output and not self.prefetch_related else None
        if columns is None:
            page = self.paginate_queryset(queryset)
            return self.get_paginated_response([render(obj) for obj in page])
        # Plain columns only. The page is chosen on the table's own (ordering field, id), a narrow sort that
        # joins nothing; then its rows are read as dicts, joins and all, building no model objects. A row that
        # left the list in between (deleted, filtered out) is left out, as if it had left just before.
        queryset = queryset.prefetch_related(None)
        ordering = getattr(self.paginator, "ordering_field", "updated_at")
        keys = self.paginate_queryset(queryset.values(ordering, "pk"))
        paths = {path for _name, path, _field in columns}
        rows = {
            row["pk"]: row for row in queryset.filter(any_of("pk", [key["pk"] for key in keys])).values("pk", *paths)
        }
        return self.get_paginated_response(
            [Output.from_values(columns, rows[key["pk"]]) for key in keys if key["pk"] in rows]
        )

    def retrieve(self, request, *args, **kwargs):
        return Response(self.output()(self.get_object()))

    # -- writing one object

    def create(self, request, *args, **kwargs):
        return idempotent(self, request, lambda: self.write_one(request.data, CREATE))

    def update(self, request, *args, **kwargs):
        return self.write_one(self.with_url_id(request.data), UPSERT)

    def partial_update(self, request, *args, **kwargs):
        return self.write_one(self.with_url_id(request.data), PATCH)

    def destroy(self, request, *args, **kwargs):
        obj = self.get_object()
        if obj.deleted_at is None:
            self.delete_objects(self.model._base_manager.filter(pk=obj.pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def with_url_id(self, data) -> Any:
        external_id = self.kwargs[self.lookup_field]
        if isinstance(data, dict):
            given = data.get("external_id", external_id)
            if given != external_id:
                raise exceptions.ValidationError({"external_id": [_("It differs from the external id in the URL.")]})
            return {**data, "external_id": external_id}
        return data

    def write_one(self, data, mode: str) -> Response:
        (row,) = self.write([data], mode, all_or_none=True)
        obj = self.get_queryset().get(pk=row.instance.pk)
        return Response(self.output()(obj), status=status.HTTP_201_CREATED if row.created else status.HTTP_200_OK)

    # -- writing many

    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request, *args, **kwargs):
        return idempotent(self, request, lambda: self.write_bulk(request))

    def write_bulk(self, request) -> Response:
        items = request.data
        if not isinstance(items, list):
            raise exceptions.ValidationError({"non_field_errors": [_("A JSON array of objects is required.")]})
        if len(items) > self.bulk_limit:
            raise PayloadTooLarge(
                _("At most %(limit)s items per request; this one has %(count)s.")
                % {"limit": self.bulk_limit, "count": len(items)}
            )
        all_or_none = parse_flag(request.query_params, "all_or_none", True)
        rows = self.write(items, UPSERT, all_or_none=all_or_none)
        return Response({"results": [self.outcome(row) for row in rows]})

    @staticmethod
    def outcome(row: Row) -> dict:
        if not row.ok:
            error = row.error or row.parse_error
            return {
                "index": row.index,
                "status": "error",
                "error": {k: v for k, v in error.items() if k != "status" and (k != "fields" or v)},
            }
        return {
            "index": row.index,
            "status": "created" if row.created else "updated",
            "id": row.instance.pk,
            "external_id": row.instance.external_id,
        }

    def write(self, items: list, mode: str, *, all_or_none: bool) -> list[Row]:
        """Validate and write items; with `all_or_none`, any bad item raises and nothing is written."""
        serializer = self.get_serializer(partial=mode == PATCH)  # its fields are built once per batch
        plain = PlainInput(serializer)
        rows = [self.parse(serializer, index, item, plain) for index, item in enumerate(items)]
        for attempt in range(3):
            for row in rows:
                row.reset()
            try:
                with transaction.atomic():
                    self.write_rows(rows, mode, all_or_none)
                return rows
            except IntegrityError:
                # A concurrent writer got in first with a unique value; a fresh attempt sees its row.
                if attempt == 2:
                    raise
        return rows

    def parse(self, serializer: serializers.Serializer, index: int, item, plain: PlainInput | None = None) -> Row:
        row = Row(index, item)
        if not isinstance(item, dict):
            row.parse_error = {
                "status": 400,
                "code": "invalid",
                "message": _("Each item must be a JSON object."),
                "fields": {},
            }
            return row
        if plain is not None and (data := plain(item)) is not None:
            row.data = data
            return row
        try:
            row.data = dict(serializer.run_validation(item))
        except serializers.ValidationError as error:
            fields = field_messages(error.detail)
            row.parse_error = {
                "status": 400,
                "code": "invalid",
                "message": self.first_message(fields),
                "fields": fields,
            }
        return row

    @staticmethod
    def first_message(fields: dict) -> str:
        for name, messages in fields.items():
            if messages:
                return messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
        return _("The object is not valid.")

    def write_rows(self, rows: list[Row], mode: str, all_or_none: bool) -> None:
        live = [row for row in rows if row.parse_error is None]
        self.match_existing(live, mode)
        self.resolve_references([row for row in live if row.ok])
        building = [row for row in live if row.ok]
        for row in building:
            row.instance = row.existing if row.existing is not None else self.model()
            if row.existing is not None and row.existing.deleted_at is not None and row.data.get("deleted") is True:
                row.unchanged = True  # a tombstone told to stay deleted is left as it is
                continue
            before = self.field_values(row.instance) if row.existing is not None else None
            self.assign(row)
            row.unchanged = before is not None and not self.row_changed(row, before)
        checked = [row for row in building if row.ok and not row.unchanged]
        for position, error in self.check_rows(checked).items():
            fields = field_messages(error.message_dict) if hasattr(error, "error_dict") else {}
            if not fields:
                fields = {"non_field_errors": [str(m) for m in error.messages]}
            checked[position].fail(400, "invalid", self.first_message(fields), fields)
        failed = [row for row in rows if not row.ok]
        if failed and all_or_none:
            self.refuse(rows, failed)
        writing = [row for row in rows if row.ok]
        if not writing:
            return
        restore = [r.instance.pk for r in writing if r.data.get("deleted") is False and r.instance.deleted_at]
        if restore:
            self.restore_objects(self.model._base_manager.filter(pk__in=restore))
            for row in writing:
                if row.instance.pk in restore:
                    row.instance.deleted_at = None
        changed = [row for row in writing if not row.unchanged]
        if changed:
            self.save_rows(changed)
        delete = [r.instance.pk for r in writing if r.data.get("deleted") is True and r.instance.deleted_at is None]
        if delete:
            self.delete_objects(self.model._base_manager.filter(pk__in=delete))

    def refuse(self, rows: list[Row], failed: list[Row]) -> None:
        # A write of one object answers with its error; a bulk request, even of one item, lists items.
        if len(rows) == 1 and self.action != "bulk":
            raise item_error(failed[0].error or failed[0].parse_error)
        message = ngettext(
            "%(count)s of %(total)s items cannot be written; nothing was written.",
            "%(count)s of %(total)s items cannot be written; nothing was written.",
            len(failed),
        ) % {"count": len(failed), "total": len(rows)}
        raise BatchError([self.outcome(row) for row in failed], message)

    def match_existing(self, rows: list[Row], mode: str) -> None:
        keys = [row.data.get("external_id") for row in rows if row.data.get("external_id")]
        lock_keys(self.model._meta.label, keys)
        existing = {obj.external_id: obj for obj in self.model._base_manager.filter(any_of("external_id", keys))}
        visible = set(
            self.scoped_queryset()
            .filter(any_of("pk", [obj.pk for obj in existing.values()]))
            .values_list("pk", flat=True)
        )
        seen: set[str] = set()
        for row in rows:
            key = row.data.get("external_id")
            obj = existing.get(key) if key else None
            if key and key in seen:
                row.fail(
                    400,
                    "invalid",
                    _("external_id: “%(key)s” appears more than once in this request.") % {"key": key},
                    {"external_id": [_("Appears more than once in this request.")]},
                )
            elif mode == PATCH and (obj is None or obj.pk not in visible):
                row.fail(404, "not_found", _("Not found."))
            elif mode == CREATE and obj is not None:
                row.fail(
                    409,
                    "conflict",
                    _("An object with external id “%(key)s” exists already; PUT to its URL changes it.") % {"key": key},
                )
            elif obj is not None and obj.pk not in visible:
                row.fail(
                    409,
                    "conflict",
                    _("The external id “%(key)s” is held outside your scope; nothing was changed.") % {"key": key},
                )
            elif obj is not None and obj.deleted_at is not None and row.data.get("deleted") is not False:
                if row.data.get("deleted") is True:
                    row.existing = obj
                else:
                    row.fail(
                        409,
                        "deleted",
                        _('“%(key)s” was deleted; send "deleted": false to bring it back.') % {"key": key},
                    )
            else:
                row.existing = obj
            if key:
                seen.add(key)

    def resolve_references(self, rows: list[Row]) -> None:
        """Each reference of every row, one query per kind; unknown or out-of-scope keys fail the row."""
        for name, ref in self.references().items():
            wanted: set[str] = set()
            for row in rows:
                value = row.data.get(name)
                if value:
                    wanted.update(value if isinstance(value, list) else [value])
            if not wanted:
                continue
            found = {
                getattr(obj, ref.key): obj for obj in ref.candidates(self.viewer).filter(**{f"{ref.key}__in": wanted})
            }
            for row in rows:
                if name not in row.data:
                    continue
                value = row.data[name]
                keys = value if isinstance(value, list) else [value] if value else []
                missing = [key for key in keys if key not in found]
                if missing:
                    messages = [ref.unknown_message(key) for key in missing]
                    fields = {**(row.error or {}).get("fields", {}), name: messages}
                    row.fail(400, "invalid", self.first_message(fields), fields)
                elif isinstance(value, list):
                    row.resolved[name] = [found[key] for key in keys]
                else:
                    row.resolved[name] = found[value] if value else None

    def field_values(self, instance) -> dict:
        return {
            f.attname: getattr(instance, f.attname)
            for f in self.model._meta.concrete_fields
            if not f.primary_key and f.name not in ("created_at", "updated_at", "deleted_at")
        }

    def row_changed(self, row: Row, before: dict) -> bool:
        """Whether the item changes its existing object: a field's value differs, or the item gives
        something other than plain fields (lists, nested parts), which only the services can compare.
        An unchanged object is not saved: an identical PUT changes nothing, not even `updated_at`."""
        plain = {f.name for f in self.model._meta.concrete_fields} | {"deleted"}
        for name, value in row.data.items():
            if name not in plain or isinstance(value, dict | list):
                return True
        return self.field_values(row.instance) != before

    # -- hooks

    def assign(self, row: Row) -> None:
        """Set the object's fields from the item (references as resolved objects)."""
        instance = row.instance
        many = {name for name, ref in self.references().items() if isinstance(ref, ReferenceList)}
        for name, value in row.data.items():
            if name == "deleted" or name in many:
                continue
            setattr(instance, name, row.resolved.get(name, value) if name in row.resolved else value)
        if row.created:
            self.on_create(instance)

    def on_create(self, instance) -> None:
        """Defaults of an object a partner creates."""

    def check_rows(self, rows: list[Row]) -> dict:
        """What is wrong with each row's object, by position in `rows` (the services' bulk checks)."""
        raise NotImplementedError

    def save_rows(self, rows: list[Row]) -> None:
        """Write the rows' objects through the services, set-based."""
        raise NotImplementedError

    def delete_objects(self, queryset: models.QuerySet) -> None:
        soft_delete_many(queryset=queryset)

    def restore_objects(self, queryset: models.QuerySet) -> None:
        soft_restore_many(queryset=queryset)
