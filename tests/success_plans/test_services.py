"""Success-plan services: plans blank and from playbooks, goals, targets and readings, initiatives."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from csm.exceptions import DomainError
from success_plans import services
from success_plans.models import Goal, Initiative, PlanTemplate, SuccessPlan, Target, TargetMeasurement
from tests import factories

pytestmark = pytest.mark.django_db
Status = SuccessPlan.Status


@pytest.fixture
def playbook():
    """A template with two goals: one with a target and two initiatives, one with a falling target."""
    template = factories.PlanTemplateFactory(name="Onboarding", duration_days=90)
    live = factories.TemplateGoalFactory(template=template, title="Go live", due_in_days=30, order=0)
    factories.TemplateTargetFactory(goal=live, name="Active users", baseline=0, target_value=25, due_in_days=30)
    factories.TemplateInitiativeFactory(goal=live, title="Kick-off", due_in_days=3, order=0)
    factories.TemplateInitiativeFactory(goal=live, title="Go-live sign-off", due_in_days=None, order=1)
    value = factories.TemplateGoalFactory(template=template, title="First value", due_in_days=None, order=1)
    factories.TemplateTargetFactory(
        goal=value, name="Days to insight", baseline=30, target_value=7, due_in_days=90, usage_metric=""
    )
    return template


def test_plan_create_defaults_to_the_account_owner_and_queues_one_recompute(django_capture_on_commit_callbacks):
    account = factories.AccountFactory(owner=factories.UserFactory())
    with django_capture_on_commit_callbacks() as callbacks:
        plan = services.plan_create(account=account, title="Year one", start_date=datetime.date(2026, 2, 1))
    assert (plan.owner, plan.status, plan.start_date) == (account.owner, Status.ACTIVE, datetime.date(2026, 2, 1))
    assert len(callbacks) == 1


def test_plan_create_refuses_a_deleted_account_and_a_closed_status():
    account = factories.AccountFactory(deleted_at=timezone.now())
    with pytest.raises(DomainError, match="was deleted"):
        services.plan_create(account=account, title="Year one")
    with pytest.raises(DomainError):
        services.plan_create(account=factories.AccountFactory(), title="Year one", status=Status.ACHIEVED)
    assert not SuccessPlan.objects.exists()


def test_plan_create_validates_dates():
    with pytest.raises(DomainError) as error:
        services.plan_create(
            account=factories.AccountFactory(),
            title="Backwards",
            start_date=datetime.date(2026, 5, 1),
            target_date=datetime.date(2026, 4, 1),
        )
    assert "before the start date" in " ".join(error.value.messages)
    assert not SuccessPlan.objects.exists()


def test_applying_a_template_copies_goals_targets_and_initiatives_with_relative_due_dates(playbook):
    owner = factories.UserFactory()
    account = factories.AccountFactory(owner=owner)
    plan = services.plan_create_from_template(account=account, template=playbook, start_date=datetime.date(2026, 3, 1))
    assert (plan.title, plan.template, plan.owner) == ("Onboarding", playbook, owner)
    assert plan.target_date == datetime.date(2026, 5, 30)  # 1 March + 90 days
    goals = list(plan.goals.order_by("order"))
    assert [(g.title, g.due_date, g.order) for g in goals] == [
        ("Go live", datetime.date(2026, 3, 31), 0),
        ("First value", None, 1),
    ]
    targets = list(Target.objects.filter(goal__plan=plan).order_by("goal__order"))
    assert [(t.name, t.baseline, t.target_value, t.due_date, t.usage_metric, t.current_value) for t in targets] == [
        ("Active users", 0, 25, datetime.date(2026, 3, 31), "active_users", None),
        ("Days to insight", 30, 7, datetime.date(2026, 5, 30), "", None),
    ]
    initiatives = list(Initiative.objects.filter(goal__plan=plan).order_by("order"))
    assert [(i.title, i.due_date, i.owner, i.status) for i in initiatives] == [
        ("Kick-off", datetime.date(2026, 3, 4), owner, Initiative.Status.PLANNED),
        ("Go-live sign-off", None, owner, Initiative.Status.PLANNED),
    ]


def test_applying_a_template_skips_deleted_accounts_and_accounts_with_an_open_plan_from_it(playbook):
    fresh, busy, gone = factories.AccountFactory.create_batch(3)
    gone.deleted_at = timezone.now()
    gone.save()
    services.plan_create_from_template(account=busy, template=playbook)
    applied = services.plans_apply_template(template=playbook, accounts=[fresh, busy, gone, fresh])
    assert [plan.account for plan in applied.created] == [fresh]
    assert set(applied.skipped) == {busy.pk, gone.pk}
    assert "open plan" in applied.skipped[busy.pk]
    assert "deleted" in applied.skipped[gone.pk]
    with pytest.raises(DomainError, match="open plan"):
        services.plan_create_from_template(account=busy, template=playbook)
    # An abandoned plan from the template does not block a new one.
    services.plan_set_status(plan=busy.success_plans.get(), status=Status.ABANDONED, reason="Restarting")
    assert services.plan_create_from_template(account=busy, template=playbook).status == Status.ACTIVE


def test_an_inactive_template_is_refused(playbook):
    playbook.is_active = False
    playbook.save()
    with pytest.raises(DomainError, match="not active"):
        services.plans_apply_template(template=playbook, accounts=[factories.AccountFactory()])


def test_applying_a_template_costs_the_same_queries_for_two_and_for_six_accounts(playbook, django_assert_num_queries):
    small, large = factories.AccountFactory.create_batch(2), factories.AccountFactory.create_batch(6)
    template = PlanTemplate.objects.get(pk=playbook.pk)
    counts = []
    for accounts in (small, large):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            services.plans_apply_template(template=template, accounts=accounts)
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert SuccessPlan.objects.count() == 8
    assert Goal.objects.count() == 16
    assert Initiative.objects.count() == 16


def test_plan_status_changes():
    plan = factories.SuccessPlanFactory(status=Status.DRAFT)
    with pytest.raises(DomainError, match="Only an active plan"):
        services.plan_set_status(plan=plan, status=Status.ACHIEVED)
    services.plan_set_status(plan=plan, status=Status.ACTIVE)
    with pytest.raises(DomainError, match="Say why"):
        services.plan_set_status(plan=plan, status=Status.ABANDONED, reason="  ")
    services.plan_achieve(plan=plan, reason="All goals met")
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason) == (Status.ACHIEVED, "All goals met")
    assert plan.closed_at is not None
    with pytest.raises(DomainError, match="back to draft"):
        services.plan_set_status(plan=plan, status=Status.DRAFT)
    services.plan_set_status(plan=plan, status=Status.ACTIVE)
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason, plan.closed_at) == (Status.ACTIVE, "", None)


def test_plan_update_refuses_fields_that_change_elsewhere():
    plan = factories.SuccessPlanFactory()
    with pytest.raises(DomainError, match="status"):
        services.plan_update(plan=plan, data={"status": Status.ACHIEVED})
    services.plan_update(plan=plan, data={"title": "Renamed"})
    plan.refresh_from_db()
    assert (plan.title, plan.status) == ("Renamed", Status.ACTIVE)


def test_a_deleted_plan_is_a_tombstone_and_cannot_be_edited():
    plan = factories.SuccessPlanFactory()
    services.plan_delete(plan=plan)
    assert SuccessPlan.objects.get(pk=plan.pk).deleted_at is not None
    with pytest.raises(DomainError, match="deleted"):
        services.plan_update(plan=plan, data={"title": "Again"})


def test_goals_are_added_in_order_achieved_abandoned_and_reopened():
    plan = factories.SuccessPlanFactory()
    first = services.goal_add(plan=plan, title="Go live")
    second = services.goal_add(plan=plan, title="Train")
    assert (first.order, second.order) == (0, 1)
    services.goal_achieve(goal=first, on=datetime.date(2026, 2, 10), reason="Live on 10 February")
    first.refresh_from_db()
    assert (first.status, first.achieved_at, first.status_reason) == (
        Goal.Status.ACHIEVED,
        datetime.date(2026, 2, 10),
        "Live on 10 February",
    )
    with pytest.raises(DomainError, match="future"):
        services.goal_achieve(goal=second, on=timezone.localdate() + datetime.timedelta(days=1))
    with pytest.raises(DomainError, match="Say why"):
        services.goal_abandon(goal=second, reason="")
    services.goal_abandon(goal=second, reason="Out of scope")
    services.goal_set_status(goal=first, status=Goal.Status.IN_PROGRESS)
    first.refresh_from_db()
    assert (first.status, first.achieved_at, first.status_reason) == (Goal.Status.IN_PROGRESS, None, "")


def test_goal_achieved_today_by_default():
    goal = factories.GoalFactory()
    services.goal_achieve(goal=goal)
    assert Goal.objects.get(pk=goal.pk).achieved_at == timezone.localdate()


def test_reordering_needs_every_row_once():
    plan = factories.SuccessPlanFactory()
    a, b, c = (services.goal_add(plan=plan, title=title) for title in "abc")
    with pytest.raises(DomainError, match="exactly once"):
        services.goals_reorder(plan=plan, goal_ids=[c.pk, a.pk])
    with pytest.raises(DomainError, match="exactly once"):
        services.goals_reorder(plan=plan, goal_ids=[c.pk, a.pk, a.pk])
    services.goals_reorder(plan=plan, goal_ids=[c.pk, a.pk, b.pk])
    assert list(plan.goals.values_list("title", flat=True)) == ["c", "a", "b"]


def test_removing_a_goal_removes_its_targets_readings_and_initiatives():
    target = factories.TargetFactory(current_value=None)
    services.target_measure(target=target, value=Decimal(20))
    factories.InitiativeFactory(goal=target.goal)
    services.goal_remove(goal=target.goal)
    assert not Target.objects.exists()
    assert not TargetMeasurement.objects.exists()
    assert not Initiative.objects.exists()


def test_targets_keep_a_history_of_readings_and_the_latest_is_current():
    user = factories.UserFactory()
    target = services.target_add(goal=factories.GoalFactory(), name="Active users", target_value=Decimal(110))
    assert (target.current_value, target.progress, target.progress_label) == (None, 0, "not measured yet")
    now = timezone.now()
    services.target_measure(target=target, value=Decimal("40"), measured_at=now - datetime.timedelta(days=2))
    services.target_measure(target=target, value=Decimal("55"), recorded_by=user, measured_at=now)
    # A reading dated before the latest one joins the history without replacing the current value.
    services.target_measure(target=target, value=Decimal("30"), measured_at=now - datetime.timedelta(days=5))
    target.refresh_from_db()
    assert target.current_value == Decimal("55")
    assert target.measured_at == now
    assert target.progress == Decimal("0.5")  # (55 - 0) / (110 - 0)
    assert target.progress_label == "50%"
    readings = list(target.measurements.values_list("value", "source", "recorded_by"))
    assert readings == [
        (Decimal("55"), TargetMeasurement.Source.WORKSPACE, user.pk),
        (Decimal("40"), TargetMeasurement.Source.WORKSPACE, None),
        (Decimal("30"), TargetMeasurement.Source.WORKSPACE, None),
    ]


def test_progress_of_a_target_that_goes_down_is_clamped():
    target = factories.TargetFactory(baseline=Decimal(30), target_value=Decimal(7), current_value=None)
    services.target_measure(target=target, value=Decimal(20))
    assert Target.objects.get(pk=target.pk).progress == Decimal(10) / Decimal(23)
    services.target_measure(target=target, value=Decimal(45))  # worse than the baseline
    assert Target.objects.get(pk=target.pk).progress == 0
    services.target_measure(target=target, value=Decimal(3))  # beyond the target
    assert Target.objects.get(pk=target.pk).progress == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "a finite number"),
        ("NaN", "a finite number"),
        ("Infinity", "a finite number"),
        ("99999999999999.95", "between"),  # rounds to 99999999999999.9500: more than 15 digits
        ("100000000000000", "between"),
        ("-100000000000000", "between"),
        ("1E+30", "between"),
    ],
)
def test_bad_readings_are_refused_and_nothing_is_written(value, message):
    target = factories.TargetFactory(current_value=None)
    with pytest.raises(DomainError, match=message):
        services.target_measure(target=target, value=value)
    assert not TargetMeasurement.objects.exists()
    assert Target.objects.get(pk=target.pk).current_value is None


def test_the_largest_reading_that_fits_is_kept_exactly():
    target = factories.TargetFactory(current_value=None)
    services.target_measure(target=target, value="99999999999999.9")
    assert Target.objects.get(pk=target.pk).current_value == Decimal("99999999999999.9")
    services.target_measure(target=target, value="-1234567890.12345")
    assert Target.objects.get(pk=target.pk).current_value == Decimal("-1234567890.1235")


def test_a_reading_in_the_future_is_refused():
    target = factories.TargetFactory(current_value=None)
    with pytest.raises(DomainError, match="future"):
        services.target_measure(target=target, value=1, measured_at=timezone.now() + datetime.timedelta(hours=1))


def test_bulk_readings_are_all_or_nothing_with_errors_by_index():
    target = factories.TargetFactory(current_value=None)
    measurements = [
        services.Measurement(target.pk, Decimal(12)),
        services.Measurement(target.pk, Decimal(13), source="fax"),
        services.Measurement(target.pk + 999, Decimal(14)),
    ]
    with pytest.raises(DomainError) as error:
        services.targets_measure_bulk(measurements=measurements)
    assert set(error.value.message_dict) == {"1", "2"}
    assert not TargetMeasurement.objects.exists()


def test_target_value_changes_only_through_readings():
    target = factories.TargetFactory()
    with pytest.raises(DomainError, match="current_value"):
        services.target_update(target=target, data={"current_value": Decimal(99)})
    with pytest.raises(DomainError, match="differ from the baseline"):
        services.target_update(target=target, data={"target_value": target.baseline})


def test_initiatives_complete_block_and_reopen():
    initiative = services.initiative_add(goal=factories.GoalFactory(), title="Train the admins")
    services.initiative_complete(initiative=initiative)
    initiative.refresh_from_db()
    assert initiative.status == Initiative.Status.DONE
    assert initiative.completed_at is not None
    with pytest.raises(DomainError, match="Say why"):
        services.initiative_block(initiative=initiative, reason="")
    services.initiative_block(initiative=initiative, reason="Waiting for IT")
    initiative.refresh_from_db()
    assert (initiative.status, initiative.status_reason, initiative.completed_at) == (
        Initiative.Status.BLOCKED,
        "Waiting for IT",
        None,
    )
    services.initiative_reopen(initiative=initiative)
    initiative.refresh_from_db()
    assert (initiative.status, initiative.status_reason) == (Initiative.Status.IN_PROGRESS, "")


def test_every_change_queues_the_accounts_recompute(django_capture_on_commit_callbacks):
    goal = factories.GoalFactory()
    target = factories.TargetFactory(goal=goal, current_value=None)
    initiative = factories.InitiativeFactory(goal=goal)
    changes = [
        lambda: services.goal_update(goal=goal, data={"title": "New title"}),
        lambda: services.target_update(target=target, data={"name": "New name"}),
        lambda: services.target_measure(target=target, value=5),
        lambda: services.initiative_update(initiative=initiative, data={"title": "New"}),
        lambda: services.initiative_complete(initiative=initiative),
        lambda: services.goal_achieve(goal=goal),
    ]
    for change in changes:
        with django_capture_on_commit_callbacks() as callbacks:
            change()
        assert len(callbacks) == 1
