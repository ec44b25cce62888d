"""Progress, the one definition (SPEC 3), and the plan reads pages use."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from success_plans.models import Initiative, PlanTemplate, SuccessPlan
from success_plans.selectors import plan_get, plan_progress_by_account, plans_progress
from tests import factories

pytestmark = pytest.mark.django_db
ON = datetime.date(2026, 6, 1)


def target(plan, baseline, target_value, current):
    goal = factories.GoalFactory(plan=plan)
    return factories.TargetFactory(goal=goal, baseline=baseline, target_value=target_value, current_value=current)


def test_plan_progress_by_account_counts_unmeasured_targets_at_zero_and_penalises_overdue_initiatives():
    account = factories.AccountFactory()
    plan = factories.SuccessPlanFactory(account=account)
    target(plan, Decimal(10), Decimal(110), Decimal(60))  # 0.5
    target(plan, Decimal(30), Decimal(7), Decimal(20))  # 10 / 23, a target that goes down
    target(plan, Decimal(0), Decimal(5), None)  # not measured yet: 0
    goal = plan.goals.first()
    factories.InitiativeFactory(goal=goal, due_date=ON - datetime.timedelta(days=1))  # overdue
    factories.InitiativeFactory(goal=goal, due_date=ON - datetime.timedelta(days=1), status=Initiative.Status.DONE)
    factories.InitiativeFactory(goal=goal, due_date=ON)  # due today: not overdue
    # A draft plan and a deleted plan do not count.
    target(factories.SuccessPlanFactory(account=account, status=SuccessPlan.Status.DRAFT), 0, 10, 10)
    deleted = factories.SuccessPlanFactory(
        account=account, deleted_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    )
    target(deleted, 0, 10, 10)
    lonely = factories.AccountFactory()  # no plan: no data

    progress = plan_progress_by_account(accounts=Account.objects.all(), on=ON)

    expected = (Decimal("0.5") + Decimal(10) / Decimal(23) + 0) / 3 - Decimal("0.1")
    assert progress == {account.pk: expected}
    assert lonely.pk not in progress


def test_plan_progress_never_goes_below_zero():
    account = factories.AccountFactory()
    plan = factories.SuccessPlanFactory(account=account)
    target(plan, 0, 10, 1)  # 0.1
    goal = plan.goals.first()
    factories.InitiativeFactory.create_batch(3, goal=goal, due_date=ON - datetime.timedelta(days=10))
    assert plan_progress_by_account(accounts=Account.objects.all(), on=ON) == {account.pk: Decimal(0)}


def test_plans_progress_per_plan():
    measured = factories.SuccessPlanFactory()
    target(measured, 0, 4, 1)  # 0.25
    target(measured, 0, 4, None)  # 0
    factories.InitiativeFactory(goal=measured.goals.first(), due_date=ON - datetime.timedelta(days=3))
    empty = factories.SuccessPlanFactory()
    result = plans_progress(plan_ids=[measured.pk, empty.pk], on=ON)
    assert result[measured.pk].progress == Decimal("0.125")
    assert (result[measured.pk].targets, result[measured.pk].measured) == (2, 1)
    assert result[measured.pk].overdue_initiatives == 1
    assert result[empty.pk].progress is None


@pytest.mark.parametrize("goals", [1, 4])
def test_plan_get_loads_a_plan_with_its_parts_in_four_queries(goals):
    plan = factories.SuccessPlanFactory()
    for _ in range(goals):
        goal = factories.GoalFactory(plan=plan)
        factories.TargetFactory.create_batch(2, goal=goal)
        factories.InitiativeFactory.create_batch(2, goal=goal, owner=factories.UserFactory())
    with CaptureQueriesContext(connection) as queries:
        loaded = plan_get(pk=plan.pk)
        # the plan with account, owner and template; goals; targets; initiatives with owners
        rows = [
            (t.progress_label, i.owner.username)
            for g in loaded.goals.all()
            for t in g.targets.all()
            for i in g.initiatives.all()
        ]
    assert len(rows) == goals * 4
    assert len(queries) == 4


def test_the_seeded_playbooks():
    playbooks = {t.name: t for t in PlanTemplate.objects.select_related("tier")}
    assert {"Onboarding (High touch)", "Adoption (Low touch)", "Renewal readiness"} <= set(playbooks)
    assert playbooks["Onboarding (High touch)"].tier.slug == "high-touch"
    assert playbooks["Adoption (Low touch)"].tier.slug == "low-touch"
    assert playbooks["Renewal readiness"].lifecycle_stage == "renewal"
    for name in ("Onboarding (High touch)", "Adoption (Low touch)", "Renewal readiness"):
        goals = list(playbooks[name].goals.all())
        assert len(goals) >= 3
        for goal in goals:
            assert goal.targets.exists(), goal
            assert goal.initiatives.exists(), goal
            for t in goal.targets.all():
                assert t.target_value != t.baseline
        assert any(t.usage_metric for goal in goals for t in goal.targets.all())
