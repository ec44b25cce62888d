"""The one FilterSet over accounts, shared by the workspace's accounts list, its CSV export and the API.

Query parameters: `q` (name or domain contains, or the exact external id), `tier` (slug, or "none"),
`health_band` (red, yellow, green, or "none" for no score yet), `owner` (a user id, a user name or full
name, "mine" for the signed-in user, "none" for unowned), `lifecycle_stage`, `industry`, `region`, `renewal_within`
(30/60/90/180: renewal from today to today + N days), `renewal_after` / `renewal_before` (dates,
inclusive) and `ordering` (a column name, "-" first for descending). Only live accounts are listed.
"""

import datetime
from collections.abc import Callable

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Concat
from django.forms import DateInput, TextInput
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_filters.constants import EMPTY_VALUES

from csm.roles import CSM_GROUP, LEADER_GROUP

from .models import Account, Tier

NONE = "none"
MINE = "mine"
RENEWAL_WINDOWS = (30, 60, 90, 180)

# Sorting: the parameter (one per column of the list) and the fields it orders by. Nullable fields
# sort their empty values last in both directions: an account without a score is never the "worst".
ORDERINGS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "tier": ("tier__rank",),
    "owner": ("owner__first_name", "owner__last_name", "owner__username"),
    "health": ("health_score",),
    "arr": ("mrr",),
    "last_touch": ("last_touch_at",),
    "renewal": ("renewal_date",),
}
ORDERING_LABELS = {
    "name": _("Name"),
    "tier": _("Tier"),
    "owner": _("CSM"),
    "health": _("Health"),
    "arr": _("ARR"),
    "last_touch": _("Last touch"),
    "renewal": _("Renewal"),
}
DEFAULT_ORDERING = "name"


def _next_days_text(days: int) -> str:
    return gettext("Next %(days)s days") % {"days": days}


_next_days = lazy(_next_days_text, str)


class OwnerField(forms.CharField):
    """Whose accounts: a user id, "mine", "none", or a person typed by user name or full name (case ignored).

    Any user id is valid (a former CSM's accounts can still be found); a typed name is resolved to its user's
    id here, one query, and a name that matches nobody or several people is an error that says so.
    """

    def clean(self, value) -> str | None:
        value = (super().clean(value) or "").strip()
        if not value:
            return None
        if value in (MINE, NONE) or _user_id(value):
            return value
        found = list(
            owner_search(value, exact=True).values_list("pk", flat=True)[:2]  # two tell an ambiguous name
        )
        if not found:
            raise ValidationError(
                gettext("No one in the workspace is called “%(name)s”.") % {"name": value}, code="unknown"
            )
        if len(found) > 1:
            raise ValidationError(
                gettext("Several people are called “%(name)s”: type a user name.") % {"name": value}, code="ambiguous"
            )
        return str(found[0])


def _user_id(value: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return value.isascii() and value.isdigit() and len(value) < 19


def owner_search(text: str, *, exact: bool = False) -> QuerySet:
    """People a typed owner can mean: by user name or full name, whole (`exact`) or starting with `text`
    (first or last name too), case ignored. The workspace's people (active, with a workspace role) and anyone
    owning a live account, as the accounts list has always offered."""
    User = get_user_model()
    users = User.objects.annotate(full_name=Concat("first_name", Value(" "), "last_name"))
    role = User.groups.through.objects.filter(user=OuterRef("pk"), group__name__in=[CSM_GROUP, LEADER_GROUP])
    if exact:
        wanted = Q(username__iexact=text) | Q(full_name__iexact=text)
    else:
        wanted = (
            Q(username__istartswith=text)
            | Q(first_name__istartswith=text)
            | Q(last_name__istartswith=text)
            | Q(full_name__istartswith=text)
        )
    return users.filter(wanted).filter(
        Q(is_active=True, pk__in=role.values("user_id")) | Exists(Account.objects.alive().filter(owner=OuterRef("pk")))
    )


class OwnerPicker(TextInput):
    """A text input that suggests people as one types: htmx fetches a short list of them
    (`accounts:owner_options`) into the browser's own datalist, so no page ever writes every person. Without
    JavaScript a typed user name filters just the same. A user id in the query string (a link from another
    page) is shown as that person's user name."""

    input_type = "search"

    def format_value(self, value):
        value = super().format_value(value)
        if value and _user_id(value):
            username = get_user_model().objects.filter(pk=int(value)).values_list("username", flat=True).first()
            return username or value
        return value

    def render(self, name, value, attrs=None, renderer=None):
        options = f"{(attrs or {}).get('id') or f'id_{name}'}-options"
        attrs = {
            **(attrs or {}),
            "list": options,
            "hx-get": reverse("accounts:owner_options"),
            "hx-trigger": "input changed delay:200ms, focus once",
            "hx-target": f"#{options}",
            "hx-sync": "this:replace",
        }
        special = format_html_join("", '<option value="{}">{}</option>', owner_specials())
        return format_html(
            '{}<datalist id="{}">{}</datalist>', super().render(name, value, attrs, renderer), options, special
        )


class OwnerFilter(django_filters.CharFilter):
    field_class = OwnerField


def owner_specials() -> list[tuple[str, str]]:
    """The picker's values that are not people."""
    return [(MINE, gettext("Mine")), (NONE, gettext("No CSM"))]


class AccountOrderingFilter(django_filters.OrderingFilter):
    """Orders by one column of the list, ties broken by name then id so pages never overlap."""

    def filter(self, qs: QuerySet, value) -> QuerySet:
        params = [param for param in (value or []) if param not in EMPTY_VALUES] or [DEFAULT_ORDERING]
        ordering = []
        for param in params:
            descending = param.startswith("-")
            for field in ORDERINGS[param.lstrip("-")]:
                expression = F(field)
                # NULLS LAST only where a value can be empty: a plain order lets an index of the field serve
                # both directions.
                nulls_last = True if _nullable(field) else None
                ordering.append(
                    expression.desc(nulls_last=nulls_last) if descending else expression.asc(nulls_last=nulls_last)
                )
        return qs.order_by(*ordering, "name", "pk")


def _nullable(path: str) -> bool:
    """Whether an account's value at `path` (a field, or fields across relations) can be empty."""
    model = Account
    for name in path.split("__"):
        field = model._meta.get_field(name)
        if field.null:
            return True
        model = field.related_model
    return False


class AccountFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_search", label=_("Search"))
    tier = django_filters.ModelChoiceFilter(
        queryset=Tier.objects.all(),
        to_field_name="slug",
        label=_("Tier"),
        empty_label=_("Any tier"),
        null_label=_("No tier"),
        null_value=NONE,
    )
    health_band = django_filters.ChoiceFilter(
        choices=[*Account.HealthBand.choices, (NONE, _("No score"))],
        method="filter_health_band",
        label=_("Health"),
        empty_label=_("Any health"),
    )
    owner = OwnerFilter(
        method="filter_owner",
        label=_("CSM"),
        widget=OwnerPicker(attrs={"placeholder": _("Anyone"), "autocomplete": "off"}),
    )
    lifecycle_stage = django_filters.ChoiceFilter(
        choices=Account.LifecycleStage.choices,
        label=_("Lifecycle stage"),
        empty_label=_("Any stage"),
    )
    industry = django_filters.ChoiceFilter(label=_("Industry"), empty_label=_("Any industry"))
    region = django_filters.ChoiceFilter(label=_("Region"), empty_label=_("Any region"))
    renewal_within = django_filters.ChoiceFilter(
        choices=[(str(days), _next_days(days)) for days in RENEWAL_WINDOWS],
        method="filter_renewal_within",
        label=_("Renewal"),
        empty_label=_("Any time"),
    )
    renewal_after = django_filters.DateFilter(
        field_name="renewal_date",
        lookup_expr="gte",
        label=_("Renewal from"),
        widget=DateInput(attrs={"type": "date"}),
    )
    renewal_before = django_filters.DateFilter(
        field_name="renewal_date",
        lookup_expr="lte",
        label=_("Renewal until"),
        widget=DateInput(attrs={"type": "date"}),
    )
    ordering = AccountOrderingFilter(
        fields=tuple((param, param) for param in ORDERINGS),
        field_labels=ORDERING_LABELS,
        label=_("Sort by"),
    )

    class Meta:
        model = Account
        fields: list[str] = []

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None, user=None) -> None:
        if queryset is None:
            queryset = Account.objects.alive()
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.user = user if user is not None else getattr(request, "user", None)
        # Choices read from the data, once per filterset and only when the form needs them.
        for name, build in (
            ("industry", lambda: self._distinct_values("industry")),
            ("region", lambda: self._distinct_values("region")),
        ):
            self.filters[name].__dict__.pop("_field", None)
            self.filters[name].extra["choices"] = self._once(build)

    @staticmethod
    def _once(build: Callable[[], list]) -> Callable[[], list]:
        cache: list[list] = []

        def choices() -> list:
            if not cache:
                cache.append(build())
            return cache[0]

        return choices

    @staticmethod
    def _distinct_values(field: str) -> list[tuple[str, str]]:
        """The live accounts' values of `field` (industry, region), in order, '' left out. The index of the
        field's values on live accounts is skipped through, one probe per value, not read through."""
        column = connection.ops.quote_name(Account._meta.get_field(field).column)
        table = connection.ops.quote_name(Account._meta.db_table)
        live = "deleted_at IS NULL"
        with connection.cursor() as cursor:
            cursor.execute(
                f"""WITH RECURSIVE found(value) AS (
                    SELECT MIN({column}) FROM {table} WHERE {live} AND {column} > ''
                    UNION ALL
                    SELECT (SELECT MIN({column}) FROM {table} WHERE {live} AND {column} > found.value)
                    FROM found WHERE found.value IS NOT NULL
                ) SELECT value FROM found WHERE value IS NOT NULL"""  # noqa: S608 - names from the model
            )
            return [(value, value) for (value,) in cursor.fetchall()]

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        return super().filter_queryset(queryset.filter(deleted_at__isnull=True))

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(domain__icontains=value) | Q(external_id=value))

    def filter_health_band(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(health_band="" if value == NONE else value)

    def filter_owner(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == NONE:
            return queryset.filter(owner__isnull=True)
        if value == MINE:
            user = self.user
            if user is None or not user.is_authenticated:
                return queryset.none()
            return queryset.filter(owner=user)
        return queryset.filter(owner_id=int(value))

    def filter_renewal_within(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        today = timezone.localdate()
        return queryset.filter(renewal_date__gte=today, renewal_date__lte=today + datetime.timedelta(days=int(value)))
