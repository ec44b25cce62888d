"""Workspace forms given bad values: logging a touch, editing a plan, adding goals, targets, readings and
initiatives. Each bad value comes back on the form with its message (200, or 400 where the page says so) and
nothing is written; text with HTML in it is shown escaped."""

import html

import pytest
from django.urls import reverse

from accounts.models import Touch
from success_plans.models import Goal, SuccessPlan
from tests.reliability.test_imports import table_counts
from tests.success_plans.test_views import account, goal, plan, target  # noqa: F401 (fixtures)

# ruff: noqa: F811 (tests take the plan page tests' fixtures, imported above, as arguments)

pytestmark = pytest.mark.django_db
SCRIPT = "<script>alert(1)</script>"
DATE_RANGE = "Enter a date between 1900-01-01 and 2199-12-31."


def refused(client, url: str, data: dict, message: str, status: int = 200) -> str:
    """Post `data`, check the page shows `message` with `status` and that no table changed."""
    before = table_counts()
    response = client.post(url, data)
    page = html.unescape(response.content.decode())
    assert response.status_code == status
    assert message in page
    assert table_counts() == before
    return page


TOUCH = {"kind": "call", "occurred_at": "2026-01-05T10:00", "subject": "Quarterly call"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"occurred_at": "0001-01-01T00:00"}, DATE_RANGE),
        ({"occurred_at": "1899-12-31T23:59"}, DATE_RANGE),
        ({"occurred_at": "yesterday"}, "Enter a valid date/time."),
        ({"occurred_at": "2026-02-30T10:00"}, "Enter a valid date/time."),
        ({"next_step": "Send deck", "next_step_due": "9999-12-31"}, DATE_RANGE),
        ({"next_step": "Send deck", "next_step_due": "20256-01-01"}, "Enter a valid date."),
        ({"next_step_due": "2026-02-01"}, "Say what the next step is, or clear its due date."),
        ({"subject": ""}, "This field is required."),
        ({"subject": "x" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
        ({"subject": "a\x00b"}, "Null characters are not allowed."),
        ({"next_step": "y" * 301}, "Ensure this value has at most 300 characters (it has 301)."),
        ({"kind": "teleport"}, "Select a valid choice. teleport is not one of the available choices."),
        ({"sentiment": "abc"}, "Select a valid choice. abc is not one of the available choices."),
        ({"contacts": "999999"}, "Select a valid choice. 999999 is not one of the available choices."),
    ],
)
def test_the_touch_form_refuses_bad_values(csm_client, account, changes, message):
    refused(csm_client, reverse("accounts:log_touch", args=[account.pk]), {**TOUCH, **changes}, message, status=400)


def test_a_refused_touch_shows_html_it_was_given_escaped(csm_client, account):
    data = {**TOUCH, "subject": SCRIPT, "occurred_at": "bad"}
    response = csm_client.post(reverse("accounts:log_touch", args=[account.pk]), data)
    assert response.status_code == 400
    assert SCRIPT not in response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode()
    assert not Touch.objects.exists()


PLAN = {"title": "Acme year two", "start_date": "2026-03-02", "target_date": "2026-12-31"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start_date": "0026-03-02"}, DATE_RANGE),
        ({"target_date": "2200-01-01"}, DATE_RANGE),
        ({"target_date": "next year"}, "Enter a valid date."),
        ({"title": ""}, "This field is required."),
        ({"title": "t" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
        ({"owner": "not-a-user"}, "Select a valid choice. That choice is not one of the available choices."),
        ({"success_definition": "ok\x00"}, "Null characters are not allowed."),
    ],
)
def test_the_plan_form_refuses_bad_values(csm_client, plan, changes, message):
    refused(csm_client, reverse("plans:edit", args=[plan.pk]), {**PLAN, **changes}, message)
    plan.refresh_from_db()
    assert plan.title == "Acme year one"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"due_date": "1000-01-01"}, DATE_RANGE),
        ({"due_date": "31/12/2026"}, "Enter a valid date."),
        ({"title": ""}, "This field is required."),
        ({"title": "g" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
        ({"priority": "9"}, "Select a valid choice. 9 is not one of the available choices."),
        ({"priority": "high"}, "Select a valid choice. high is not one of the available choices."),
    ],
)
def test_the_goal_form_refuses_bad_values(csm_client, plan, changes, message):
    data = {"title": "Adoption", "priority": "2", **changes}
    refused(csm_client, reverse("plans:goal_add", args=[plan.pk]), data, message)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target_value": "NaN"}, "Enter a number."),
        ({"target_value": "Infinity"}, "Enter a number."),
        ({"target_value": "ten"}, "Enter a number."),
        ({"baseline": "1e40"}, "Ensure that there are no more than 18 digits in total."),
        ({"baseline": "0.00001"}, "Ensure that there are no more than 4 decimal places."),
        ({"target_value": ""}, "This field is required."),
        ({"usage_metric": "weekly users!"}, "Enter a valid “slug”"),
        ({"unit": "u" * 51}, "Ensure this value has at most 50 characters (it has 51)."),
        ({"due_date": "2199-13-01"}, "Enter a valid date."),
        ({"due_date": "2300-01-01"}, DATE_RANGE),
    ],
)
def test_the_target_form_refuses_bad_values(csm_client, goal, changes, message):
    data = {"name": "Weekly users", "baseline": "0", "target_value": "100", **changes}
    refused(csm_client, reverse("plans:target_add", args=[goal.pk]), data, message)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"value": "NaN"}, "Enter a number."),
        ({"value": "-Infinity"}, "Enter a number."),
        ({"value": "12,5.3"}, "Enter a number."),
        ({"value": "1" * 20}, "Ensure that there are no more than 18 digits in total."),
        ({"measured_at": "1899-01-01T00:00"}, DATE_RANGE),
        ({"measured_at": "2199-12-31T25:00"}, "Enter a valid date/time."),
        ({"measured_at": "2199-12-31T23:00"}, "a reading cannot be in the future."),
    ],
)
def test_the_reading_form_refuses_bad_values(csm_client, target, changes, message):
    data = {f"target-{target.pk}-{name}": value for name, value in {"value": "42", **changes}.items()}
    refused(csm_client, reverse("plans:target_measure", args=[target.pk]), data, message)
    target.refresh_from_db()
    assert target.current_value is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": ""}, "This field is required."),
        ({"title": "i" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
        ({"due_date": "0001-01-01"}, DATE_RANGE),
        ({"owner": "999999"}, "Select a valid choice. That choice is not one of the available choices."),
    ],
)
def test_the_initiative_form_refuses_bad_values(csm_client, goal, changes, message):
    data = {"title": "Train the leads", **changes}
    refused(csm_client, reverse("plans:initiative_add", args=[goal.pk]), data, message)


def test_html_in_plan_text_is_shown_escaped(csm_client, plan):
    response = csm_client.post(reverse("plans:goal_add", args=[plan.pk]), {"title": SCRIPT, "priority": "2"})
    assert response.status_code == 302
    assert Goal.objects.get(plan=plan).title == SCRIPT  # stored as given

    page = csm_client.get(reverse("plans:detail", args=[plan.pk])).content.decode()

    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_valid_plan_edit_still_saves(csm_client, plan):
    response = csm_client.post(reverse("plans:edit", args=[plan.pk]), PLAN)
    assert response.status_code == 302
    assert SuccessPlan.objects.get(pk=plan.pk).title == "Acme year two"
