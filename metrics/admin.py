"""Admin for usage, the health model and its snapshots, the revenue bridge and the alert queue."""

import datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, localize
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from csm.admin import CsmModelAdmin, EstimatedCountPaginator, ReadOnlyAdminMixin

from .models import (
    AccountChurn,
    Alert,
    AlertRule,
    HealthComponent,
    HealthModel,
    HealthSnapshot,
    PortfolioHistory,
    RecomputeIssue,
    RevenueMonth,
    UsageRecord,
)
from .selectors.health import snapshots_entries
from .services.alerts import alerts_close, alerts_snooze
from .services.health import (
    COMPONENT_FIELDS,
    WITHOUT_WEIGHT,
    has_weight,
    health_model_activate,
    health_model_components,
    health_model_deactivate,
    health_model_publish,
)

# --- usage --------------------------------------------------------------------------------------


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    """Read-only: usage arrives through the usage service (API, imports), which validates and recomputes.

    Tens of millions of rows: any filter matching a large share of them (a metric, a date range) makes the
    changelist count millions of rows, so there are none. An account's rows are reached from its page
    (`?account__id__exact=…`, served by the (account, metric, date) index), optionally with `&metric=…`.
    """

    list_display = ("__str__", "account", "metric", "date", "value")
    list_select_related = ("account",)
    paginator = EstimatedCountPaginator


# --- health -------------------------------------------------------------------------------------
#
# A version that has scored accounts is never edited: a change to it, made on its own page or on one of
# its components' pages, publishes a new version, so every snapshot keeps the weights that produced it.
# Ticking or unticking "active" only (de)activates the version.


def has_scored(model_id: int | None) -> bool:
    return model_id is not None and HealthSnapshot.objects.filter(model_version_id=model_id).exists()


def published_message(old: HealthModel, new: HealthModel) -> str:
    return _("Version %(old)s has scored accounts, so the change was saved as version %(new)s.") % {
        "old": old.version,
        "new": new.version,
    }


def publish_from(model: HealthModel, components: list[dict], *, activate: bool | None = None) -> HealthModel:
    """A new version of `model` with other components; as active as `model` unless told."""
    return health_model_publish(
        components=components,
        name=model.name,
        yellow_from=model.yellow_from,
        green_from=model.green_from,
        notes=model.notes,
        activate=model.is_active if activate is None else activate,
    )


class HealthComponentFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [form.cleaned_data for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        if not has_weight(row.get("weight") or 0 for row in kept):
            raise ValidationError(WITHOUT_WEIGHT)


class HealthComponentInline(admin.TabularInline):
    model = HealthComponent
    formset = HealthComponentFormSet
    fields = COMPONENT_FIELDS
    extra = 0


class HealthModelForm(forms.ModelForm):
    def _get_validation_exclusions(self):
        # Activating a version retires the active one (health_model_activate), so "only one active" is kept
        # by the service rather than refused here.
        return super()._get_validation_exclusions() | {"is_active"}


@admin.register(HealthModel)
class HealthModelAdmin(CsmModelAdmin):
    form = HealthModelForm
    list_display = ("__str__", "name", "version", "is_active", "yellow_from", "green_from", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "notes")
    inlines = (HealthComponentInline,)

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            # Recomputes that met a configuration problem do not fail the writes that queued them; say so here.
            for message in RecomputeIssue.objects.filter(resolved_at__isnull=True).values_list("message", flat=True):
                self.message_user(request, message, messages.WARNING)
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        if change and has_scored(obj.pk):
            return  # see save_related, which knows the component rows
        if obj.is_active:  # activated in save_related, through the service
            obj.is_active = HealthModel.objects.filter(pk=obj.pk, is_active=True).exists()
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if not (change and has_scored(form.instance.pk)):
            super().save_related(request, form, formsets, change)
            if form.cleaned_data["is_active"] and not form.instance.is_active:
                health_model_activate(model=form.instance)
            return
        original = HealthModel.objects.get(pk=form.instance.pk)
        for formset in formsets:  # nothing of the scored version was saved; the admin's log reads these
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        components_changed = any(formset.has_changed() for formset in formsets)
        active = form.cleaned_data["is_active"]
        if not components_changed and set(form.changed_data) <= {"is_active"}:
            if active and not original.is_active:
                health_model_activate(model=original)
                self.message_user(request, _("Version %(version)s is active again.") % {"version": original.version})
            elif original.is_active and not active:
                health_model_deactivate(model=original)
                self.message_user(
                    request,
                    _("Version %(version)s is no longer active. Health scores are not recomputed until a version is.")
                    % {"version": original.version},
                    messages.WARNING,
                )
            return
        components = [
            {name: row[name] for name in COMPONENT_FIELDS}
            for formset in formsets
            for row in formset.cleaned_data
            if row and not row.get("DELETE")
        ]
        new = health_model_publish(
            components=components,
            name=form.cleaned_data["name"],
            yellow_from=form.cleaned_data["yellow_from"],
            green_from=form.cleaned_data["green_from"],
            notes=form.cleaned_data["notes"],
            activate=active,
        )
        if original.is_active and not active:
            health_model_deactivate(model=original)
        self.message_user(request, published_message(original, new))


class HealthComponentForm(forms.ModelForm):
    class Meta:
        model = HealthComponent
        fields = ("model", *COMPONENT_FIELDS)

    def clean(self):
        cleaned = super().clean()
        model_id = self.instance.model_id if self.instance.pk else getattr(cleaned.get("model"), "pk", None)
        if model_id is not None and cleaned.get("weight") is not None:
            others = HealthComponent.objects.filter(model_id=model_id).exclude(pk=self.instance.pk)
            if not has_weight([*others.values_list("weight", flat=True), cleaned["weight"]]):
                self.add_error("weight", WITHOUT_WEIGHT)
        return cleaned


@admin.register(HealthComponent)
class HealthComponentAdmin(CsmModelAdmin):
    form = HealthComponentForm
    list_display = ("__str__", "model", "weight", "bad", "good", "metric", "per_metric", "order")
    list_filter = ("kind", "model")
    list_select_related = ("model",)
    search_fields = ("metric", "model__name")
    autocomplete_fields = ("model",)

    def get_readonly_fields(self, request, obj=None):
        return ("model",) if obj is not None else ()  # a component belongs to its version

    def get_actions(self, request):
        # Deleting goes through each component's page, which publishes a new version when needed.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        if not has_scored(obj.model_id):
            super().save_model(request, obj, form, change)
            return
        model = HealthModel.objects.prefetch_related("components").get(pk=obj.model_id)
        components = health_model_components(model)
        fields = {name: getattr(obj, name) for name in COMPONENT_FIELDS}
        if change:
            position = [c.pk for c in model.components.all()].index(obj.pk)
            components[position] = fields
        else:
            position = len(components)
            components.append(fields)
        new = publish_from(model, components)
        # The rest of the admin's work (its log, the redirect) is about the new version's component.
        obj.pk = new.components.order_by("pk").values_list("pk", flat=True)[position]
        obj.model = new
        self.message_user(request, published_message(model, new))

    def delete_model(self, request, obj):
        model = HealthModel.objects.prefetch_related("components").get(pk=obj.model_id)
        kept = [c for c in model.components.all() if c.pk != obj.pk]
        if not has_weight(c.weight for c in kept):
            raise ValidationError(WITHOUT_WEIGHT)
        if not has_scored(model.pk):
            super().delete_model(request, obj)
            return
        new = publish_from(model, [{name: getattr(c, name) for name in COMPONENT_FIELDS} for c in kept])
        self.message_user(request, published_message(model, new))

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:metrics_healthcomponent_change", args=[object_id]))


def _number(value) -> str:
    return "-" if value is None else localize(value)


@admin.register(HealthSnapshot)
class HealthSnapshotAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    list_display = ("__str__", "account", "date", "score", "band", "model_version")
    # Only the date: served by the (date, band) index, and a day holds one row per account. A band or
    # model filter alone would count a large share of all snapshots.
    list_filter = ("date",)
    list_select_related = ("account", "model_version")
    search_fields = ("=account__external_id",)
    paginator = EstimatedCountPaginator
    fields = ("account", "date", "score", "band", "model_version", "components_table", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description=_("components"))
    def components_table(self, obj: HealthSnapshot) -> str:
        kinds = dict(HealthComponent.Kind.choices)
        parts = snapshots_entries([obj])[0]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    kinds.get(part.get("kind"), part.get("kind")),
                    _number(part.get("raw", part.get("raw_value"))),
                    _number(part.get("score")),
                    _number(part.get("weight")),
                )
                for part in parts
            ),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("kind"),
            _("raw value"),
            _("score"),
            _("weight"),
            rows,
        )


# --- revenue ------------------------------------------------------------------------------------


@admin.register(RevenueMonth)
class RevenueMonthAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    list_display = (
        "__str__",
        "segment_kind",
        "segment",
        "start_mrr",
        "new_mrr",
        "expansion_mrr",
        "contraction_mrr",
        "churned_mrr",
        "end_mrr",
        "grr",
        "nrr",
    )
    list_filter = ("segment_kind",)
    search_fields = ("segment",)
    date_hierarchy = "month"
    ordering = ("-month", "segment_kind", "segment")


@admin.register(PortfolioHistory)
class PortfolioHistoryAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    """Read-only: the nightly revenue step stores the portfolio's history figures (metrics.services.portfolio)."""

    list_display = ("__str__", "through", "computed_at")
    ordering = ("-computed_at",)


@admin.register(AccountChurn)
class AccountChurnAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    """Read-only: the churns the nightly revenue step found, as the portfolio's churn analysis reads them."""

    list_display = ("__str__", "account", "tenure_months", "tier", "reason")
    list_select_related = ("account",)
    date_hierarchy = "month"
    ordering = ("-month", "-mrr")


# --- alerts -------------------------------------------------------------------------------------


@admin.register(AlertRule)
class AlertRuleAdmin(CsmModelAdmin):
    list_display = ("name", "kind", "is_active", "threshold_percent", "metric", "per_metric", "due_in_days")
    list_filter = ("is_active", "kind")
    search_fields = ("name", "description")


class AlertActionForm(ActionForm):
    snooze_until = forms.DateField(
        label=_("Snooze until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Empty: for 7 days."),
    )


SNOOZE_DAYS = 7


@admin.register(Alert)
class AlertAdmin(CsmModelAdmin):
    """Alerts change state only through the actions (the alert services): their state is read-only here."""

    list_display = ("__str__", "account", "rule", "status", "owner", "due", "snoozed_until", "created_at")
    list_filter = ("status", "rule", "owner", "due")
    list_select_related = ("rule", "account", "owner")
    search_fields = ("account__name", "=account__external_id", "reason")
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("rule", "account", "owner")
    action_form = AlertActionForm
    actions = ("mark_done", "snooze")
    STATE = ("status", "snoozed_until", "closed_at", "closed_reason", "closed_by")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.STATE
        # The rule, account, due date and reason are the evaluation's: "health turned red" dates an alert by its
        # due date, and the nightly run rewords the reason.
        return ("rule", "account", "due", "reason", *self.STATE)

    @admin.action(description=_("Mark done"))
    def mark_done(self, request, queryset):
        closed = alerts_close(alerts=queryset)
        self.message_user(
            request,
            ngettext("%(count)d alert marked done.", "%(count)d alerts marked done.", closed) % {"count": closed},
        )

    @admin.action(description=_("Snooze for 7 days (or until the date given)"))
    def snooze(self, request, queryset):
        try:
            until = AlertActionForm.base_fields["snooze_until"].clean(request.POST.get("snooze_until"))
            until = until or timezone.localdate() + datetime.timedelta(days=SNOOZE_DAYS)
            snoozed = alerts_snooze(alerts=queryset, until=until)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return
        self.message_user(
            request,
            ngettext("%(count)d alert snoozed until %(date)s.", "%(count)d alerts snoozed until %(date)s.", snoozed)
            % {"count": snoozed, "date": date_format(until)},
        )


@admin.register(RecomputeIssue)
class RecomputeIssueAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    list_display = ("message", "code", "occurrences", "first_seen_at", "last_seen_at", "resolved_at")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter),)
    search_fields = ("code", "message")
