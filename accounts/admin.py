"""Admin for accounts: partners and keys, tiers, accounts with their contacts, revenue lines and touches.

Every change goes through `accounts.services`, so the admin keeps MRR, last touch and tier history right
just like the workspace and the API do.
"""

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

import openpyxl
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.admin import ImportExportMixin
from import_export.formats import base_formats
from import_export.forms import ImportForm
from import_export.instance_loaders import ModelInstanceLoader

from audit.context import ActorKind, acting_as, user_label
from csm.admin import (
    CsmModelAdmin,
    EstimatedCountPaginator,
    LiveFilter,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
)
from csm.formats import money, spreadsheet_safe
from csm.models import SyncedModel

from .models import Account, ChurnEvent, Contact, Partner, PartnerKey, Subscription, Tier, TierAssignment, Touch
from .selectors import account_paid_month_counts
from .services import (
    account_save,
    account_tier_lock,
    accounts_check,
    accounts_save,
    contact_save,
    contacts_check,
    contacts_save,
    partner_key_create,
    partner_key_revoke,
    queue_recompute,
    recompute_batch,
    soft_delete,
    soft_delete_many,
    soft_restore_many,
    subscription_save,
    subscriptions_check,
    subscriptions_save,
    tier_rules_apply,
    touch_save,
)

SYNC_FIELDS = ("external_id", "created_at", "updated_at", "deleted_at")


# --- soft delete ---------------------------------------------------------------------------------


class SoftDeleteAdminMixin:
    """Deleting a synced object leaves a tombstone partners can sync, via `accounts.services.soft_delete_many`;
    the "Restore" action brings tombstones back through `soft_restore_many`, as the API's `"deleted": false`
    does (the "deleted" filter lists them)."""

    actions = ("restore_selected",)

    def delete_model(self, request, obj) -> None:
        soft_delete(instance=obj)

    def delete_queryset(self, request, queryset) -> None:
        # One set-based call: what depended on the rows is fixed in bulk and their accounts queued once.
        soft_delete_many(queryset=queryset)

    def get_deleted_objects(self, objs, request):
        # Nothing cascades on a soft delete, so only the objects themselves are listed; collecting the
        # would-be cascade would also read big related tables (usage, snapshots) for nothing.
        opts = self.model._meta
        objs = list(objs)
        deleted = [f"{capfirst(opts.verbose_name)}: {obj}" for obj in objs]
        perms_needed = set() if self.has_delete_permission(request) else {opts.verbose_name}
        return deleted, {opts.verbose_name_plural: len(objs)}, perms_needed, []

    @admin.action(description=_("Restore selected deleted %(verbose_name_plural)s"), permissions=["change"])
    def restore_selected(self, request, queryset) -> None:
        # Live rows among those selected are left as they are; their accounts are recomputed after commit.
        count = soft_restore_many(queryset=queryset)
        opts = self.model._meta
        self.message_user(
            request,
            gettext("%(count)d %(name)s restored.")
            % {"count": count, "name": opts.verbose_name if count == 1 else opts.verbose_name_plural},
        )


def save_formset_with(formset, save_many: Callable[[list], Any]) -> None:
    """Save an inline formset through `save_many` (a bulk service) in one call; deleted synced rows become
    tombstones in one call too."""
    instances = formset.save(commit=False)
    tombstones = [obj.pk for obj in formset.deleted_objects if isinstance(obj, SyncedModel)]
    if tombstones:
        soft_delete_many(queryset=formset.model._base_manager.filter(pk__in=tombstones))
    for obj in formset.deleted_objects:
        if not isinstance(obj, SyncedModel):
            obj.delete()
    if instances:
        save_many(instances)
    formset.save_m2m()


# --- import / export ----------------------------------------------------------------------------


IMPORT_LOOKUP_BATCH = 1000  # keys per IN (...) list when an import reads the rows its file names
IMPORT_FORMATS = (base_formats.CSV, base_formats.XLSX)


class CheckedDecimalWidget(widgets.DecimalWidget):
    """A decimal cell: anything but a finite number is a row error that names the value."""

    def clean(self, value, row=None, **kwargs):
        try:
            number = super().clean(value, row, **kwargs)
        except (InvalidOperation, ValueError, TypeError):
            number = Decimal("NaN")
        if number is not None and not number.is_finite():
            raise ValueError(gettext("“%(value)s” is not a number.") % {"value": value})
        return number


class CheckedIntegerWidget(widgets.IntegerWidget):
    """A whole-number cell: text, fractions and non-finite values are row errors rather than cut or crashed."""

    def clean(self, value, row=None, **kwargs):
        number = CheckedDecimalWidget().clean(value, row, **kwargs)
        if number is None:
            return None
        if number != number.to_integral_value():
            raise ValueError(gettext("“%(value)s” is not a whole number.") % {"value": value})
        if number.adjusted() >= 19:  # beyond any integer column; int() of a huge exponent would be slow
            raise ValueError(gettext("“%(value)s” is too large.") % {"value": value})
        return int(number)


class CheckedBooleanWidget(widgets.BooleanWidget):
    """A yes/no cell: a value that is neither (say "maybe") is a row error, not silently "no"."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, str):
            value = value.strip()
        if value not in (*self.TRUE_VALUES, *self.FALSE_VALUES, *self.NULL_VALUES):
            raise ValueError(gettext("“%(value)s” is not one of 1, 0, true or false.") % {"value": value})
        return super().clean(value, row, **kwargs)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def import_file_check(upload, file_format) -> None:
    """Refuse a file the import cannot read, before it is parsed in full: too big, not UTF-8 text, not an XLSX
    workbook, or more rows than `CSM_IMPORT_MAX_ROWS`. Messages name the line where they can."""
    max_bytes, max_rows = settings.CSM_IMPORT_MAX_BYTES, settings.CSM_IMPORT_MAX_ROWS
    if upload.size > max_bytes:
        raise ValidationError(
            gettext("The file is %(size)s; an import takes at most %(limit)s. Split it into smaller files.")
            % {"size": filesizeformat(upload.size), "limit": filesizeformat(max_bytes)}
        )
    upload.seek(0)
    data = upload.read()
    upload.seek(0)
    if isinstance(file_format, base_formats.XLSX):
        rows = _xlsx_rows(data, max_rows)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationError(
                gettext("Line %(line)d is not UTF-8 text (byte 0x%(byte)02X). Save the file as CSV UTF-8, then retry.")
                % {"line": _line_of(data, error.start), "byte": data[error.start]}
            ) from None
        if "\x00" in text:
            raise ValidationError(
                gettext("Line %(line)d contains a NUL byte: this is not a CSV text file.")
                % {"line": _line_of(data, data.index(b"\x00"))}
            )
        rows = _csv_rows(text, max_rows)
    if rows - 1 > max_rows:
        raise ValidationError(
            gettext("The file has more than %(limit)d rows; an import takes at most %(limit)d. Split it.")
            % {"limit": max_rows}
        )


def _csv_rows(text: str, max_rows: int) -> int:
    """The records of a CSV text, counted up to `max_rows` + 2; each must have as many cells as the header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, width = 0, None
    try:
        for cells in islice(reader, max_rows + 2):
            rows += 1
            if width is None:
                width = len(cells)
            elif cells and len(cells) != width:
                raise ValidationError(
                    gettext("Line %(line)d has %(cells)d cells where the header has %(width)d.")
                    % {"line": reader.line_num, "cells": len(cells), "width": width}
                )
    except csv.Error as error:
        raise ValidationError(
            gettext("Line %(line)d is not valid CSV: %(error)s.") % {"line": reader.line_num, "error": error}
        ) from None
    return rows


def _xlsx_rows(data: bytes, max_rows: int) -> int:
    """The rows of the workbook's first sheet, counted up to `max_rows` + 2 (a header and one too many)."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValidationError(gettext("This is not an XLSX workbook (an XLSX file is a zip archive)."))
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            return sum(1 for _row in islice(book.active.iter_rows(values_only=True), max_rows + 2))
        finally:
            book.close()
    except Exception as error:  # openpyxl raises many kinds of errors on a damaged workbook
        raise ValidationError(
            gettext("The XLSX workbook could not be read (%(error)s).") % {"error": type(error).__name__}
        ) from None


class CheckedImportForm(ImportForm):
    """The admin's import form, which refuses unreadable or oversized files with a message (`import_file_check`)."""

    def __init__(self, formats, resources, **kwargs) -> None:
        super().__init__(formats, resources, **kwargs)
        self.formats = formats

    def clean(self):
        cleaned = super().clean()
        upload, index = cleaned.get("import_file"), cleaned.get("format")
        if upload is not None and index not in (None, ""):
            try:
                import_file_check(upload, self.formats[int(index)]())
            except ValidationError as error:
                self.add_error("import_file", error)
        return cleaned


def _batches(values: list) -> Iterator[list]:
    for first in range(0, len(values), IMPORT_LOOKUP_BATCH):
        yield values[first : first + IMPORT_LOOKUP_BATCH]


class ReferenceWidget(widgets.ForeignKeyWidget):
    """A related row looked up by a natural key; an unknown value is a row error that names it.

    Before an import, `load` reads every row the file names at once, so rows are not looked up one by one.
    """

    def __init__(self, model, field: str, queryset=None) -> None:
        super().__init__(model, field=field)
        self.queryset = queryset
        self.loaded: dict[str, Any] | None = None

    def get_queryset(self, value, row, *args, **kwargs):
        return self.queryset if self.queryset is not None else super().get_queryset(value, row, *args, **kwargs)

    def load(self, values: Iterable) -> None:
        keys = sorted({str(value) for value in values if value})
        queryset = self.get_queryset(None, None)
        self.loaded = {
            str(getattr(obj, self.field)): obj
            for batch in _batches(keys)
            for obj in queryset.filter(**{f"{self.field}__in": batch})
        }

    def clean(self, value, row=None, **kwargs):
        if not value:
            return None
        if self.loaded is not None:
            found = self.loaded.get(str(value))
        else:
            found = self.get_queryset(value, row).filter(**{self.field: value}).first()
        if found is None:
            raise ValueError(
                gettext("No %(model)s with %(field)s “%(value)s”.")
                % {"model": self.model._meta.verbose_name, "field": self.field.replace("_", " "), "value": value}
            )
        return found


def account_reference() -> fields.Field:
    return fields.Field(
        attribute="account",
        column_name="account",
        widget=ReferenceWidget(Account, "external_id", queryset=Account.objects.alive()),
    )


class ExternalIdLoader(ModelInstanceLoader):
    """Finds the objects a file updates by their external ids, a query per thousand rows."""

    def __init__(self, resource, dataset=None) -> None:
        super().__init__(resource, dataset)
        self.field = resource.fields["external_id"]
        # A file without the column is refused before its rows are read (SyncedResource.import_data_inner).
        readable = dataset and self.field.column_name in (dataset.headers or [])
        ids = sorted({self.field.clean(row) for row in dataset.dict} - {None, ""}) if readable else []
        self.instances = {
            obj.external_id: obj for batch in _batches(ids) for obj in self.get_queryset().filter(external_id__in=batch)
        }

    def get_instance(self, row):
        return self.instances.get(self.field.clean(row))


class SyncedResource(resources.ModelResource):
    """Rows are matched on `external_id` and written through the service's bulk path, all or nothing.

    Rows are read and compared one by one, but looked up and written for the whole file at once: the
    references a file names and the objects it updates are read before the first row, and the objects are
    validated and saved by one service call after the last, so an import takes a fixed number of queries
    per batch of rows. Errors name their row; any error writes nothing. The accounts affected are
    recomputed once, after commit.
    """

    related = ()  # relations shown in the preview of a row, joined when the objects are read

    WIDGETS_MAP = {
        **resources.ModelResource.WIDGETS_MAP,
        "DecimalField": CheckedDecimalWidget,
        "BooleanField": CheckedBooleanWidget,
        **{
            name: CheckedIntegerWidget
            for name, widget in resources.ModelResource.WIDGETS_MAP.items()
            if widget is widgets.IntegerWidget
        },
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.user = None
        self.pending: list[tuple[Any, int, dict]] = []  # object, row number, row

    def import_data(self, dataset, **kwargs):
        # Roll back on validation errors too, not only on exceptions: the admin's confirm step imports
        # again, and the data may have changed since the preview.
        kwargs["rollback_on_validation_errors"] = True
        return super().import_data(dataset, **kwargs)

    def import_data_inner(self, dataset, *args, **kwargs):
        refusal = self.columns_refusal(dataset.headers or [])
        if refusal:
            # Wrong columns make every row wrong: one message, and no row is read.
            result = self.get_result_class()()
            result.diff_headers = self.get_diff_headers()
            result.total_rows = len(dataset)
            error = self.get_error_result_class()(ValueError(refusal))
            error.traceback = ""  # the message says it all; the page shows no traceback
            result.append_base_error(error)
            return result
        # Inside the import's transaction, so that a file rolled back (a preview, an error) queues nothing.
        with recompute_batch():
            return super().import_data_inner(dataset, *args, **kwargs)

    def columns_refusal(self, headers: list) -> str:
        """What is wrong with a file's header row: a missing id column, an unknown or repeated column."""
        known = [field.column_name for field in self.get_import_fields()]
        names = [str(header).strip() if header is not None else "" for header in headers]
        problems = []
        if "external_id" not in names:
            problems.append(gettext("The file has no “external_id” column."))
        unknown = [name or gettext("(empty)") for name in names if name not in known]
        if unknown:
            problems.append(gettext("Unknown columns: %(names)s.") % {"names": ", ".join(unknown)})
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            problems.append(gettext("Columns named more than once: %(names)s.") % {"names": ", ".join(repeated)})
        if not problems:
            return ""
        problems.append(gettext("The columns an import reads are: %(names)s.") % {"names": ", ".join(known)})
        return " ".join(problems)

    def export_field(self, field, instance, **kwargs):
        # Text cells a spreadsheet would run as a formula are neutralised in every export format; numbers
        # (rendered as text in CSV, "-5.00") stay numbers.
        value = super().export_field(field, instance, **kwargs)
        return value if isinstance(field.widget, widgets.NumberWidget) else spreadsheet_safe(value)

    def get_queryset(self):
        return super().get_queryset().select_related(*self.related)

    def before_import(self, dataset, **kwargs) -> None:
        self.user = kwargs.get("user")
        self.pending = []
        for field in self.get_import_fields():
            if isinstance(field.widget, ReferenceWidget) and field.column_name in (dataset.headers or []):
                field.widget.load(dataset[field.column_name])

    def before_import_row(self, row, **kwargs) -> None:
        if not str(row.get("external_id") or "").strip():
            raise ValidationError({"external_id": gettext("Every row needs an external id.")})

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True) -> None:
        # The model's own checks run for the whole file at once, in after_import.
        if import_validation_errors:
            raise ValidationError(import_validation_errors)

    def save_instance(self, instance, is_create, row, **kwargs) -> None:
        self.before_save_instance(instance, row, **kwargs)
        self.pending.append((instance, kwargs["row_number"], row))
        self.after_save_instance(instance, row, **kwargs)

    def after_import(self, dataset, result, **kwargs) -> None:
        writes = self._is_using_transactions(kwargs) or not self._is_dry_run(kwargs)
        if self.pending and writes:
            objects = [obj for obj, _number, _row in self.pending]
            errors = self.check_objects(objects)
            for index, error in errors.items():
                _obj, number, row = self.pending[index]
                result.append_invalid_row(number, row, error)
            if not errors:
                by = gettext("import by %(user)s") % {"user": user_label(self.user)} if self.user else gettext("import")
                with acting_as(ActorKind.IMPORT, by, user=self.user):
                    self.save_objects(objects)
        super().after_import(dataset, result, **kwargs)

    def check_objects(self, objects: list) -> dict[int, ValidationError]:
        """The service's checks, by position in `objects`."""
        raise NotImplementedError

    def save_objects(self, objects: list) -> None:
        """Save through the service's bulk path."""
        raise NotImplementedError

    class Meta:
        import_id_fields = ["external_id"]
        instance_loader_class = ExternalIdLoader
        use_transactions = True
        # Rows are collected and saved at the end (save_instance, after_import): this keeps the import from
        # wrapping each row in a savepoint of its own.
        use_bulk = True
        # Re-importing the same file is a no-op: unchanged rows are skipped, and reported as such.
        skip_unchanged = True
        report_skipped = True


class AccountResource(SyncedResource):
    owner = fields.Field(
        attribute="owner",
        column_name="owner",
        widget=ReferenceWidget(get_user_model(), "username"),
    )
    partner = fields.Field(attribute="partner", column_name="partner", widget=ReferenceWidget(Partner, "name"))
    tier = fields.Field(attribute="tier", column_name="tier", widget=ReferenceWidget(Tier, "slug"))
    # Numbers, so that spreadsheet formats write them as numbers.
    mrr = fields.Field(attribute="mrr", column_name="mrr", readonly=True, widget=CheckedDecimalWidget())
    health_score = fields.Field(
        attribute="health_score", column_name="health_score", readonly=True, widget=CheckedDecimalWidget()
    )
    health_band = fields.Field(attribute="health_band", column_name="health_band", readonly=True)

    related = ("owner", "partner", "tier")

    class Meta(SyncedResource.Meta):
        model = Account
        fields = (
            "external_id",
            "name",
            "domain",
            "industry",
            "region",
            "country",
            "employees",
            "owner",
            "partner",
            "tier",
            "tier_locked",
            "lifecycle_stage",
            "pricing_model",
            "customer_since",
            "renewal_date",
            "churned_at",
            "churn_reason",
            "mrr",
            "health_score",
            "health_band",
        )

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related(*self.related)

    def check_objects(self, objects: list) -> dict[int, ValidationError]:
        return accounts_check(accounts=objects)

    def save_objects(self, objects: list) -> None:
        # Tier history, tier locks and churn events are recorded by the service, as for any other change.
        accounts_save(accounts=objects, changed_by=self.user, reason=gettext("Imported from a file"))


class ContactResource(SyncedResource):
    account = account_reference()
    related = ("account",)

    class Meta(SyncedResource.Meta):
        model = Contact
        fields = ("external_id", "account", "name", "email", "title", "role", "is_primary")

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related(*self.related)

    def check_objects(self, objects: list) -> dict[int, ValidationError]:
        return contacts_check(contacts=objects)

    def save_objects(self, objects: list) -> None:
        # The service demotes the accounts' previous primary contacts.
        contacts_save(contacts=objects)


class SubscriptionResource(SyncedResource):
    account = account_reference()
    related = ("account",)

    class Meta(SyncedResource.Meta):
        model = Subscription
        fields = ("external_id", "account", "product", "mrr", "quantity", "start_date", "end_date")

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related(*self.related)

    def check_objects(self, objects: list) -> dict[int, ValidationError]:
        return subscriptions_check(subscriptions=objects)

    def save_objects(self, objects: list) -> None:
        # The service refreshes the accounts' MRR and queues their recompute.
        subscriptions_save(subscriptions=objects)


class AllOrNothingImportMixin(ImportExportMixin):
    """A confirmed import that failed was rolled back: say so, rather than report and log its rows as added.

    Files are CSV (UTF-8) or XLSX, checked by `CheckedImportForm` before they are parsed.
    """

    import_form_class = CheckedImportForm

    @property
    def import_formats(self):
        return list(IMPORT_FORMATS)

    def add_data_read_fail_error_to_form(self, form, e) -> None:
        form.add_error(
            "import_file",
            gettext("The file could not be read (%(error)s). Check that it is in the format chosen.")
            % {"error": type(e).__name__},
        )

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            rows = sorted({number for number, _errors in result.row_errors()} | {r.number for r in result.invalid_rows})
            self.message_user(
                request,
                gettext("Nothing was imported. Invalid rows: %(rows)s. Correct the file and import it again.")
                % {"rows": ", ".join(map(str, rows)) or "-"},
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        return super().process_result(result, request)


# --- partners -----------------------------------------------------------------------------------


class PartnerKeyInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = PartnerKey
    fields = readonly_fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    show_change_link = True

    def get_queryset(self, request):
        # Each row is titled by the key's name, which names its partner: join it rather than load it per key.
        return super().get_queryset(request).select_related("partner")


class PartnerForm(forms.ModelForm):
    new_key_name = forms.CharField(
        label=_("Create an API key named"),
        max_length=100,
        required=False,
        help_text=_("Leave empty to create no key. The key is shown once, after saving; only its hash is stored."),
    )

    class Meta:
        model = Partner
        fields = ("name", "scope", "is_active", "rate_limit")


@admin.register(Partner)
class PartnerAdmin(CsmModelAdmin):
    form = PartnerForm
    fields = ("name", "scope", "is_active", "rate_limit", "new_key_name")
    list_display = ("name", "scope", "is_active", "rate_limit", "live_keys", "created_at")
    list_filter = ("scope", "is_active")
    search_fields = ("name",)
    inlines = (PartnerKeyInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(live_key_count=Count("keys", filter=Q(keys__revoked_at=None)))

    @admin.display(description=_("live keys"), ordering="live_key_count")
    def live_keys(self, obj: Partner) -> int:
        return obj.live_key_count

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        name = form.cleaned_data.get("new_key_name")
        if name:
            key, raw_key = partner_key_create(partner=obj, name=name)
            self.message_user(
                request,
                format_html(
                    gettext("API key “{}” created: <code>{}</code> Copy it now: it cannot be shown again."),
                    key.name,
                    raw_key,
                ),
                messages.WARNING,
            )


@admin.register(PartnerKey)
class PartnerKeyAdmin(CsmModelAdmin):
    """Keys are created from their partner's page, the only place the raw key can be shown."""

    fields = ("partner", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("partner", "prefix", "created_at", "last_used_at", "revoked_at")
    list_display = ("__str__", "partner", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "partner")
    list_select_related = ("partner",)
    search_fields = ("name", "prefix", "partner__name")
    actions = ("revoke_keys",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Revoke selected keys"), permissions=["change"])
    def revoke_keys(self, request, queryset) -> None:
        keys = [partner_key_revoke(key=key) for key in queryset.filter(revoked_at__isnull=True)]
        self.message_user(
            request, ngettext("%(count)d key revoked.", "%(count)d keys revoked.", len(keys)) % {"count": len(keys)}
        )


# --- tiers --------------------------------------------------------------------------------------


@admin.register(Tier)
class TierAdmin(CsmModelAdmin):
    list_display = (
        "name",
        "slug",
        "rank",
        "touch_cadence_days",
        "qbr_cadence_days",
        "min_arr_display",
        "renewal_alert_days",
    )
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("rank",)

    @admin.display(description=_("minimum ARR"), ordering="min_arr")
    def min_arr_display(self, obj: Tier) -> str:
        return money(obj.min_arr, decimal_pos=0)


@admin.register(TierAssignment)
class TierAssignmentAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    """Tier history: written by `tier_assign` only, so that exactly one period is open per account."""

    list_display = ("__str__", "account", "tier", "started_at", "ended_at", "source", "assigned_by")
    list_filter = ("source", "tier", ("ended_at", admin.EmptyFieldListFilter))
    list_select_related = ("account", "tier", "assigned_by")
    search_fields = ("account__name", "=account__external_id")
    paginator = EstimatedCountPaginator


@admin.register(ChurnEvent)
class ChurnEventAdmin(ReadOnlyAdminMixin, CsmModelAdmin):
    """Churn history: recorded by `account_save` when an account churns, one row per churn."""

    list_display = ("__str__", "account", "churned_on", "reason")
    list_select_related = ("account",)
    search_fields = ("account__name", "=account__external_id", "reason")
    date_hierarchy = "churned_on"


# --- accounts -----------------------------------------------------------------------------------


class LiveRowsInline(admin.TabularInline):
    """An inline of soft-deletable rows: tombstones are not shown."""

    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).alive()


class ContactInline(LiveRowsInline):
    model = Contact
    fields = ("name", "email", "title", "role", "is_primary", "external_id")


class SubscriptionInline(LiveRowsInline):
    model = Subscription
    fields = ("product", "mrr", "quantity", "start_date", "end_date", "external_id")


class TierHistoryInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = TierAssignment
    verbose_name_plural = _("tier history")
    fields = readonly_fields = ("tier", "started_at", "ended_at", "source", "reason", "assigned_by")

    def get_queryset(self, request):
        # The account too: each row is titled "account → tier".
        return super().get_queryset(request).select_related("account", "tier", "assigned_by")


class ChurnEventInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = ChurnEvent
    verbose_name_plural = _("churn history")
    fields = readonly_fields = ("churned_on", "reason")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account")  # each row is titled by its account


class RecentTouchInline(ReadOnlyInlineMixin, admin.TabularInline):
    RECENT = 10

    model = Touch
    verbose_name_plural = _("recent touches")
    fields = readonly_fields = ("occurred_at", "kind", "subject", "csm", "sentiment")
    show_change_link = True

    def get_queryset(self, request):
        # The formset filters this by account afterwards, and a sliced queryset cannot be filtered: a
        # correlated subquery picks each account's latest touches instead.
        latest = (
            Touch.objects.alive()
            .filter(account_id=OuterRef("account_id"))
            .order_by("-occurred_at", "-pk")
            .values("pk")[: self.RECENT]
        )
        return super().get_queryset(request).filter(pk__in=Subquery(latest)).select_related("csm")


@admin.register(Account)
class AccountAdmin(SoftDeleteAdminMixin, AllOrNothingImportMixin, CsmModelAdmin):
    resource_classes = (AccountResource,)
    list_display = (
        "name",
        "external_id",
        "tier",
        "owner",
        "arr",
        "health",
        "last_touch_at",
        "renewal_date",
    )
    list_filter = (
        LiveFilter,
        "tier",
        "health_band",
        "lifecycle_stage",
        "industry",
        "region",
        "owner",
        "tier_locked",
    )
    list_select_related = ("tier", "owner")
    search_fields = ("name", "=external_id", "domain")
    ordering = ("name",)
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("owner", "partner", "tier")
    readonly_fields = (
        "mrr_display",
        "arr",
        "health_score",
        "health_band",
        "last_touch_at",
        "related",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "external_id", "domain", "industry", "region", "country", "employees")}),
        (_("Ownership"), {"fields": ("owner", "partner", "tier", "tier_locked")}),
        (
            _("Lifecycle"),
            {
                "fields": (
                    "lifecycle_stage",
                    "pricing_model",
                    "customer_since",
                    "renewal_date",
                    "churned_at",
                    "churn_reason",
                )
            },
        ),
        (
            _("Kept current by the system"),
            {"fields": ("mrr_display", "arr", "health_score", "health_band", "last_touch_at", "related")},
        ),
        (_("Record"), {"fields": ("created_at", "updated_at", "deleted_at"), "classes": ("collapse",)}),
    )
    inlines = (ContactInline, SubscriptionInline, TierHistoryInline, RecentTouchInline, ChurnEventInline)
    actions = ("recompute_health", "run_tier_rules", "lock_tier", "unlock_tier", "restore_selected")

    @admin.display(description=_("MRR"), ordering="mrr")
    def mrr_display(self, obj: Account) -> str:
        return money(obj.mrr)

    @admin.display(description=_("ARR"), ordering="mrr")
    def arr(self, obj: Account) -> str:
        return money(obj.arr, decimal_pos=0)

    @admin.display(description=_("health"), ordering="health_score")
    def health(self, obj: Account) -> str:
        if not obj.health_band:
            return "-"
        return f"{obj.get_health_band_display()} ({obj.health_score})"

    @admin.display(description=_("related"))
    def related(self, obj: Account) -> str:
        if obj.pk is None:
            return "-"
        links = [
            ("accounts", "touch", _("touches")),
            ("success_plans", "successplan", _("success plans")),
            ("metrics", "usagerecord", _("usage")),
            ("metrics", "healthsnapshot", _("health history")),
            ("metrics", "alert", _("alerts")),
        ]
        return format_html_join(
            " · ",
            '<a href="{}?account__id__exact={}">{}</a>',
            ((reverse(f"admin:{app}_{model}_changelist"), obj.pk, label) for app, model, label in links),
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The account, its contacts and its revenue lines are saved by separate services: recompute once.
        with recompute_batch():
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        account_save(account=obj, changed_by=request.user, source=TierAssignment.Source.MANUAL)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is Contact:
            save_formset_with(formset, lambda contacts: contacts_save(contacts=contacts))
        elif formset.model is Subscription:
            save_formset_with(formset, lambda lines: subscriptions_save(subscriptions=lines))
        else:
            super().save_formset(request, form, formset, change)

    def get_deleted_objects(self, objs, request):
        """Say what each account takes out of the metrics: its months in the revenue history."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        objs = list(objs)
        months = account_paid_month_counts(account_ids=[account.pk for account in objs])
        deleted = [
            line
            if not months[account.pk]
            else ngettext(
                "%(line)s (%(count)d month of revenue history leaves the metrics)",
                "%(line)s (%(count)d months of revenue history leave the metrics)",
                months[account.pk],
            )
            % {"line": line, "count": months[account.pk]}
            for account, line in zip(objs, deleted, strict=True)
        ]
        if any(months.values()):
            model_count[gettext("months of revenue history")] = sum(months.values())
        return deleted, model_count, perms_needed, protected

    @admin.action(description=_("Recompute health, tier and alerts now"), permissions=["change"])
    def recompute_health(self, request, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        # Without a broker this runs here, as the request ends; with a worker it is queued.
        queue_recompute(ids)
        self.message_user(
            request,
            ngettext("Recompute started for %(count)d account.", "Recompute started for %(count)d accounts.", len(ids))
            % {"count": len(ids)},
        )

    @admin.action(description=_("Re-run tier rules"), permissions=["change"])
    def run_tier_rules(self, request, queryset) -> None:
        moved = tier_rules_apply(account_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            ngettext("%(count)d account changed tier.", "%(count)d accounts changed tier.", moved) % {"count": moved},
        )

    @admin.action(description=_("Lock tier (tier rules leave these accounts alone)"), permissions=["change"])
    def lock_tier(self, request, queryset) -> None:
        self._set_tier_locked(request, queryset, locked=True)

    @admin.action(description=_("Unlock tier (tier rules may move these accounts)"), permissions=["change"])
    def unlock_tier(self, request, queryset) -> None:
        self._set_tier_locked(request, queryset, locked=False)

    def _set_tier_locked(self, request, queryset, *, locked: bool) -> None:
        count = account_tier_lock(accounts=queryset, locked=locked, changed_by=request.user)
        self.message_user(
            request,
            ngettext("%(count)d account changed.", "%(count)d accounts changed.", count) % {"count": count},
        )


@admin.register(Contact)
class ContactAdmin(SoftDeleteAdminMixin, AllOrNothingImportMixin, CsmModelAdmin):
    resource_classes = (ContactResource,)
    list_display = ("name", "account", "email", "title", "role", "is_primary", "external_id")
    list_filter = (LiveFilter, "role", "is_primary")
    list_select_related = ("account",)
    search_fields = ("name", "email", "=external_id", "account__name")
    # Grouped by account: served by the account index, where sorting all contacts by name is not.
    ordering = ("account_id", "-is_primary", "name")
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("account",)
    readonly_fields = ("created_at", "updated_at", "deleted_at")
    fields = ("account", "name", "email", "title", "role", "is_primary", *SYNC_FIELDS)

    def save_model(self, request, obj, form, change) -> None:
        contact_save(contact=obj)


@admin.register(Subscription)
class SubscriptionAdmin(SoftDeleteAdminMixin, AllOrNothingImportMixin, CsmModelAdmin):
    resource_classes = (SubscriptionResource,)
    list_display = ("__str__", "account", "product", "mrr_display", "quantity", "start_date", "end_date")
    list_filter = (LiveFilter, "start_date", "end_date")
    list_select_related = ("account",)
    search_fields = ("product", "=external_id", "account__name")
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("account",)
    readonly_fields = ("created_at", "updated_at", "deleted_at")
    fields = ("account", "product", "mrr", "quantity", "start_date", "end_date", *SYNC_FIELDS)

    @admin.display(description=_("MRR"), ordering="mrr")
    def mrr_display(self, obj: Subscription) -> str:
        return money(obj.mrr)

    def save_model(self, request, obj, form, change) -> None:
        subscription_save(subscription=obj)


class TouchAdminForm(forms.ModelForm):
    class Meta:
        model = Touch
        fields = (
            "account",
            "csm",
            "contacts",
            "kind",
            "occurred_at",
            "duration_minutes",
            "source",
            "subject",
            "notes",
            "sentiment",
            "next_step",
            "next_step_due",
            "external_id",
        )

    def clean(self):
        cleaned = super().clean()
        account, contacts = cleaned.get("account"), cleaned.get("contacts")
        # The admin saves contacts after the service (save_related), so the service cannot check them.
        if account and contacts:
            strangers = [contact.name for contact in contacts if contact.account_id != account.pk]
            if strangers:
                self.add_error(
                    "contacts",
                    gettext("Not contacts of this account: %(names)s.") % {"names": ", ".join(strangers)},
                )
        return cleaned


@admin.register(Touch)
class TouchAdmin(SoftDeleteAdminMixin, CsmModelAdmin):
    form = TouchAdminForm
    list_display = ("__str__", "account", "csm", "occurred_at", "sentiment", "source")
    list_filter = (LiveFilter, "kind", "sentiment", "source", "occurred_at")
    list_select_related = ("account", "csm")
    search_fields = ("subject", "=external_id", "account__name")
    # Newest first by primary key: an index serves it, where sorting by occurred_at reads every touch.
    ordering = ("-pk",)
    paginator = EstimatedCountPaginator
    autocomplete_fields = ("account", "csm", "contacts")
    readonly_fields = ("created_at", "updated_at", "deleted_at")
    fieldsets = (
        (None, {"fields": ("account", "csm", "contacts", "kind", "occurred_at", "duration_minutes", "source")}),
        (_("Content"), {"fields": ("subject", "notes", "sentiment", "next_step", "next_step_due")}),
        (_("Record"), {"fields": SYNC_FIELDS, "classes": ("collapse",)}),
    )

    def save_model(self, request, obj, form, change) -> None:
        # Contacts follow in save_related; they do not affect the account's last touch the service sets.
        touch_save(touch=obj)
