"""accounts/{external_id}/health/: an account's latest health with its components, its history, and why
it changed between two dates. Read through `metrics.selectors.health`; a fixed number of queries."""

import datetime

from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, serializers
from rest_framework.response import Response

from accounts.models import Account
from metrics.selectors.health import (
    health_history,
    latest_health,
)

from ..engine import ApiView
from ..schema import READ_ERRORS, errors

HISTORY_DAYS = 90


def _number(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class HealthComponentSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="usage_trend, usage_level, engagement, sentiment, plan_progress, ...")
    label = serializers.CharField()
    metric = serializers.CharField(help_text="The usage metric, for usage components; else empty.")
    per_metric = serializers.CharField(help_text="Usage level: the metric it is divided by; else empty.")
    raw = _number(allow_null=True, help_text="The measured raw value (null: no data).")
    score = _number(allow_null=True, help_text="0–100 (null: no data).")
    weight = _number(help_text="Its share of the score, from 0 to 1.")
    contribution = _number(help_text="score x weight, in points, to 0.01.")
    has_data = serializers.BooleanField()


class HealthSnapshotSerializer(serializers.Serializer):
    date = serializers.DateField()
    score = serializers.DecimalField(max_digits=4, decimal_places=1)
    band = serializers.CharField(help_text="red, yellow or green.")
    model_version = serializers.IntegerField(source="model_version.version", help_text="The health model version.")
    model_name = serializers.CharField(source="model_version", help_text="The model's name and version.")
    components = serializers.SerializerMethodField()

    @extend_schema_field(HealthComponentSerializer(many=True))
    def get_components(self, snapshot) -> list[dict]:
        """The components read with the snapshot (`latest_health`), given in the context."""
        return HealthComponentSerializer(self.context["components"], many=True).data


class HealthPointSerializer(serializers.Serializer):
    date = serializers.DateField()
    score = serializers.DecimalField(max_digits=4, decimal_places=1)
    band = serializers.CharField()


class HealthChangeSideSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The snapshot read: on the date asked for, or the latest before it.")
    score = serializers.DecimalField(max_digits=4, decimal_places=1)
    band = serializers.CharField()
    model_name = serializers.CharField()


class HealthChangeLineSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="A component kind, or `rounding` for what the contributions leave over.")
    label = serializers.CharField()
    metric = serializers.CharField()
    before = _number(source="before_contribution", allow_null=True, help_text="Points before (null: no snapshot).")
    after = _number(source="after_contribution", allow_null=True, help_text="Points after (null: no snapshot).")
    change = _number(allow_null=True, help_text="after - before, in points.")
    data_change = serializers.CharField(help_text="gained, lost, or empty.")


class HealthChangeSerializer(serializers.Serializer):
    first = serializers.DateField(help_text="The earlier date asked for.")
    second = serializers.DateField(help_text="The later date asked for.")
    before = HealthChangeSideSerializer(allow_null=True)
    after = HealthChangeSideSerializer(allow_null=True)
    difference = _number(allow_null=True, help_text="after score - before score (null: a side has no snapshot).")
    model_changed = serializers.BooleanField()
    lines = HealthChangeLineSerializer(
        many=True,
        help_text="Per component, then the rounding line; the changes add up to the difference exactly.",
    )


class HealthSerializer(serializers.Serializer):
    account = serializers.CharField(help_text="The account's external id.")
    latest = HealthSnapshotSerializer(allow_null=True)
    history = HealthPointSerializer(many=True, help_text="Snapshots since `since`, oldest first.")
    change = HealthChangeSerializer(allow_null=True, help_text="With `from` and `to` only.")


def _date_param(params, name: str) -> datetime.date | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        day = parse_date(raw)
    except ValueError:
        day = None
    if day is None:
        raise exceptions.ValidationError({name: [_("A date as YYYY-MM-DD.")]})
    return day


def _date_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.DATE, description=description)


class AccountHealthView(ApiView, generics.GenericAPIView):
    serializer_class = HealthSerializer
    queryset = Account.objects.none()  # the schema's model; requests use visible_to

    @extend_schema(
        summary="An account's health: latest snapshot, history, and why it changed",
        parameters=[
            _date_parameter("since", f"History from this day (default {HISTORY_DAYS} days ago)."),
            _date_parameter("from", "With `to`: explain the change from this date's health..."),
            _date_parameter("to", "...to this date's (each side reads the snapshot on or before its date)."),
        ],
        responses={200: HealthSerializer, **errors(*READ_ERRORS)},
    )
    def get(self, request, external_id: str):
        params = request.query_params
        since = _date_param(params, "since") or timezone.localdate() - datetime.timedelta(days=HISTORY_DAYS)
        first, second = _date_param(params, "from"), _date_param(params, "to")
        if (first is None) != (second is None):
            missing = "to" if second is None else "from"
            raise exceptions.ValidationError({missing: [_("Give both from and to, or neither.")]})
        if "\x00" in external_id:
            raise Http404
        account = (
            Account.objects.visible_to(self.viewer)
            .filter(external_id=external_id, deleted_at__isnull=True)
            .only("pk", "external_id")
            .first()
        )
        if account is None:
            raise Http404
        latest, components, change = latest_health(account=account, change=None if first is None else (first, second))
        body = {
            "account": account.external_id,
            "latest": latest,
            "history": health_history(account=account, since=since),
            "change": change,
        }
        return Response(HealthSerializer(body, context={"components": components}).data)
