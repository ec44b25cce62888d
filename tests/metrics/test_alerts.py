"""Alert rules: who gets called today, why, and that the queue never duplicates."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account
from csm.exceptions import DomainError
from metrics.models import Alert, AlertRule, UsageRecord
from metrics.services.alerts import alert_close, alert_snooze, alerts_close, alerts_evaluate, alerts_snooze
from tests import factories

pytestmark = pytest.mark.django_db

ON = datetime.date(2026, 6, 30)
Kind = AlertRule.Kind


def at(day: datetime.date) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, 12, tzinfo=datetime.UTC)


def make_account(*, tier="high-touch", band="green", score="80.0", last_touch=ON, renewal=None, **fields):
    account = factories.AccountFactory(tier=factories.default_tier(tier), renewal_date=renewal, **fields)
    Account.objects.filter(pk=account.pk).update(
        mrr=Decimal(500),
        health_band=band,
        health_score=Decimal(score),
        last_touch_at=at(last_touch) if last_touch else None,
    )
    account.refresh_from_db()
    return account


def reasons(account) -> dict[str, str]:
    return dict(
        Alert.objects.filter(account=account).exclude(status=Alert.Status.DONE).values_list("rule__kind", "reason")
    )


def daily(account, metric, first, days, value):
    UsageRecord.objects.bulk_create(
        UsageRecord(account=account, metric=metric, date=first + datetime.timedelta(days=k), value=Decimal(value))
        for k in range(days)
    )


def test_health_red():
    account = make_account(band="red", score="31.0")
    alerts_evaluate(on=ON)
    assert reasons(account) == {Kind.HEALTH_RED: "Health score is 31.0 (red)"}
    alert = Alert.objects.get(account=account)
    assert (alert.owner, alert.due, alert.status) == (account.owner, ON + datetime.timedelta(days=2), "open")


def test_touch_overdue_explains_days_and_cadence():
    late = make_account(last_touch=ON - datetime.timedelta(days=41))
    on_time = make_account(last_touch=ON - datetime.timedelta(days=14))
    never = make_account(tier="low-touch", last_touch=None, customer_since=ON - datetime.timedelta(days=60))
    alerts_evaluate(on=ON)
    assert reasons(late) == {Kind.TOUCH_OVERDUE: "No touch for 41 days; High touch cadence is 14 days"}
    assert reasons(on_time) == {}
    assert reasons(never) == {
        Kind.TOUCH_OVERDUE: "Never touched in 60 days as a customer; Low touch cadence is 45 days"
    }


def test_renewal_risk_needs_weak_health_or_no_plan():
    soon = ON + datetime.timedelta(days=45)
    yellow = make_account(band="yellow", score="55.0", renewal=soon)
    safe = make_account(renewal=soon)
    factories.SuccessPlanFactory(account=safe)
    no_plan = make_account(renewal=soon)
    far = make_account(band="yellow", score="55.0", renewal=ON + datetime.timedelta(days=200))
    alerts_evaluate(on=ON)
    assert reasons(yellow) == {
        Kind.RENEWAL_RISK: "Renewal in 45 days (Aug. 14, 2026); health is yellow and there is no active success plan"
    }
    assert reasons(safe) == {}
    assert reasons(no_plan) == {
        Kind.RENEWAL_RISK: "Renewal in 45 days (Aug. 14, 2026); there is no active success plan"
    }
    assert reasons(far) == {}


def test_usage_drop_against_the_threshold():
    dropping = make_account()
    steady = make_account()
    first = ON - datetime.timedelta(days=59)
    daily(dropping, "active_users", first, 30, "10")  # prior 300
    daily(dropping, "active_users", first + datetime.timedelta(days=30), 30, "6")  # recent 180: down 40 %
    daily(steady, "active_users", first, 30, "10")
    daily(steady, "active_users", first + datetime.timedelta(days=30), 30, "8")  # down 20 %: under 30 %
    alerts_evaluate(on=ON)
    assert reasons(dropping) == {Kind.USAGE_DROP: "Active users down 40% (last 30 days against the 30 before)"}
    assert reasons(steady) == {}


def test_expansion_signal_when_green_and_seats_nearly_full():
    full = make_account()
    yellow_full = make_account(band="yellow", score="60.0")
    roomy = make_account()
    for account, used in ((full, "19"), (yellow_full, "20"), (roomy, "10")):
        daily(account, "active_users", ON - datetime.timedelta(days=2), 3, used)
        daily(account, "seats_licensed", ON - datetime.timedelta(days=2), 3, "20")
    alerts_evaluate(on=ON)
    assert reasons(full) == {Kind.EXPANSION_SIGNAL: "Health is green and 95% of seats licensed in use (19 of 20)"}
    assert reasons(yellow_full) == {}
    assert reasons(roomy) == {}


def scored(account, day: datetime.date, band: str, score: str) -> None:
    """A health snapshot for `day`, which is also the account's latest (as the health service leaves it)."""
    factories.HealthSnapshotFactory(account=account, date=day, band=band, score=Decimal(score))
    Account.objects.filter(pk=account.pk).update(health_band=band, health_score=Decimal(score))


def statuses(account) -> list[str]:
    return list(Alert.objects.filter(account=account).order_by("pk").values_list("status", flat=True))


def test_one_open_alert_per_rule_and_account_and_cleared_ones_close():
    day = ON - datetime.timedelta(days=2)
    account = make_account(band="red", score="20.0")
    scored(account, day, "red", "20.0")
    alerts_evaluate(on=day)
    alerts_evaluate(on=day)
    assert Alert.objects.filter(account=account).count() == 1
    scored(account, day + datetime.timedelta(days=1), "yellow", "50.0")
    result = alerts_evaluate(on=day + datetime.timedelta(days=1))
    assert result.closed == 1
    alert = Alert.objects.get(account=account)
    assert alert.status == Alert.Status.DONE
    assert alert.closed_reason == "Condition cleared on June 29, 2026"
    # Turning red again opens a new alert; the closed one stays in history.
    scored(account, ON, "red", "10.0")
    alerts_evaluate(on=ON)
    assert statuses(account) == ["done", "open"]


class TestHealthTurnedRedIsATransition:
    def test_an_alert_closed_by_hand_stays_closed_while_the_account_stays_red(self):
        account = make_account(band="red", score="20.0")
        scored(account, ON - datetime.timedelta(days=1), "green", "75.0")
        scored(account, ON, "red", "20.0")
        alerts_evaluate(on=ON)
        alert_close(alert=Alert.objects.get(account=account))

        for days in (1, 2, 3):
            scored(account, ON + datetime.timedelta(days=days), "red", "25.0")
            alerts_evaluate(on=ON + datetime.timedelta(days=days))
        assert statuses(account) == ["done"]

        # The band leaves red, then returns: that is a new transition.
        scored(account, ON + datetime.timedelta(days=4), "yellow", "45.0")
        alerts_evaluate(on=ON + datetime.timedelta(days=4))
        assert statuses(account) == ["done"]
        scored(account, ON + datetime.timedelta(days=5), "red", "30.0")
        alerts_evaluate(on=ON + datetime.timedelta(days=5))
        assert statuses(account) == ["done", "open"]
        assert reasons(account) == {Kind.HEALTH_RED: "Health score is 30.0 (red)"}

    def test_history_written_ahead_of_the_evaluations_gives_the_same_answers(self):
        # Snapshots backfilled first, then alerts evaluated day by day (recompute_metrics --date D).
        account = make_account(band="red", score="30.0")
        bands = ["green", "red", "red", "yellow", "red", "red"]
        days = [ON + datetime.timedelta(days=k) for k in range(len(bands))]
        for day, band in zip(days, bands, strict=True):
            factories.HealthSnapshotFactory(account=account, date=day, band=band, score=Decimal(30))
        alerts_evaluate(on=days[1])
        assert statuses(account) == ["open"]
        alert_close(alert=Alert.objects.get(account=account))
        alerts_evaluate(on=days[2])  # still red since days[1]: handled
        assert statuses(account) == ["done"]
        alerts_evaluate(on=days[4])  # yellow on days[3], red again
        assert statuses(account) == ["done", "open"]
        alert_close(alert=Alert.objects.filter(account=account).latest("pk"))
        alerts_evaluate(on=days[5])
        assert statuses(account) == ["done", "done"]

    def test_an_alert_closed_for_another_reason_does_not_reopen_while_red(self):
        account = make_account(band="red", score="20.0")
        scored(account, ON, "red", "20.0")
        alerts_evaluate(on=ON)
        Account.objects.filter(pk=account.pk).update(mrr=0)  # churned: the alert closes
        alerts_evaluate(on=ON)
        Account.objects.filter(pk=account.pk).update(mrr=Decimal(500))  # back, still red
        scored(account, ON + datetime.timedelta(days=1), "red", "20.0")
        alerts_evaluate(on=ON + datetime.timedelta(days=1))
        assert statuses(account) == ["done"]

    def test_a_red_account_never_alerted_gets_its_alert_whatever_its_history(self):
        always_red = make_account(band="red", score="20.0")
        for k in range(3):
            scored(always_red, ON - datetime.timedelta(days=k), "red", "20.0")
        no_history = make_account(band="red", score="20.0")
        alerts_evaluate(on=ON)
        assert statuses(always_red) == statuses(no_history) == ["open"]

    def test_other_rules_fire_again_after_a_close_by_hand(self):
        account = make_account(last_touch=ON - datetime.timedelta(days=41))
        alerts_evaluate(on=ON)
        alert_close(alert=Alert.objects.get(account=account))
        alerts_evaluate(on=ON + datetime.timedelta(days=1))
        assert statuses(account) == ["done", "open"]


def test_a_deleted_accounts_alerts_close_saying_so():
    deleted = make_account(band="red", score="20.0", last_touch=ON - datetime.timedelta(days=41))
    kept = make_account(band="red", score="20.0")
    alerts_evaluate(on=ON)
    overdue = Alert.objects.get(account=deleted, rule__kind=Kind.TOUCH_OVERDUE)
    alert_snooze(alert=overdue, until=timezone.localdate() + datetime.timedelta(days=7))
    Account.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())
    Account.objects.filter(pk=kept.pk).update(health_band="yellow", health_score=Decimal(50))

    result = alerts_evaluate(on=ON)

    assert result.closed == 3
    assert set(Alert.objects.filter(account=deleted).values_list("status", "closed_reason", "snoozed_until")) == {
        ("done", "The account was deleted", None)
    }
    assert Alert.objects.get(account=kept).closed_reason == "Condition cleared on June 30, 2026"


def test_snoozed_alerts_stay_quiet_until_their_date():
    account = make_account(band="red", score="20.0")
    alerts_evaluate(on=ON)
    alert = Alert.objects.get(account=account)
    Alert.objects.filter(pk=alert.pk).update(status=Alert.Status.SNOOZED, snoozed_until=ON + datetime.timedelta(days=3))
    alerts_evaluate(on=ON + datetime.timedelta(days=2))
    alert.refresh_from_db()
    assert alert.status == Alert.Status.SNOOZED
    alerts_evaluate(on=ON + datetime.timedelta(days=3))
    alert.refresh_from_db()
    assert (alert.status, alert.snoozed_until) == (Alert.Status.OPEN, None)
    assert Alert.objects.filter(account=account).count() == 1


def test_churned_accounts_have_their_alerts_closed():
    account = make_account(band="red", score="20.0")
    alerts_evaluate(on=ON)
    Account.objects.filter(pk=account.pk).update(mrr=0)
    alerts_evaluate(on=ON)
    assert Alert.objects.get(account=account).status == Alert.Status.DONE


def test_snooze_and_close_services_validate():
    account = make_account(band="red", score="20.0")
    alerts_evaluate(on=ON)
    alert = Alert.objects.get(account=account)

    with pytest.raises(DomainError, match="Snooze until a day after today"):
        alert_snooze(alert=alert, until=timezone.localdate())
    alert_snooze(alert=alert, until=timezone.localdate() + datetime.timedelta(days=7))
    assert Alert.objects.get(pk=alert.pk).status == Alert.Status.SNOOZED
    alert_close(alert=alert)
    closed = Alert.objects.get(pk=alert.pk)
    assert (closed.status, closed.closed_reason, closed.snoozed_until) == ("done", "Marked done", None)
    assert (alert.status, alert.closed_reason) == ("done", "Marked done")
    with pytest.raises(DomainError, match="closed alert cannot be snoozed"):
        alert_snooze(alert=alert, until=timezone.localdate() + datetime.timedelta(days=7))


def test_alerts_close_and_snooze_in_one_statement_each():
    accounts = [make_account(band="red", score="20.0") for _ in range(4)]
    alerts_evaluate(on=ON)
    done = Alert.objects.get(account=accounts[0])
    alert_close(alert=done, reason="Called the sponsor")
    until = timezone.localdate() + datetime.timedelta(days=7)

    with CaptureQueriesContext(connection) as queries:
        snoozed = alerts_snooze(alerts=Alert.objects.filter(account__in=accounts), until=until)
    assert snoozed == 3  # the closed one is left alone
    assert len([q for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]) == 1
    assert set(Alert.objects.exclude(pk=done.pk).values_list("status", "snoozed_until")) == {("snoozed", until)}

    with CaptureQueriesContext(connection) as queries:
        closed = alerts_close(alerts=Alert.objects.filter(account__in=accounts))
    assert closed == 3
    assert len([q for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]) == 1
    assert Alert.objects.get(pk=done.pk).closed_reason == "Called the sponsor"
    assert set(Alert.objects.exclude(pk=done.pk).values_list("status", "closed_reason")) == {("done", "Marked done")}

    with pytest.raises(DomainError, match="Snooze until a day after today"):
        alerts_snooze(alerts=Alert.objects.all(), until=timezone.localdate())


def test_query_count_does_not_grow_with_accounts():
    def run() -> int:
        with CaptureQueriesContext(connection) as queries:
            alerts_evaluate(on=ON)
        return len(queries)

    for _ in range(3):
        make_account(band="red", score="10.0", last_touch=ON - datetime.timedelta(days=60))
    run()  # opens the first alerts
    for _ in range(3):
        make_account(band="red", score="10.0", last_touch=ON - datetime.timedelta(days=60))
    small = run()
    for _ in range(30):
        make_account(band="red", score="10.0", last_touch=ON - datetime.timedelta(days=60))
    assert run() == small


def test_restoring_a_deleted_account_brings_its_red_alert_back():
    account = make_account(band="red", score="20.0")
    scored(account, ON, "red", "20.0")
    alerts_evaluate(on=ON)
    Account.objects.filter(pk=account.pk).update(deleted_at=timezone.now())
    alerts_evaluate(on=ON)
    assert statuses(account) == ["done"]

    Account.objects.filter(pk=account.pk).update(deleted_at=None)  # restored, still red
    alerts_evaluate(on=ON)

    assert sorted(statuses(account)) == ["done", "open"]
    assert Alert.objects.get(account=account, status="open").rule.kind == Kind.HEALTH_RED


def test_a_red_alert_handled_before_a_deletion_stays_handled_after_the_restore():
    account = make_account(band="red", score="20.0")
    scored(account, ON, "red", "20.0")
    alerts_evaluate(on=ON)
    alert_close(alert=Alert.objects.get(account=account), reason="Called the sponsor")
    Account.objects.filter(pk=account.pk).update(deleted_at=timezone.now())
    alerts_evaluate(on=ON)
    Account.objects.filter(pk=account.pk).update(deleted_at=None)
    alerts_evaluate(on=ON)
    assert statuses(account) == ["done"]
