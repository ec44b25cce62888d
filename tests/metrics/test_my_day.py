"""My day: each section's rows and order on hand-built data, the leader's switch, alert actions in place
and by plain POST, who may act on an alert, and a fixed number of queries whatever the book's size."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import Account
from metrics.models import Alert, AlertRule
from success_plans.models import Initiative, SuccessPlan
from tests import factories

pytestmark = pytest.mark.django_db

HOME = "/"
HTMX = {"HTTP_HX_REQUEST": "true"}
DAY = datetime.timedelta(days=1)


@pytest.fixture
def today():
    return timezone.localdate()


def account(owner, **fields) -> Account:
    """An account touched yesterday (so not overdue unless a test says so)."""
    fields.setdefault("last_touch_at", timezone.now() - DAY)
    return factories.AccountFactory(owner=owner, **fields)


def alert(owner, **fields) -> Alert:
    """An alert for `owner`, by default on a new account of theirs (one alert per account keeps the
    one-open-alert-per-rule-and-account constraint)."""
    if "account" not in fields:
        fields["account"] = account(owner)
    fields.setdefault("owner", owner)
    return factories.AlertFactory(**fields)


def names(rows) -> list[str]:
    return [row.name for row in rows]


def day(client, **params):
    response = client.get(HOME, params)
    assert response.status_code == 200
    return response


# --- the page --------------------------------------------------------------------------------------


def test_home_is_my_day():
    assert reverse("home") == HOME
    assert reverse("metrics:alert_done", args=[7]) == "/alerts/7/done/"
    assert reverse("metrics:alert_snooze", args=[7]) == "/alerts/7/snooze/"


def test_an_empty_day_shows_every_empty_state(csm_client):
    page = day(csm_client).content.decode()
    assert "<title>My day" in page
    for text in (
        "No accounts in this book yet.",
        "No open alerts. Nice.",
        "No account at risk.",
        "No renewal coming up.",
        "Every account has been touched within its tier's cadence.",
        "Nothing due this week.",
        "Every active plan is moving.",
    ):
        assert text in page


def test_the_book_in_figures(csm_client, csm_user, other_csm):
    account(csm_user, name="Red one", mrr=Decimal("1000.00"), health_band="red", health_score=Decimal("20.0"))
    account(csm_user, name="Yellow one", mrr=Decimal("250.50"), health_band="yellow", health_score=Decimal(55))
    account(csm_user, name="Green one", mrr=Decimal("100.00"), health_band="green", health_score=Decimal(80))
    account(csm_user, name="Green two", mrr=Decimal("49.50"), health_band="green", health_score=Decimal(90))
    account(csm_user, name="New one", mrr=Decimal("0.00"))  # not scored yet
    # Not in the book: churned, deleted, someone else's.
    account(csm_user, mrr=Decimal(999), health_band="red", lifecycle_stage=Account.LifecycleStage.CHURNED)
    account(csm_user, mrr=Decimal(999), health_band="red", deleted_at=timezone.now())
    account(other_csm, mrr=Decimal(999), health_band="red")

    response = day(csm_client)
    book = response.context["book"]
    # ARR = 12 x (1000 + 250.50 + 100 + 49.50) = 12 x 1400 = 16800
    assert (book.accounts, book.arr) == (5, Decimal("16800.00"))
    assert (book.red, book.yellow, book.green, book.unscored) == (1, 1, 2, 1)
    assert "16,800" in response.content.decode()


def test_open_alerts_nearest_due_first(csm_client, csm_user, other_csm, today):
    later = alert(csm_user, due=today + 5 * DAY, reason="Due in five days")
    overdue = alert(csm_user, due=today - 2 * DAY, reason="Two days late")
    woken = alert(
        csm_user,
        due=today,
        status=Alert.Status.SNOOZED,
        snoozed_until=today,
        reason="Snooze ended today",
    )
    undated = alert(csm_user, due=None, reason="No due date")
    alert(csm_user, status=Alert.Status.SNOOZED, snoozed_until=today + DAY, reason="Still asleep")
    alert(csm_user, status=Alert.Status.DONE, reason="Already done")
    alert(other_csm, reason="Someone else's")
    gone = account(csm_user, deleted_at=timezone.now())
    alert(csm_user, account=gone, reason="Deleted account")

    response = day(csm_client)
    assert response.context["alerts"].rows == [overdue, woken, later, undated]
    assert not response.context["alerts"].has_more
    page = response.content.decode()
    assert "Two days late" in page
    assert "Still asleep" not in page
    assert "Already done" not in page
    assert "Someone else&#x27;s" not in page
    assert reverse("metrics:alert_done", args=[overdue.pk]) in page
    assert reverse("metrics:alert_snooze", args=[overdue.pk]) in page
    assert f'hx-target="#alert-{overdue.pk}"' in page


def test_open_alerts_stop_at_twenty(csm_client, csm_user, today):
    for n in range(21):
        alert(csm_user, due=today + n * DAY)
    alerts = day(csm_client).context["alerts"]
    assert len(alerts.rows) == 20
    assert alerts.has_more
    assert alerts.rows[0].due == today
    assert alerts.rows[-1].due == today + 19 * DAY


def test_at_risk_lowest_score_first(csm_client, csm_user, other_csm):
    account(csm_user, name="Red 35", health_band="red", health_score=Decimal(35))
    account(csm_user, name="Red 20", health_band="red", health_score=Decimal(20))
    yellow_alerted = account(csm_user, name="Yellow 50 alerted", health_band="yellow", health_score=Decimal(50))
    alert(csm_user, account=yellow_alerted)
    yellow_snoozed = account(csm_user, name="Yellow 45 snoozed", health_band="yellow", health_score=Decimal(45))
    alert(
        csm_user,
        account=yellow_snoozed,
        status=Alert.Status.SNOOZED,
        snoozed_until=timezone.localdate() + DAY,
    )
    account(csm_user, name="Yellow 41 quiet", health_band="yellow", health_score=Decimal(41))
    account(csm_user, name="Green", health_band="green", health_score=Decimal(90))
    account(other_csm, name="Sam's red", health_band="red", health_score=Decimal(5))

    rows = day(csm_client).context["at_risk"].rows
    assert names(rows) == ["Red 20", "Red 35", "Yellow 50 alerted"]
    assert [row.has_alert for row in rows] == [False, False, True]


def test_at_risk_stops_at_ten(csm_client, csm_user):
    for score in range(12):
        account(csm_user, name=f"Red {score:02d}", health_band="red", health_score=Decimal(score))
    at_risk = day(csm_client).context["at_risk"]
    assert names(at_risk.rows) == [f"Red {score:02d}" for score in range(10)]
    assert at_risk.has_more


def test_renewals_in_the_next_ninety_days_soonest_first(csm_client, csm_user, other_csm, today):
    in_90 = account(csm_user, name="In 90 days", renewal_date=today + 90 * DAY, health_band="green")
    factories.SuccessPlanFactory(account=in_90, status=SuccessPlan.Status.ACTIVE)
    in_10 = account(csm_user, name="In 10 days", renewal_date=today + 10 * DAY, health_band="red")
    factories.SuccessPlanFactory(account=in_10, status=SuccessPlan.Status.DRAFT)  # not an active plan
    gone_plan = factories.SuccessPlanFactory(account=in_10, status=SuccessPlan.Status.ACTIVE)
    SuccessPlan.objects.filter(pk=gone_plan.pk).update(deleted_at=timezone.now())  # a deleted plan neither
    account(csm_user, name="Today", renewal_date=today)
    account(csm_user, name="In 91 days", renewal_date=today + 91 * DAY)
    account(csm_user, name="Yesterday", renewal_date=today - DAY)
    account(other_csm, name="Sam's", renewal_date=today + DAY)

    response = day(csm_client)
    rows = response.context["renewals"].rows
    assert names(rows) == ["Today", "In 10 days", "In 90 days"]
    assert [row.has_active_plan for row in rows] == [False, False, True]
    assert "No plan" in response.content.decode()


def test_touches_overdue_per_tier_cadence_most_overdue_first(csm_client, csm_user, other_csm, today):
    monthly = factories.TierFactory(touch_cadence_days=30)
    weekly = factories.TierFactory(touch_cadence_days=7)
    now = timezone.now()
    account(csm_user, name="31 days ago", tier=monthly, last_touch_at=now - 31 * DAY)  # overdue by 1
    account(csm_user, name="30 days ago", tier=monthly, last_touch_at=now - 30 * DAY)  # on the day: fine
    account(csm_user, name="Weekly, 10 days ago", tier=weekly, last_touch_at=now - 10 * DAY)  # by 3
    account(csm_user, name="Never touched", tier=monthly, last_touch_at=None, customer_since=today - 100 * DAY)  # by 70
    account(csm_user, name="Never, new", tier=monthly, last_touch_at=None, customer_since=today - 20 * DAY)
    account(csm_user, name="No tier", tier=None, last_touch_at=now - 400 * DAY)
    account(csm_user, name="No dates", tier=weekly, last_touch_at=None, customer_since=None)
    account(other_csm, name="Sam's", tier=weekly, last_touch_at=now - 400 * DAY)

    response = day(csm_client)
    rows = response.context["overdue"].rows
    assert names(rows) == ["Never touched", "Weekly, 10 days ago", "31 days ago"]
    assert [row.overdue_by.days for row in rows] == [70, 3, 1]
    assert [row.touched_on for row in rows] == [None, today - 10 * DAY, today - 31 * DAY]
    page = response.content.decode()
    assert "70 days" in page
    assert "Never (customer since" in page


def test_initiatives_due_this_week(csm_client, csm_user, other_csm, today):
    monday = today - today.weekday() * DAY
    sunday = monday + 6 * DAY
    own_plan = factories.SuccessPlanFactory(account=account(csm_user, name="Mine"))
    goal = factories.GoalFactory(plan=own_plan)
    factories.InitiativeFactory(goal=goal, title="Sunday", due_date=sunday, status=Initiative.Status.IN_PROGRESS)
    factories.InitiativeFactory(goal=goal, title="Monday", due_date=monday)
    factories.InitiativeFactory(goal=goal, title="Done already", due_date=monday, status=Initiative.Status.DONE)
    factories.InitiativeFactory(goal=goal, title="Next Monday", due_date=monday + 7 * DAY)
    factories.InitiativeFactory(goal=goal, title="Last Sunday", due_date=monday - DAY)
    factories.InitiativeFactory(goal=goal, title="Undated", due_date=None)
    # A plan priya owns on Sam's account counts; Sam's own plan does not.
    lent = factories.SuccessPlanFactory(account=account(other_csm, name="Sam's"), owner=csm_user)
    factories.InitiativeFactory(goal=factories.GoalFactory(plan=lent), title="On a plan I own", due_date=monday)
    sams = factories.SuccessPlanFactory(account=account(other_csm))
    factories.InitiativeFactory(goal=factories.GoalFactory(plan=sams), title="Sam's work", due_date=monday)
    closed = factories.SuccessPlanFactory(account=account(csm_user), status=SuccessPlan.Status.ABANDONED)
    factories.InitiativeFactory(goal=factories.GoalFactory(plan=closed), title="Abandoned", due_date=monday)

    response = day(csm_client)
    rows = response.context["initiatives"].rows
    assert [row.title for row in rows] == ["Monday", "On a plan I own", "Sunday"]
    assert response.context["week"] == (monday, sunday)


def test_plans_without_progress(csm_client, csm_user, other_csm):
    start = datetime.date(2026, 1, 1)

    def plan(title, *targets, status=SuccessPlan.Status.ACTIVE, owner=csm_user, days=0):
        made = factories.SuccessPlanFactory(
            account=account(owner), title=title, status=status, start_date=start + days * DAY
        )
        goal = factories.GoalFactory(plan=made)
        for baseline, target_value, current in targets:
            factories.TargetFactory(goal=goal, baseline=baseline, target_value=target_value, current_value=current)
        return made

    plan("Unmeasured", (10, 110, None), (0, 5, None), days=3)
    plan("At baseline", (10, 110, 10), days=1)
    plan("Going the wrong way", (100, 50, 120), days=2)  # a target that goes down, now above its baseline
    plan("No targets", days=4)
    plan("Moving", (10, 110, 60))
    plan("Going down well", (100, 50, 80))
    plan("One of two moving", (10, 110, None), (10, 110, 11))
    plan("Draft", (10, 110, None), status=SuccessPlan.Status.DRAFT)
    plan("Sam's", (10, 110, None), owner=other_csm)

    rows = day(csm_client).context["stalled_plans"].rows
    assert [(p.title, progress.targets, progress.measured) for p, progress in rows] == [
        ("At baseline", 1, 1),
        ("Going the wrong way", 1, 1),
        ("Unmeasured", 2, 0),
        ("No targets", 0, 0),
    ]


def test_links_to_pages_built_elsewhere_appear_when_they_exist(csm_client, csm_user, today):
    red = account(csm_user, name="Red", health_band="red", health_score=Decimal(10), renewal_date=today)
    alert(csm_user, account=red)
    plan = factories.SuccessPlanFactory(account=red)
    factories.InitiativeFactory(goal=factories.GoalFactory(plan=plan), due_date=today)
    page = day(csm_client).content.decode()

    def url(name, *args):
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            return None

    for href in (url("metrics:account", red.pk), url("plans:detail", plan.pk)):
        if href:
            assert f'href="{href}"' in page
    if url("accounts:new_touch", red.pk):  # logging a touch comes back to My day
        assert f'href="{url("accounts:new_touch", red.pk)}?next=%2F"' in page
    if url("accounts:list"):
        listed = url("accounts:list")
        assert f'href="{listed}?owner=mine"' in page
        assert f'href="{listed}?owner=mine&amp;health_band=red&amp;ordering=health"' in page
        assert f'href="{listed}?owner=mine&amp;renewal_within=90&amp;ordering=renewal"' in page
        assert f'href="{listed}?owner=mine&amp;ordering=last_touch"' in page
    else:
        assert "See all" not in page


# --- whose day --------------------------------------------------------------------------------------


def test_a_leader_sees_their_own_book_and_can_open_any_csms_day(leader_client, leader, csm_user, other_csm):
    account(leader, name="Lee's account", health_band="red", health_score=Decimal(10))
    account(csm_user, name="Priya's account", health_band="red", health_score=Decimal(10))

    own = day(leader_client)
    assert own.context["csm"] == leader
    assert names(own.context["at_risk"].rows) == ["Lee's account"]
    choices = own.context["csm_choices"]
    assert [user.username for user in choices] == ["priya", "sam"]  # CSMs only, by name
    assert 'name="csm"' in own.content.decode()

    priya = day(leader_client, csm=csm_user.pk)
    assert priya.context["csm"] == csm_user
    assert names(priya.context["at_risk"].rows) == ["Priya's account"]
    page = priya.content.decode()
    assert "Priya Khan's day" in page
    assert f'<option value="{csm_user.pk}" selected>' in page
    try:
        assert f'href="{reverse("accounts:list")}?owner={csm_user.pk}"' in page  # not "mine": Priya's
    except NoReverseMatch:
        pass


def test_a_leader_asking_for_a_user_without_the_csm_role_sees_their_own_day(leader_client, leader, outsider):
    for wanted in (outsider.pk, "nonsense", 999999):
        assert day(leader_client, csm=wanted).context["csm"] == leader


def test_a_csm_cannot_open_another_csms_day(csm_client, csm_user, other_csm):
    account(other_csm, name="Sam's red", health_band="red", health_score=Decimal(10))
    response = day(csm_client, csm=other_csm.pk)
    assert response.context["csm"] == csm_user
    assert response.context["csm_choices"] is None
    page = response.content.decode()
    assert "Sam&#x27;s red" not in page
    assert 'name="csm"' not in page


def test_the_outsider_has_no_day(client, outsider):
    client.force_login(outsider)
    assert client.get(HOME).status_code == 403


# --- alert actions -----------------------------------------------------------------------------------


def test_done_in_place(csm_client, csm_user):
    waiting = alert(csm_user)
    response = csm_client.post(reverse("metrics:alert_done", args=[waiting.pk]), {"next": HOME}, **HTMX)
    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.lstrip().startswith(f'<tr id="alert-{waiting.pk}">')
    assert "<html" not in fragment
    assert 'class="badge band-green">Done' in fragment
    assert "alert_snooze" not in fragment and "/snooze/" not in fragment
    waiting.refresh_from_db()
    assert waiting.status == Alert.Status.DONE
    assert waiting.closed_by == Alert.ClosedBy.CSM
    assert not list(get_messages(response.wsgi_request))  # htmx shows it in the row, not on the next page


def test_done_by_plain_post_comes_back(csm_client, csm_user, leader):
    waiting = alert(csm_user)
    response = csm_client.post(reverse("metrics:alert_done", args=[waiting.pk]), {"next": "/?csm=3"})
    assert response.status_code == 302
    assert response["Location"] == "/?csm=3"
    waiting.refresh_from_db()
    assert waiting.status == Alert.Status.DONE
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"Alert on {waiting.account} marked done."]


def test_snooze_in_place_for_seven_days(csm_client, csm_user, today):
    waiting = alert(csm_user)
    response = csm_client.post(reverse("metrics:alert_snooze", args=[waiting.pk]), {"next": HOME}, **HTMX)
    assert response.status_code == 200
    waiting.refresh_from_db()
    assert (waiting.status, waiting.snoozed_until) == (Alert.Status.SNOOZED, today + 7 * DAY)
    fragment = response.content.decode()
    assert f"snoozed until {date_format(today + 7 * DAY)}" in fragment
    assert reverse("metrics:alert_done", args=[waiting.pk]) in fragment  # still can be marked done
    assert reverse("metrics:alert_snooze", args=[waiting.pk]) not in fragment
    # Asleep, it leaves My day.
    assert waiting not in day(csm_client).context["alerts"].rows


def test_snooze_by_plain_post(csm_client, csm_user, today):
    waiting = alert(csm_user)
    response = csm_client.post(reverse("metrics:alert_snooze", args=[waiting.pk]))
    assert response.status_code == 302
    assert response["Location"] == HOME
    waiting.refresh_from_db()
    assert waiting.snoozed_until == today + 7 * DAY


def test_snoozing_a_done_alert_is_refused_with_a_message(csm_client, csm_user):
    closed = alert(csm_user, status=Alert.Status.DONE, closed_reason="Handled")
    url = reverse("metrics:alert_snooze", args=[closed.pk])

    in_place = csm_client.post(url, **HTMX)
    assert in_place.status_code == 200
    assert "A closed alert cannot be snoozed." in in_place.content.decode()

    plain = csm_client.post(url, {"next": HOME})
    assert plain.status_code == 302
    messages = list(get_messages(plain.wsgi_request))
    assert [(m.level_tag, str(m)) for m in messages] == [("error", "A closed alert cannot be snoozed.")]
    closed.refresh_from_db()
    assert (closed.status, closed.snoozed_until, closed.closed_reason) == (Alert.Status.DONE, None, "Handled")


def test_an_offsite_next_is_not_followed(csm_client, csm_user):
    waiting = alert(csm_user)
    response = csm_client.post(reverse("metrics:alert_done", args=[waiting.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == HOME


@pytest.mark.parametrize("action", ["metrics:alert_done", "metrics:alert_snooze"])
def test_another_csm_and_the_outsider_cannot_touch_an_alert(client, csm_user, other_csm, outsider, action):
    waiting = alert(csm_user)
    for user in (other_csm, outsider):
        client.force_login(user)
        assert client.post(reverse(action, args=[waiting.pk]), **HTMX).status_code == 403
        assert client.post(reverse(action, args=[waiting.pk])).status_code == 403
    waiting.refresh_from_db()
    assert (waiting.status, waiting.snoozed_until, waiting.closed_at) == (Alert.Status.OPEN, None, None)


def test_the_account_owner_decides_not_the_alert_owner(client, csm_user, other_csm):
    """Sam's alert on an account now owned by Priya: Priya may act, Sam may not."""
    moved = alert(other_csm, account=account(csm_user))
    client.force_login(other_csm)
    assert client.post(reverse("metrics:alert_done", args=[moved.pk])).status_code == 403
    client.force_login(csm_user)
    assert client.post(reverse("metrics:alert_done", args=[moved.pk])).status_code == 302


def test_a_leader_may_act_on_any_alert_and_only_sees_buttons_they_may_use(leader_client, csm_user, other_csm):
    waiting = alert(csm_user)
    assert leader_client.post(reverse("metrics:alert_done", args=[waiting.pk]), **HTMX).status_code == 200
    waiting.refresh_from_db()
    assert waiting.status == Alert.Status.DONE


def test_a_csm_sees_no_buttons_on_an_alert_of_an_account_they_no_longer_own(csm_client, csm_user, other_csm):
    mine_once = alert(csm_user, account=account(other_csm))
    page = day(csm_client).content.decode()
    assert mine_once.reason in page
    assert reverse("metrics:alert_done", args=[mine_once.pk]) not in page


def test_actions_need_a_post_and_an_existing_alert(csm_client, csm_user):
    waiting = alert(csm_user)
    assert csm_client.get(reverse("metrics:alert_done", args=[waiting.pk])).status_code == 405
    assert csm_client.post(reverse("metrics:alert_done", args=[waiting.pk + 1000])).status_code == 404
    Account.objects.filter(pk=waiting.account_id).update(deleted_at=timezone.now())
    assert csm_client.post(reverse("metrics:alert_done", args=[waiting.pk])).status_code == 404


# --- speed -------------------------------------------------------------------------------------------


def populate(owner, size: int, today: datetime.date) -> None:
    """`size` rows for every section of `owner`'s day (more than a section shows when size > its limit)."""
    monday = today - today.weekday() * DAY
    tier = factories.TierFactory(touch_cadence_days=7)
    rule = AlertRule.objects.get(kind=AlertRule.Kind.TOUCH_OVERDUE)
    for n in range(size):
        red = account(
            owner,
            health_band="red",
            health_score=Decimal(n % 40),
            mrr=Decimal(100 + n),
            renewal_date=today + (n % 80) * DAY,
            tier=tier,
            last_touch_at=timezone.now() - (8 + n) * DAY,
        )
        alert(owner, account=red, due=today + n * DAY)
        alert(owner, account=red, rule=rule, status=Alert.Status.SNOOZED, snoozed_until=today)
        plan = factories.SuccessPlanFactory(account=red)
        goal = factories.GoalFactory(plan=plan)
        factories.TargetFactory(goal=goal, current_value=None)
        factories.InitiativeFactory(goal=goal, due_date=monday + (n % 7) * DAY, owner=owner)


@pytest.mark.parametrize("persona", ["csm", "leader"])
def test_my_day_costs_the_same_queries_for_3_or_30_rows(
    client, csm_user, other_csm, leader, today, django_assert_max_num_queries, persona
):
    small, large = csm_user, other_csm
    populate(small, 3, today)
    populate(large, 30, today)
    counts = []
    for owner in (small, large):
        if persona == "csm":
            client.force_login(owner)
            params = {}
        else:
            client.force_login(leader)
            params = {"csm": owner.pk}
        with django_assert_max_num_queries(20) as queries:
            response = day(client, **params)
        counts.append(len(queries.captured_queries))
        sections = [response.context[name] for name in ("at_risk", "renewals", "overdue", "stalled_plans")]
        assert all(section.rows for section in sections)
        assert response.context["alerts"].rows
        assert response.context["initiatives"].rows
    assert counts[0] == counts[1]
