"""Admin for success plans and the playbooks (plan templates) they are made from.

Plans, goals, targets and initiatives are saved through `success_plans.services`, inlines included, so a
change made here validates, keeps target readings and queues the account's recompute like the
workspace and the API do. Playbooks are configuration: a template is edited on one page, goals with
their targets and initiatives nested.
"""

from collections.abc import Callable
from typing import Any

import nested_admin
import nested_admin.formsets
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts.admin import AccountAdmin, SoftDeleteAdminMixin
from accounts.models import Account
from accounts.services import recompute_batch
from csm.admin import CsmModelAdmin, EstimatedCountPaginator, LiveFilter, ReadOnlyAdminMixin
from csm.exceptions import DomainError

from . import services
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


class PrefetchedNestedFormSet(nested_admin.formsets.NestedInlineFormSet):
    """Rows read from the parent row's prefetched relation, not one query per parent row."""

    def get_queryset(self):
        accessor = self.fk.remote_field.get_accessor_name()
        prefetched = getattr(self.instance, "_prefetched_objects_cache", {})
        if self.instance.pk is not None and accessor in prefetched:
            return prefetched[accessor]
        return super().get_queryset()


class TemplateTargetNestedInline(nested_admin.NestedTabularInline):
    model = TemplateTarget
    formset = PrefetchedNestedFormSet
    fields = ("name", "unit", "baseline", "target_value", "due_in_days", "usage_metric", "order")
    extra = 0


class TemplateInitiativeNestedInline(nested_admin.NestedTabularInline):
    model = TemplateInitiative
    formset = PrefetchedNestedFormSet
    fields = ("title", "due_in_days", "order")
    extra = 0


class TemplateGoalNestedInline(nested_admin.NestedStackedInline):
    model = TemplateGoal
    fields = (("title", "priority", "due_in_days", "order"), "description")
    extra = 0
    inlines = (TemplateTargetNestedInline, TemplateInitiativeNestedInline)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("targets", "initiatives")


@admin.register(PlanTemplate)
class PlanTemplateAdmin(nested_admin.NestedModelAdminMixin, CsmModelAdmin):
    """A playbook on one page: its goals, and each goal's targets and initiatives."""

    list_display = ("name", "tier", "lifecycle_stage", "duration_days", "is_active")
    list_filter = ("is_active", "tier", "lifecycle_stage")
    list_select_related = ("tier",)
    search_fields = ("name", "description")
    autocomplete_fields = ("tier",)
    inlines = (TemplateGoalNestedInline,)


class TemplateTargetInline(admin.TabularInline):
    model = TemplateTarget
    fields = ("name", "unit", "baseline", "target_value", "due_in_days", "usage_metric", "order")
    extra = 0


class TemplateInitiativeInline(admin.TabularInline):
    model = TemplateInitiative
    fields = ("title", "due_in_days", "order")
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


# --- saving plans through the services ----------------------------------------------------------


def _changed(form: forms.ModelForm, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: form.cleaned_data[name] for name in form.changed_data if name in names}


def _adopt(form: forms.ModelForm, saved: Model) -> Model:
    """Point the form's instance at the row a service created, so the admin links and logs it."""
    form.instance.pk = saved.pk
    form.instance._state.adding = False
    return saved


def save_plan(form: forms.ModelForm, user) -> SuccessPlan:
    data = form.cleaned_data
    if form.instance._state.adding:
        if data.get("template"):
            plan = services.plan_create_from_template(
                account=data["account"],
                template=data["template"],
                start_date=data["start_date"],
                owner=data.get("owner"),
                status=data["status"],
            )
            plan = services.plan_update(
                plan=plan,
                data={
                    name: data[name]
                    for name in ("title", "success_definition", "target_date", "external_id")
                    if data.get(name)
                },
            )
        else:
            plan = services.plan_create(
                account=data["account"],
                title=data["title"],
                owner=data.get("owner"),
                success_definition=data.get("success_definition", ""),
                start_date=data["start_date"],
                target_date=data.get("target_date"),
                status=data["status"],
                external_id=data.get("external_id"),
            )
        return _adopt(form, plan)
    plan = SuccessPlan.objects.get(pk=form.instance.pk)
    changes = _changed(form, services.PLAN_EDITABLE_FIELDS)
    if changes:
        plan = services.plan_update(plan=plan, data=changes)
    if {"status", "status_reason"} & set(form.changed_data):
        plan = services.plan_set_status(plan=plan, status=data["status"], reason=data.get("status_reason", ""))
    return plan


def _save_part(form: forms.ModelForm, *, add: Callable[[], Model], update: Callable, editable: tuple[str, ...]):
    """A new row through its `add` service (then its order), a changed one through `update`."""
    if form.instance._state.adding:
        part = _adopt(form, add())
        changes = {"order": form.cleaned_data["order"]} if "order" in form.changed_data else {}
    else:
        part = type(form.instance).objects.get(pk=form.instance.pk)
        changes = _changed(form, editable)
    return update(part, changes) if changes else part


def _status_changed(form: forms.ModelForm, *names: str) -> bool:
    return bool({"status", "status_reason", *names} & set(form.changed_data)) and bool(form.cleaned_data.get("status"))


def save_goal(form: forms.ModelForm, user, plan: SuccessPlan | None = None) -> Goal:
    data = form.cleaned_data
    goal = _save_part(
        form,
        add=lambda: services.goal_add(
            plan=plan or data["plan"],
            title=data["title"],
            description=data.get("description", ""),
            priority=data.get("priority") or Goal._meta.get_field("priority").default,
            due_date=data.get("due_date"),
        ),
        update=lambda goal, changes: services.goal_update(goal=goal, data=changes),
        editable=services.GOAL_EDITABLE_FIELDS,
    )
    if _status_changed(form, "achieved_at"):
        goal = services.goal_set_status(
            goal=goal, status=data["status"], reason=data.get("status_reason", ""), on=data.get("achieved_at")
        )
    return goal


def save_target(form: forms.ModelForm, user, goal: Goal | None = None) -> Target:
    data = form.cleaned_data
    target = _save_part(
        form,
        add=lambda: services.target_add(
            goal=goal or data["goal"],
            name=data["name"],
            target_value=data["target_value"],
            baseline=data.get("baseline") or 0,
            unit=data.get("unit", ""),
            due_date=data.get("due_date"),
            usage_metric=data.get("usage_metric", ""),
        ),
        update=lambda target, changes: services.target_update(target=target, data=changes),
        editable=services.TARGET_EDITABLE_FIELDS,
    )
    if "current_value" in form.changed_data and data.get("current_value") is not None:
        services.target_measure(target=target, value=data["current_value"], recorded_by=user)
    return target


def save_initiative(form: forms.ModelForm, user, goal: Goal | None = None) -> Initiative:
    data = form.cleaned_data
    initiative = _save_part(
        form,
        add=lambda: services.initiative_add(
            goal=goal or data["goal"], title=data["title"], owner=data.get("owner"), due_date=data.get("due_date")
        ),
        update=lambda initiative, changes: services.initiative_update(initiative=initiative, data=changes),
        editable=services.INITIATIVE_EDITABLE_FIELDS,
    )
    if _status_changed(form):
        initiative = services.initiative_set_status(
            initiative=initiative, status=data["status"], reason=data.get("status_reason", "")
        )
    return initiative


SAVE = {Goal: save_goal, Target: save_target, Initiative: save_initiative}
REMOVE = {
    Goal: lambda goal: services.goal_remove(goal=goal),
    Target: lambda target: services.target_remove(target=target),
    Initiative: lambda initiative: services.initiative_remove(initiative=initiative),
}


def save_formset_through_services(formset, user) -> None:
    """Save inline rows one service call each: removed, added and changed rows alike."""
    for form in formset.forms:
        if not hasattr(form, "cleaned_data") or not form.has_changed():
            continue
        if formset.can_delete and formset._should_delete_form(form):
            if form.instance.pk is not None:
                REMOVE[formset.model](form.instance)
            continue
        SAVE[formset.model](form, user, formset.instance)
    # The admin's change message reads these; the services did the saving.
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


class ServiceSavedAdmin(CsmModelAdmin):
    """Saves the object and its inline rows through the success-plan services."""

    save_object = staticmethod(save_goal)

    def save_model(self, request, obj, form, change) -> None:
        self.save_object(form, request.user)

    def save_formset(self, request, form, formset, change) -> None:
        save_formset_through_services(formset, request.user)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The object and each inline row are saved by their own service calls: recompute once.
        with recompute_batch():
            return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_model(self, request, obj) -> None:
        REMOVE[type(obj)](obj)

    def delete_queryset(self, request, queryset) -> None:
        services.parts_remove(queryset=queryset)


class CachedChoicesInlineMixin:
    """Foreign-key choices read once per page rather than once per inline row."""

    cached_choice_fields: tuple[str, ...] = ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name in self.cached_choice_fields and field is not None:
            field.choices = [choice for choice in field.choices]  # list() would COUNT first
        return field


# --- plans --------------------------------------------------------------------------------------


class GoalInline(admin.TabularInline):
    model = Goal
    fields = ("title", "priority", "status", "status_reason", "due_date", "achieved_at", "order")
    extra = 0
    show_change_link = True


class SuccessPlanForm(forms.ModelForm):
    class Meta:
        model = SuccessPlan
        fields = (
            "account",
            "title",
            "status",
            "status_reason",
            "owner",
            "template",
            "success_definition",
            "start_date",
            "target_date",
            "external_id",
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "template" in self.fields:
            self.fields["template"].disabled = True  # a template is applied when a plan is created
        if "title" in self.fields:
            self.fields["title"].help_text = _("From a template, its name is used when this is left as it is.")


@admin.register(SuccessPlan)
class SuccessPlanAdmin(SoftDeleteAdminMixin, ServiceSavedAdmin):
    form = SuccessPlanForm
    save_object = staticmethod(save_plan)
    list_display = ("title", "account", "status", "owner", "start_date", "target_date", "template")
    list_filter = (LiveFilter, "status", "template", "owner")
    list_select_related = ("account", "owner", "template")
    search_fields = ("title", "=external_id", "account__name")
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("account", "owner", "template")
    readonly_fields = ("closed_at", "created_at", "updated_at", "deleted_at")
    fieldsets = (
        (None, {"fields": ("account", "title", "status", "status_reason", "owner", "template")}),
        (_("Success"), {"fields": ("success_definition", "start_date", "target_date", "closed_at")}),
        (_("Record"), {"fields": ("external_id", "created_at", "updated_at", "deleted_at"), "classes": ("collapse",)}),
    )
    inlines = (GoalInline,)

    def delete_model(self, request, obj) -> None:
        services.plan_delete(plan=obj)


class TargetForm(forms.ModelForm):
    def clean_current_value(self):
        value = self.cleaned_data.get("current_value")
        if value is None and self.instance.current_value is not None:
            raise forms.ValidationError(gettext("A reading cannot be removed; record the new value instead."))
        return value


class TargetInline(admin.TabularInline):
    model = Target
    form = TargetForm
    fields = (
        "name",
        "unit",
        "baseline",
        "target_value",
        "current_value",
        "progress_label",
        "measured_at",
        "due_date",
        "usage_metric",
        "order",
    )
    readonly_fields = ("progress_label", "measured_at")
    extra = 0

    @admin.display(description=_("progress"))
    def progress_label(self, obj: Target) -> str:
        return "-" if obj.pk is None else obj.progress_label


class InitiativeInline(CachedChoicesInlineMixin, admin.TabularInline):
    model = Initiative
    fields = ("title", "owner", "status", "status_reason", "due_date", "completed_at", "order")
    readonly_fields = ("completed_at",)
    cached_choice_fields = ("owner",)
    extra = 0


@admin.register(Goal)
class GoalAdmin(ServiceSavedAdmin):
    save_object = staticmethod(save_goal)
    list_display = ("title", "plan", "priority", "status", "due_date", "achieved_at")
    list_filter = ("status", "priority")
    list_select_related = ("plan",)
    search_fields = ("title", "plan__title")
    autocomplete_fields = ("plan",)
    inlines = (TargetInline, InitiativeInline)


@admin.register(Target)
class TargetAdmin(ServiceSavedAdmin):
    form = TargetForm
    save_object = staticmethod(save_target)
    list_display = ("name", "goal", "baseline", "target_value", "current_value", "progress_label", "due_date")
    list_select_related = ("goal",)
    search_fields = ("name", "goal__title", "usage_metric")
    autocomplete_fields = ("goal",)
    readonly_fields = ("progress_label", "measured_at")
    fields = (
        "goal",
        "name",
        "unit",
        "baseline",
        "target_value",
        "current_value",
        "measured_at",
        "progress_label",
        "due_date",
        "usage_metric",
        "order",
    )

    @admin.display(description=_("progress"))
    def progress_label(self, obj: Target) -> str:
        return "-" if obj.pk is None else obj.progress_label


@admin.register(Initiative)
class InitiativeAdmin(ServiceSavedAdmin):
    save_object = staticmethod(save_initiative)
    list_display = ("title", "goal", "owner", "status", "due_date", "completed_at")
    list_filter = ("status", "due_date")
    list_select_related = ("goal", "owner")
    search_fields = ("title", "goal__title")
    autocomplete_fields = ("goal", "owner")
    readonly_fields = ("completed_at",)


@admin.register(TargetMeasurement)
class TargetMeasurementAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    """Readings are recorded by `target_measure` (workspace, API, imports) and the usage sync."""

    list_display = ("__str__", "target", "value", "measured_at", "source", "recorded_by")
    list_filter = ("source",)
    list_select_related = ("target", "recorded_by")
    search_fields = ("target__name",)
    paginator = EstimatedCountPaginator


# --- "apply template" on accounts ---------------------------------------------------------------


class ApplyTemplateForm(forms.Form):
    template = forms.ModelChoiceField(
        label=_("Template"), queryset=PlanTemplate.objects.filter(is_active=True), empty_label=None
    )
    start_date = forms.DateField(
        label=_("Start date"), initial=timezone.localdate, help_text=_("Due dates count from this day.")
    )
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[(s.value, s.label) for s in (SuccessPlan.Status.ACTIVE, SuccessPlan.Status.DRAFT)],
    )


@admin.action(description=_("Apply a plan template"), permissions=["change"])
def apply_plan_template(modeladmin, request, queryset):
    """Choose a template, then create one plan per selected account from it."""
    form = ApplyTemplateForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        try:
            applied = services.plans_apply_template(
                template=form.cleaned_data["template"],
                accounts=queryset.select_related("owner"),
                start_date=form.cleaned_data["start_date"],
                status=form.cleaned_data["status"],
            )
        except DomainError as error:
            modeladmin.message_user(request, " ".join(error.messages), messages.ERROR)
            return None
        created = len(applied.created)
        modeladmin.message_user(
            request,
            ngettext("%(count)d plan created.", "%(count)d plans created.", created) % {"count": created},
            messages.SUCCESS if created else messages.WARNING,
        )
        if applied.skipped:
            names = dict(Account.objects.filter(pk__in=applied.skipped).values_list("pk", "name"))
            modeladmin.message_user(
                request,
                ngettext(
                    "%(count)d account skipped: %(details)s.",
                    "%(count)d accounts skipped: %(details)s.",
                    len(applied.skipped),
                )
                % {
                    "count": len(applied.skipped),
                    "details": "; ".join(f"{names.get(pk, pk)} ({why})" for pk, why in applied.skipped.items()),
                },
                messages.WARNING,
            )
        return None
    return TemplateResponse(
        request,
        "admin/success_plans/apply_template.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": gettext("Apply a plan template"),
            "opts": modeladmin.model._meta,
            "form": form,
            "accounts": queryset,
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        },
    )


AccountAdmin.actions = (*AccountAdmin.actions, apply_plan_template)
