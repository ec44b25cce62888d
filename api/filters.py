"""Filters of the API's lists of contacts, revenue lines and touches.

Every list filters by `account` (the account's external id). The lists are already cut to the caller's
scope, so naming an account outside it finds nothing, exactly like naming one that does not exist.
A value that does not parse (an unknown role, a bad date) is a 400.
"""

import datetime

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

from accounts.models import Contact, Subscription, Touch

TRUE_VALUES = {"true", "1", "yes"}
FALSE_VALUES = {"false", "0", "no"}


class StrictBooleanField(forms.Field):
    """true/false (or 1/0, yes/no); anything else is an error, not "no filter"."""

    default_error_messages = {"invalid": _("Must be true or false.")}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if str(value).lower() in TRUE_VALUES:
            return True
        if str(value).lower() in FALSE_VALUES:
            return False
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, turned to UTC here: one UTC cannot hold (near the calendar's ends) is
    invalid, rather than an error of the database."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class AccountPartFilterSet(django_filters.FilterSet):
    account = django_filters.CharFilter(
        field_name="account__external_id",
        label=_("The account's external id."),
    )


class ContactFilterSet(AccountPartFilterSet):
    role = django_filters.ChoiceFilter(choices=Contact.Role.choices, label=_("Role"))
    is_primary = StrictBooleanFilter(label=_("Primary contact: true or false."))
    email = django_filters.CharFilter(lookup_expr="iexact", label=_("Email address (any case)."))

    class Meta:
        model = Contact
        fields: list[str] = []


class SubscriptionFilterSet(AccountPartFilterSet):
    product = django_filters.CharFilter(label=_("Product name (exact)."))
    active_on = django_filters.DateFilter(
        method="filter_active_on",
        label=_("Lines counting towards MRR on this date: start date on or before it, end date after it or none."),
    )

    class Meta:
        model = Subscription
        fields: list[str] = []

    def filter_active_on(self, queryset: QuerySet, name: str, value: datetime.date) -> QuerySet:
        return queryset.filter(Q(end_date__isnull=True) | Q(end_date__gt=value), start_date__lte=value)


class TouchFilterSet(AccountPartFilterSet):
    kind = django_filters.ChoiceFilter(choices=Touch.Kind.choices, label=_("Kind"))
    source = django_filters.ChoiceFilter(choices=Touch.Source.choices, label=_("Where the touch was logged."))
    occurred_after = UtcDateTimeFilter(
        field_name="occurred_at",
        lookup_expr="gte",
        label=_("Touches at or after this ISO 8601 date-time (inclusive)."),
    )
    occurred_before = UtcDateTimeFilter(
        field_name="occurred_at",
        lookup_expr="lte",
        label=_("Touches at or before this ISO 8601 date-time (inclusive)."),
    )
    csm = django_filters.CharFilter(field_name="csm__username", label=_("The CSM's username."))

    class Meta:
        model = Touch
        fields: list[str] = []
