"""The account 360 page (metrics:account): access, sections, timeline, fixed queries."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import TierAssignment
from metrics.models import Alert, AlertRule
from success_plans.models import Goal, Initiative, SuccessPlan
from tests import factories

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def days_ago(days: int, hour: int = 10) -> datetime.datetime:
    day = TODAY - datetime.timedelta(days=days)
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour)))


def url(account, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return reverse("metrics:account", args=[account.pk]) + (f"?{query}" if query else "")


@pytest.fixture
def account(csm_user):
    return factories.AccountFactory(
        name="Globex",
        owner=csm_user,
        renewal_date=TODAY + datetime.timedelta(days=100),
        lifecycle_stage="adoption",
    )


def page(client, account, **params) -> str:
    response = client.get(url(account, **params))
    assert response.status_code == 200
    return response.content.decode()


# --- access ---------------------------------------------------------------------------------------


def test_a_csm_and_a_leader_read_any_account(client, account, other_csm, leader):
    for user in (account.owner, other_csm, leader):
        client.force_login(user)
        html = page(client, account)
        assert "<h1" in html
        assert "Globex" in html


def test_a_user_without_a_role_is_refused(client, account, outsider):
    client.force_login(outsider)
    response = client.get(url(account))
    assert response.status_code == 403
    assert "Globex" not in response.content.decode()


def test_a_deleted_or_unknown_account_is_not_found(csm_client, account):
    account.deleted_at = timezone.now()
    account.save(update_fields=["deleted_at"])
    assert csm_client.get(url(account)).status_code == 404
    assert csm_client.get(reverse("metrics:account", args=[987654])).status_code == 404


def test_every_section_has_an_empty_state(csm_client, account):
    html = page(csm_client, account)
    assert "No health score yet" in html
    assert "No health snapshot in this period." in html
    assert "No health snapshot on or before these dates." in html
    assert "Nothing has happened on this account yet." in html
    assert "No open alert." in html
    assert "No contact yet." in html
    assert "No MRR in the last 24 months." in html
    assert "No subscription line yet." in html
    assert "This account has no success plan yet." in html
    assert "No tier assignment recorded yet." in html


# --- header and health ----------------------------------------------------------------------------


def test_the_header_explains_tier_and_health(csm_client, account):
    account.mrr = Decimal("1000.00")
    account.health_score = Decimal("62.5")
    account.health_band = "yellow"
    account.save()
    gold = factories.TierFactory(name="Gold")
    factories.TierAssignmentFactory(
        account=account, tier=account.tier, started_at=days_ago(200), ended_at=days_ago(40), reason="ARR below 50,000"
    )
    factories.TierAssignmentFactory(account=account, tier=gold, started_at=days_ago(40), reason="ARR 120,000 ≥ 100,000")
    model = factories.HealthModelFactory(name="Test model", version=101)
    factories.HealthSnapshotFactory(
        account=account,
        date=TODAY - datetime.timedelta(days=1),
        score=Decimal("62.5"),
        band="yellow",
        model_version=model,
        components=[
            {"kind": "engagement", "metric": "", "raw": 1.25, "score": 75.0, "weight": 0.5},
            {"kind": "usage_level", "metric": "active_users", "raw": 0.5, "score": 50.0, "weight": 0.5},
            {"kind": "sentiment", "metric": "", "raw": None, "score": None, "weight": 0.0},
        ],
    )

    html = page(csm_client, account)

    assert "USD 12,000" in html  # ARR = 12 x 1,000 MRR
    assert "ARR 120,000 ≥ 100,000" in html  # the current assignment's reason
    assert "Tier history" in html
    assert "ARR below 50,000" in html
    assert "Engagement (days since touch / cadence)" in html
    assert "Usage level" in html
    assert "Touch sentiment (90 days)" in html
    assert "75.0" in html
    assert "50.0 %" in html  # weight 0.5
    assert "No data" in html
    assert "Test model v101" in html
    assert "Adoption" in html


def test_why_did_health_change_between_the_dates_asked_for(csm_client, account):
    model = factories.HealthModelFactory(name="Test model", version=101)
    before, after = TODAY - datetime.timedelta(days=20), TODAY - datetime.timedelta(days=5)
    factories.HealthSnapshotFactory(
        account=account,
        date=before,
        score=Decimal("40.0"),
        band="yellow",
        model_version=model,
        components=[{"kind": "engagement", "raw": 1.6, "score": 40.0, "weight": 1.0}],
    )
    factories.HealthSnapshotFactory(
        account=account,
        date=after,
        score=Decimal("73.3"),  # (90 + 40 + 90) / 3 = 73.333… -> 73.3
        band="green",
        model_version=model,
        components=[
            {"kind": "engagement", "raw": 1.1, "score": 90.0, "weight": 0.333333},
            {"kind": "sentiment", "raw": -0.1, "score": 40.0, "weight": 0.333333},
            {"kind": "renewal_proximity", "raw": 165, "score": 90.0, "weight": 0.333333},
        ],
    )

    html = page(csm_client, account, **{"from": before.isoformat(), "to": after.isoformat()})

    # 90 x 0.333333 = 29.99997 -> 30.00; 40 x 0.333333 = 13.33332 -> 13.33; rounding 73.3 - 73.33 = -0.03
    assert "+33.3" in html  # the difference 73.3 - 40.0
    assert "-10.00" in html  # engagement 40.00 -> 30.00
    assert "+13.33" in html  # sentiment gained data
    assert "+30.00" in html  # renewal gained data
    assert "-0.03" in html
    assert html.count("Gained data") == 2
    assert "Rounding" in html
    assert f'value="{before.isoformat()}"' in html


def test_the_default_dates_are_30_days_ago_and_today_and_a_bad_date_is_an_error(csm_client, account):
    html = page(csm_client, account)
    assert f'value="{(TODAY - datetime.timedelta(days=30)).isoformat()}"' in html
    assert f'value="{TODAY.isoformat()}"' in html

    html = page(csm_client, account, **{"from": "not-a-date"})
    assert "Enter a valid date." in html


def test_the_trend_offers_90_days_and_a_year(csm_client, account):
    factories.HealthSnapshotFactory(account=account, date=TODAY - datetime.timedelta(days=200), score=Decimal(30))
    factories.HealthSnapshotFactory(account=account, date=TODAY - datetime.timedelta(days=2), score=Decimal(80))

    short = str(csm_client.get(url(account)).context["trend_chart"])
    year = str(csm_client.get(url(account, range=365)).context["trend_chart"])

    assert "Health score, last 90 days" in short
    assert "Health score, last year" in year
    assert "Green from 70" in short  # the bands as a legend
    assert "Red below 40" in short
    old_day = date_format(TODAY - datetime.timedelta(days=200), "SHORT_DATE_FORMAT")
    assert old_day in year
    assert old_day not in short
    assert "<script" not in short  # no script, from the internet or inline


# --- timeline -------------------------------------------------------------------------------------


def test_the_timeline_merges_every_kind_of_event_newest_first(csm_client, account, csm_user):
    silver = factories.TierFactory(name="Silver")
    factories.TierAssignmentFactory(
        account=account, tier=account.tier, started_at=days_ago(100), ended_at=days_ago(60), reason="First tier"
    )
    factories.TierAssignmentFactory(
        account=account, tier=silver, started_at=days_ago(60), source=TierAssignment.Source.RULE, reason="ARR grew"
    )
    factories.TouchFactory(account=account, occurred_at=days_ago(50), subject="Kick-off", next_step="Send deck")
    model = factories.HealthModelFactory(version=101)
    for offset, band in ((45, "green"), (30, "green"), (29, "red"), (28, "red"), (10, "yellow")):
        factories.HealthSnapshotFactory(
            account=account,
            date=TODAY - datetime.timedelta(days=offset),
            band=band,
            score=Decimal(50),
            model_version=model,
        )
    alert = factories.AlertFactory(account=account, reason="Health is red (31.0)")
    Alert.objects.filter(pk=alert.pk).update(
        created_at=days_ago(29, 12),
        status=Alert.Status.DONE,
        closed_at=days_ago(20),
        closed_by=Alert.ClosedBy.CSM,
        closed_reason="Called the sponsor",
    )
    plan = factories.SuccessPlanFactory(account=account, title="Year one", created_at=days_ago(15))
    SuccessPlan.objects.filter(pk=plan.pk).update(
        status=SuccessPlan.Status.ACHIEVED, closed_at=days_ago(1), status_reason="All goals met"
    )
    goal = factories.GoalFactory(plan=plan, title="Go live")
    Goal.objects.filter(pk=goal.pk).update(status=Goal.Status.ACHIEVED, achieved_at=TODAY - datetime.timedelta(days=5))
    factories.InitiativeFactory(
        goal=goal, title="Train admins", status=Initiative.Status.DONE, completed_at=days_ago(7)
    )
    factories.InitiativeFactory(goal=goal, title="Not done yet")
    other = factories.AccountFactory()
    factories.TouchFactory(account=other, occurred_at=days_ago(2), subject="Someone else's call")

    response = csm_client.get(url(account))
    titles = [item["event"].title for item in response.context["timeline"]]

    # Day-only events (band changes, goals achieved) sort at the end of their day.
    assert titles == [
        "Success plan achieved: Year one",  # 1 day ago
        "Goal achieved: Go live",  # 5
        "Initiative completed: Train admins",  # 7
        "Health turned yellow (50.0)",  # 10
        "Success plan created: Year one",  # 15
        "Alert closed: Health turned red",  # 20
        "Health turned red (50.0)",  # 29, end of day
        "Alert raised: Health turned red",  # 29, noon
        "Call: Kick-off",  # 50
        "Tier changed from Low touch to Silver",  # 60
        "Tier: Low touch",  # 100
    ]
    html = response.content.decode()
    assert "Called the sponsor" in html
    assert "Next step: Send deck" in html
    assert "Not done yet" not in html
    assert "Someone else&#x27;s call" not in html


def test_the_timeline_keeps_the_latest_50_events(csm_client, account):
    factories.TouchFactory.create_batch(60, account=account, occurred_at=days_ago(3))
    latest = factories.TouchFactory(account=account, occurred_at=days_ago(1), subject="Latest call")

    response = csm_client.get(url(account))

    timeline = response.context["timeline"]
    assert len(timeline) == 50
    assert timeline[0]["event"].title == f"Call: {latest.subject}"
    assert "The latest 50 events." in response.content.decode()


def test_plans_show_their_progress_and_link_to_their_page(csm_client, account):
    plan = factories.SuccessPlanFactory(account=account, title="Adoption plan")
    goal = factories.GoalFactory(plan=plan)
    # Progress (60 - 10) / (110 - 10) = 50 % and (36 - 0) / (120 - 0) = 30 %: mean 40 %
    factories.TargetFactory(goal=goal, baseline=Decimal(10), target_value=Decimal(110), current_value=Decimal(60))
    factories.TargetFactory(goal=goal, baseline=Decimal(0), target_value=Decimal(120), current_value=Decimal(36))
    factories.SuccessPlanFactory(account=account, title="Old plan", deleted_at=timezone.now())

    html = page(csm_client, account)

    assert f'href="{reverse("plans:detail", args=[plan.pk])}">Adoption plan</a>' in html
    assert "40 %" in html
    assert "Old plan" not in html
    assert f"{reverse('plans:new')}?account={account.pk}" in html  # the owner may start a plan


def test_another_csm_reads_the_account_but_is_not_offered_a_new_plan(client, account, other_csm):
    client.force_login(other_csm)
    html = page(client, account)
    assert reverse("plans:new") not in html


# --- log a touch ----------------------------------------------------------------------------------


def test_a_touch_logged_from_the_page_shows_on_its_timeline(csm_client, account):
    contact = factories.ContactFactory(account=account, name="Dana Scully")
    html = page(csm_client, account)
    assert "csrfmiddlewaretoken" in html
    assert reverse("accounts:log_touch", args=[account.pk]) in html
    assert "Dana Scully" in html  # the account's contacts to name

    when = timezone.localtime(days_ago(1)).strftime("%Y-%m-%dT%H:%M")
    response = csm_client.post(
        reverse("accounts:log_touch", args=[account.pk]),
        {
            "kind": "meeting",
            "occurred_at": when,
            "subject": "Quarterly review prep",
            "contacts": [contact.pk],
            "sentiment": "1",
            "next": url(account),
        },
        follow=True,
    )

    assert response.redirect_chain[-1][0] == url(account)
    timeline = response.context["timeline"]
    assert timeline[0]["event"].title == "Meeting: Quarterly review prep"
    html = response.content.decode()
    assert date_format(timezone.localtime(days_ago(1)), "SHORT_DATE_FORMAT") in html  # last touch in the header


def test_the_timeline_and_summary_refresh_when_a_touch_is_logged_in_place(csm_client, account):
    html = page(csm_client, account)
    assert 'hx-trigger="touchLogged from:body" hx-select="#account-timeline"' in html
    assert 'hx-select="#account-summary"' in html


# --- speed ----------------------------------------------------------------------------------------


def populate(account, size: int) -> None:
    """`size` of everything the page lists."""
    other_tier = factories.TierFactory()
    for k in range(size):
        factories.TierAssignmentFactory(
            account=account,
            tier=other_tier if k % 2 else account.tier,
            started_at=days_ago(300 - k * 2),
            ended_at=days_ago(299 - k * 2),
        )
    factories.TierAssignmentFactory(account=account, tier=account.tier, started_at=days_ago(10))
    factories.TouchFactory.create_batch(size, account=account, occurred_at=days_ago(4))
    factories.ContactFactory.create_batch(size, account=account)
    for k in range(size):
        factories.SubscriptionFactory(
            account=account, product=f"Product {k}", start_date=TODAY.replace(day=1) - datetime.timedelta(days=40 * k)
        )
        factories.HealthSnapshotFactory(
            account=account,
            date=TODAY - datetime.timedelta(days=k),
            band=("red", "yellow", "green")[k % 3],
            # The default model's usage trend, usage level, engagement, sentiment, plan and renewal.
            components=[None, None, [1.5, 50.0, 0.5], [0.5, 100.0, 0.5], None, None],
            score=Decimal(75),
        )
        plan = factories.SuccessPlanFactory(account=account, title=f"Plan {k}")
        goal = factories.GoalFactory(plan=plan)
        factories.TargetFactory(goal=goal)
        factories.InitiativeFactory(goal=goal, status=Initiative.Status.DONE, completed_at=days_ago(k))
        factories.AlertFactory(
            account=account, status=Alert.Status.DONE, closed_at=days_ago(k), rule=factories.alert_rule()
        )
    for kind in AlertRule.Kind.values[:2]:
        factories.AlertFactory(account=account, rule=factories.alert_rule(kind))


def count_queries(client, account) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(account, **{"from": (TODAY - datetime.timedelta(days=5)).isoformat()}))
    assert response.status_code == 200
    return len(queries)


def test_the_page_runs_the_same_queries_for_small_and_large_histories(
    csm_client, csm_user, django_assert_max_num_queries
):
    small = factories.AccountFactory(owner=csm_user)
    large = factories.AccountFactory(owner=csm_user)
    populate(small, 2)
    populate(large, 12)
    count_queries(csm_client, small)  # warm the session and the role cache alike for both

    small_count = count_queries(csm_client, small)
    large_count = count_queries(csm_client, large)

    assert small_count == large_count
    # session, user, groups; account; latest snapshot; the two snapshots compared; their model versions'
    # components; a year of scores; tier history; touches; alerts; plans, goals achieved, initiatives done
    # (timeline); recorded changes of the account, its contacts, lines and plans (timeline, 4); plans shown
    # and their progress (2); MRR lines; contacts; subscription lines; open alerts; the touch form's contacts.
    assert large_count == 27
    with django_assert_max_num_queries(small_count):
        csm_client.get(url(large))
