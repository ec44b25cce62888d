"""success-plans/: plans with nested goals, targets and initiatives, and the targets' readings."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from success_plans.models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement
from tests import factories
from tests.api.conftest import key_client
from tests.api.test_concurrency import race

pytestmark = pytest.mark.django_db
URL = "/api/v1/success-plans/"
MODELS = (SuccessPlan, Goal, Target, Initiative, TargetMeasurement)
Status = SuccessPlan.Status
Source = TargetMeasurement.Source


def plan_body(account: str = "a-001", **fields) -> dict:
    """Two goals: one with a measured target and two initiatives (one done), one with a plain target."""
    return {
        "account": account,
        "title": "Year one",
        "status": "active",
        "start_date": "2026-02-01",
        "target_date": "2026-12-31",
        "success_definition": "Every team runs its weekly report in the product.",
        "goals": [
            {
                "title": "Go live",
                "priority": 1,
                "status": "in_progress",
                "due_date": "2026-03-31",
                "targets": [
                    {
                        "name": "Active users",
                        "unit": "users",
                        "baseline": "10",
                        "target_value": "110",
                        "current_value": "40",
                    }
                ],
                "initiatives": [
                    {"title": "Kick-off", "owner": "priya", "status": "done"},
                    {"title": "Train the leads", "due_date": "2026-03-15"},
                ],
            },
            {
                "title": "First value",
                "targets": [{"name": "Reports automated", "target_value": "20"}],
                "initiatives": [],
            },
        ],
        **fields,
    }


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def ids() -> dict[str, list[int]]:
    return {model.__name__: sorted(model.objects.values_list("pk", flat=True)) for model in MODELS}


@pytest.fixture
def plan_a(client_a, account_a, csm_user):
    """Partner A's plan p-1 on a-001, created through the API."""
    response = client_a.put(f"{URL}p-1/", plan_body(), format="json")
    assert response.status_code == 201, response.json()
    return SuccessPlan.objects.get(external_id="p-1")


def parts(plan: SuccessPlan) -> tuple[Goal, Goal, Target, Target, Initiative, Initiative]:
    go_live, first_value = plan.goals.order_by("order")
    (users,) = go_live.targets.all()
    (reports,) = first_value.targets.all()
    kick_off, training = go_live.initiatives.order_by("order")
    return go_live, first_value, users, reports, kick_off, training


# --- create, upsert, patch ------------------------------------------------------------------------


def test_put_creates_a_plan_with_its_goals_targets_and_initiatives(client_a, account_a, csm_user):
    response = client_a.put(f"{URL}p-1/", plan_body(), format="json")

    assert response.status_code == 201, response.json()
    plan = SuccessPlan.objects.get(external_id="p-1")
    assert (plan.account, plan.title, plan.status, plan.owner, plan.closed_at) == (
        account_a,
        "Year one",
        Status.ACTIVE,
        account_a.owner,  # no owner given: the account's CSM
        None,
    )
    assert (plan.start_date, plan.target_date) == (datetime.date(2026, 2, 1), datetime.date(2026, 12, 31))
    go_live, first_value, users, reports, kick_off, training = parts(plan)
    assert [(g.title, g.order, g.priority, g.status, g.due_date) for g in (go_live, first_value)] == [
        ("Go live", 0, 1, Goal.Status.IN_PROGRESS, datetime.date(2026, 3, 31)),
        ("First value", 1, 2, Goal.Status.NOT_STARTED, None),
    ]
    assert (users.name, users.unit, users.baseline, users.target_value, users.current_value) == (
        "Active users",
        "users",
        Decimal(10),
        Decimal(110),
        Decimal(40),
    )
    assert (reports.baseline, reports.target_value, reports.current_value) == (Decimal(0), Decimal(20), None)
    assert (kick_off.title, kick_off.owner, kick_off.status) == ("Kick-off", csm_user, Initiative.Status.DONE)
    assert kick_off.completed_at is not None
    assert (training.owner, training.status, training.due_date) == (None, "planned", datetime.date(2026, 3, 15))
    (reading,) = TargetMeasurement.objects.all()
    assert (reading.target, reading.value, reading.source, reading.recorded_by) == (
        users,
        Decimal(40),
        Source.API,
        None,
    )
    assert users.measured_at == reading.measured_at

    body = response.json()
    assert (body["id"], body["external_id"], body["account"], body["owner"]) == (
        plan.pk,
        "p-1",
        "a-001",
        account_a.owner.username,
    )
    assert (body["template"], body["closed_at"], body["deleted_at"]) == (None, None, None)
    # Progress: Active users (40 - 10) / (110 - 10) = 0.3, Reports automated unmeasured = 0; the mean 0.15.
    assert body["progress"] == "0.1500"
    assert [(g["id"], g["order"]) for g in body["goals"]] == [(go_live.pk, 0), (first_value.pk, 1)]
    target = body["goals"][0]["targets"][0]
    assert (target["id"], target["current_value"], target["progress"]) == (users.pk, "40.0000", "0.3000")
    assert body["goals"][1]["targets"][0]["progress"] == "0.0000"
    assert [(i["id"], i["owner"], i["status"]) for i in body["goals"][0]["initiatives"]] == [
        (kick_off.pk, "priya", "done"),
        (training.pk, None, "planned"),
    ]


def test_the_same_put_again_changes_nothing(client_a, plan_a):
    before_ids, stamp = ids(), plan_a.updated_at
    first = client_a.get(f"{URL}p-1/").json()

    response = client_a.put(f"{URL}p-1/", plan_body(), format="json")

    assert response.status_code == 200, response.json()
    assert response.json() == first  # identical ids, values and updated_at
    assert ids() == before_ids
    assert counts() == {"SuccessPlan": 1, "Goal": 2, "Target": 2, "Initiative": 2, "TargetMeasurement": 1}
    plan_a.refresh_from_db()
    assert plan_a.updated_at == stamp


def test_putting_back_what_get_returns_changes_nothing(client_a, plan_a):
    before_ids = ids()
    shown = client_a.get(f"{URL}p-1/").json()

    response = client_a.put(f"{URL}p-1/", shown, format="json")

    assert response.status_code == 200, response.json()
    assert response.json() == shown
    assert ids() == before_ids  # the same target reading (value and time) is no new reading


def test_patch_changes_the_title_and_leaves_the_goals(client_a, plan_a):
    before_ids = ids()

    response = client_a.patch(f"{URL}p-1/", {"title": "Year one, renewed"}, format="json")

    assert response.status_code == 200, response.json()
    plan_a.refresh_from_db()
    assert (plan_a.title, plan_a.status, plan_a.start_date) == (
        "Year one, renewed",
        Status.ACTIVE,
        datetime.date(2026, 2, 1),
    )
    assert ids() == before_ids
    assert response.json()["title"] == "Year one, renewed"


def test_patch_reorders_and_renames_goals_by_id_keeping_what_they_leave_out(client_a, plan_a):
    go_live, first_value, users, reports, kick_off, training = parts(plan_a)

    response = client_a.patch(
        f"{URL}p-1/",
        {"goals": [{"id": first_value.pk, "title": "First value, renamed"}, {"id": go_live.pk}]},
        format="json",
    )

    assert response.status_code == 200, response.json()
    go_live.refresh_from_db()
    first_value.refresh_from_db()
    assert (first_value.title, first_value.order) == ("First value, renamed", 0)
    assert (go_live.title, go_live.order, go_live.priority, go_live.status, go_live.due_date) == (
        "Go live",
        1,
        1,
        Goal.Status.IN_PROGRESS,
        datetime.date(2026, 3, 31),
    )
    # Targets and initiatives were not given: they stay as they were.
    assert set(Target.objects.values_list("pk", "goal_id")) == {(users.pk, go_live.pk), (reports.pk, first_value.pk)}
    assert sorted(Initiative.objects.values_list("pk", flat=True)) == sorted([kick_off.pk, training.pk])
    assert [g["id"] for g in response.json()["goals"]] == [first_value.pk, go_live.pk]


def test_a_goal_left_out_is_removed_with_its_parts(client_a, plan_a):
    go_live, first_value, users, reports, kick_off, training = parts(plan_a)

    response = client_a.patch(f"{URL}p-1/", {"goals": [{"id": go_live.pk}]}, format="json")

    assert response.status_code == 200, response.json()
    assert list(Goal.objects.values_list("pk", flat=True)) == [go_live.pk]
    assert list(Target.objects.values_list("pk", flat=True)) == [users.pk]
    assert sorted(Initiative.objects.values_list("pk", flat=True)) == sorted([kick_off.pk, training.pk])


def test_writing_a_current_value_records_one_reading(client_a, plan_a):
    go_live, _first_value, users, _reports, _kick_off, _training = parts(plan_a)
    before = timezone.now()

    response = client_a.patch(
        f"{URL}p-1/",
        {
            "goals": [
                {"id": go_live.pk, "targets": [{"id": users.pk, "current_value": "75.5"}]},
                {"title": "First value"},
            ]
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    reading = TargetMeasurement.objects.get(value=Decimal("75.5"))
    assert (reading.target_id, reading.source, reading.recorded_by) == (users.pk, Source.API, None)
    assert reading.measured_at >= before
    assert TargetMeasurement.objects.count() == 2  # 40 when created, 75.5 now
    users.refresh_from_db()
    assert (users.current_value, users.measured_at, users.name, users.target_value) == (
        Decimal("75.5"),
        reading.measured_at,
        "Active users",
        Decimal(110),
    )
    # (75.5 - 10) / (110 - 10) = 0.655
    assert response.json()["goals"][0]["targets"][0]["progress"] == "0.6550"


def test_a_leaders_session_write_records_who_read_the_value(leader_api, plan_a, leader):
    go_live, _first_value, users, _reports, _kick_off, _training = parts(plan_a)

    response = leader_api.patch(
        f"{URL}p-1/",
        {"goals": [{"id": go_live.pk, "targets": [{"id": users.pk, "current_value": "50"}]}, {"title": "First value"}]},
        format="json",
    )

    assert response.status_code == 200, response.json()
    reading = TargetMeasurement.objects.get(value=50)
    assert (reading.source, reading.recorded_by) == (Source.API, leader)


def test_abandoning_needs_a_reason(client_a, plan_a):
    refused = client_a.patch(f"{URL}p-1/", {"status": "abandoned"}, format="json")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid"
    assert "status_reason" in refused.json()["error"]["fields"]
    plan_a.refresh_from_db()
    assert (plan_a.status, plan_a.closed_at) == (Status.ACTIVE, None)

    response = client_a.patch(f"{URL}p-1/", {"status": "abandoned", "status_reason": "Budget cut"}, format="json")

    assert response.status_code == 200, response.json()
    plan_a.refresh_from_db()
    assert (plan_a.status, plan_a.status_reason) == (Status.ABANDONED, "Budget cut")
    assert plan_a.closed_at is not None


def test_nested_errors_name_their_path_and_write_nothing(client_a, account_a, csm_user):
    body = plan_body()
    body["goals"][1]["targets"][0]["baseline"] = "20"  # the same as its target value
    body["goals"][0]["initiatives"][0]["owner"] = "nobody"

    response = client_a.put(f"{URL}p-1/", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "goals[0].initiatives[0].owner": ["There is no user “nobody”."],
    }

    body["goals"][0]["initiatives"][0]["owner"] = "priya"
    response = client_a.put(f"{URL}p-1/", body, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["goals[1].targets[0].target_value"]
    assert counts() == dict.fromkeys(("SuccessPlan", "Goal", "Target", "Initiative", "TargetMeasurement"), 0)


def test_a_new_entry_without_an_id_needs_its_title(client_a, plan_a):
    response = client_a.patch(f"{URL}p-1/", {"goals": [{"description": "No title"}]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"goals[0].title": ["This field is required."]}
    assert Goal.objects.count() == 2


# --- delete, tombstones --------------------------------------------------------------------------


def test_delete_leaves_a_tombstone_a_stale_put_cannot_resurrect(client_a, plan_a):
    response = client_a.delete(f"{URL}p-1/")

    assert response.status_code == 204
    plan_a.refresh_from_db()
    assert plan_a.deleted_at is not None
    assert Goal.objects.filter(plan=plan_a).count() == 2  # kept with the tombstone
    assert client_a.get(URL).json()["results"] == []
    assert [p["external_id"] for p in client_a.get(URL, {"include_deleted": "true"}).json()["results"]] == ["p-1"]

    stale = client_a.put(f"{URL}p-1/", plan_body(title="Stale"), format="json")

    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "deleted"
    plan_a.refresh_from_db()
    assert (plan_a.title, plan_a.deleted_at is not None) == ("Year one", True)

    refused = client_a.put(f"{URL}p-1/", plan_body(status="draft", deleted=False), format="json")

    assert refused.status_code == 400  # a started plan cannot go back to draft: it stays deleted
    assert refused.json()["error"]["fields"] == {"status": ["A plan that has started cannot go back to draft."]}
    plan_a.refresh_from_db()
    assert (plan_a.status, plan_a.deleted_at is not None) == (Status.ACTIVE, True)

    restored = client_a.put(f"{URL}p-1/", plan_body(title="Back", deleted=False), format="json")

    assert restored.status_code == 200, restored.json()
    plan_a.refresh_from_db()
    assert (plan_a.title, plan_a.deleted_at) == ("Back", None)
    assert counts()["Goal"] == 2


# --- bulk ----------------------------------------------------------------------------------------


def bulk_items(count: int, account: str = "a-001", prefix: str = "bulk") -> list[dict]:
    return [dict(plan_body(account), external_id=f"{prefix}-{n}", title=f"Plan {n}") for n in range(count)]


def test_bulk_is_all_or_none_by_default(client_a, account_a, csm_user):
    items = bulk_items(3)
    items[1]["goals"][0]["targets"][0]["target_value"] = "10"  # equals its baseline

    response = client_a.post(f"{URL}bulk/", items, format="json")

    assert response.status_code == 400
    (item,) = response.json()["error"]["items"]
    assert (item["index"], item["status"]) == (1, "error")
    assert list(item["error"]["fields"]) == ["goals[0].targets[0].target_value"]
    assert counts()["SuccessPlan"] == 0

    response = client_a.post(f"{URL}bulk/?all_or_none=false", items, format="json")

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["created", "error", "created"]
    assert sorted(SuccessPlan.objects.values_list("external_id", flat=True)) == ["bulk-0", "bulk-2"]
    assert counts() == {"SuccessPlan": 2, "Goal": 4, "Target": 4, "Initiative": 4, "TargetMeasurement": 2}


def bulk_queries(client, items: list[dict], outcome: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(f"{URL}bulk/", items, format="json")
    assert response.status_code == 200, response.json()
    assert [r["status"] for r in response.json()["results"]] == [outcome] * len(items)
    return len(queries)


def test_bulk_queries_do_not_grow_with_the_plans(client_a, account_a, csm_user):
    client_a.get(URL)  # the key's last use is recorded once a minute: not in the counts below
    small, large = bulk_items(3, prefix="small"), bulk_items(30, prefix="large")

    assert bulk_queries(client_a, small, "created") == bulk_queries(client_a, large, "created")
    assert counts() == {"SuccessPlan": 33, "Goal": 66, "Target": 66, "Initiative": 66, "TargetMeasurement": 33}

    for item in small + large:
        item["title"] = "Renewed"
        item["goals"][0]["targets"][0]["current_value"] = "55"
        item["goals"].pop()
    assert bulk_queries(client_a, small, "updated") == bulk_queries(client_a, large, "updated")
    assert counts() == {"SuccessPlan": 33, "Goal": 33, "Target": 33, "Initiative": 66, "TargetMeasurement": 66}
    assert set(SuccessPlan.objects.values_list("title", flat=True)) == {"Renewed"}
    assert set(Target.objects.values_list("current_value", flat=True)) == {Decimal(55)}


def test_list_queries_do_not_grow_with_the_plans(client_a, account_a, csm_user):
    def list_queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client_a.get(URL, {"limit": 1000})
        assert response.status_code == 200
        return len(queries), len(response.json()["results"])

    client_a.post(f"{URL}bulk/", bulk_items(3, prefix="small"), format="json")
    client_a.get(URL)  # the key's last use is recorded once a minute: not in the counts below
    small = list_queries()
    client_a.post(f"{URL}bulk/", bulk_items(27, prefix="large"), format="json")
    large = list_queries()

    assert (small[1], large[1]) == (3, 30)
    assert small[0] == large[0]


def test_the_list_filters_by_account_and_status(client_all, account_a, account_b, csm_user):
    client_all.put(f"{URL}p-a/", plan_body("a-001"), format="json")
    client_all.put(f"{URL}p-b/", plan_body("b-001", status="draft"), format="json")

    def listed(**params) -> list[str]:
        response = client_all.get(URL, params)
        assert response.status_code == 200
        return [p["external_id"] for p in response.json()["results"]]

    assert listed(account="b-001") == ["p-b"]
    assert listed(status="active") == ["p-a"]
    assert client_all.get(URL, {"status": "lost"}).status_code == 400


# --- scope ---------------------------------------------------------------------------------------


def test_another_partner_can_neither_see_nor_change_the_plans(client_b, client_all, plan_a, account_b):
    assert client_b.get(f"{URL}p-1/").status_code == 404
    assert client_b.patch(f"{URL}p-1/", {"title": "Mine"}, format="json").status_code == 404
    assert client_b.delete(f"{URL}p-1/").status_code == 404
    assert client_b.get(URL).json()["results"] == []
    assert client_b.put(f"{URL}p-1/", plan_body("b-001"), format="json").status_code == 409
    plan_a.refresh_from_db()
    assert (plan_a.title, plan_a.deleted_at, plan_a.account.external_id) == ("Year one", None, "a-001")

    refused = client_b.put(f"{URL}p-2/", plan_body("a-001"), format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"account": ["There is no account “a-001”."]}
    assert not SuccessPlan.objects.filter(external_id="p-2").exists()

    client_b.put(f"{URL}p-b/", plan_body("b-001"), format="json")
    assert sorted(p["external_id"] for p in client_all.get(URL).json()["results"]) == ["p-1", "p-b"]
    assert [p["external_id"] for p in client_b.get(URL).json()["results"]] == ["p-b"]


def test_another_partner_cannot_name_the_plans_parts(client_b, plan_a, account_b):
    go_live, _first_value, users, _reports, kick_off, _training = parts(plan_a)
    assert client_b.put(f"{URL}p-b/", plan_body("b-001"), format="json").status_code == 201
    before = ids()

    for goals in (
        [{"id": go_live.pk, "title": "Taken"}],
        [{"title": "Go live", "targets": [{"id": users.pk, "current_value": "99"}]}],
        [{"title": "Go live", "initiatives": [{"id": kick_off.pk, "title": "Taken"}]}],
    ):
        response = client_b.patch(f"{URL}p-b/", {"goals": goals}, format="json")
        assert response.status_code == 400, goals

    assert ids() == before
    go_live.refresh_from_db()
    users.refresh_from_db()
    assert (go_live.title, go_live.plan_id, users.current_value) == ("Go live", plan_a.pk, Decimal(40))


def test_another_partner_cannot_record_readings_on_the_plan(client_b, plan_a, account_b):
    _go_live, _first_value, users, _reports, _kick_off, _training = parts(plan_a)
    client_b.put(f"{URL}p-b/", plan_body("b-001"), format="json")

    assert client_b.get(f"{URL}p-1/measurements/").status_code == 404
    response = client_b.post(f"{URL}p-1/measurements/", [{"target": users.pk, "value": "99"}], format="json")
    assert response.status_code == 404

    response = client_b.post(f"{URL}p-b/measurements/", [{"target": users.pk, "value": "99"}], format="json")
    assert response.status_code == 400
    (item,) = response.json()["error"]["items"]
    assert item["error"]["fields"] == {"target": [f"There is no target {users.pk} in this plan."]}
    assert TargetMeasurement.objects.filter(target=users).count() == 1
    users.refresh_from_db()
    assert users.current_value == Decimal(40)


# --- measurements --------------------------------------------------------------------------------


def test_readings_are_recorded_all_or_none_and_listed_newest_first(client_a, plan_a):
    _go_live, _first_value, users, reports, _kick_off, _training = parts(plan_a)
    earlier = timezone.now() - datetime.timedelta(days=2)

    bad = client_a.post(
        f"{URL}p-1/measurements/",
        [{"target": users.pk, "value": "60"}, {"target": reports.pk, "value": "many"}],
        format="json",
    )

    assert bad.status_code == 400
    assert [(i["index"], list(i["error"]["fields"])) for i in bad.json()["error"]["items"]] == [(1, ["value"])]
    assert TargetMeasurement.objects.count() == 1

    response = client_a.post(
        f"{URL}p-1/measurements/",
        [{"target": users.pk, "value": "60"}, {"target": reports.pk, "value": "5", "measured_at": earlier.isoformat()}],
        format="json",
    )

    assert response.status_code == 201, response.json()
    recorded = response.json()["results"]
    assert [(r["target"], r["value"], r["source"], r["recorded_by"]) for r in recorded] == [
        (users.pk, "60.0000", "api", None),
        (reports.pk, "5.0000", "api", None),
    ]
    users.refresh_from_db()
    reports.refresh_from_db()
    assert (users.current_value, reports.current_value, reports.measured_at) == (Decimal(60), Decimal(5), earlier)
    assert set(TargetMeasurement.objects.values_list("target_id", "value", "source")) == {
        (users.pk, Decimal(40), Source.API),
        (users.pk, Decimal(60), Source.API),
        (reports.pk, Decimal(5), Source.API),
    }

    listed = client_a.get(f"{URL}p-1/measurements/", {"limit": 2})

    assert listed.status_code == 200
    page = listed.json()
    # Newest first: 60 (now), 40 (when the plan was created), then 5 (two days ago) on the next page.
    assert [r["value"] for r in page["results"]] == ["60.0000", "40.0000"]
    rest = client_a.get(f"{URL}p-1/measurements/", {"limit": 2, "cursor": page["next_cursor"]}).json()
    assert ([r["value"] for r in rest["results"]], rest["next_cursor"]) == (["5.0000"], None)


def test_a_reading_in_the_future_is_refused(client_a, plan_a):
    _go_live, _first_value, users, _reports, _kick_off, _training = parts(plan_a)
    later = (timezone.now() + datetime.timedelta(days=1)).isoformat()

    response = client_a.post(
        f"{URL}p-1/measurements/",
        [{"target": users.pk, "value": "1"}, {"target": users.pk, "value": "2", "measured_at": later}],
        format="json",
    )

    assert response.status_code == 400
    assert [i["index"] for i in response.json()["error"]["items"]] == [1]
    assert TargetMeasurement.objects.count() == 1


def test_readings_with_an_idempotency_key_are_recorded_once(client_a, plan_a):
    _go_live, _first_value, users, _reports, _kick_off, _training = parts(plan_a)
    body = [{"target": users.pk, "value": "70"}]

    first = client_a.post(f"{URL}p-1/measurements/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    again = client_a.post(f"{URL}p-1/measurements/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    other = client_a.post(
        f"{URL}p-1/measurements/", [{"target": users.pk, "value": "71"}], format="json", HTTP_IDEMPOTENCY_KEY="r-1"
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert TargetMeasurement.objects.filter(value=70).count() == 1
    assert TargetMeasurement.objects.count() == 2


def test_readings_of_a_deleted_plan_are_refused(client_a, plan_a):
    _go_live, _first_value, users, _reports, _kick_off, _training = parts(plan_a)
    client_a.delete(f"{URL}p-1/")

    response = client_a.post(f"{URL}p-1/measurements/", [{"target": users.pk, "value": "1"}], format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "deleted"
    assert TargetMeasurement.objects.count() == 1


def test_the_readings_list_runs_a_fixed_number_of_queries(client_a, plan_a):
    _go_live, _first_value, users, _reports, _kick_off, _training = parts(plan_a)
    leader = factories.leader(username="lee")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client_a.get(f"{URL}p-1/measurements/")
        assert response.status_code == 200
        return len(captured)

    small = queries()
    for day in range(1, 30):
        factories.TargetMeasurementFactory(
            target=users, value=day, measured_at=timezone.now() - datetime.timedelta(days=day), recorded_by=leader
        )
    large = queries()

    assert small == large
    listed = client_a.get(f"{URL}p-1/measurements/").json()["results"]
    assert len(listed) == 30
    assert listed[-1] == {**listed[-1], "value": "29.0000", "recorded_by": "lee", "source": "workspace"}


# --- concurrency ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite admits one writer at a time: no race to test")
def test_concurrent_puts_of_one_plan_make_one_plan_with_one_set_of_parts(partner_a):
    # Transactional tests may run after another one emptied the tables the migrations seed (tiers, roles).
    factories.AccountFactory(external_id="a-001", partner=partner_a, tier=factories.TierFactory())
    factories.UserFactory(username="priya")
    clients = [key_client(partner_a) for _ in range(4)]

    responses = race([lambda c=c: c.put(f"{URL}race-1/", plan_body(), format="json") for c in clients])

    assert sorted(getattr(r, "status_code", repr(r)) for r in responses) == [200, 200, 200, 201]
    assert counts() == {"SuccessPlan": 1, "Goal": 2, "Target": 2, "Initiative": 2, "TargetMeasurement": 1}
    assert {r.json()["id"] for r in responses} == {SuccessPlan.objects.get().pk}
