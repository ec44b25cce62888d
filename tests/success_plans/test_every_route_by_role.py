"""Every change to a success plan, by every route the plans app serves, is refused to a CSM who does not
own the account, and taken from its owner and from a CS leader.

The routes are read from success_plans.urls, so a route added later is checked too; test_views.py checks
the same rules with real form data and messages.
"""

import pytest
from django.urls import URLPattern, reverse

from success_plans import urls as plan_urls
from success_plans.models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement
from tests import factories

pytestmark = pytest.mark.django_db

READ_ONLY = {"detail", "account_plans"}  # pages every CSM reads


@pytest.fixture
def world(csm_user):
    account = factories.AccountFactory(owner=csm_user, name="Acme")
    plan = factories.SuccessPlanFactory(account=account, title="Acme year one")
    goal = factories.GoalFactory(plan=plan, title="Adoption")
    target = factories.TargetFactory(goal=goal, name="Weekly users")
    initiative = factories.InitiativeFactory(goal=goal, title="Train the leads", owner=csm_user)
    factories.GoalFactory(plan=plan, title="Second")  # so moves have somewhere to go
    return {"plan": plan, "goal": goal, "target": target, "initiative": initiative, "account": account}


def url_for(pattern: URLPattern, world) -> str:
    """The route's URL for the world's object of the kind its path names."""
    route = str(pattern.pattern)
    if route == "new/":
        return reverse("plans:new") + f"?account={world['account'].pk}"
    kind = next((k for k in ("goal", "target", "initiative", "account") if route.startswith(f"{k}s/")), None)
    kind = kind or ("account" if route.startswith("account/") else "plan")
    return reverse(f"plans:{pattern.name}", args=[world[kind].pk])


def changing_routes() -> list[URLPattern]:
    return [p for p in plan_urls.urlpatterns if p.name not in READ_ONLY]


def snapshot():
    return (
        list(SuccessPlan.objects.order_by("pk").values_list("title", "status", "deleted_at")),
        list(Goal.objects.order_by("pk").values_list("title", "status", "order")),
        list(Target.objects.order_by("pk").values_list("name", "current_value", "order")),
        list(Initiative.objects.order_by("pk").values_list("title", "status", "order")),
        TargetMeasurement.objects.count(),
    )


def test_the_walk_finds_every_changing_route():
    names = {p.name for p in changing_routes()}
    assert {"new", "edit", "status", "delete", "goal_add", "target_measure", "initiative_status"} <= names
    assert len(names) == len(plan_urls.urlpatterns) - len(READ_ONLY)


@pytest.mark.parametrize("pattern", changing_routes(), ids=lambda p: p.name)
def test_another_csm_is_refused_every_change(client, other_csm, world, pattern):
    client.force_login(other_csm)
    url = url_for(pattern, world)
    before = snapshot()
    data = {"title": "Taken", "name": "Taken", "status": "abandoned", "reason": "x", "direction": "down"}
    response = client.post(url, data)
    assert response.status_code == 403, (url, response.status_code)
    assert "Only the CSM who owns Acme, or a CS leader, can change its success plans." in response.content.decode()
    # The form pages that lead to a change are refused too.
    assert client.get(url).status_code in (403, 405), url
    assert snapshot() == before


@pytest.mark.parametrize("pattern", changing_routes(), ids=lambda p: p.name)
def test_a_csm_of_an_unowned_account_is_refused_every_change(client, csm_user, pattern):
    account = factories.AccountFactory(owner=None, name="Nobody's")
    plan = factories.SuccessPlanFactory(account=account)
    goal = factories.GoalFactory(plan=plan)
    unowned = {
        "plan": plan,
        "goal": goal,
        "target": factories.TargetFactory(goal=goal),
        "initiative": factories.InitiativeFactory(goal=goal),
        "account": account,
    }
    client.force_login(csm_user)
    before = snapshot()
    response = client.post(url_for(pattern, unowned), {"title": "Taken", "direction": "down"})
    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("pattern", changing_routes(), ids=lambda p: p.name)
def test_the_owner_and_a_leader_are_not_refused(client, csm_user, leader, world, pattern):
    for user in (csm_user, leader):
        client.force_login(user)
        response = client.get(url_for(pattern, world))
        assert response.status_code in (200, 302, 405), (user, pattern.name, response.status_code)
