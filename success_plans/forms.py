"""Forms of the success-plan pages. They only parse input: every change goes through `services`, whose
`DomainError` messages are put back on the form by `add_domain_error`."""

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Q, QuerySet
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from accounts.forms import WorkspaceDateField, WorkspaceDateTimeField
from csm.exceptions import DomainError
from csm.roles import CSM_GROUP, LEADER_GROUP

from .models import VALUE, Goal, Initiative, PlanTemplate, Priority, SuccessPlan

# The service's field names that the forms call differently.
FIELD_ALIASES = {"status_reason": "reason"}


def add_domain_error(form: forms.Form, error: DomainError) -> None:
    """Show a service's refusal on `form`: beside the field it names, else above the form."""
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            name = FIELD_ALIASES.get(name, name)
            field = name if name in form.fields and name != NON_FIELD_ERRORS else None
            for message in errors:
                form.add_error(field, message.message % message.params if message.params else message.message)
    else:
        for message in error.messages:
            form.add_error(None, message)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def workspace_users() -> QuerySet:
    """People who can own a plan or an initiative: users with a workspace role."""
    return (
        get_user_model()
        .objects.filter(Q(groups__name__in=[CSM_GROUP, LEADER_GROUP]) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_full_name() or obj.get_username()


class ReasonField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("label", _("Reason"))
        super().__init__(required=False, max_length=300, **kwargs)


# --- plans --------------------------------------------------------------------------------------


class PlanNewForm(forms.Form):
    template = forms.ModelChoiceField(
        label=_("Playbook"),
        queryset=PlanTemplate.objects.none(),
        required=False,
        widget=forms.RadioSelect,
    )
    title = forms.CharField(
        label=_("Title"), max_length=200, required=False, help_text=_("From a playbook, its name unless you give one.")
    )
    success_definition = forms.CharField(
        label=_("Success definition"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("The customer's own words for success."),
    )
    start_date = WorkspaceDateField(label=_("Start date"), widget=DateInput())
    target_date = WorkspaceDateField(
        label=_("Target date"),
        required=False,
        widget=DateInput(),
        help_text=_("From a playbook, the start plus its duration unless you give one."),
    )
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[(SuccessPlan.Status.ACTIVE, _("Active")), (SuccessPlan.Status.DRAFT, _("Draft"))],
        initial=SuccessPlan.Status.ACTIVE,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, templates: list[PlanTemplate], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["template"]
        field.queryset = PlanTemplate.objects.filter(is_active=True, pk__in=[t.pk for t in templates])
        # The choices come from the list already read, not from another query at render time.
        field.choices = [
            ("", _("Blank plan")),
            *[
                (t.pk, f"{t.name}: {Truncator(t.description).chars(120)}" if t.description else t.name)
                for t in templates
            ],
        ]

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("template") and not data.get("title"):
            self.add_error("title", _("Give the blank plan a title, or choose a playbook."))
        return data


class PlanEditForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    owner = UserChoiceField(label=_("Owner"), queryset=get_user_model().objects.none(), required=False)
    success_definition = forms.CharField(
        label=_("Success definition"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    start_date = WorkspaceDateField(label=_("Start date"), widget=DateInput())
    target_date = WorkspaceDateField(label=_("Target date"), required=False, widget=DateInput())

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = workspace_users()


class StatusForm(forms.Form):
    """A status change with a reason; the status comes from the button pressed."""

    status = forms.ChoiceField()
    reason = ReasonField()

    def __init__(self, *args, choices, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = choices


def plan_status_form(*args, **kwargs) -> StatusForm:
    return StatusForm(*args, choices=SuccessPlan.Status.choices, **kwargs)


def goal_status_form(*args, **kwargs) -> StatusForm:
    return StatusForm(*args, choices=Goal.Status.choices, **kwargs)


def initiative_status_form(*args, **kwargs) -> StatusForm:
    return StatusForm(*args, choices=Initiative.Status.choices, **kwargs)


# --- goals, targets, readings, initiatives ------------------------------------------------------


class GoalForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    priority = forms.TypedChoiceField(
        label=_("Priority"), choices=Priority.choices, coerce=int, initial=Priority.MEDIUM
    )
    due_date = WorkspaceDateField(label=_("Due date"), required=False, widget=DateInput())


class TargetForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    unit = forms.CharField(label=_("Unit"), max_length=50, required=False)
    baseline = forms.DecimalField(label=_("Baseline"), initial=0, **VALUE)
    target_value = forms.DecimalField(label=_("Target value"), **VALUE)
    due_date = WorkspaceDateField(label=_("Due date"), required=False, widget=DateInput())
    usage_metric = forms.SlugField(
        label=_("Usage metric"),
        max_length=50,
        required=False,
        help_text=_("When set, the current value follows this usage metric's latest value."),
    )


class ReadingForm(forms.Form):
    value = forms.DecimalField(label=_("Value"), **VALUE)
    measured_at = WorkspaceDateTimeField(
        label=_("Measured at"),
        required=False,
        widget=DateTimeInput(),
        help_text=_("Now, unless you say when."),
    )


class InitiativeForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    owner = UserChoiceField(label=_("Owner"), queryset=get_user_model().objects.none(), required=False)
    due_date = WorkspaceDateField(label=_("Due date"), required=False, widget=DateInput())

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = workspace_users()
