"""alerts/: the list with its filters and sync, one alert, snoozing and closing through the services,
query counts and scope isolation."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics.models import Alert, AlertRule
from tests import factories

URL = "/api/v1/alerts/"
Kind = AlertRule.Kind


def detail(alert: Alert) -> str:
    return f"{URL}{alert.pk}/"


def stamp(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@pytest.fixture
def alert_a(account_a):
    return factories.AlertFactory(account=account_a, rule=factories.alert_rule(Kind.HEALTH_RED))


@pytest.fixture
def alert_b(account_b):
    return factories.AlertFactory(account=account_b, rule=factories.alert_rule(Kind.TOUCH_OVERDUE))


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_and_retrieve_shape(client_a, alert_a):
    expected = {
        "id": alert_a.pk,
        "account": "a-001",
        "rule": alert_a.rule.name,
        "kind": "health_red",
        "status": "open",
        "owner": alert_a.account.owner.username,
        "due": "2026-01-10",
        "reason": "Health is red (31.0)",
        "snoozed_until": None,
        "closed_at": None,
        "closed_reason": "",
        "closed_by": "",
        "created_at": stamp(alert_a.created_at),
        "updated_at": stamp(alert_a.updated_at),
    }
    response = client_a.get(URL)
    assert response.status_code == 200
    assert response.json() == {"next": None, "next_cursor": None, "results": [expected]}
    assert client_a.get(detail(alert_a)).json() == expected


def test_filters_and_paging(client_all, partner_a, alert_a, alert_b):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)
    snoozed = factories.AlertFactory(
        account=other,
        rule=factories.alert_rule(Kind.RENEWAL_RISK),
        status=Alert.Status.SNOOZED,
        snoozed_until=datetime.date(2030, 1, 1),
    )
    assert ids(client_all.get(URL, {"status": "snoozed"})) == [snoozed.pk]
    assert ids(client_all.get(URL, {"kind": "touch_overdue"})) == [alert_b.pk]
    assert ids(client_all.get(URL, {"account": "a-001"})) == [alert_a.pk]
    assert ids(client_all.get(URL, {"account": "a-002", "status": "open"})) == []
    assert ids(client_all.get(URL, {"include_deleted": "true"})) == [alert_a.pk, alert_b.pk, snoozed.pk]
    first = client_all.get(URL, {"limit": 2}).json()
    assert [row["id"] for row in first["results"]] == [alert_a.pk, alert_b.pk]
    rest = client_all.get(URL, {"limit": 2, "cursor": first["next_cursor"]})
    assert ids(rest) == [snoozed.pk]
    Alert.objects.filter(pk=alert_a.pk).update(updated_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    Alert.objects.filter(pk=alert_b.pk).update(updated_at=datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC))
    Alert.objects.filter(pk=snoozed.pk).update(updated_at=datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC))
    assert ids(client_all.get(URL, {"updated_since": "2026-01-15"})) == [snoozed.pk, alert_b.pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"kind": "comet"}, "kind"),
        ({"updated_since": "soon"}, "updated_since"),
        ({"include_deleted": "x"}, "include_deleted"),
        ({"limit": "5000"}, "limit"),
    ],
)
def test_bad_list_parameters_are_400(client_a, params, field):
    response = client_a.get(URL, params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_list_queries_do_not_grow(client_all, partner_a):
    client_all.get(URL)  # the key's last-used time is written once a minute, not counted below
    rules = list(AlertRule.objects.all())
    for n in range(3):
        factories.AlertFactory(rule=rules[n % len(rules)], account=factories.AccountFactory(partner=partner_a))
    with CaptureQueriesContext(connection) as small:
        assert len(ids(client_all.get(URL))) == 3
    for n in range(27):
        factories.AlertFactory(rule=rules[n % len(rules)], account=factories.AccountFactory(partner=partner_a))
    with CaptureQueriesContext(connection) as large:
        assert len(ids(client_all.get(URL))) == 30
    assert len(small) == len(large)


# --- snooze and close ---------------------------------------------------------------------------


def test_snooze_until_a_date(client_a, alert_a):
    until = timezone.localdate() + datetime.timedelta(days=7)
    before = alert_a.updated_at
    response = client_a.patch(detail(alert_a), {"status": "snoozed", "until": until.isoformat()}, format="json")
    assert response.status_code == 200, response.content
    alert_a.refresh_from_db()
    assert (alert_a.status, alert_a.snoozed_until, alert_a.closed_at) == ("snoozed", until, None)
    assert alert_a.updated_at > before
    body = response.json()
    assert (body["status"], body["snoozed_until"]) == ("snoozed", until.isoformat())
    assert body["updated_at"] == stamp(alert_a.updated_at)


def test_close_with_a_reason_and_without(client_a, partner_a, alert_a):
    snoozed = factories.AlertFactory(
        account=factories.AccountFactory(partner=partner_a),
        status=Alert.Status.SNOOZED,
        snoozed_until=datetime.date(2030, 1, 1),
    )
    response = client_a.patch(detail(alert_a), {"status": "done", "reason": "Called them"}, format="json")
    assert response.status_code == 200, response.content
    alert_a.refresh_from_db()
    assert (alert_a.status, alert_a.closed_reason, alert_a.closed_by) == ("done", "Called them", "csm")
    assert alert_a.closed_at is not None
    assert response.json()["closed_at"] == stamp(alert_a.closed_at)
    assert response.json()["closed_by"] == "csm"

    response = client_a.patch(detail(snoozed), {"status": "done"}, format="json")
    assert response.status_code == 200
    snoozed.refresh_from_db()
    assert (snoozed.status, snoozed.closed_reason, snoozed.snoozed_until) == ("done", "Marked done", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "snoozed"}, "until"),
        ({"status": "snoozed", "until": "next week"}, "until"),
        ({"status": "open"}, "status"),
        ({}, "status"),
        ({"status": "done", "reason": "x" * 301}, "reason"),
    ],
)
def test_bad_changes_are_400_and_change_nothing(client_a, alert_a, body, field):
    response = client_a.patch(detail(alert_a), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    alert_a.refresh_from_db()
    assert alert_a.status == "open"


def test_snoozing_until_today_is_refused_by_the_service(client_a, alert_a):
    today = timezone.localdate().isoformat()
    response = client_a.patch(detail(alert_a), {"status": "snoozed", "until": today}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"until": ["Snooze until a day after today."]}
    alert_a.refresh_from_db()
    assert (alert_a.status, alert_a.snoozed_until) == ("open", None)


def test_a_closed_alert_cannot_be_snoozed(client_a, alert_a):
    alert_a.status = Alert.Status.DONE
    alert_a.save(update_fields=["status"])
    until = (timezone.localdate() + datetime.timedelta(days=3)).isoformat()
    response = client_a.patch(detail(alert_a), {"status": "snoozed", "until": until}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "A closed alert cannot be snoozed."
    alert_a.refresh_from_db()
    assert (alert_a.status, alert_a.snoozed_until) == ("done", None)


@pytest.mark.parametrize("method", ["put", "delete", "post"])
def test_other_methods_are_405(client_a, alert_a, method):
    target = URL if method == "post" else detail(alert_a)
    response = getattr(client_a, method)(target, {"status": "done"}, format="json")
    assert response.status_code == 405
    alert_a.refresh_from_db()
    assert alert_a.status == "open"


# --- who may do what ----------------------------------------------------------------------------


def test_scope_isolation(client_a, client_b, client_all, alert_a, alert_b):
    assert ids(client_a.get(URL)) == [alert_a.pk]
    assert ids(client_b.get(URL)) == [alert_b.pk]
    assert ids(client_all.get(URL)) == [alert_a.pk, alert_b.pk]
    assert ids(client_b.get(URL, {"account": "a-001"})) == []
    assert client_b.get(detail(alert_a)).status_code == 404
    until = (timezone.localdate() + datetime.timedelta(days=3)).isoformat()
    for body in ({"status": "done"}, {"status": "snoozed", "until": until}):
        response = client_b.patch(detail(alert_a), body, format="json")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    alert_a.refresh_from_db()
    assert alert_a.status == "open"
    assert client_all.patch(detail(alert_a), {"status": "done"}, format="json").status_code == 200
    assert client_a.get(f"{URL}999999999/").status_code == 404


def test_sessions_csm_reads_leader_writes(client, csm_user, leader_api, alert_a):
    client.force_login(csm_user)
    assert client.get(detail(alert_a)).status_code == 200
    response = client.patch(detail(alert_a), {"status": "done"}, content_type="application/json")
    assert response.status_code == 403
    alert_a.refresh_from_db()
    assert alert_a.status == "open"
    assert leader_api.patch(detail(alert_a), {"status": "done"}, format="json").status_code == 200
    alert_a.refresh_from_db()
    assert alert_a.status == "done"


def test_without_a_key_is_401(client, alert_a):
    assert client.get(URL).status_code == 401
