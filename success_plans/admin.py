"""Admin for success plans and the playbooks (plan templates) they are made from."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from csm.admin import CsmModelAdmin, EstimatedCountPaginator, LiveFilter, ReadOnlyAdminMixin, SoftDeleteAdminMixin

from .models import (
    Goal,
    Initiative,
    PlanTemplate,
    SuccessPlan,
    Target,
    TargetMeasurement,
    TemplateGoal,
    TemplateInitiative,
    TemplateTarget,
)

# --- playbooks ----------------------------------------------------------------------------------


class TemplateGoalInline(admin.TabularInline):
    model = TemplateGoal
    fields = ("title", "priority", "due_in_days", "order")
    extra = 0
    show_change_link = True


@admin.register(PlanTemplate)
class PlanTemplateAdmin(CsmModelAdmin):
    list_display = ("name", "tier", "lifecycle_stage", "duration_days", "is_active")
    list_filter = ("is_active", "tier", "lifecycle_stage")
    list_select_related = ("tier",)
    search_fields = ("name", "description")
    autocomplete_fields = ("tier",)
    inlines = (TemplateGoalInline,)


class TemplateTargetInline(admin.TabularInline):
    model = TemplateTarget
    fields = ("name", "unit", "baseline", "target_value", "due_in_days", "usage_metric")
    extra = 0


class TemplateInitiativeInline(admin.TabularInline):
    model = TemplateInitiative
    fields = ("title", "due_in_days")
    extra = 0


@admin.register(TemplateGoal)
class TemplateGoalAdmin(CsmModelAdmin):
    list_display = ("title", "template", "priority", "due_in_days", "order")
    list_filter = ("priority", "template")
    list_select_related = ("template",)
    search_fields = ("title", "template__name")
    autocomplete_fields = ("template",)
    inlines = (TemplateTargetInline, TemplateInitiativeInline)


@admin.register(TemplateTarget)
class TemplateTargetAdmin(CsmModelAdmin):
    list_display = ("name", "goal", "unit", "baseline", "target_value", "due_in_days", "usage_metric")
    list_select_related = ("goal",)
    search_fields = ("name", "goal__title")
    autocomplete_fields = ("goal",)


@admin.register(TemplateInitiative)
class TemplateInitiativeAdmin(CsmModelAdmin):
    list_display = ("title", "goal", "due_in_days")
    list_select_related = ("goal",)
    search_fields = ("title", "goal__title")
    autocomplete_fields = ("goal",)


# --- plans --------------------------------------------------------------------------------------


class GoalInline(admin.TabularInline):
    model = Goal
    fields = ("title", "priority", "status", "due_date", "achieved_at", "order")
    extra = 0
    show_change_link = True


@admin.register(SuccessPlan)
class SuccessPlanAdmin(SoftDeleteAdminMixin, CsmModelAdmin):
    list_display = ("title", "account", "status", "owner", "start_date", "target_date", "template")
    list_filter = (LiveFilter, "status", "template", "owner")
    list_select_related = ("account", "owner", "template")
    search_fields = ("title", "=external_id", "account__name")
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("account", "owner", "template")
    readonly_fields = ("created_at", "updated_at", "deleted_at")
    fieldsets = (
        (None, {"fields": ("account", "title", "status", "owner", "template")}),
        (_("Success"), {"fields": ("success_definition", "start_date", "target_date")}),
        (_("Record"), {"fields": ("external_id", "created_at", "updated_at", "deleted_at"), "classes": ("collapse",)}),
    )
    inlines = (GoalInline,)


class TargetInline(admin.TabularInline):
    model = Target
    fields = ("name", "unit", "baseline", "target_value", "current_value", "measured_at", "due_date", "usage_metric")
    extra = 0


class InitiativeInline(admin.TabularInline):
    model = Initiative
    fields = ("title", "owner", "status", "due_date", "completed_at")
    autocomplete_fields = ("owner",)
    extra = 0


@admin.register(Goal)
class GoalAdmin(CsmModelAdmin):
    list_display = ("title", "plan", "priority", "status", "due_date", "achieved_at")
    list_filter = ("status", "priority")
    list_select_related = ("plan",)
    search_fields = ("title", "plan__title")
    autocomplete_fields = ("plan",)
    inlines = (TargetInline, InitiativeInline)


@admin.register(Target)
class TargetAdmin(CsmModelAdmin):
    list_display = ("name", "goal", "baseline", "target_value", "current_value", "progress_display", "due_date")
    list_select_related = ("goal",)
    search_fields = ("name", "goal__title", "usage_metric")
    autocomplete_fields = ("goal",)
    readonly_fields = ("progress_display",)

    @admin.display(description=_("progress"))
    def progress_display(self, obj: Target) -> str:
        return "-" if obj.pk is None or obj.progress is None else f"{obj.progress:.0%}"


@admin.register(Initiative)
class InitiativeAdmin(CsmModelAdmin):
    list_display = ("title", "goal", "owner", "status", "due_date", "completed_at")
    list_filter = ("status", "due_date")
    list_select_related = ("goal", "owner")
    search_fields = ("title", "goal__title")
    autocomplete_fields = ("goal", "owner")


@admin.register(TargetMeasurement)
class TargetMeasurementAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    """Readings are recorded by `target_measure` (workspace, API, imports) and the usage sync."""

    list_display = ("__str__", "target", "value", "measured_at", "source", "recorded_by")
    list_filter = ("source",)
    list_select_related = ("target", "recorded_by")
    search_fields = ("target__name",)
    paginator = EstimatedCountPaginator
