"""success-plans/: plans with their goals, targets and initiatives, and the targets' readings.

A plan is written with its nested parts in one call to `plans_save`: `goals` given makes the plan's goals
exactly those (matched by id, else by title; a goal left out is removed), and a goal's `targets` /
`initiatives` likewise. An entry with an `id` keeps the stored value of every field it leaves out, so a
partner can rename or reorder by id alone. A target's `current_value` that differs from the stored one is
recorded as a reading (source api). `measurements/` records and lists readings of one plan's targets.
"""

import re
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Account
from accounts.services import soft_restore_many
from csm.exceptions import DomainError
from success_plans.models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement
from success_plans.selectors import plans_progress
from success_plans.services import (
    UNSET,
    GoalSpec,
    InitiativeSpec,
    Measurement,
    TargetSpec,
    plans_check,
    plans_save,
    targets_measure_bulk,
)

from ..engine import MAX_INT, Output, Reference, Row, SyncedSerializer, SyncedViewSet
from ..errors import BatchError, ItemError, PayloadTooLarge, field_messages
from ..idempotency import idempotent
from ..pagination import SyncPagination
from ..schema import IDEMPOTENCY_KEY, errors, synced_resource_schema

Source = TargetMeasurement.Source
LIST_INDEX = re.compile(r"\.(\d+)(?=\.|$)")
PARTS_PER_LIST = 200  # goals of a plan, targets or initiatives of a goal


def part_id(what: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_INT,
        help_text=f"The {what}'s id. Given, it names the stored {what} to change; left out, the {what} is "
        "matched by its name or title, else created.",
    )


class RequiredWithoutId:
    """Nested entries: without an `id` these fields are required; with one, a field left out keeps its value."""

    required_without_id: tuple[str, ...] = ()

    def validate(self, attrs):
        if attrs.get("id") is None:
            missing = [name for name in self.required_without_id if name not in attrs]
            if missing:
                raise serializers.ValidationError({name: [_("This field is required.")] for name in missing})
        return attrs


class PlanTargetSerializer(RequiredWithoutId, serializers.ModelSerializer):
    """A measurable target of a goal: progress runs from its baseline to its target value, up or down."""

    id = part_id("target")
    current_value = serializers.DecimalField(
        max_digits=18,
        decimal_places=4,
        required=False,
        allow_null=True,
        help_text="The latest reading. A value that differs from the stored one is recorded as a reading.",
    )
    measured_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When `current_value` was read (default: now); not in the future.",
    )
    progress = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        read_only=True,
        help_text="Share of the way from baseline to target value, 0 to 1 (0 until measured).",
    )

    required_without_id = ("name", "target_value")

    class Meta:
        model = Target
        fields = [
            "id",
            "name",
            "unit",
            "baseline",
            "target_value",
            "current_value",
            "measured_at",
            "due_date",
            "usage_metric",
            "progress",
        ]
        extra_kwargs = {"name": {"required": False}, "target_value": {"required": False}}


class PlanInitiativeSerializer(RequiredWithoutId, serializers.ModelSerializer):
    """Work that moves a goal forward."""

    id = part_id("initiative")
    owner = Reference(key="username", scoped=False, required=False, allow_null=True, help_text="A username.")
    completed_at = serializers.DateTimeField(read_only=True, allow_null=True)

    required_without_id = ("title",)

    class Meta:
        model = Initiative
        fields = ["id", "title", "owner", "status", "status_reason", "due_date", "completed_at"]
        extra_kwargs = {
            "title": {"required": False},
            "status_reason": {"help_text": "Why the initiative is blocked (required to block it)."},
        }


class PlanGoalSerializer(RequiredWithoutId, serializers.ModelSerializer):
    """A goal of a success plan, with its targets and initiatives."""

    id = part_id("goal")
    targets = PlanTargetSerializer(
        many=True,
        required=False,
        max_length=PARTS_PER_LIST,
        help_text="Given, the goal's targets become exactly these (matched by id, else name).",
    )
    initiatives = PlanInitiativeSerializer(
        many=True,
        required=False,
        max_length=PARTS_PER_LIST,
        help_text="Given, the goal's initiatives become exactly these (matched by id, else title).",
    )

    required_without_id = ("title",)

    class Meta:
        model = Goal
        fields = [
            "id",
            "title",
            "description",
            "priority",
            "status",
            "status_reason",
            "due_date",
            "order",
            "targets",
            "initiatives",
        ]
        read_only_fields = ["order"]
        extra_kwargs = {
            "title": {"required": False},
            "order": {"help_text": "The goal's position in the plan: its position in `goals` when written."},
            "status_reason": {"help_text": "Why the goal was achieved or abandoned (required to abandon it)."},
        }


class SuccessPlanSerializer(SyncedSerializer):
    """A customer's success plan: its goals, their measurable targets and the initiatives that reach them."""

    account = Reference(model=Account, help_text="The account's external id.")
    owner = Reference(
        key="username",
        scoped=False,
        required=False,
        allow_null=True,
        help_text="The CSM's username; a new plan without one gets the account's CSM.",
    )
    template = serializers.CharField(
        source="template.name", read_only=True, allow_null=True, help_text="The playbook the plan came from."
    )
    progress = serializers.DecimalField(
        source="plan_progress",
        max_digits=5,
        decimal_places=4,
        read_only=True,
        allow_null=True,
        help_text="The mean progress of the plan's targets, 0 to 1; null without targets.",
    )
    goals = PlanGoalSerializer(
        many=True,
        required=False,
        max_length=PARTS_PER_LIST,
        help_text="Given, the plan's goals become exactly these, in this order (matched by id, else title); "
        "a goal left out is removed with its targets and initiatives. Left out, the goals stay as they are.",
    )

    class Meta(SyncedSerializer.Meta):
        model = SuccessPlan
        fields = [
            *SyncedSerializer.SYNC_FIELDS,
            "account",
            "title",
            "status",
            "status_reason",
            "owner",
            "success_definition",
            "start_date",
            "target_date",
            "template",
            "closed_at",
            "progress",
            "goals",
        ]
        read_only_fields = ["closed_at"]
        extra_kwargs = {
            "status": {
                "help_text": "A new plan starts active unless it says draft. Achieve or abandon it "
                "(with a reason to abandon); active reopens a closed plan."
            },
            "status_reason": {"help_text": "Why the plan was achieved or abandoned (required to abandon it)."},
            "start_date": {"required": False, "help_text": "Default: today."},
        }


class TargetReadingSerializer(serializers.ModelSerializer):
    """One reading of a target; the target's current value is its latest reading."""

    target = serializers.IntegerField(source="target_id", read_only=True, help_text="The target's id.")
    recorded_by = serializers.CharField(
        source="recorded_by.username", read_only=True, allow_null=True, help_text="Who recorded it (a username)."
    )

    class Meta:
        model = TargetMeasurement
        fields = ["id", "target", "value", "measured_at", "source", "recorded_by", "created_at"]
        read_only_fields = fields


class TargetReadingInputSerializer(serializers.Serializer):
    """A reading to record."""

    target = serializers.IntegerField(min_value=1, max_value=MAX_INT, help_text="The id of a target of this plan.")
    value = serializers.DecimalField(max_digits=18, decimal_places=4)
    measured_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When it was read (default: now); not in the future."
    )


class SuccessPlanFilterSet(django_filters.FilterSet):
    account = django_filters.CharFilter(
        field_name="account__external_id", label=gettext_lazy("The account's external id.")
    )
    status = django_filters.ChoiceFilter(choices=SuccessPlan.Status.choices, label=gettext_lazy("Status"))

    class Meta:
        model = SuccessPlan
        fields: list[str] = []


class ReadingPagination(SyncPagination):
    """Readings newest first, (measured_at, id) descending, with the same cursor and limit as the lists."""

    ordering_field = "measured_at"
    descending = True


class PlanOutput(Output):
    """A plan's output with its progress, which a list page loads for all its plans at once."""

    def __call__(self, plan: SuccessPlan) -> dict:
        if not hasattr(plan, "plan_progress"):
            attach_progress([plan])
        return super().__call__(plan)


def attach_progress(plans: list[SuccessPlan]) -> None:
    progress = plans_progress(plan_ids=[plan.pk for plan in plans])
    for plan in plans:
        plan.plan_progress = progress[plan.pk].progress


READING_PAGE = inline_serializer(
    "TargetReadingPage",
    {
        "next": serializers.URLField(allow_null=True, help_text="The next page."),
        "next_cursor": serializers.CharField(allow_null=True, help_text="The cursor of the next page."),
        "results": TargetReadingSerializer(many=True),
    },
)
READINGS_RECORDED = inline_serializer("TargetReadingsRecorded", {"results": TargetReadingSerializer(many=True)})
READING_PAGE_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="The `next_cursor` of the previous page."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Readings per page (default 100, at most 1,000)."),
]


class _Rollback(Exception):
    pass


@extend_schema_view(**synced_resource_schema("success plan", SuccessPlanSerializer))
class SuccessPlanViewSet(SyncedViewSet):
    model = SuccessPlan
    serializer_class = SuccessPlanSerializer
    filterset_class = SuccessPlanFilterSet

    # -- reading

    def get_queryset(self):
        if self.action == "measurements":
            return self.scoped_queryset()
        goals = Goal.objects.prefetch_related(
            Prefetch("targets", Target.objects.all()),
            Prefetch("initiatives", Initiative.objects.select_related("owner")),
        )
        return super().get_queryset().select_related("template").prefetch_related(Prefetch("goals", goals))

    def filter_queryset(self, queryset):
        if self.action == "measurements":
            return queryset  # the list's filters do not hide a plan from its readings
        return super().filter_queryset(queryset)

    def output(self) -> Output:
        if not hasattr(self, "_output"):
            self._output = PlanOutput(self.get_serializer())
        return self._output

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None:
            attach_progress(page)
        return page

    # -- writing

    def parse(self, serializer: serializers.Serializer, index: int, item, plain=None) -> Row:
        row = super().parse(serializer, index, item, plain)
        if row.parse_error is not None and row.parse_error["fields"]:
            # Nested entries by position, as the services name them: goals[0].targets[1].name.
            fields = {LIST_INDEX.sub(r"[\1]", name): messages for name, messages in row.parse_error["fields"].items()}
            row.parse_error = {**row.parse_error, "fields": fields, "message": self.first_message(fields)}
        return row

    def resolve_references(self, rows: list[Row]) -> None:
        """The plan's references, then its initiatives' owners and the stored parts its entries name by id
        (one query per kind for the whole batch)."""
        super().resolve_references(rows)
        rows = [row for row in rows if row.ok and row.data.get("goals") is not None]
        self.stored_parts = self.load_stored_parts([row.existing.pk for row in rows if row.existing is not None])
        wanted = {
            initiative["owner"]
            for row in rows
            for goal in row.data["goals"]
            for initiative in goal.get("initiatives") or []
            if initiative.get("owner")
        }
        found = get_user_model().objects.filter(is_active=True, username__in=wanted) if wanted else []
        users = {user.username: user for user in found}
        self.owners = {username: user.pk for username, user in users.items()}
        unknown = Reference(key="username", scoped=False)
        for row in rows:
            missing = {
                f"goals[{g}].initiatives[{i}].owner": [unknown.unknown_message(initiative["owner"])]
                for g, goal in enumerate(row.data["goals"])
                for i, initiative in enumerate(goal.get("initiatives") or [])
                if initiative.get("owner") and initiative["owner"] not in users
            }
            if missing:
                name, messages = next(iter(missing.items()))
                row.fail(400, "invalid", f"{name}: {messages[0]}", missing)

    @staticmethod
    def load_stored_parts(plan_ids: list[int]) -> dict[type, dict[int, Any]]:
        if not plan_ids:
            return {Goal: {}, Target: {}, Initiative: {}}
        return {
            Goal: {goal.pk: goal for goal in Goal.objects.filter(plan_id__in=plan_ids)},
            Target: {t.pk: t for t in Target.objects.filter(goal__plan_id__in=plan_ids).select_related("goal")},
            Initiative: {i.pk: i for i in Initiative.objects.filter(goal__plan_id__in=plan_ids).select_related("goal")},
        }

    def assign(self, row: Row) -> None:
        plan = row.instance
        for name, value in row.data.items():
            if name not in ("deleted", "goals"):
                setattr(plan, name, row.resolved[name] if name in row.resolved else value)
        if row.created:
            if "owner" not in row.data and plan.account_id is not None:
                plan.owner_id = plan.account.owner_id
            if "status" not in row.data:
                plan.status = SuccessPlan.Status.ACTIVE
            if plan.start_date is None:
                plan.start_date = timezone.localdate()
        row.goals = None if row.data.get("goals") is None else self.goal_specs(plan, row.data["goals"])

    def goal_specs(self, plan: SuccessPlan, goals: list[dict]) -> list[GoalSpec]:
        """The entries as the services' specs; an entry naming a stored part by id keeps what it leaves out."""
        stored_goals, stored_targets, stored_initiatives = (self.stored_parts[m] for m in (Goal, Target, Initiative))

        def stored(rows: dict, pk: int | None) -> Any:
            """The stored part `pk` when it belongs to this plan (another plan's ids lend it nothing)."""
            row = rows.get(pk) if pk is not None and plan.pk is not None else None
            plan_id = None if row is None else row.plan_id if isinstance(row, Goal) else row.goal.plan_id
            return row if plan_id == plan.pk else None

        def value(entry: dict, name: str, row: Any, default: Any) -> Any:
            if name in entry:
                return entry[name]
            return getattr(row, name) if row is not None else default

        specs = []
        for entry in goals:
            goal = stored(stored_goals, entry.get("id"))
            targets = None
            if entry.get("targets") is not None:
                targets = []
                for t in entry["targets"]:
                    target = stored(stored_targets, t.get("id"))
                    targets.append(
                        TargetSpec(
                            id=t.get("id"),
                            name=value(t, "name", target, ""),
                            target_value=value(t, "target_value", target, None),
                            unit=value(t, "unit", target, ""),
                            baseline=value(t, "baseline", target, TargetSpec.baseline),
                            due_date=value(t, "due_date", target, None),
                            usage_metric=value(t, "usage_metric", target, ""),
                            current_value=t.get("current_value", UNSET),
                            measured_at=t.get("measured_at"),
                        )
                    )
            initiatives = None
            if entry.get("initiatives") is not None:
                initiatives = []
                for i in entry["initiatives"]:
                    initiative = stored(stored_initiatives, i.get("id"))
                    if "owner" in i:
                        owner_id = self.owners.get(i["owner"]) if i["owner"] else None
                    else:
                        owner_id = initiative.owner_id if initiative is not None else None
                    initiatives.append(
                        InitiativeSpec(
                            id=i.get("id"),
                            title=value(i, "title", initiative, ""),
                            owner_id=owner_id,
                            status=value(i, "status", initiative, InitiativeSpec.status),
                            due_date=value(i, "due_date", initiative, None),
                            status_reason=i.get("status_reason", UNSET),
                        )
                    )
            specs.append(
                GoalSpec(
                    id=entry.get("id"),
                    title=value(entry, "title", goal, ""),
                    description=value(entry, "description", goal, ""),
                    priority=value(entry, "priority", goal, GoalSpec.priority),
                    status=value(entry, "status", goal, GoalSpec.status),
                    due_date=value(entry, "due_date", goal, None),
                    status_reason=entry.get("status_reason", UNSET),
                    targets=targets,
                    initiatives=initiatives,
                )
            )
        return specs

    @staticmethod
    def left_deleted(row: Row) -> bool:
        """A tombstone the write leaves deleted: nothing to check or save."""
        return row.instance.deleted_at is not None and row.data.get("deleted") is not False

    def check_rows(self, rows: list[Row]) -> dict:
        checked = [(position, row) for position, row in enumerate(rows) if not self.left_deleted(row)]
        plans = [row.instance for _position, row in checked]
        goals = [row.goals for _position, row in checked]
        restoring = [row for _position, row in checked if row.instance.deleted_at is not None]
        if restoring:
            # A plan brought back is checked as it will be saved, restored; the check writes nothing.
            try:
                with transaction.atomic():
                    soft_restore_many(
                        queryset=SuccessPlan._base_manager.filter(pk__in=[r.instance.pk for r in restoring])
                    )
                    deleted_at = [row.instance.deleted_at for row in restoring]
                    for row in restoring:
                        row.instance.deleted_at = None
                    try:
                        found = plans_check(plans=plans, goals=goals)
                    finally:
                        for row, when in zip(restoring, deleted_at, strict=True):
                            row.instance.deleted_at = when
                    raise _Rollback
            except _Rollback:
                pass
        else:
            found = plans_check(plans=plans, goals=goals)
        return {checked[index][0]: self.api_names(error) for index, error in found.items()}

    @staticmethod
    def api_names(error: DomainError) -> DomainError:
        """The services name an initiative's owner `owner_id`; the API calls it `owner`."""
        if not hasattr(error, "error_dict"):
            return error
        return DomainError(
            {
                name[: -len("_id")] if name.endswith(".owner_id") else name: messages
                for name, messages in error.message_dict.items()
            }
        )

    def save_rows(self, rows: list[Row]) -> None:
        rows = [row for row in rows if not self.left_deleted(row)]
        if not rows:
            return
        plans_save(
            plans=[row.instance for row in rows],
            goals=[row.goals for row in rows],
            recorded_by=self.request.user if self.request.user.is_authenticated else None,
            source=Source.API,
        )

    # -- readings

    @extend_schema(
        methods=["GET"],
        summary="The readings of a success plan's targets, newest first",
        parameters=READING_PAGE_PARAMETERS,
        responses={200: READING_PAGE, **errors(400, 401, 403, 404, 429)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Record readings of a success plan's targets (all or none)",
        description="Each reading names a target of this plan by id. A target's current value is its latest "
        "reading (one dated earlier is kept in the history). Any invalid reading fails the request with "
        "per-index errors, and nothing is recorded.",
        request=TargetReadingInputSerializer(many=True),
        parameters=[IDEMPOTENCY_KEY],
        responses={201: READINGS_RECORDED, **errors(400, 401, 403, 404, 409, 413, 415, 422, 429)},
    )
    @action(detail=True, methods=["get", "post"], url_path="measurements")
    def measurements(self, request, *args, **kwargs):
        plan = self.get_object()
        if request.method == "GET":
            return self.list_readings(request, plan)
        return idempotent(self, request, lambda: self.record_readings(request, plan))

    def list_readings(self, request, plan: SuccessPlan) -> Response:
        readings = TargetMeasurement.objects.filter(target__goal__plan=plan).select_related("recorded_by")
        paginator = ReadingPagination()
        page = paginator.paginate_queryset(readings, request, self)
        render = Output(TargetReadingSerializer())
        return paginator.get_paginated_response([render(reading) for reading in page])

    def record_readings(self, request, plan: SuccessPlan) -> Response:
        items = request.data
        if not isinstance(items, list):
            raise exceptions.ValidationError({"non_field_errors": [_("A JSON array of readings is required.")]})
        if len(items) > self.bulk_limit:
            raise PayloadTooLarge(
                _("At most %(limit)s items per request; this one has %(count)s.")
                % {"limit": self.bulk_limit, "count": len(items)}
            )
        if plan.deleted_at is not None:
            raise ItemError(
                status_code=409, code="deleted", message=_("This success plan was deleted; nothing was recorded.")
            )
        own = set(Target.objects.filter(goal__plan=plan).values_list("pk", flat=True))
        user = request.user if request.user.is_authenticated else None
        failed, measurements, positions = [], [], []
        for index, item in enumerate(items):
            serializer = TargetReadingInputSerializer(data=item)
            if not serializer.is_valid():
                failed.append(self.reading_error(index, field_messages(serializer.errors)))
                continue
            data = serializer.validated_data
            if data["target"] not in own:
                message = _("There is no target %(id)s in this plan.") % {"id": data["target"]}
                failed.append(self.reading_error(index, {"target": [message]}))
                continue
            positions.append(index)
            measurements.append(
                Measurement(data["target"], data["value"], Source.API, data.get("measured_at"), user and user.pk)
            )
        if not failed:
            try:
                readings = targets_measure_bulk(measurements=measurements)
            except DomainError as error:
                for key, messages in error.message_dict.items():
                    index = positions[int(key)] if key.isdigit() else 0
                    failed.append(self.reading_error(index, {"non_field_errors": messages}))
        if failed:
            message = ngettext(
                "%(count)s of %(total)s readings cannot be recorded; nothing was recorded.",
                "%(count)s of %(total)s readings cannot be recorded; nothing was recorded.",
                len(failed),
            ) % {"count": len(failed), "total": len(items)}
            raise BatchError(sorted(failed, key=lambda item: item["index"]), message)
        for reading in readings:
            reading.recorded_by = user
        render = Output(TargetReadingSerializer())
        return Response({"results": [render(reading) for reading in readings]}, status=status.HTTP_201_CREATED)

    @staticmethod
    def reading_error(index: int, fields: dict[str, list[str]]) -> dict:
        return {
            "index": index,
            "status": "error",
            "error": {"code": "invalid", "message": SyncedViewSet.first_message(fields), "fields": fields},
        }
