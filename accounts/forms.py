"""Workspace forms of accounts: logging a touch."""

import datetime

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Account, Contact, Touch

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
# Dates a person types in the workspace fall in this range; outside it they are typing mistakes (year 20256,
# 0026) and, near the calendar's ends, moments the database cannot convert to UTC.
EARLIEST_DATE = datetime.date(1900, 1, 1)
LATEST_DATE = datetime.date(2199, 12, 31)


def validate_workspace_date(value: datetime.date) -> None:
    """Refuse a date or moment outside EARLIEST_DATE..LATEST_DATE."""
    day = value.date() if isinstance(value, datetime.datetime) else value
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValidationError(
            _("Enter a date between %(first)s and %(last)s."),
            code="date_range",
            params={"first": EARLIEST_DATE.isoformat(), "last": LATEST_DATE.isoformat()},
        )


class WorkspaceDateField(forms.DateField):
    """A date within EARLIEST_DATE..LATEST_DATE."""

    default_validators = [validate_workspace_date]


class WorkspaceDateTimeField(forms.DateTimeField):
    """A moment on a day within EARLIEST_DATE..LATEST_DATE."""

    default_validators = [validate_workspace_date]


def _now_to_the_minute() -> datetime.datetime:
    return timezone.localtime().replace(second=0, microsecond=0)


class TouchForm(forms.Form):
    """A touch on one account, for `accounts.services.touch_log`. Only the account's live contacts can be picked.

    Field ids carry the account id, so several accounts' forms can share a page.
    """

    kind = forms.ChoiceField(label=_("Kind"), choices=Touch.Kind.choices, initial=Touch.Kind.CALL)
    occurred_at = WorkspaceDateTimeField(
        label=_("When"),
        initial=_now_to_the_minute,
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )
    subject = forms.CharField(label=_("Subject"), max_length=200)
    contacts = forms.ModelMultipleChoiceField(
        label=_("Contacts"),
        queryset=Contact.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    sentiment = forms.TypedChoiceField(
        label=_("Sentiment"),
        choices=[("", _("Not recorded")), *Touch.Sentiment.choices],
        coerce=int,
        empty_value=None,
        required=False,
    )
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 4}))
    next_step = forms.CharField(label=_("Next step"), max_length=300, required=False)
    next_step_due = WorkspaceDateField(
        label=_("Next step due"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, account: Account, **kwargs) -> None:
        kwargs.setdefault("auto_id", f"id_touch{account.pk}_%s")
        super().__init__(*args, **kwargs)
        self.account = account
        self.fields["contacts"].queryset = Contact.objects.alive().filter(account=account).order_by("name", "pk")

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("next_step_due") and not cleaned.get("next_step"):
            self.add_error("next_step", _("Say what the next step is, or clear its due date."))
        return cleaned

    def add_domain_error(self, error: ValidationError) -> None:
        """Show a service's refusal beside the fields it names (on the form when it names none of them)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for field, errors in error.error_dict.items():
            self.add_error(field if field in self.fields and field != NON_FIELD_ERRORS else None, errors)
