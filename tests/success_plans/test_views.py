"""Success plan pages: create from a playbook or blank, the plan page, readings, initiatives in place,
status changes with reasons, editing, permissions by persona, CSRF and fixed query counts."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from success_plans.models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement
from tests import factories

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 3, 2)


@pytest.fixture
def account(csm_user):
    return factories.AccountFactory(owner=csm_user, name="Acme")


@pytest.fixture
def plan(account):
    return factories.SuccessPlanFactory(account=account, title="Acme year one")


@pytest.fixture
def goal(plan):
    return factories.GoalFactory(plan=plan, title="Adoption")


@pytest.fixture
def target(goal):
    return factories.TargetFactory(
        goal=goal, name="Weekly users", baseline=Decimal(10), target_value=Decimal(110), current_value=None
    )


@pytest.fixture
def initiative(goal, csm_user):
    return factories.InitiativeFactory(goal=goal, title="Train the leads", owner=csm_user)


def text(response) -> str:
    return response.content.decode()


def playbook(**fields):
    """A playbook with one goal (due after 30 days), two targets and two initiatives."""
    template = factories.PlanTemplateFactory(name="Onboarding", duration_days=90, **fields)
    goal = factories.TemplateGoalFactory(template=template, title="Go live", due_in_days=30, order=0)
    factories.TemplateTargetFactory(goal=goal, name="Active users", target_value=50, due_in_days=45, order=0)
    factories.TemplateTargetFactory(goal=goal, name="Reports", target_value=10, due_in_days=None, order=1)
    factories.TemplateInitiativeFactory(goal=goal, title="Kick-off", due_in_days=7, order=0)
    factories.TemplateInitiativeFactory(goal=goal, title="Admin training", due_in_days=21, order=1)
    return template


# --- creating a plan ----------------------------------------------------------------------------


def test_the_new_plan_page_suggests_the_playbook_of_the_accounts_tier(csm_client, account):
    account.tier = factories.TierFactory()
    account.lifecycle_stage = "expansion"  # no seeded playbook fits this tier or stage
    account.save()
    factories.PlanTemplateFactory(name="Another playbook")
    suggested = playbook(tier=account.tier)
    factories.PlanTemplateFactory(name="Retired", is_active=False, tier=account.tier)

    response = csm_client.get(reverse("plans:new"), {"account": account.pk})

    assert response.status_code == 200
    page = text(response)
    assert "Another playbook" in page
    assert "Retired" not in page
    assert "Blank plan" in page
    assert f'value="{suggested.pk}" id="id_template_' in page
    assert response.context["form"]["template"].value() == suggested.pk
    assert "csrfmiddlewaretoken" in page


def test_the_suggested_playbook_fits_tier_and_stage_first_then_tier_then_stage(csm_client, account):
    account.tier = factories.TierFactory()
    account.lifecycle_stage = "expansion"
    account.save()
    url = reverse("plans:new") + f"?account={account.pk}"
    assert csm_client.get(url).context["form"]["template"].value() == ""  # nothing fits: a blank plan
    by_stage = factories.PlanTemplateFactory(name="A stage playbook", lifecycle_stage="expansion")
    assert csm_client.get(url).context["form"]["template"].value() == by_stage.pk
    by_tier = factories.PlanTemplateFactory(name="B tier playbook", tier=account.tier)
    assert csm_client.get(url).context["form"]["template"].value() == by_tier.pk
    both = factories.PlanTemplateFactory(name="C both", tier=account.tier, lifecycle_stage="expansion")
    assert csm_client.get(url).context["form"]["template"].value() == both.pk


def test_create_a_plan_from_a_playbook_copies_its_parts_with_due_dates_from_the_start(csm_client, csm_user, account):
    template = playbook()

    response = csm_client.post(
        reverse("plans:new") + f"?account={account.pk}",
        {"template": template.pk, "start_date": "2026-03-02", "status": "active", "title": "", "target_date": ""},
    )

    plan = SuccessPlan.objects.get(account=account)
    assert response.status_code == 302
    assert response["Location"] == reverse("plans:detail", args=[plan.pk])
    assert (plan.title, plan.status, plan.template, plan.owner) == ("Onboarding", "active", template, csm_user)
    assert plan.start_date == START
    assert plan.target_date == datetime.date(2026, 5, 31)  # 2 March + 90 days
    (goal,) = plan.goals.all()
    assert (goal.title, goal.due_date) == ("Go live", datetime.date(2026, 4, 1))  # + 30 days
    targets = list(goal.targets.order_by("order").values_list("name", "target_value", "due_date"))
    assert targets == [("Active users", Decimal(50), datetime.date(2026, 4, 16)), ("Reports", Decimal(10), None)]
    initiatives = list(goal.initiatives.order_by("order").values_list("title", "due_date", "owner"))
    assert initiatives == [
        ("Kick-off", datetime.date(2026, 3, 9), csm_user.pk),
        ("Admin training", datetime.date(2026, 3, 23), csm_user.pk),
    ]
    page = text(csm_client.get(response["Location"]))
    assert "Go live" in page
    assert "Kick-off" in page
    assert "not measured yet" in page


def test_a_playbook_plan_takes_the_title_and_dates_given(csm_client, account):
    template = playbook()
    csm_client.post(
        reverse("plans:new") + f"?account={account.pk}",
        {
            "template": template.pk,
            "start_date": "2026-03-02",
            "status": "draft",
            "title": "Acme onboarding",
            "success_definition": "Live in April",
            "target_date": "2026-06-30",
        },
    )
    plan = SuccessPlan.objects.get(account=account)
    assert (plan.title, plan.status, plan.success_definition) == ("Acme onboarding", "draft", "Live in April")
    assert plan.target_date == datetime.date(2026, 6, 30)


def test_a_playbook_refused_by_the_service_shows_why_and_creates_nothing(csm_client, account):
    template = playbook()
    factories.SuccessPlanFactory(account=account, template=template, status="active", title="Existing")

    response = csm_client.post(
        reverse("plans:new") + f"?account={account.pk}",
        {"template": template.pk, "start_date": "2026-03-02", "status": "active", "target_date": "2026-01-01"},
    )

    assert response.status_code == 200
    assert "it already has an open plan from this template" in text(response)
    assert SuccessPlan.objects.filter(account=account).count() == 1


def test_a_playbook_plan_with_a_bad_target_date_is_not_half_written(csm_client, account):
    template = playbook()
    response = csm_client.post(
        reverse("plans:new") + f"?account={account.pk}",
        {"template": template.pk, "start_date": "2026-03-02", "status": "active", "target_date": "2026-01-01"},
    )
    assert response.status_code == 200
    assert "The target date cannot be before the start date." in text(response)
    assert not SuccessPlan.objects.filter(account=account).exists()
    assert not Goal.objects.exists()


def test_create_a_blank_plan(csm_client, account):
    response = csm_client.post(
        reverse("plans:new") + f"?account={account.pk}",
        {
            "template": "",
            "title": "Renewal rescue",
            "start_date": "2026-03-02",
            "target_date": "2026-04-30",
            "status": "draft",
            "success_definition": "Renews for two years",
        },
    )
    plan = SuccessPlan.objects.get(account=account)
    assert response["Location"] == reverse("plans:detail", args=[plan.pk])
    assert (plan.title, plan.status, plan.template, plan.target_date) == (
        "Renewal rescue",
        "draft",
        None,
        datetime.date(2026, 4, 30),
    )
    assert not plan.goals.exists()
    page = text(csm_client.get(response["Location"]))
    assert "This plan has no goals yet." in page
    assert "Renews for two years" in page


def test_a_blank_plan_needs_a_title(csm_client, account):
    response = csm_client.post(
        reverse("plans:new") + f"?account={account.pk}",
        {"template": "", "start_date": "2026-03-02", "status": "active"},
    )
    assert response.status_code == 200
    assert "Give the blank plan a title, or choose a playbook." in text(response)
    assert not SuccessPlan.objects.exists()


def test_new_plan_for_a_missing_or_deleted_account_is_404(csm_client, account):
    assert csm_client.get(reverse("plans:new")).status_code == 404
    assert csm_client.get(reverse("plans:new"), {"account": "x"}).status_code == 404
    gone = factories.AccountFactory(owner=account.owner, deleted_at=timezone.now())
    assert csm_client.get(reverse("plans:new"), {"account": gone.pk}).status_code == 404


# --- the plan page ------------------------------------------------------------------------------


def test_the_plan_page_shows_progress_targets_readings_and_initiatives(csm_client, plan, goal, target, initiative):
    measured = factories.TargetFactory(
        goal=goal, name="Seats", baseline=Decimal(0), target_value=Decimal(40), current_value=Decimal(10)
    )
    factories.TargetMeasurementFactory(target=measured, value=Decimal(10))
    overdue = factories.InitiativeFactory(goal=goal, title="Send the survey", due_date=datetime.date(2020, 1, 1))

    response = csm_client.get(reverse("plans:detail", args=[plan.pk]))

    page = text(response)
    assert response.status_code == 200
    assert "<title>Acme year one · Acme" in page
    assert "Adoption" in page
    assert "not measured yet" in page  # Weekly users
    assert '<span style="width:25%">' in page  # Seats: 10 of 40
    assert "25%" in page
    # Plan progress: (0 + 0.25) / 2 targets = 12.5 %, shown rounded.
    assert '<span style="width:12%">' in page or '<span style="width:13%">' in page
    assert "1 of 2 targets measured" in page
    assert "Train the leads" in page
    assert f'id="initiative-{overdue.pk}" class="initiative-planned overdue"' in page
    assert "Mark done" in page


def test_the_plan_page_shows_only_the_latest_readings(csm_client, plan, target):
    now = timezone.now()
    for day in range(8):
        factories.TargetMeasurementFactory(
            target=target, value=Decimal(100 + day), measured_at=now - datetime.timedelta(days=day)
        )
    page = text(csm_client.get(reverse("plans:detail", args=[plan.pk])))
    shown = [value for value in range(100, 108) if f'<td class="num">{value}</td>' in page]
    assert shown == [100, 101, 102, 103, 104]  # the five newest


def test_a_deleted_plan_is_404(csm_client, plan, goal, target, initiative):
    plan.deleted_at = timezone.now()
    plan.save()
    assert csm_client.get(reverse("plans:detail", args=[plan.pk])).status_code == 404
    assert csm_client.post(reverse("plans:status", args=[plan.pk]), {"status": "abandoned"}).status_code == 404
    assert csm_client.post(reverse("plans:goal_edit", args=[goal.pk]), {"title": "x"}).status_code == 404
    assert csm_client.post(reverse("plans:target_measure", args=[target.pk]), {}).status_code == 404
    assert csm_client.post(reverse("plans:initiative_status", args=[initiative.pk]), {}).status_code == 404


def test_the_account_plans_page_lists_live_plans_with_progress(csm_client, account, plan, goal):
    factories.TargetFactory(goal=goal, baseline=0, target_value=4, current_value=1)  # 25 %
    factories.SuccessPlanFactory(account=account, title="Deleted plan", deleted_at=timezone.now())
    factories.SuccessPlanFactory(title="Someone else's plan")

    response = csm_client.get(reverse("plans:account_plans", args=[account.pk]))

    page = text(response)
    assert "Acme year one" in page
    assert "Deleted plan" not in page
    assert "Someone else" not in page
    assert '<span style="width:25%">' in page
    assert f"{reverse('plans:new')}?account={account.pk}" in page


def test_the_account_plans_page_says_when_there_are_none(csm_client, account):
    assert "This account has no success plan yet." in text(
        csm_client.get(reverse("plans:account_plans", args=[account.pk]))
    )


def test_the_account_plans_page_is_paginated(csm_client, account):
    factories.SuccessPlanFactory.create_batch(21, account=account)
    first = csm_client.get(reverse("plans:account_plans", args=[account.pk]))
    assert len(first.context["page_obj"].object_list) == 20
    assert "Page 1 of 2" in text(first)
    second = csm_client.get(reverse("plans:account_plans", args=[account.pk]), {"page": 2})
    assert len(second.context["page_obj"].object_list) == 1


# --- readings -----------------------------------------------------------------------------------


def test_record_a_reading_sets_the_current_value_and_keeps_the_history(csm_client, csm_user, plan, target):
    url = reverse("plans:target_measure", args=[target.pk])
    prefix = f"target-{target.pk}"

    response = csm_client.post(url, {f"{prefix}-value": "35", f"{prefix}-measured_at": ""})

    assert response.status_code == 302
    assert response["Location"] == reverse("plans:detail", args=[plan.pk]) + f"#target-{target.pk}"
    target.refresh_from_db()
    assert target.current_value == Decimal(35)
    # An earlier reading goes into the history without replacing the current value.
    csm_client.post(url, {f"{prefix}-value": "20", f"{prefix}-measured_at": "2026-01-05T09:30"})
    target.refresh_from_db()
    assert target.current_value == Decimal(35)
    readings = list(TargetMeasurement.objects.filter(target=target).values_list("value", "source", "recorded_by"))
    assert sorted(readings) == [(Decimal(20), "workspace", csm_user.pk), (Decimal(35), "workspace", csm_user.pk)]
    page = text(csm_client.get(reverse("plans:detail", args=[plan.pk])))
    assert '<span style="width:25%">' in page  # (35 - 10) / (110 - 10)
    assert '<td class="num">35</td>' in page
    assert '<td class="num">20</td>' in page


def test_a_reading_in_the_future_is_refused_on_the_form(csm_client, target):
    prefix = f"target-{target.pk}"
    future = (timezone.localtime() + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = csm_client.post(
        reverse("plans:target_measure", args=[target.pk]), {f"{prefix}-value": "35", f"{prefix}-measured_at": future}
    )
    assert response.status_code == 200
    assert "a reading cannot be in the future" in text(response)
    assert not TargetMeasurement.objects.exists()


def test_a_reading_needs_a_number(csm_client, target):
    prefix = f"target-{target.pk}"
    response = csm_client.post(reverse("plans:target_measure", args=[target.pk]), {f"{prefix}-value": "lots"})
    assert response.status_code == 200
    assert "Enter a number." in text(response)
    assert not TargetMeasurement.objects.exists()


# --- initiatives in place -----------------------------------------------------------------------


def test_mark_an_initiative_done_with_htmx_returns_the_row(csm_client, initiative):
    prefix = f"initiative-{initiative.pk}"
    response = csm_client.post(
        reverse("plans:initiative_status", args=[initiative.pk]),
        {f"{prefix}-status": "done"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    row = text(response)
    assert row.lstrip().startswith(f'<tr id="initiative-{initiative.pk}" class="initiative-done')
    assert "<html" not in row
    assert "Reopen" in row
    initiative.refresh_from_db()
    assert initiative.status == Initiative.Status.DONE
    assert initiative.completed_at is not None


def test_mark_an_initiative_done_without_htmx_goes_back_to_the_plan(csm_client, plan, initiative):
    prefix = f"initiative-{initiative.pk}"
    response = csm_client.post(
        reverse("plans:initiative_status", args=[initiative.pk]), {f"{prefix}-status": "done"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("plans:detail", args=[plan.pk]) + f"#initiative-{initiative.pk}"
    assert "is now done" in text(response)
    initiative.refresh_from_db()
    assert initiative.status == Initiative.Status.DONE


def test_block_an_initiative_needs_a_reason_then_reopen(csm_client, initiative):
    url = reverse("plans:initiative_status", args=[initiative.pk])
    prefix = f"initiative-{initiative.pk}"

    refused = csm_client.post(
        url, {f"{prefix}-status": "blocked", f"{prefix}-reason": " "}, headers={"HX-Request": "true"}
    )
    assert "Say why the initiative is abandoned or blocked." in text(refused)
    initiative.refresh_from_db()
    assert initiative.status == Initiative.Status.PLANNED

    refused_plain = csm_client.post(url, {f"{prefix}-status": "blocked"})
    assert refused_plain.status_code == 200
    assert "Say why the initiative is abandoned or blocked." in text(refused_plain)

    csm_client.post(url, {f"{prefix}-status": "blocked", f"{prefix}-reason": "Waiting for IT"})
    initiative.refresh_from_db()
    assert (initiative.status, initiative.status_reason) == ("blocked", "Waiting for IT")

    csm_client.post(url, {f"{prefix}-status": "in_progress"})
    initiative.refresh_from_db()
    assert (initiative.status, initiative.status_reason) == ("in_progress", "")


# --- plan and goal status -----------------------------------------------------------------------


def test_abandoning_a_plan_needs_a_reason(csm_client, plan):
    url = reverse("plans:status", args=[plan.pk])
    refused = csm_client.post(url, {"status": "abandoned", "reason": ""})
    assert refused.status_code == 200
    assert "Say why the plan is abandoned or blocked." in text(refused)
    plan.refresh_from_db()
    assert plan.status == SuccessPlan.Status.ACTIVE

    done = csm_client.post(url, {"status": "abandoned", "reason": "Customer reorganised"}, follow=True)
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason) == ("abandoned", "Customer reorganised")
    assert "Customer reorganised" in text(done)
    assert "Reopen the plan" in text(done)

    csm_client.post(url, {"status": "active"})
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason, plan.closed_at) == ("active", "", None)


def test_achieve_a_plan_and_activate_a_draft(csm_client, account):
    draft = factories.SuccessPlanFactory(account=account, status="draft")
    url = reverse("plans:status", args=[draft.pk])
    refused = csm_client.post(url, {"status": "achieved"})
    assert "Only an active plan can be achieved" in text(refused)
    csm_client.post(url, {"status": "active"})
    csm_client.post(url, {"status": "achieved", "reason": "Live everywhere"})
    draft.refresh_from_db()
    assert (draft.status, draft.status_reason) == ("achieved", "Live everywhere")


def test_abandoning_a_goal_needs_a_reason(csm_client, plan, goal):
    url = reverse("plans:goal_status", args=[goal.pk])
    prefix = f"goal-{goal.pk}"
    refused = csm_client.post(url, {f"{prefix}-status": "abandoned"})
    assert refused.status_code == 200
    assert "Say why the goal is abandoned or blocked." in text(refused)
    goal.refresh_from_db()
    assert goal.status == Goal.Status.IN_PROGRESS

    csm_client.post(url, {f"{prefix}-status": "abandoned", f"{prefix}-reason": "Out of scope"})
    goal.refresh_from_db()
    assert (goal.status, goal.status_reason) == ("abandoned", "Out of scope")

    csm_client.post(url, {f"{prefix}-status": "in_progress"})
    csm_client.post(url, {f"{prefix}-status": "achieved"})
    goal.refresh_from_db()
    assert (goal.status, goal.achieved_at) == ("achieved", timezone.localdate())


# --- editing ------------------------------------------------------------------------------------


def test_edit_the_plan_with_validation(csm_client, plan, other_csm):
    url = reverse("plans:edit", args=[plan.pk])
    assert csm_client.get(url).status_code == 200
    data = {"title": "Renamed", "owner": other_csm.pk, "success_definition": "", "start_date": "2026-03-02"}
    refused = csm_client.post(url, {**data, "target_date": "2026-03-01"})
    assert "The target date cannot be before the start date." in text(refused)
    plan.refresh_from_db()
    assert plan.title == "Acme year one"

    assert csm_client.post(url, {**data, "target_date": "2026-09-30"}).status_code == 302
    plan.refresh_from_db()
    assert (plan.title, plan.owner, plan.target_date) == ("Renamed", other_csm, datetime.date(2026, 9, 30))


def test_add_edit_and_remove_a_goal(csm_client, plan, goal):
    response = csm_client.post(
        reverse("plans:goal_add", args=[plan.pk]), {"title": "Expansion", "priority": 1, "due_date": "2026-05-01"}
    )
    added = plan.goals.get(title="Expansion")
    assert response["Location"].endswith(f"#goal-{added.pk}")
    assert (added.priority, added.due_date, added.order) == (1, datetime.date(2026, 5, 1), goal.order + 1)

    assert "This field is required." in text(
        csm_client.post(reverse("plans:goal_edit", args=[added.pk]), {"title": ""})
    )
    csm_client.post(reverse("plans:goal_edit", args=[added.pk]), {"title": "Expand to sales", "priority": 2})
    added.refresh_from_db()
    assert (added.title, added.priority, added.due_date) == ("Expand to sales", 2, None)

    csm_client.post(reverse("plans:goal_remove", args=[added.pk]))
    assert list(plan.goals.values_list("title", flat=True)) == ["Adoption"]
    assert csm_client.get(reverse("plans:goal_remove", args=[goal.pk])).status_code == 405


def test_move_goals_up_and_down(csm_client, plan, goal):
    second = factories.GoalFactory(plan=plan, title="Expansion", order=1)
    third = factories.GoalFactory(plan=plan, title="Renewal", order=2)
    csm_client.post(reverse("plans:goal_move", args=[third.pk]), {"direction": "up"})
    assert list(plan.goals.values_list("title", flat=True)) == ["Adoption", "Renewal", "Expansion"]
    csm_client.post(reverse("plans:goal_move", args=[goal.pk]), {"direction": "up"})  # already first
    csm_client.post(reverse("plans:goal_move", args=[goal.pk]), {"direction": "down"})
    assert list(plan.goals.values_list("title", flat=True)) == ["Renewal", "Adoption", "Expansion"]
    page = text(csm_client.get(reverse("plans:detail", args=[plan.pk])))
    assert page.index("Renewal") < page.index("Adoption") < page.index(second.title)


def test_add_edit_and_remove_a_target(csm_client, goal):
    url = reverse("plans:target_add", args=[goal.pk])
    refused = csm_client.post(url, {"name": "NPS", "baseline": "30", "target_value": "30"})
    assert "The target value must differ from the baseline." in text(refused)
    assert not goal.targets.exists()

    csm_client.post(url, {"name": "NPS", "baseline": "30", "target_value": "50", "unit": "points"})
    target = goal.targets.get()
    assert (target.baseline, target.target_value, target.unit) == (Decimal(30), Decimal(50), "points")

    edit = reverse("plans:target_edit", args=[target.pk])
    assert csm_client.get(edit).status_code == 200
    csm_client.post(edit, {"name": "NPS", "baseline": "20", "target_value": "60", "unit": "points"})
    target.refresh_from_db()
    assert (target.baseline, target.target_value) == (Decimal(20), Decimal(60))

    csm_client.post(reverse("plans:target_remove", args=[target.pk]))
    assert not Target.objects.exists()


def test_add_edit_and_remove_an_initiative(csm_client, goal, other_csm):
    csm_client.post(
        reverse("plans:initiative_add", args=[goal.pk]),
        {"title": "Executive review", "owner": other_csm.pk, "due_date": "2026-04-15"},
    )
    initiative = goal.initiatives.get()
    assert (initiative.title, initiative.owner, initiative.due_date) == (
        "Executive review",
        other_csm,
        datetime.date(2026, 4, 15),
    )
    # Only people with a workspace role can own an initiative.
    stranger = factories.UserFactory(username="stranger")
    refused = csm_client.post(
        reverse("plans:initiative_edit", args=[initiative.pk]), {"title": "Executive review", "owner": stranger.pk}
    )
    assert "Select a valid choice." in text(refused)

    csm_client.post(reverse("plans:initiative_edit", args=[initiative.pk]), {"title": "QBR", "owner": ""})
    initiative.refresh_from_db()
    assert (initiative.title, initiative.owner, initiative.due_date) == ("QBR", None, None)

    csm_client.post(reverse("plans:initiative_remove", args=[initiative.pk]))
    assert not Initiative.objects.exists()


# --- permissions --------------------------------------------------------------------------------


def edits(plan, goal, target, initiative):
    """Every change a user could try on the plan, as (url, data)."""
    return [
        (
            reverse("plans:new") + f"?account={plan.account_id}",
            {"title": "New", "start_date": "2026-03-02", "status": "active"},
        ),
        (reverse("plans:edit", args=[plan.pk]), {"title": "Renamed", "start_date": "2026-03-02"}),
        (reverse("plans:status", args=[plan.pk]), {"status": "abandoned", "reason": "No"}),
        (reverse("plans:goal_add", args=[plan.pk]), {"title": "Another", "priority": 2}),
        (reverse("plans:goal_edit", args=[goal.pk]), {"title": "Renamed", "priority": 2}),
        (reverse("plans:goal_status", args=[goal.pk]), {f"goal-{goal.pk}-status": "achieved"}),
        (reverse("plans:goal_move", args=[goal.pk]), {"direction": "down"}),
        (reverse("plans:target_add", args=[goal.pk]), {"name": "X", "baseline": 0, "target_value": 1}),
        (reverse("plans:target_edit", args=[target.pk]), {"name": "X", "baseline": 0, "target_value": 1}),
        (reverse("plans:target_measure", args=[target.pk]), {f"target-{target.pk}-value": "50"}),
        (reverse("plans:initiative_add", args=[goal.pk]), {"title": "X"}),
        (reverse("plans:initiative_edit", args=[initiative.pk]), {"title": "X"}),
        (reverse("plans:initiative_status", args=[initiative.pk]), {f"initiative-{initiative.pk}-status": "done"}),
        (reverse("plans:initiative_remove", args=[initiative.pk]), {}),
        (reverse("plans:target_remove", args=[target.pk]), {}),
        (reverse("plans:goal_remove", args=[goal.pk]), {}),
    ]


def snapshot():
    return (
        list(SuccessPlan.objects.values_list("title", "status", "status_reason")),
        list(Goal.objects.values_list("title", "status")),
        list(Target.objects.values_list("name", "current_value")),
        list(Initiative.objects.values_list("title", "status")),
        TargetMeasurement.objects.count(),
    )


def test_another_csm_reads_the_plan_but_every_change_is_refused(client, other_csm, plan, goal, target, initiative):
    client.force_login(other_csm)
    page = client.get(reverse("plans:detail", args=[plan.pk]))
    assert page.status_code == 200
    assert "Train the leads" in text(page)
    assert "Mark done" not in text(page)
    assert "Edit the plan" not in text(page)
    assert client.get(reverse("plans:account_plans", args=[plan.account_id])).status_code == 200
    before = snapshot()
    for url, data in edits(plan, goal, target, initiative):
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "Only the CSM who owns Acme, or a CS leader, can change its success plans." in text(response)
    assert client.get(reverse("plans:new"), {"account": plan.account_id}).status_code == 403
    assert client.get(reverse("plans:goal_edit", args=[goal.pk])).status_code == 403
    assert snapshot() == before


def test_the_owner_and_a_leader_may_change_the_plan(client, csm_user, leader, plan, goal, target, initiative):
    for user in (csm_user, leader):
        client.force_login(user)
        assert "Mark done" in text(client.get(reverse("plans:detail", args=[plan.pk])))
        prefix = f"target-{target.pk}"
        assert (
            client.post(reverse("plans:target_measure", args=[target.pk]), {f"{prefix}-value": "50"}).status_code == 302
        )
    assert TargetMeasurement.objects.count() == 2
    client.force_login(leader)
    for url, data in edits(plan, goal, target, initiative):
        assert client.post(url, data).status_code in (200, 302), url


def test_a_csm_may_not_edit_the_plan_of_an_unowned_account(client, csm_user):
    plan = factories.SuccessPlanFactory(account=factories.AccountFactory(owner=None))
    client.force_login(csm_user)
    assert (
        client.post(reverse("plans:status", args=[plan.pk]), {"status": "abandoned", "reason": "x"}).status_code == 403
    )


def test_the_outsider_sees_the_no_access_page(client, outsider, plan, initiative):
    client.force_login(outsider)
    for response in (
        client.get(reverse("plans:detail", args=[plan.pk])),
        client.get(reverse("plans:account_plans", args=[plan.account_id])),
        client.post(
            reverse("plans:initiative_status", args=[initiative.pk]), {f"initiative-{initiative.pk}-status": "done"}
        ),
    ):
        assert response.status_code == 403
        assert "No access yet" in text(response)
    initiative.refresh_from_db()
    assert initiative.status == Initiative.Status.PLANNED


def test_signed_out_visitors_are_sent_to_sign_in(plan):
    response = Client().get(reverse("plans:detail", args=[plan.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_forms_need_the_csrf_token(csm_user, plan, target, initiative):
    client = Client(enforce_csrf_checks=True)
    client.force_login(csm_user)
    page = text(client.get(reverse("plans:detail", args=[plan.pk])))
    assert page.count("csrfmiddlewaretoken") >= 3  # plan status, a reading, an initiative
    assert 'hx-headers=\'{"X-CSRFToken"' in page
    prefix = f"target-{target.pk}"
    assert client.post(reverse("plans:target_measure", args=[target.pk]), {f"{prefix}-value": "50"}).status_code == 403
    assert (
        client.post(
            reverse("plans:initiative_status", args=[initiative.pk]),
            {f"initiative-{initiative.pk}-status": "done"},
            headers={"HX-Request": "true"},
        ).status_code
        == 403
    )
    assert client.post(reverse("plans:new") + f"?account={plan.account_id}", {"title": "X"}).status_code == 403
    assert not TargetMeasurement.objects.exists()
    initiative.refresh_from_db()
    assert initiative.status == Initiative.Status.PLANNED


# --- query counts -------------------------------------------------------------------------------


def plan_with(goals: int, account) -> SuccessPlan:
    """A plan with `goals` goals, each with three targets (with readings) and three initiatives."""
    plan = factories.SuccessPlanFactory(account=account)
    owner = factories.csm_user(username=f"owner-{goals}")
    for _goal in range(goals):
        goal = factories.GoalFactory(plan=plan)
        for _target in range(3):
            target = factories.TargetFactory(goal=goal)
            factories.TargetMeasurementFactory.create_batch(7, target=target, recorded_by=owner)
        factories.InitiativeFactory.create_batch(3, goal=goal, owner=owner)
    return plan


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_plan_page_runs_the_same_queries_whatever_its_size(csm_client, account, django_assert_max_num_queries):
    small = reverse("plans:detail", args=[plan_with(1, account).pk])
    large = reverse("plans:detail", args=[plan_with(4, account).pk])
    count_queries(csm_client, small)  # the session and the role are read once per request either way
    # session, user, role; the plan, its goals, targets, initiatives; progress (2); the readings (1)
    with django_assert_max_num_queries(10):
        csm_client.get(large)
    assert count_queries(csm_client, small) == count_queries(csm_client, large)


def test_the_account_plans_page_runs_the_same_queries_whatever_its_size(
    csm_client, csm_user, django_assert_max_num_queries
):
    small, large = factories.AccountFactory(owner=csm_user), factories.AccountFactory(owner=csm_user)
    plan_with(1, small)
    for _plan in range(6):
        plan_with(2, large)
    with django_assert_max_num_queries(10):
        csm_client.get(reverse("plans:account_plans", args=[large.pk]))
    assert count_queries(csm_client, reverse("plans:account_plans", args=[small.pk])) == count_queries(
        csm_client, reverse("plans:account_plans", args=[large.pk])
    )


# --- moving targets and initiatives, deleting a plan --------------------------------------------


@pytest.fixture
def three_targets(goal):
    return [factories.TargetFactory(goal=goal, name=name, order=order) for order, name in enumerate("ABC")]


@pytest.fixture
def three_initiatives(goal):
    return [factories.InitiativeFactory(goal=goal, title=title, order=order) for order, title in enumerate("XYZ")]


def stored(model, goal) -> list[str]:
    """The parts of `goal` by their stored `order` column (ties by id), as their names."""
    label = "name" if model is Target else "title"
    rows = sorted(model.objects.filter(goal=goal).values_list("order", "id", label))
    return [row[2] for row in rows]


def test_move_targets_up_and_down(csm_client, goal, three_targets):
    a, b, c = three_targets
    response = csm_client.post(reverse("plans:target_move", args=[c.pk]), {"direction": "up"})
    assert response.status_code == 302
    assert response["Location"] == reverse("plans:detail", args=[goal.plan_id]) + f"#target-{c.pk}"
    assert stored(Target, goal) == ["A", "C", "B"]
    csm_client.post(reverse("plans:target_move", args=[a.pk]), {"direction": "up"})  # already first
    csm_client.post(reverse("plans:target_move", args=[b.pk]), {"direction": "down"})  # already last
    csm_client.post(reverse("plans:target_move", args=[a.pk]), {"direction": "sideways"})  # not a direction
    assert stored(Target, goal) == ["A", "C", "B"]
    csm_client.post(reverse("plans:target_move", args=[a.pk]), {"direction": "down"})
    assert stored(Target, goal) == ["C", "A", "B"]
    assert csm_client.get(reverse("plans:target_move", args=[a.pk])).status_code == 405


def test_move_initiatives_up_and_down(csm_client, goal, three_initiatives):
    x, y, z = three_initiatives
    csm_client.post(reverse("plans:initiative_move", args=[x.pk]), {"direction": "down"})
    assert stored(Initiative, goal) == ["Y", "X", "Z"]
    csm_client.post(reverse("plans:initiative_move", args=[z.pk]), {"direction": "up"})
    assert stored(Initiative, goal) == ["Y", "Z", "X"]
    page = text(csm_client.get(reverse("plans:detail", args=[goal.plan_id])))
    assert page.index(">Y<") < page.index(">Z<") < page.index(">X<")


def test_the_plan_page_has_move_buttons_named_after_each_part(csm_client, client, other_csm, goal, three_targets):
    factories.InitiativeFactory(goal=goal, title="Only one")
    page = text(csm_client.get(reverse("plans:detail", args=[goal.plan_id])))
    assert 'Move <span class="visually-hidden">A</span> up' not in page  # the first only moves down
    assert 'Move <span class="visually-hidden">A</span> down' in page
    assert 'Move <span class="visually-hidden">B</span> up' in page
    assert 'Move <span class="visually-hidden">B</span> down' in page
    assert 'Move <span class="visually-hidden">C</span> down' not in page
    assert 'Move <span class="visually-hidden">Only one</span>' not in page  # nothing to move past
    assert reverse("plans:target_move", args=[three_targets[0].pk]) in page
    client.force_login(other_csm)
    assert 'visually-hidden">A</span>' not in text(client.get(reverse("plans:detail", args=[goal.plan_id])))


def test_moves_and_deleting_are_refused_to_another_csm_and_the_outsider(
    client, other_csm, outsider, plan, goal, three_targets, three_initiatives
):
    tries = [
        (reverse("plans:target_move", args=[three_targets[0].pk]), {"direction": "down"}),
        (reverse("plans:initiative_move", args=[three_initiatives[0].pk]), {"direction": "down"}),
        (reverse("plans:delete", args=[plan.pk]), {}),
    ]
    for user, says in ((other_csm, "Only the CSM who owns Acme, or a CS leader"), (outsider, "No access yet")):
        client.force_login(user)
        assert client.get(reverse("plans:delete", args=[plan.pk])).status_code == 403
        for url, data in tries:
            response = client.post(url, data)
            assert response.status_code == 403, url
            assert says in text(response)
    assert stored(Target, goal) == ["A", "B", "C"]
    assert stored(Initiative, goal) == ["X", "Y", "Z"]
    assert SuccessPlan.objects.get(pk=plan.pk).deleted_at is None


def test_the_owner_deletes_a_plan_after_confirming(csm_client, account, plan, goal):
    url = reverse("plans:delete", args=[plan.pk])
    confirm = csm_client.get(url)
    assert confirm.status_code == 200
    assert "Delete the success plan “Acme year one” of Acme?" in text(confirm)
    assert SuccessPlan.objects.get(pk=plan.pk).deleted_at is None  # asking deletes nothing
    assert url in text(csm_client.get(reverse("plans:detail", args=[plan.pk])))

    response = csm_client.post(url, follow=False)
    assert response.status_code == 302
    assert response["Location"] == reverse("metrics:account", args=[account.pk])
    tombstone = SuccessPlan.objects.get(pk=plan.pk)  # still stored, marked deleted, for partners to sync
    assert tombstone.deleted_at is not None
    assert Goal.objects.filter(plan_id=plan.pk).exists()
    assert csm_client.get(reverse("plans:detail", args=[plan.pk])).status_code == 404
    assert csm_client.get(url).status_code == 404
    assert csm_client.post(url).status_code == 404
    shown = text(csm_client.get(reverse("plans:account_plans", args=[account.pk])))
    assert "The success plan “Acme year one” was deleted." in shown
    assert "Acme year one</a>" not in shown


def test_a_leader_deletes_any_plan(client, leader, plan):
    client.force_login(leader)
    assert client.post(reverse("plans:delete", args=[plan.pk])).status_code == 302
    assert SuccessPlan.objects.get(pk=plan.pk).deleted_at is not None


def test_moves_and_deleting_need_the_csrf_token(csm_user, plan, goal, three_targets, three_initiatives):
    client = Client(enforce_csrf_checks=True)
    client.force_login(csm_user)
    page = text(client.get(reverse("plans:delete", args=[plan.pk])))
    assert "csrfmiddlewaretoken" in page
    for url in (
        reverse("plans:target_move", args=[three_targets[0].pk]),
        reverse("plans:initiative_move", args=[three_initiatives[0].pk]),
        reverse("plans:delete", args=[plan.pk]),
    ):
        assert client.post(url, {"direction": "down"}).status_code == 403, url
    assert stored(Target, goal) == ["A", "B", "C"]
    assert stored(Initiative, goal) == ["X", "Y", "Z"]
    assert SuccessPlan.objects.get(pk=plan.pk).deleted_at is None
