"""Admin for usage, the health model and its snapshots, the revenue bridge and the alert queue."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from csm.admin import CsmModelAdmin, EstimatedCountPaginator, ReadOnlyAdminMixin

from .models import (
    Alert,
    AlertRule,
    HealthComponent,
    HealthModel,
    HealthSnapshot,
    RecomputeIssue,
    RevenueMonth,
    UsageRecord,
)
from .services.health import COMPONENT_FIELDS, health_model_publish

# --- usage --------------------------------------------------------------------------------------


@admin.register(UsageRecord)
class UsageRecordAdmin(CsmModelAdmin):
    """Tens of millions of rows: any filter matching a large share of them (a metric, a date range) makes the
    changelist count millions of rows, so there are none. An account's rows are reached from its page
    (`?account__id__exact=…`, served by the (account, metric, date) index), optionally with `&metric=…`.
    """

    list_display = ("__str__", "account", "metric", "date", "value")
    list_select_related = ("account",)
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("account",)


# --- health -------------------------------------------------------------------------------------


class HealthComponentInline(admin.TabularInline):
    model = HealthComponent
    fields = ("kind", "weight", "bad", "good", "metric", "per_metric", "order")
    extra = 0


@admin.register(HealthModel)
class HealthModelAdmin(CsmModelAdmin):
    list_display = ("__str__", "name", "version", "is_active", "yellow_from", "green_from", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "notes")
    inlines = (HealthComponentInline,)

    # A version that has scored accounts is never edited: saving changes to it publishes a new version,
    # so every snapshot keeps the weights that produced it.
    @staticmethod
    def _frozen(obj: HealthModel) -> bool:
        return obj.pk is not None and obj.snapshots.exists()

    def save_model(self, request, obj, form, change):
        if not (change and self._frozen(HealthModel.objects.get(pk=obj.pk))):
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        original = form.instance
        if not (change and self._frozen(HealthModel.objects.get(pk=original.pk))):
            super().save_related(request, form, formsets, change)
            return
        for formset in formsets:  # nothing of the frozen version was saved; the admin's log reads these
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not form.has_changed() and not any(f.has_changed() for f in formsets):
            return
        components = [
            {name: row[name] for name in COMPONENT_FIELDS}
            for formset in formsets
            for row in formset.cleaned_data
            if row and not row.get("DELETE")
        ]
        try:
            new = health_model_publish(
                components=components,
                name=form.cleaned_data["name"],
                yellow_from=form.cleaned_data["yellow_from"],
                green_from=form.cleaned_data["green_from"],
                notes=form.cleaned_data["notes"],
                activate=original.is_active or form.cleaned_data["is_active"],
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return
        messages.success(
            request,
            _("Version %(old)s has scored accounts, so the changes were saved as version %(new)s.")
            % {"old": original.version, "new": new.version},
        )


@admin.register(HealthComponent)
class HealthComponentAdmin(CsmModelAdmin):
    list_display = ("__str__", "model", "weight", "bad", "good", "metric", "per_metric", "order")
    list_filter = ("kind", "model")
    list_select_related = ("model",)
    search_fields = ("metric", "model__name")
    autocomplete_fields = ("model",)


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
        parts = [part for part in obj.components or [] if isinstance(part, dict)]
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


# --- alerts -------------------------------------------------------------------------------------


@admin.register(AlertRule)
class AlertRuleAdmin(CsmModelAdmin):
    list_display = ("name", "kind", "is_active", "threshold_percent", "metric", "per_metric", "due_in_days")
    list_filter = ("is_active", "kind")
    search_fields = ("name", "description")


@admin.register(Alert)
class AlertAdmin(CsmModelAdmin):
    list_display = ("__str__", "account", "rule", "status", "owner", "due", "created_at")
    list_filter = ("status", "rule", "owner", "due")
    list_select_related = ("rule", "account", "owner")
    search_fields = ("account__name", "=account__external_id", "reason")
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("rule", "account", "owner")


@admin.register(RecomputeIssue)
class RecomputeIssueAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    list_display = ("message", "code", "occurrences", "first_seen_at", "last_seen_at", "resolved_at")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter),)
    search_fields = ("code", "message")
