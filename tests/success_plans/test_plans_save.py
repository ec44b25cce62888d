"""Saving success plans with their goals, targets and initiatives in one set-based, idempotent call."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csm.exceptions import DomainError
from success_plans import services
from success_plans.models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement
from success_plans.services import GoalSpec, InitiativeSpec, TargetSpec
from tests import factories

pytestmark = pytest.mark.django_db
Status = SuccessPlan.Status
MODELS = (SuccessPlan, Goal, Target, Initiative, TargetMeasurement)


def new_plan(account, title="Year one", **fields) -> SuccessPlan:
    fields.setdefault("start_date", datetime.date(2026, 2, 1))
    fields.setdefault("status", Status.ACTIVE)
    return SuccessPlan(account=account, title=title, owner=account.owner, **fields)


def onboarding(owner_id: int | None = None) -> list[GoalSpec]:
    """Two goals: one with a measured target and two initiatives (one done), one with a plain target."""
    return [
        GoalSpec(
            title="Go live",
            priority=1,
            status=Goal.Status.IN_PROGRESS,
            due_date=datetime.date(2026, 3, 31),
            targets=[TargetSpec(name="Active users", target_value="110", baseline=10, unit="users", current_value=40)],
            initiatives=[
                InitiativeSpec(title="Kick-off", owner_id=owner_id, status=Initiative.Status.DONE),
                InitiativeSpec(title="Train the leads", due_date=datetime.date(2026, 3, 15)),
            ],
        ),
        GoalSpec(
            title="First value",
            targets=[TargetSpec(name="Reports automated", target_value=20)],
            initiatives=[],
        ),
    ]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def ids() -> dict[str, list[int]]:
    return {model.__name__: sorted(model.objects.values_list("pk", flat=True)) for model in MODELS}


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")]


def test_a_plan_is_created_with_its_goals_targets_and_initiatives():
    user = factories.UserFactory()
    account = factories.AccountFactory()
    (plan,) = services.plans_save(plans=[new_plan(account)], goals=[onboarding(user.pk)], recorded_by=user)

    plan.refresh_from_db()
    assert (plan.title, plan.status, plan.closed_at, plan.owner) == ("Year one", Status.ACTIVE, None, account.owner)
    goals = list(plan.goals.all())
    assert [(g.title, g.order, g.priority, g.status, g.due_date) for g in goals] == [
        ("Go live", 0, 1, Goal.Status.IN_PROGRESS, datetime.date(2026, 3, 31)),
        ("First value", 1, 2, Goal.Status.NOT_STARTED, None),
    ]
    targets = list(Target.objects.filter(goal__plan=plan).order_by("goal__order", "order"))
    assert [(t.goal_id, t.name, t.unit, t.baseline, t.target_value, t.current_value) for t in targets] == [
        (goals[0].pk, "Active users", "users", Decimal(10), Decimal(110), Decimal(40)),
        (goals[1].pk, "Reports automated", "", Decimal(0), Decimal(20), None),
    ]
    initiatives = list(Initiative.objects.filter(goal__plan=plan).order_by("order"))
    assert [(i.goal_id, i.title, i.order, i.owner_id, i.status) for i in initiatives] == [
        (goals[0].pk, "Kick-off", 0, user.pk, Initiative.Status.DONE),
        (goals[0].pk, "Train the leads", 1, None, Initiative.Status.PLANNED),
    ]
    assert initiatives[0].completed_at is not None
    assert initiatives[1].completed_at is None
    (reading,) = TargetMeasurement.objects.all()
    assert (reading.target_id, reading.value, reading.source, reading.recorded_by) == (
        targets[0].pk,
        Decimal(40),
        TargetMeasurement.Source.API,
        user,
    )
    assert targets[0].measured_at == reading.measured_at


def test_the_same_call_twice_changes_nothing_the_second_time(django_capture_on_commit_callbacks):
    account = factories.AccountFactory()
    (plan,) = services.plans_save(plans=[new_plan(account)], goals=[onboarding()])
    before_counts, before_ids = counts(), ids()
    before_stamps = sorted(Goal.objects.values_list("pk", "updated_at")) + sorted(
        Target.objects.values_list("pk", "updated_at")
    )
    completed_at = Initiative.objects.get(title="Kick-off").completed_at

    again = SuccessPlan.objects.get(pk=plan.pk)
    again.title = "Year one"
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as callbacks:
        services.plans_save(plans=[again], goals=[onboarding()])

    assert (
        counts()
        == before_counts
        == {
            "SuccessPlan": 1,
            "Goal": 2,
            "Target": 2,
            "Initiative": 2,
            "TargetMeasurement": 1,  # 40 again is no new reading
        }
    )
    assert ids() == before_ids
    assert writes(queries) == []
    assert len(callbacks) == 1  # one recompute queued, for the account
    after_stamps = sorted(Goal.objects.values_list("pk", "updated_at")) + sorted(
        Target.objects.values_list("pk", "updated_at")
    )
    assert after_stamps == before_stamps
    assert Initiative.objects.get(title="Kick-off").completed_at == completed_at


def test_goals_are_reordered_and_renamed_by_id_and_removed_when_left_out():
    account = factories.AccountFactory()
    (plan,) = services.plans_save(plans=[new_plan(account)], goals=[onboarding()])
    live, value = plan.goals.all()
    users = Target.objects.get(name="Active users")
    kickoff, train = Initiative.objects.filter(goal=live).order_by("order")

    specs = [
        GoalSpec(id=value.pk, title="Value in week two"),  # targets / initiatives None: left alone
        GoalSpec(
            id=live.pk,
            title="Live",
            targets=[TargetSpec(id=users.pk, name="Weekly users", target_value=110, baseline=10, unit="users")],
            initiatives=[InitiativeSpec(title="Train the leads"), InitiativeSpec(id=kickoff.pk, title="Kick-off call")],
        ),
    ]
    services.plans_save(plans=[SuccessPlan.objects.get(pk=plan.pk)], goals=[specs])

    assert list(plan.goals.values_list("pk", "title", "order")) == [
        (value.pk, "Value in week two", 0),
        (live.pk, "Live", 1),
    ]
    assert list(Target.objects.filter(goal=value).values_list("name", flat=True)) == ["Reports automated"]
    assert list(Target.objects.filter(goal=live).values_list("pk", "name", "current_value")) == [
        (users.pk, "Weekly users", Decimal(40))
    ]
    # "Train the leads" matched by title, "Kick-off call" by id: both keep their rows, in the new order.
    assert list(Initiative.objects.filter(goal=live).values_list("pk", "title", "order")) == [
        (train.pk, "Train the leads", 0),
        (kickoff.pk, "Kick-off call", 1),
    ]
    assert TargetMeasurement.objects.count() == 1

    # Leaving a goal out removes it with its targets, readings and initiatives.
    services.plans_save(plans=[SuccessPlan.objects.get(pk=plan.pk)], goals=[[GoalSpec(id=value.pk, title="Value")]])
    assert list(plan.goals.values_list("pk", "title", "order")) == [(value.pk, "Value", 0)]
    assert not Target.objects.filter(pk=users.pk).exists()
    assert not Initiative.objects.filter(goal_id=live.pk).exists()
    assert not TargetMeasurement.objects.exists()
    assert Target.objects.count() == 1


def test_a_current_value_is_recorded_as_an_api_reading_only_when_it_changes():
    user = factories.UserFactory()
    plan = factories.SuccessPlanFactory(account=factories.AccountFactory())
    goal = factories.GoalFactory(plan=plan, title="Adoption")
    target = factories.TargetFactory(goal=goal, name="Weekly active users", baseline=10, target_value=110)

    def save(current_value, measured_at=None):
        spec = TargetSpec(
            name="Weekly active users",
            target_value=110,
            baseline=10,
            unit="users",
            current_value=current_value,
            measured_at=measured_at,
        )
        services.plans_save(
            plans=[SuccessPlan.objects.get(pk=plan.pk)],
            goals=[[GoalSpec(title="Adoption", status=Goal.Status.IN_PROGRESS, targets=[spec])]],
            recorded_by=user,
        )
        target.refresh_from_db()

    save("55.5")
    assert target.current_value == Decimal("55.5")
    (reading,) = TargetMeasurement.objects.filter(target=target)
    assert (reading.value, reading.source, reading.recorded_by_id) == (Decimal("55.5"), "api", user.pk)

    save(Decimal("55.5000"))  # the same value: no reading
    assert TargetMeasurement.objects.count() == 1

    yesterday = timezone.now() - datetime.timedelta(days=1)
    save(Decimal("55.5"), measured_at=yesterday)  # an earlier reading is history; the latest stays current
    assert TargetMeasurement.objects.count() == 2
    assert (target.current_value, target.measured_at) == (Decimal("55.5"), reading.measured_at)

    save(60)
    assert TargetMeasurement.objects.count() == 3
    assert target.current_value == Decimal(60)


def test_invalid_nested_data_in_one_of_several_plans_is_refused_by_path_and_nothing_is_written():
    first, second, third = factories.AccountFactory.create_batch(3)
    other_goal = factories.GoalFactory(plan=factories.SuccessPlanFactory(account=first), title="Elsewhere")
    before = counts()
    plans = [new_plan(first, "Fine"), new_plan(second, "Bad values"), new_plan(third, "Foreign goal")]
    goals = [
        onboarding(),
        [
            GoalSpec(title="Go live", targets=[TargetSpec(name="Users", target_value=5)]),
            GoalSpec(title="", targets=[TargetSpec(name="Users", target_value="1e40")]),
        ],
        [GoalSpec(id=other_goal.pk, title="Elsewhere")],
    ]
    with pytest.raises(DomainError) as error:
        services.plans_save(plans=plans, goals=goals)

    messages = error.value.message_dict
    assert set(messages) == {"1", "2"}
    assert messages["1"] == [
        "goals[1].targets[0].target_value: 1e40 is out of range; rounded to 4 places, it must lie between "
        "-99999999999999.9 and 99999999999999.9.",
        "goals[1].title: This field cannot be blank.",
    ]
    assert messages["2"] == [f"goals[0].id: there is no goal {other_goal.pk} here."]
    assert counts() == before
    # plans_check reports the same without writing.
    assert set(services.plans_check(plans=plans, goals=goals)) == {1, 2}


def test_a_single_plan_is_refused_by_field():
    account = factories.AccountFactory()
    goals = [[GoalSpec(title="Go live", targets=[TargetSpec(name="Users", target_value=10, baseline=10)])]]
    with pytest.raises(DomainError) as error:
        services.plans_save(plans=[new_plan(account, title="")], goals=goals)
    assert error.value.message_dict == {
        "title": ["This field cannot be blank."],
        "goals[0].targets[0].target_value": ["The target value must differ from the baseline."],
    }
    assert not SuccessPlan.objects.exists()


def test_a_target_of_another_goal_and_a_deleted_account_are_refused():
    plan = factories.SuccessPlanFactory()
    goal, other = factories.GoalFactory(plan=plan, title="A"), factories.GoalFactory(plan=plan, title="B")
    target = factories.TargetFactory(goal=other)
    spec = GoalSpec(id=goal.pk, title="A", targets=[TargetSpec(id=target.pk, name="Users", target_value=5)])
    with pytest.raises(DomainError) as error:
        services.plans_save(plans=[SuccessPlan.objects.get(pk=plan.pk)], goals=[[spec, GoalSpec(title="B")]])
    assert error.value.message_dict == {"goals[0].targets[0].id": [f"there is no target {target.pk} here."]}

    gone = factories.AccountFactory(name="Gone Ltd", deleted_at=timezone.now())
    with pytest.raises(DomainError) as error:
        services.plans_save(plans=[new_plan(gone)])
    assert error.value.message_dict == {"account": ["The account Gone Ltd was deleted."]}


def test_status_changes_follow_the_plan_rule():
    plan = factories.SuccessPlanFactory(status=Status.ACTIVE)
    changed = SuccessPlan.objects.get(pk=plan.pk)
    changed.status = Status.ABANDONED
    with pytest.raises(DomainError) as error:
        services.plans_save(plans=[changed])
    assert error.value.message_dict == {"status_reason": ["Say why the plan is abandoned or blocked."]}
    assert SuccessPlan.objects.get(pk=plan.pk).status == Status.ACTIVE

    changed.status_reason = "  Budget cut  "
    services.plans_save(plans=[changed])
    stored = SuccessPlan.objects.get(pk=plan.pk)
    assert (stored.status, stored.status_reason) == (Status.ABANDONED, "Budget cut")
    assert stored.closed_at is not None

    # The same state again keeps the closing time; reopening clears it and the reason.
    again = SuccessPlan.objects.get(pk=plan.pk)
    services.plans_save(plans=[again])
    assert SuccessPlan.objects.get(pk=plan.pk).closed_at == stored.closed_at
    again.status = Status.DRAFT
    with pytest.raises(DomainError, match="back to draft"):
        services.plans_save(plans=[again])
    again.status = Status.ACTIVE
    services.plans_save(plans=[again])
    stored = SuccessPlan.objects.get(pk=plan.pk)
    assert (stored.status, stored.status_reason, stored.closed_at) == (Status.ACTIVE, "", None)

    new = new_plan(factories.AccountFactory(), status=Status.ACHIEVED)
    with pytest.raises(DomainError, match="starts as a draft or active"):
        services.plans_save(plans=[new])


def test_a_blocked_initiative_needs_a_reason_and_reopening_clears_completed_at():
    plan = factories.SuccessPlanFactory()
    goal = factories.GoalFactory(plan=plan, title="Go live")
    done = factories.InitiativeFactory(
        goal=goal, title="Kick-off", status=Initiative.Status.DONE, completed_at=timezone.now()
    )

    def save(*initiatives):
        services.plans_save(
            plans=[SuccessPlan.objects.get(pk=plan.pk)],
            goals=[[GoalSpec(title="Go live", status=Goal.Status.IN_PROGRESS, initiatives=list(initiatives))]],
        )

    with pytest.raises(DomainError) as error:
        save(InitiativeSpec(title="Kick-off", status=Initiative.Status.BLOCKED))
    assert error.value.message_dict == {
        "goals[0].initiatives[0].status_reason": ["Say why the initiative is abandoned or blocked."]
    }
    save(InitiativeSpec(title="Kick-off", status=Initiative.Status.IN_PROGRESS))
    done.refresh_from_db()
    assert (done.status, done.completed_at) == (Initiative.Status.IN_PROGRESS, None)


def test_goal_statuses_follow_the_goal_rule():
    plan = factories.SuccessPlanFactory()

    def save(**fields):
        services.plans_save(plans=[SuccessPlan.objects.get(pk=plan.pk)], goals=[[GoalSpec(title="Go live", **fields)]])
        return Goal.objects.get(plan=plan)

    goal = save(status=Goal.Status.ACHIEVED, status_reason="Live on day one")
    assert (goal.status, goal.achieved_at, goal.status_reason) == (
        Goal.Status.ACHIEVED,
        timezone.localdate(),
        "Live on day one",
    )
    assert save(status=Goal.Status.ACHIEVED).status_reason == "Live on day one"  # no reason given: kept
    with pytest.raises(DomainError) as error:
        save(status=Goal.Status.ABANDONED)
    assert error.value.message_dict == {"goals[0].status_reason": ["Say why the goal is abandoned or blocked."]}
    goal = save(status=Goal.Status.IN_PROGRESS)
    assert (goal.status, goal.achieved_at, goal.status_reason) == (Goal.Status.IN_PROGRESS, None, "")


def plans_with_parts(size: int, user) -> tuple[list[SuccessPlan], list[list[GoalSpec]]]:
    accounts = factories.AccountFactory.create_batch(size)
    plans = [new_plan(account, f"Plan {n}") for n, account in enumerate(accounts)]
    goals = [
        [
            GoalSpec(
                title=title,
                targets=[TargetSpec(name="Users", target_value=100, current_value=n)],
                initiatives=[InitiativeSpec(title="Kick-off", owner_id=user.pk)],
            )
            for title in ("Go live", "First value")
        ]
        for n in range(size)
    ]
    return plans, goals


def test_the_query_count_does_not_grow_with_plans_and_their_parts():
    user = factories.UserFactory()
    created, updated = [], []
    for size in (2, 20):
        plans, goals = plans_with_parts(size, user)
        with CaptureQueriesContext(connection) as queries:
            services.plans_save(plans=plans, goals=goals, recorded_by=user)
        created.append(len(queries))

        # Again from stored plans: "Go live" renamed by id, "First value" left out, every target measured anew.
        stored = list(SuccessPlan.objects.filter(pk__in=[plan.pk for plan in plans]).order_by("pk"))
        live = dict(Goal.objects.filter(plan__in=stored, title="Go live").values_list("plan_id", "pk"))
        for plan, specs in zip(stored, goals, strict=True):
            specs.pop()
            specs[0].id, specs[0].title = live[plan.pk], "Live"
            specs[0].targets[0].current_value += 1
        with CaptureQueriesContext(connection) as queries:
            services.plans_save(plans=stored, goals=goals, recorded_by=user)
        updated.append(len(queries))
        assert sorted(Goal.objects.filter(plan__in=stored).values_list("pk", flat=True)) == sorted(live.values())
    assert created[0] == created[1]
    assert updated[0] == updated[1]
    assert (Goal.objects.count(), Target.objects.count(), Initiative.objects.count()) == (22, 22, 22)
    assert TargetMeasurement.objects.count() == 44  # two readings of each kept target, none of the removed ones
    assert set(Goal.objects.values_list("title", flat=True)) == {"Live"}
