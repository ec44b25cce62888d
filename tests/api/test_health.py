"""accounts/{external_id}/health/: the latest snapshot with its components, the history, the change split
between two dates, parameters, query counts and scope isolation."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import factories


def url(external_id: str = "a-001") -> str:
    return f"/api/v1/accounts/{external_id}/health/"


def snapshot(account, day, score, band, components, **fields):
    return factories.HealthSnapshotFactory(
        account=account, date=day, score=Decimal(score), band=band, components=components, **fields
    )


def test_latest_snapshot_with_components_and_default_history(client_a, account_a):
    today = timezone.localdate()
    snapshot(account_a, today - datetime.timedelta(days=100), "20.0", "red", [])  # before the 90 days
    snapshot(
        account_a,
        today - datetime.timedelta(days=10),
        "50.0",
        "yellow",
        [{"kind": "engagement", "raw": 1.5, "score": 50.0, "weight": 1.0}],
    )
    snapshot(
        account_a,
        today,
        "70.0",
        "green",
        [
            {"kind": "engagement", "raw": 0.5, "score": 100.0, "weight": 0.4},
            {"kind": "usage_trend", "metric": "active_users", "raw": 0.8, "score": 50.0, "weight": 0.6},
            {"kind": "sentiment", "raw": None, "score": None, "weight": 0},
        ],
    )
    response = client_a.get(url())
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account"] == "a-001"
    assert body["change"] is None
    # 100 x 0.4 = 40 points, 50 x 0.6 = 30 points: 70.0 in all.
    assert body["latest"] == {
        "date": today.isoformat(),
        "score": "70.0",
        "band": "green",
        "model_version": 1,
        "model_name": "Default v1",
        "components": [
            {
                "kind": "engagement",
                "label": "Engagement (days since touch / cadence)",
                "metric": "",
                "per_metric": "",
                "raw": "0.5",
                "score": "100.0",
                "weight": "0.4",
                "contribution": "40.00",
                "has_data": True,
            },
            {
                "kind": "usage_trend",
                "label": "Usage trend (30 days vs prior 30)",
                "metric": "active_users",
                "per_metric": "",
                "raw": "0.8",
                "score": "50.0",
                "weight": "0.6",
                "contribution": "30.00",
                "has_data": True,
            },
            {
                "kind": "sentiment",
                "label": "Touch sentiment (90 days)",
                "metric": "",
                "per_metric": "",
                "raw": None,
                "score": None,
                "weight": "0.00",
                "contribution": "0.00",
                "has_data": False,
            },
        ],
    }
    assert body["history"] == [
        {"date": (today - datetime.timedelta(days=10)).isoformat(), "score": "50.0", "band": "yellow"},
        {"date": today.isoformat(), "score": "70.0", "band": "green"},
    ]
    since = (today - datetime.timedelta(days=200)).isoformat()
    history = client_a.get(url(), {"since": since}).json()["history"]
    assert [point["score"] for point in history] == ["20.0", "50.0", "70.0"]


def test_an_account_without_snapshots(client_a, account_a):
    response = client_a.get(url(), {"from": "2026-01-01", "to": "2026-02-01"})
    assert response.status_code == 200
    assert response.json() == {
        "account": "a-001",
        "latest": None,
        "history": [],
        "change": {
            "first": "2026-01-01",
            "second": "2026-02-01",
            "before": None,
            "after": None,
            "difference": None,
            "model_changed": False,
            "lines": [],
        },
    }


def test_why_it_changed_split_per_component(client_a, account_a):
    # Before: 100 x 0.666667 = 66.67 and 0 x 0.333333 = 0.00 points; stored 66.7, so rounding 0.03.
    snapshot(
        account_a,
        datetime.date(2026, 1, 1),
        "66.7",
        "yellow",
        [
            {"kind": "engagement", "raw": 0.9, "score": 100.0, "weight": 0.666667},
            {"kind": "sentiment", "raw": -0.6, "score": 0.0, "weight": 0.333333},
        ],
    )
    # After (read on 2026-02-10 for "to" 2026-02-15): 50 x 0.5 = 25.00, 60 x 0.5 = 30.00; stored 55.0.
    snapshot(
        account_a,
        datetime.date(2026, 2, 10),
        "55.0",
        "yellow",
        [
            {"kind": "engagement", "raw": 1.5, "score": 50.0, "weight": 0.5},
            {"kind": "sentiment", "raw": 0.1, "score": 60.0, "weight": 0.5},
        ],
    )
    response = client_a.get(url(), {"from": "2026-01-05", "to": "2026-02-15"})
    assert response.status_code == 200, response.content
    change = response.json()["change"]
    assert change["first"] == "2026-01-05"
    assert change["second"] == "2026-02-15"
    assert change["before"] == {"date": "2026-01-01", "score": "66.7", "band": "yellow", "model_name": "Default v1"}
    assert change["after"] == {"date": "2026-02-10", "score": "55.0", "band": "yellow", "model_name": "Default v1"}
    assert change["difference"] == "-11.7"
    assert change["model_changed"] is False
    lines = [(line["kind"], line["before"], line["after"], line["change"]) for line in change["lines"]]
    assert lines == [
        ("engagement", "66.67", "25.00", "-41.67"),
        ("sentiment", "0.00", "30.00", "30.00"),
        ("rounding", "0.03", "0.00", "-0.03"),
    ]
    # The changes add up to the difference: -41.67 + 30.00 - 0.03 = -11.70.
    assert sum(Decimal(line[3]) for line in lines) == Decimal("-11.7")
    # The dates may come in either order.
    swapped = client_a.get(url(), {"from": "2026-02-15", "to": "2026-01-05"}).json()["change"]
    assert swapped == change


def test_a_component_gained_between_the_dates(client_a, account_a):
    snapshot(account_a, datetime.date(2026, 1, 1), "40.0", "yellow", [{"kind": "engagement", "score": 40, "weight": 1}])
    snapshot(
        account_a,
        datetime.date(2026, 1, 2),
        "60.0",
        "yellow",
        [
            {"kind": "engagement", "score": 40, "weight": 0.5},
            {"kind": "plan_progress", "score": 80, "weight": 0.5},
        ],
    )
    change = client_a.get(url(), {"from": "2026-01-01", "to": "2026-01-02"}).json()["change"]
    by_kind = {line["kind"]: line for line in change["lines"]}
    assert by_kind["plan_progress"]["before"] == "0.00"
    assert by_kind["plan_progress"]["after"] == "40.00"
    assert by_kind["plan_progress"]["data_change"] == "gained"
    assert by_kind["engagement"]["change"] == "-20.00"
    assert change["difference"] == "20.0"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-02-30"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"from": "2026-01-01"}, "to"),
        ({"to": "2026-01-01"}, "from"),
        ({"from": "01/02/2026", "to": "2026-01-01"}, "from"),
        ({"from": "2026-01-01", "to": "2026-13-01"}, "to"),
    ],
)
def test_bad_dates_are_400(client_a, account_a, params, field):
    response = client_a.get(url(), params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_queries_do_not_grow_with_the_history(client_a, account_a):
    client_a.get(url())  # the key's last-used time is written once a minute, not counted below
    today = timezone.localdate()
    components = [{"kind": "engagement", "raw": 1, "score": 70, "weight": 1}]
    for n in range(3):
        snapshot(account_a, today - datetime.timedelta(days=n), "70.0", "green", components)
    params = {"from": (today - datetime.timedelta(days=2)).isoformat(), "to": today.isoformat()}
    with CaptureQueriesContext(connection) as small:
        assert len(client_a.get(url(), params).json()["history"]) == 3
    for n in range(3, 30):
        snapshot(account_a, today - datetime.timedelta(days=n), "70.0", "green", components * 3)
    with CaptureQueriesContext(connection) as large:
        assert len(client_a.get(url(), params).json()["history"]) == 30
    assert len(small) == len(large)


def test_scope_isolation(client_a, client_b, client_all, account_a, account_b):
    snapshot(account_a, datetime.date(2026, 1, 1), "70.0", "green", [])
    assert client_a.get(url()).status_code == 200
    assert client_all.get(url()).json()["latest"]["score"] == "70.0"
    for params in ({}, {"from": "2026-01-01", "to": "2026-01-02"}):
        response = client_b.get(url(), params)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert client_a.get(url("b-001")).status_code == 404
    assert client_b.get(url("b-001")).status_code == 200
    assert client_all.get(url("missing")).status_code == 404


def test_a_deleted_account_is_404(client_a, account_a):
    account_a.deleted_at = timezone.now()
    account_a.save(update_fields=["deleted_at"])
    assert client_a.get(url()).status_code == 404


def test_sessions_read_it(client, csm_user, outsider, account_a):
    client.force_login(csm_user)
    assert client.get(url()).status_code == 200
    client.force_login(outsider)
    assert client.get(url()).status_code == 403


def test_the_accounts_detail_route_still_answers(client_a, account_a):
    response = client_a.get("/api/v1/accounts/a-001/")
    assert response.status_code == 200
    assert response.json()["external_id"] == "a-001"


@pytest.mark.parametrize("external_id", ["x" * 3000, "%F0%9F%92%A5", "..", "%2F"])
def test_odd_ids_are_404(client_all, account_a, external_id):
    response = client_all.get(url(external_id))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_nul_in_the_id_finds_nothing(client_all, account_a):
    response = client_all.get(url("a-001%00"))
    assert response.status_code in (400, 404)  # refused by the API's URL check, or simply not found
    assert "error" in response.json()


@pytest.mark.parametrize("value", ["\x00", "9" * 400, "2026-01-01T00:00:00Z", "-1"])
def test_odd_dates_are_400(client_all, account_a, value):
    for params in ({"since": value}, {"from": value, "to": "2026-01-01"}):
        response = client_all.get(url(), params)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"


def test_compact_components_read_as_before(client_a, account_a):
    """A snapshot stores [raw, score, weight] per component of its version (null: no data); the API
    names each component from the version, as it did when snapshots stored the names."""
    model = factories.HealthModelFactory(version=101)
    factories.HealthComponentFactory(model=model, kind="usage_trend", metric="active_users", order=0, bad=0, good=1)
    factories.HealthComponentFactory(model=model, kind="sentiment", order=1, bad=-1, good=1)
    today = timezone.localdate()
    snapshot(account_a, today, "60.0", "yellow", [[0.6, 60.0, 1.0], None], model_version=model)
    components = client_a.get(url()).json()["latest"]["components"]
    assert components[0] == {
        "kind": "usage_trend",
        "label": "Usage trend (30 days vs prior 30)",
        "metric": "active_users",
        "per_metric": "",
        "raw": "0.6",
        "score": "60.0",
        "weight": "1.0",
        "contribution": "60.00",
        "has_data": True,
    }
    # Without data: as before, no raw or score, and a weight of 0.00.
    no_data = components[1]
    assert (no_data["kind"], no_data["label"], no_data["raw"], no_data["score"]) == (
        "sentiment",
        "Touch sentiment (90 days)",
        None,
        None,
    )
    assert (no_data["weight"], no_data["contribution"], no_data["has_data"]) == ("0.00", "0.00", False)
