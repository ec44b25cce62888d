"""Admin building blocks shared by the apps: a paginator for big tables, service errors, read-only rows,
and each audited object's history (who changed what and when)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections, models, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpResponseRedirect
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from csm.db import history_model, record_history
from csm.models import SyncedModel

# --- counting big tables ------------------------------------------------------------------------


def table_row_estimate(model: type[models.Model], using: str) -> int:
    """PostgreSQL's planner estimate of a table's rows (pg_class.reltuples); 0 when never analysed."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [model._meta.db_table])
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row else 0


def is_unfiltered(queryset: QuerySet) -> bool:
    """True when the queryset reads the whole table, or the whole table but its (few) soft-deleted rows."""
    where = queryset.query.where
    if not where:
        return True
    return issubclass(queryset.model, SyncedModel) and where == queryset.model._default_manager.alive().query.where


class EstimatedCountPaginator(Paginator):
    """Counts a big unfiltered table from PostgreSQL's statistics instead of a COUNT(*) that reads every row.

    A changelist only needs the total for its page links, and on tens of millions of rows COUNT(*) takes
    seconds. Filtered lists, small tables (estimate below EXACT_BELOW, or never analysed) and other
    databases get an exact count.
    """

    EXACT_BELOW = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and connections[queryset.db].vendor == "postgresql":
            if is_unfiltered(queryset):
                estimate = table_row_estimate(queryset.model, queryset.db)
                if estimate >= self.EXACT_BELOW:
                    return estimate
        return super().count


# --- base admin ---------------------------------------------------------------------------------


class CsmModelAdmin(SimpleHistoryAdmin):
    """The base of every admin here.

    Services validate more than the model does (e.g. no touches in the future). When one refuses a
    change, the admin's transaction is rolled back and the user gets the service's message instead of
    a server error.

    An audited model's History page lists its recorded versions with the fields each changed, when and
    by whom (user, partner key, rule, task, import or system). Old versions can be viewed, never
    reverted: a revert would save the object past the services that keep its related rows right.
    Other models keep Django's own history of admin actions.
    """

    # The unfiltered total next to a filtered count is a second COUNT(*) over the whole table.
    show_full_result_count = False
    history_list_display = ["by"]

    def __init__(self, model, admin_site) -> None:
        super().__init__(model, admin_site)
        self.audited = history_model(model) is not None
        if not self.audited:
            self.object_history_template = None

    def history_view(self, request, object_id, extra_context=None):
        if not self.audited:
            return admin.ModelAdmin.history_view(self, request, object_id, extra_context)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if not self.audited:
            raise Http404
        if request.method != "GET":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def by(self, record) -> str:
        """Who made a recorded change: its kind (user, partner key, rule, task, import, system) and name."""
        return f"{record.get_actor_kind_display()}: {record.actor_label}"

    def revert_disabled(self, request, obj=None) -> bool:
        return True

    def save_model(self, request, obj, form, change):
        # The change is recorded by the request's user already (the audit middleware).
        admin.ModelAdmin.save_model(self, request, obj, form, change)

    @transaction.atomic
    def delete_model(self, request, obj) -> None:
        record_history(type(obj), [obj.pk], history_type="-")  # its last state, as deleted by this user
        super().delete_model(request, obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset) -> None:
        record_history(queryset.model, queryset.values_list("pk", flat=True).order_by(), history_type="-")
        super().delete_queryset(request, queryset)

    def get_queryset(self, request):
        # The relations a list shows are shown on the change page too (title, read-only fields): join
        # them there as well rather than loading each one on its own.
        queryset = super().get_queryset(request)
        if isinstance(self.list_select_related, list | tuple) and self.list_select_related:
            queryset = queryset.select_related(*self.list_select_related)
        return queryset

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyAdminMixin:
    """Rows recorded or computed by services and tasks: viewable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInlineMixin:
    """History and logs shown beside their parent, written only by services."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LiveFilter(admin.SimpleListFilter):
    """Live rows by default; tombstones (soft-deleted rows kept for partner sync) on request."""

    title = _("deleted")
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return [("no", _("Live")), ("yes", _("Deleted")), ("all", _("All"))]

    def value(self) -> str:
        return super().value() or "no"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset
