"""metrics/revenue/: the stored monthly revenue bridge, per segment.

The bridge adds up every account, so only callers that see every account may read it: partners with
scope `all` and signed-in users. A partner with scope `own` is refused (403).
"""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, permissions, serializers
from rest_framework.response import Response

from accounts.models import Partner, PartnerKey
from csm.exceptions import DomainError
from metrics.history import check_month_range, parse_month
from metrics.models import RevenueMonth
from metrics.services.revenue import ROW_FIGURES

from ..engine import ApiView, Output
from ..permissions import ApiAccess
from ..schema import errors

SegmentKind = RevenueMonth.SegmentKind


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-01"})
class MonthField(serializers.Field):
    """A calendar month as YYYY-MM (stored as its first day)."""

    def to_representation(self, value):
        return f"{value:%Y-%m}"


class RevenueMonthSerializer(serializers.ModelSerializer):
    month = MonthField(read_only=True)

    class Meta:
        model = RevenueMonth
        fields = ["month", "segment_kind", "segment", *ROW_FIGURES]
        read_only_fields = fields


class SeesEveryAccount(permissions.BasePermission):
    """Figures over every account: a partner needs scope `all`."""

    message = gettext_lazy("The revenue bridge covers every account; it needs a key with scope all.")

    def has_permission(self, request, view) -> bool:
        auth = request.auth
        return not isinstance(auth, PartnerKey) or auth.partner.scope == Partner.Scope.ALL


def _month(params, name: str):
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return parse_month(raw)
    except DomainError as error:
        raise exceptions.ValidationError({name: error.messages}) from None


class RevenueView(ApiView, generics.GenericAPIView):
    serializer_class = RevenueMonthSerializer
    permission_classes = [ApiAccess, SeesEveryAccount]
    queryset = RevenueMonth.objects.none()  # the schema's model

    @extend_schema(
        summary="The monthly revenue bridge of a segment kind",
        description="One row a month and segment, oldest month first within each segment: start + new + "
        "reactivation + expansion - contraction - churned = end. Money is MRR at month ends; rates are null "
        "when a month starts with no MRR. Needs a key with scope all (or a signed-in user).",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.STR, description="First month, YYYY-MM (default: the first)."),
            OpenApiParameter("to", OpenApiTypes.STR, description="Last month, YYYY-MM (default: the last)."),
            OpenApiParameter(
                "segment_kind",
                OpenApiTypes.STR,
                enum=list(SegmentKind.values),
                description="How accounts are grouped (default all).",
            ),
            OpenApiParameter("segment", OpenApiTypes.STR, description="Only this segment (a tier name, a region…)."),
        ],
        responses={200: RevenueMonthSerializer(many=True), **errors(400, 401, 403, 429)},
    )
    def get(self, request):
        params = request.query_params
        first, last = _month(params, "from"), _month(params, "to")
        if first and last:
            try:
                check_month_range(first, last)
            except DomainError as error:
                raise exceptions.ValidationError({"to": error.messages}) from None
        segment_kind = params.get("segment_kind") or SegmentKind.ALL
        if segment_kind not in SegmentKind.values:
            raise exceptions.ValidationError(
                {"segment_kind": [_("One of: %(kinds)s.") % {"kinds": ", ".join(SegmentKind.values)}]}
            )
        rows = RevenueMonth.objects.filter(segment_kind=segment_kind)
        if first:
            rows = rows.filter(month__gte=first)
        if last:
            rows = rows.filter(month__lte=last)
        if "segment" in params:
            if "\x00" in params["segment"]:
                raise exceptions.ValidationError({"segment": [_("Null characters are not allowed.")]})
            rows = rows.filter(segment=params["segment"])
        render = Output(RevenueMonthSerializer())
        return Response([render(row) for row in rows.order_by("segment", "month")])
