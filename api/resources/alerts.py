"""alerts/: the CSMs' calls to action, by id; snoozed or closed through `metrics.services.alerts`.

Alerts are visible with their account: an alert of an account outside the caller's scope is a 404.
"""

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.response import Response

from accounts.models import Account
from metrics.models import Alert, AlertRule
from metrics.services.alerts import alert_close, alert_snooze

from ..engine import ApiView, Output, parse_flag, parse_since
from ..errors import domain_fields
from ..pagination import SyncPagination
from ..schema import READ_ERRORS, SYNC_PARAMETERS, errors


class AlertSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.external_id", read_only=True, allow_null=True)
    rule = serializers.CharField(source="rule.name", read_only=True)
    kind = serializers.ChoiceField(source="rule.kind", choices=AlertRule.Kind.choices, read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "account",
            "rule",
            "kind",
            "status",
            "owner",
            "due",
            "reason",
            "snoozed_until",
            "closed_at",
            "closed_reason",
            "closed_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AlertChangeSerializer(serializers.Serializer):
    """Snooze until a date, or mark done with a reason."""

    status = serializers.ChoiceField(choices=[Alert.Status.SNOOZED, Alert.Status.DONE])
    until = serializers.DateField(required=False, help_text="Snoozed: the day it wakes up (after today).")
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=300, help_text="Done: why (default “Marked done”)."
    )

    def validate(self, attrs):
        if attrs["status"] == Alert.Status.SNOOZED and attrs.get("until") is None:
            raise serializers.ValidationError({"until": [_("Required to snooze.")]})
        return attrs


class AlertFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Alert.Status.choices)
    kind = django_filters.ChoiceFilter(field_name="rule__kind", choices=AlertRule.Kind.choices, help_text="Rule kind.")
    account = django_filters.CharFilter(field_name="account__external_id", help_text="An account's external id.")

    class Meta:
        model = Alert
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(
        summary="List alerts changed since a time, oldest change first",
        parameters=SYNC_PARAMETERS,
        responses={200: AlertSerializer(many=True), **errors(*READ_ERRORS)},
    ),
    retrieve=extend_schema(summary="One alert", responses={200: AlertSerializer, **errors(*READ_ERRORS)}),
    partial_update=extend_schema(
        summary="Snooze an alert until a date, or mark it done",
        request=AlertChangeSerializer,
        responses={200: AlertSerializer, **errors(400, 401, 403, 404, 415, 429)},
    ),
)
class AlertViewSet(ApiView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    pagination_class = SyncPagination
    filterset_class = AlertFilterSet
    lookup_value_regex = "[0-9]+"
    http_method_names = ["get", "patch", "head", "options"]
    queryset = Alert.objects.none()  # the schema's model; requests use get_queryset

    def get_queryset(self):
        visible = Account.objects.visible_to(self.viewer).values("pk")
        return Alert.objects.filter(account__in=visible).select_related("account", "rule", "owner")

    def get_serializer_class(self):
        return AlertChangeSerializer if self.action == "partial_update" else AlertSerializer

    def filter_queryset(self, queryset):
        if self.action == "list":
            parse_flag(self.request.query_params, "include_deleted", False)  # alerts have no tombstones
            since = parse_since(self.request.query_params)
            if since is not None:
                queryset = queryset.filter(updated_at__gte=since)
        return super().filter_queryset(queryset)

    def render(self, alert: Alert) -> dict:
        return Output(AlertSerializer())(alert)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        render = Output(AlertSerializer())
        return self.get_paginated_response([render(alert) for alert in page])

    def retrieve(self, request, *args, **kwargs):
        return Response(self.render(self.get_object()))

    def partial_update(self, request, *args, **kwargs):
        alert = self.get_object()
        change = AlertChangeSerializer(data=request.data)
        change.is_valid(raise_exception=True)
        data = change.validated_data
        try:
            if data["status"] == Alert.Status.SNOOZED:
                alert = alert_snooze(alert=alert, until=data["until"])
            else:
                alert = alert_close(alert=alert, reason=data.get("reason", ""))
        except DjangoValidationError as error:
            fields = {("until" if name == "snoozed_until" else name): m for name, m in domain_fields(error).items()}
            raise exceptions.ValidationError(fields) from None
        return Response(self.render(alert))
