"""The success-plan admin saves through the services; playbooks on one page; apply template on accounts."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from success_plans.models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement
from tests import factories
from tests.admin.test_admin import form_data, messages_of

pytestmark = pytest.mark.django_db


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def playbook():
    template = factories.PlanTemplateFactory(name="Adoption", duration_days=60)
    goal = factories.TemplateGoalFactory(template=template, title="Roll out", due_in_days=30)
    factories.TemplateTargetFactory(goal=goal, name="Active users", target_value=50)
    factories.TemplateInitiativeFactory(goal=goal, title="Webinar", due_in_days=7)
    return template


def test_apply_template_asks_for_the_template_then_creates_one_plan_per_account(admin_client, playbook):
    fresh = factories.AccountFactory(name="Fresh Co")
    busy = factories.AccountFactory(name="Busy Co")
    factories.SuccessPlanFactory(account=busy, template=playbook)
    changelist = reverse("admin:accounts_account_changelist")
    selection = {"action": "apply_plan_template", ACTION_CHECKBOX_NAME: [fresh.pk, busy.pk]}

    page = admin_client.post(changelist, selection)
    assert page.status_code == 200
    assert "Adoption" in page.content.decode()
    assert not SuccessPlan.objects.filter(account=fresh).exists()

    response = admin_client.post(
        changelist,
        {**selection, "apply": "1", "template": playbook.pk, "start_date": "2026-04-01", "status": "active"},
        follow=True,
    )
    notes = messages_of(response)
    assert "1 plan created." in notes
    assert any("1 account skipped: Busy Co (it already has an open plan from this template)" in n for n in notes)
    plan = SuccessPlan.objects.get(account=fresh)
    assert (plan.template, plan.start_date, plan.target_date) == (
        playbook,
        datetime.date(2026, 4, 1),
        datetime.date(2026, 5, 31),
    )
    assert plan.goals.get().due_date == datetime.date(2026, 5, 1)
    assert Initiative.objects.get(goal__plan=plan).due_date == datetime.date(2026, 4, 8)


def test_a_current_value_typed_in_the_admin_is_recorded_as_a_reading(admin_client, admin_user):
    target = factories.TargetFactory(current_value=None)
    page = admin_client.get(change_url(target))
    assert "not measured yet" in page.content.decode()
    data = form_data(page) | {"current_value": "35"}
    response = admin_client.post(change_url(target), data)
    assert response.status_code == 302
    reading = TargetMeasurement.objects.get(target=target)
    assert (reading.value, reading.source, reading.recorded_by) == (
        Decimal(35),
        TargetMeasurement.Source.WORKSPACE,
        admin_user,
    )
    assert Target.objects.get(pk=target.pk).current_value == Decimal(35)


def test_abandoning_a_plan_in_the_admin_needs_a_reason(admin_client):
    plan = factories.SuccessPlanFactory()
    data = form_data(admin_client.get(change_url(plan)))
    response = admin_client.post(change_url(plan), data | {"status": "abandoned"}, follow=True)
    assert any("Say why" in note for note in messages_of(response))
    assert SuccessPlan.objects.get(pk=plan.pk).status == SuccessPlan.Status.ACTIVE

    response = admin_client.post(change_url(plan), data | {"status": "abandoned", "status_reason": "Merged away"})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason) == (SuccessPlan.Status.ABANDONED, "Merged away")
    assert plan.closed_at is not None


def test_goal_inlines_save_through_the_services(admin_client):
    goal = factories.GoalFactory()
    initiative = factories.InitiativeFactory(goal=goal)
    target = factories.TargetFactory(goal=goal, current_value=None)
    data = form_data(admin_client.get(change_url(goal)))
    prefix_i = next(k.split("-")[0] for k in data if k.endswith("-TOTAL_FORMS") and "initiative" in k)
    prefix_t = next(k.split("-")[0] for k in data if k.endswith("-TOTAL_FORMS") and "target" in k)
    data |= {f"{prefix_i}-0-status": "done", f"{prefix_t}-0-current_value": "70"}
    response = admin_client.post(change_url(goal), data)
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert initiative.status == Initiative.Status.DONE
    assert initiative.completed_at is not None
    assert TargetMeasurement.objects.get(target=target).value == Decimal(70)


def test_achieving_a_goal_in_the_admin_keeps_its_date(admin_client):
    goal = factories.GoalFactory()
    data = form_data(admin_client.get(change_url(goal)))
    response = admin_client.post(change_url(goal), data | {"status": "achieved", "achieved_at": "2026-02-03"})
    assert response.status_code == 302
    goal.refresh_from_db()
    assert (goal.status, goal.achieved_at) == (Goal.Status.ACHIEVED, datetime.date(2026, 2, 3))


def test_adding_a_plan_from_a_template_in_the_admin(admin_client, playbook):
    account = factories.AccountFactory()
    add = reverse("admin:success_plans_successplan_add")
    data = form_data(admin_client.get(add)) | {
        "account": account.pk,
        "title": "Adoption for Acme",
        "status": "active",
        "template": playbook.pk,
        "start_date": "2026-03-01",
    }
    response = admin_client.post(add, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    plan = SuccessPlan.objects.get(account=account)
    assert (plan.title, plan.template, plan.target_date) == ("Adoption for Acme", playbook, datetime.date(2026, 4, 30))
    assert plan.goals.get().title == "Roll out"


@pytest.mark.parametrize("model", ["goal", "plan"])
def test_plan_and_goal_pages_cost_the_same_queries_for_few_and_many_rows(admin_client, model):
    counts = []
    for size in (2, 6):
        plan = factories.SuccessPlanFactory()
        goals = factories.GoalFactory.create_batch(size, plan=plan)
        for _ in range(size):
            factories.TargetFactory(goal=goals[0])
            factories.InitiativeFactory(goal=goals[0], owner=factories.UserFactory())
        url = change_url(goals[0] if model == "goal" else plan)
        admin_client.get(url)  # content types and the like, cached per process
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_a_playbook_is_edited_on_one_page_in_the_same_queries_for_few_and_many_rows(admin_client):
    counts = []
    for size in (1, 4):
        template = factories.PlanTemplateFactory()
        for _ in range(size):
            goal = factories.TemplateGoalFactory(template=template, title=f"Goal of {template.name}")
            factories.TemplateTargetFactory.create_batch(2, goal=goal, name="Reports automated")
            factories.TemplateInitiativeFactory.create_batch(2, goal=goal, title="Office hours")
        url = change_url(template)
        admin_client.get(url)
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(url)
        counts.append(len(queries))
        text = page.content.decode()
        assert text.count(f"Goal of {template.name}") >= size
        assert "Reports automated" in text
        assert "Office hours" in text
    assert counts[0] == counts[1]


def test_deleting_a_plan_in_the_admin_leaves_a_tombstone(admin_client):
    plan = factories.SuccessPlanFactory()
    url = reverse("admin:success_plans_successplan_delete", args=[plan.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert SuccessPlan.objects.get(pk=plan.pk).deleted_at <= timezone.now()


def nested_form_data(response) -> dict:
    """`form_data` with the rows of the nested inlines (a goal's targets and initiatives) too."""
    data = form_data(response)
    for inline in response.context["inline_admin_formsets"]:
        for form in inline.formset.forms:
            for nested in form.nested_formsets:
                for part in (nested.management_form, *nested.forms):
                    for bound in part:
                        value = bound.value()
                        data[bound.html_name] = "" if value is None else str(value)
    return data


def test_a_playbook_s_goals_targets_and_initiatives_are_saved_from_one_page(admin_client):
    template = factories.PlanTemplateFactory(name="Renewal")
    goal = factories.TemplateGoalFactory(template=template, title="Value documented")
    factories.TemplateTargetFactory(goal=goal, name="Outcomes", target_value=3)
    url = change_url(template)
    data = nested_form_data(admin_client.get(url))
    data |= {
        "goals-0-targets-0-name": "Outcomes documented",
        "goals-0-initiatives-TOTAL_FORMS": "1",
        "goals-0-initiatives-0-title": "Value summary",
        "goals-0-initiatives-0-due_in_days": "21",
        "goals-0-initiatives-0-order": "0",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    goal.refresh_from_db()
    assert list(goal.targets.values_list("name", flat=True)) == ["Outcomes documented"]
    assert list(goal.initiatives.values_list("title", "due_in_days")) == [("Value summary", 21)]


def test_saving_a_goal_with_changed_inline_rows_queues_one_recompute(admin_client, django_capture_on_commit_callbacks):
    goal = factories.GoalFactory()
    factories.InitiativeFactory.create_batch(2, goal=goal)
    factories.TargetFactory.create_batch(2, goal=goal, current_value=None)
    data = form_data(admin_client.get(change_url(goal)))
    prefix_i = next(k.split("-")[0] for k in data if k.endswith("-TOTAL_FORMS") and "initiative" in k)
    prefix_t = next(k.split("-")[0] for k in data if k.endswith("-TOTAL_FORMS") and "target" in k)
    data |= {
        "title": "Renamed goal",
        f"{prefix_i}-0-status": "done",
        f"{prefix_i}-1-title": "Renamed initiative",
        f"{prefix_t}-0-current_value": "70",
        f"{prefix_t}-1-name": "Renamed target",
    }
    with django_capture_on_commit_callbacks() as callbacks:
        assert admin_client.post(change_url(goal), data).status_code == 302
    assert len(callbacks) == 1
    assert Goal.objects.get(pk=goal.pk).title == "Renamed goal"


def test_deleting_several_goals_is_one_call_with_one_recompute(admin_client, django_capture_on_commit_callbacks):
    plan = factories.SuccessPlanFactory()
    goals = factories.GoalFactory.create_batch(3, plan=plan)
    factories.TargetFactory(goal=goals[0])
    changelist = reverse("admin:success_plans_goal_changelist")
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            changelist,
            {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [g.pk for g in goals[:2]]},
        )
    assert response.status_code == 302
    assert list(Goal.objects.values_list("pk", flat=True)) == [goals[2].pk]
    assert not Target.objects.exists()
    assert len(callbacks) == 1


def test_a_template_goal_page_costs_the_same_queries_for_few_and_many_rows(admin_client):
    counts = []
    for size in (1, 5):
        goal = factories.TemplateGoalFactory()
        factories.TemplateTargetFactory.create_batch(size, goal=goal)
        factories.TemplateInitiativeFactory.create_batch(size, goal=goal)
        url = change_url(goal)
        admin_client.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
