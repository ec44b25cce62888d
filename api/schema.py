"""The API's OpenAPI contract: the error shape, the sync parameters, bulk bodies, and `ApiAutoSchema`,
which gives every operation the errors it can answer with (one shape), `Retry-After` on 429 and the
`Idempotency-Key` header on every POST, whatever the resource declares itself.
"""

import inspect

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers

# --- the error shape ----------------------------------------------------------------------------


class ItemErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid, not_found, conflict or deleted.")
    message = serializers.CharField(help_text="What is wrong with this item, for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Field errors, by field name (nested fields as a.b[0].c).",
    )


class ItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request, from 0.")
    status = serializers.CharField(help_text="Always error.")
    error = ItemErrorDetailSerializer()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="A stable machine-readable code: invalid, parse_error, not_authenticated, "
        "authentication_failed, permission_denied, not_found, not_acceptable, conflict, deleted, "
        "payload_too_large, unsupported_media_type, idempotency_mismatch, throttled."
    )
    message = serializers.CharField(help_text="What went wrong, for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Field errors, by field name (nested fields as a.b[0].c; query parameters by name).",
    )
    items = ItemErrorSerializer(
        many=True, required=False, help_text="A bulk request's invalid items, each with its index and error."
    )


class ErrorSerializer(serializers.Serializer):
    """Every response that is not a success."""

    error = ErrorDetailSerializer()


ERROR_TEXT = {
    400: "The request is not valid: field errors in `fields` (query parameters by name), a bulk request's "
    "invalid items in `items`, or a body that is not JSON (`parse_error`).",
    401: "No API key, or a wrong, revoked or inactive one.",
    403: "Signed in, but without access to this (a CSM may only read).",
    404: "No such object in your scope.",
    406: "The Accept header asks for something other than JSON.",
    409: "Conflict: the external id exists already, is held outside your scope, or was deleted "
    '(send "deleted": false to bring it back).',
    413: "The body or the batch is too large.",
    415: "The body is not JSON.",
    422: "This Idempotency-Key was used with another request.",
    429: "Too many requests; retry after the Retry-After header's seconds.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses for extend_schema(responses=...), all in the one error shape."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_TEXT[code]) for code in codes}


READ_ERRORS = (400, 401, 403, 404, 429)
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415, 429)

# --- parameters and headers ---------------------------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Any unique printable string of at most 255 characters. A repeat within 24 hours returns the "
    "first response (with `Idempotent-Replayed: true`) without writing again; the same key with another "
    "request is a 422.",
)
IDEMPOTENT_REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=True,
    description="`true` when this is the stored response of an earlier request with the same Idempotency-Key.",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds to wait before the next request.",
)
WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[401],
    description='`Bearer realm="api"`.',
)
SYNC_PARAMETERS = [
    OpenApiParameter(
        "updated_since",
        OpenApiTypes.DATETIME,
        description="Only objects changed at or after this ISO 8601 date-time (a date means its midnight; "
        "no offset means UTC).",
    ),
    OpenApiParameter(
        "include_deleted",
        OpenApiTypes.BOOL,
        description="Include tombstones (objects with `deleted_at` set). Default false.",
    ),
]
ALL_OR_NONE = OpenApiParameter(
    "all_or_none",
    OpenApiTypes.BOOL,
    description="true (default): any invalid item fails the request with 400 and nothing is written. "
    "false: the valid items are written and each item reports its outcome.",
)

# --- bulk results -------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "enum": ["created", "updated", "error"]}, component_name="BulkItemStatus")
class BulkItemStatusField(serializers.CharField):
    """created, updated or error."""


BULK_RESULT = inline_serializer(
    "BulkResult",
    {
        "results": serializers.ListField(
            help_text="One outcome per item, in the request's order.",
            child=inline_serializer(
                "BulkItemResult",
                {
                    "index": serializers.IntegerField(help_text="The item's position in the request, from 0."),
                    "status": BulkItemStatusField(),
                    "id": serializers.IntegerField(required=False, help_text="The object's id (written items)."),
                    "external_id": serializers.CharField(
                        required=False, allow_null=True, help_text="The object's external id (written items)."
                    ),
                    "error": ItemErrorDetailSerializer(required=False, help_text="Why the item was not written."),
                },
            ),
        )
    },
)


def synced_resource_schema(name: str, serializer, plural: str | None = None) -> dict:
    """extend_schema_view arguments for a SyncedViewSet of `serializer` (`plural` when not name + s/es)."""
    plural = plural or (f"{name}es" if name.endswith(("s", "x", "ch", "sh")) else f"{name}s")
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return {
        "list": extend_schema(
            summary=f"List {plural} changed since a time, oldest change first",
            parameters=SYNC_PARAMETERS,
            responses={200: serializer, **errors(*READ_ERRORS)},
        ),
        "retrieve": extend_schema(
            summary=f"One {name}, tombstone included", responses={200: serializer, **errors(*READ_ERRORS)}
        ),
        "create": extend_schema(
            summary=f"Create {article} {name}",
            parameters=[IDEMPOTENCY_KEY],
            responses={201: serializer, **errors(*WRITE_ERRORS, 422)},
        ),
        "update": extend_schema(
            summary=f"Create or update {article} {name} by external id (idempotent upsert)",
            responses={200: serializer, 201: serializer, **errors(*WRITE_ERRORS)},
        ),
        "partial_update": extend_schema(
            summary=f"Change some fields of {article} {name}", responses={200: serializer, **errors(*WRITE_ERRORS)}
        ),
        "destroy": extend_schema(
            summary=f"Delete {article} {name} (it stays as a tombstone for sync)",
            responses={204: None, **errors(*READ_ERRORS)},
        ),
        "bulk": extend_schema(
            summary=f"Create or update many {plural} by external id",
            request=serializer(many=True),
            parameters=[ALL_OR_NONE, IDEMPOTENCY_KEY],
            responses={200: BULK_RESULT, **errors(*WRITE_ERRORS, 422)},
        ),
    }


# --- the schema generator's view of our views -----------------------------------------------------

SYNCED_ACTION_TEXT = {
    "list": "Ordered by (updated_at, id). Each page is `{next, next_cursor, results}`: pass `next_cursor` "
    "as `cursor` (or follow `next`) until it is null. Remember the largest `updated_at` you saw and send it "
    "as `updated_since` next time; objects changed while you page move to the end, so none is skipped.",
    "retrieve": "A deleted object is returned too, with `deleted_at` set.",
    "create": "409 when the external id exists already (PUT to its URL changes it).",
    "update": "Creates the object (201) or replaces its writable fields (200). A deleted object stays "
    'deleted (409) unless the body says `"deleted": false`.',
    "partial_update": "Changes only the fields given.",
    "destroy": "Sets `deleted_at`; lists show it with `include_deleted=true`.",
}
BODY_METHODS = ("POST", "PUT", "PATCH")


def own_doc(cls) -> str:
    """The docstring of a view class of a resource, not one inherited from the engine or a library."""
    for klass in cls.__mro__:
        module = klass.__module__
        if not module.startswith("api.") or module == "api.engine":
            return ""
        if klass.__dict__.get("__doc__"):
            return inspect.cleandoc(klass.__doc__)
    return ""


class ApiAutoSchema(AutoSchema):
    """Every operation documents each error it can answer with, in the one error shape: 400, 401, 403,
    406 and 429 (with Retry-After) always; 404 on routes with a path parameter; 409, 413 and 415 with a
    body; 422 and the Idempotency-Key header on POST. Descriptions come from the resources' own
    docstrings, never from the engine's."""

    def get_description(self) -> str:
        action = getattr(self.view, "action", None)
        method = getattr(self.view, action or self.method.lower(), None)
        parts = []
        method_doc = inspect.getdoc(method) if method is not None else None
        if method_doc and getattr(method, "__module__", "").startswith("api.") and method.__module__ != "api.engine":
            parts.append(method_doc)
        else:
            parts.append(own_doc(self.view.__class__))
        if hasattr(self.view, "bulk_limit"):
            if action == "bulk":
                parts.append(
                    f"At most {self.view.bulk_limit:,} items, each written like a PUT of its external id. "
                    "Answers 200 with one result per item; with `all_or_none` (the default) any invalid item "
                    "is a 400 listing every invalid item in `error.items`, and nothing is written."
                )
            else:
                parts.append(SYNCED_ACTION_TEXT.get(action, ""))
        return "\n\n".join(part for part in parts if part)

    def get_override_parameters(self):
        parameters = [*super().get_override_parameters(), RETRY_AFTER, WWW_AUTHENTICATE]
        if self.method == "POST":
            names = {p.name for p in parameters if isinstance(p, OpenApiParameter)}
            if IDEMPOTENCY_KEY.name not in names:
                parameters.append(IDEMPOTENCY_KEY)
            parameters.append(IDEMPOTENT_REPLAYED)
        return parameters

    def error_codes(self) -> list[int]:
        codes = [400, 401, 403, 406, 429]
        if "{" in self.path:
            codes.append(404)
        if self.method in BODY_METHODS:
            codes += [409, 413, 415]
        if self.method == "POST":
            codes.append(422)
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self.error_codes():
            if str(code) not in responses:
                response = OpenApiResponse(ErrorSerializer, description=ERROR_TEXT[code])
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return dict(sorted(responses.items()))

    def _get_filter_parameters(self):
        """The filters a list applies: a FilterSet may drop some of its class's filters when made."""
        parameters = super()._get_filter_parameters()
        filterset_class = getattr(self.view, "filterset_class", None)
        if filterset_class is None or not parameters:
            return parameters
        try:
            applied = set(filterset_class(data={}, request=None).filters)
        except Exception:
            return parameters
        dropped = set(filterset_class.base_filters) - applied
        return [p for p in parameters if p.get("name") not in dropped]

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        if isinstance(field, serializers.ChoiceField) and field.read_only and not field.allow_blank:
            # DRF drops allow_blank from read-only fields, but a blank model value is still rendered as "".
            model = getattr(getattr(field.parent, "Meta", None), "model", None)
            try:
                model_field = model._meta.get_field(field.source) if model is not None else None
            except Exception:
                model_field = None
            if model_field is not None and model_field.blank:
                field.allow_blank = True
        return super()._map_serializer_field(field, direction, bypass_extensions)

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        # A resource's serializer is described by its own docstring, not its base class's.
        cls = serializer.__class__
        if cls.__module__.startswith("api.") and "description" in schema:
            doc = cls.__dict__.get("__doc__")
            if doc:
                schema["description"] = inspect.cleandoc(doc)
            else:
                del schema["description"]
        return schema


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "rest_framework.authentication.SessionAuthentication"
    name = "cookieAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "A signed-in workspace session: CSMs read, CS leaders read and write. Writes also "
            "send the CSRF token (the csrftoken cookie) in an X-CSRFToken header.",
        }
