"""OpenAPI descriptions shared by the resources: the error shape, the sync parameters, bulk bodies."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. invalid, not_found, conflict.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Field errors, by field name (nested fields as a.b[0].c).",
    )
    items = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="A bulk request's per-item errors: index, status, error.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    text = {
        400: "The request is not valid (field errors in `fields`, per-item errors in `items`).",
        401: "No API key, or a wrong, revoked or inactive one.",
        403: "Signed in, but without access to this.",
        404: "No such object in your scope.",
        409: "Conflict: the external id exists already, is held outside your scope, or was deleted.",
        413: "The body or the batch is too large.",
        415: "The body is not JSON.",
        422: "The Idempotency-Key was used with another request.",
        429: "Too many requests; retry after the Retry-After header's seconds.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=text[code]) for code in codes}


READ_ERRORS = (400, 401, 403, 404, 429)
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415, 429)

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Any unique string (at most 255 characters). A repeat within 24 hours returns the first "
    "response without writing again; the same key with another body is a 422.",
)
SYNC_PARAMETERS = [
    OpenApiParameter(
        "updated_since",
        OpenApiTypes.DATETIME,
        description="Only objects changed at or after this ISO 8601 date-time.",
    ),
    OpenApiParameter(
        "include_deleted",
        OpenApiTypes.BOOL,
        description="Include tombstones (objects with deleted_at set). Default false.",
    ),
]
ALL_OR_NONE = OpenApiParameter(
    "all_or_none",
    OpenApiTypes.BOOL,
    description="true (default): any invalid item fails the request and nothing is written. false: the "
    "valid items are written and each item reports its outcome.",
)

BULK_RESULT = inline_serializer(
    "BulkResult",
    {
        "results": serializers.ListField(
            child=inline_serializer(
                "BulkItemResult",
                {
                    "index": serializers.IntegerField(),
                    "status": serializers.ChoiceField(choices=["created", "updated", "error"]),
                    "id": serializers.IntegerField(required=False),
                    "external_id": serializers.CharField(required=False, allow_null=True),
                    "error": ErrorDetailSerializer(required=False),
                },
            )
        )
    },
)


def synced_resource_schema(name: str, serializer, plural: str | None = None) -> dict:
    """extend_schema_view arguments for a SyncedViewSet of `serializer` (`plural` when not `name` + "s")."""
    plural = plural or f"{name}s"
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
            summary=f"Create a {name}",
            parameters=[IDEMPOTENCY_KEY],
            responses={201: serializer, **errors(*WRITE_ERRORS, 422)},
        ),
        "update": extend_schema(
            summary=f"Create or update a {name} by external id (idempotent upsert)",
            responses={200: serializer, 201: serializer, **errors(*WRITE_ERRORS)},
        ),
        "partial_update": extend_schema(
            summary=f"Change some fields of a {name}", responses={200: serializer, **errors(*WRITE_ERRORS)}
        ),
        "destroy": extend_schema(
            summary=f"Delete a {name} (it stays as a tombstone for sync)",
            responses={204: None, **errors(*READ_ERRORS)},
        ),
        "bulk": extend_schema(
            summary=f"Create or update up to 1,000 {plural} by external id",
            request=serializer(many=True),
            parameters=[ALL_OR_NONE, IDEMPOTENCY_KEY],
            responses={200: BULK_RESULT, **errors(*WRITE_ERRORS, 422)},
        ),
    }
