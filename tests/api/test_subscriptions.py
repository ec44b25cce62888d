"""subscriptions/: every method, the account's MRR kept current, bulk writes, query counts and scope isolation."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account, Subscription
from tests import factories

URL = "/api/v1/subscriptions/"
FIELDS = {
    "id",
    "external_id",
    "created_at",
    "updated_at",
    "deleted_at",
    "account",
    "product",
    "mrr",
    "quantity",
    "start_date",
    "end_date",
}
UTC = datetime.UTC


def detail(external_id: str) -> str:
    return f"{URL}{external_id}/"


def days(n: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=n)


def body(**fields) -> dict:
    return {
        "account": "a-001",
        "product": "Analytics",
        "mrr": "1500.00",
        "quantity": 5,
        "start_date": days(-10).isoformat(),
        "end_date": None,
        **fields,
    }


def stored(line: Subscription) -> tuple:
    line.refresh_from_db()
    return (
        line.account.external_id,
        line.product,
        line.mrr,
        line.quantity,
        line.start_date,
        line.end_date,
        line.deleted_at is not None,
    )


def mrr(account: Account) -> Decimal:
    account.refresh_from_db()
    return account.mrr


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["external_id"] for row in response.json()["results"]]


@pytest.fixture
def platform(account_a):
    """A live line of account A: 1,000.00 a month since 30 days ago, with the account's MRR to match."""
    line = factories.SubscriptionFactory(
        account=account_a, external_id="s-plat", product="Platform", mrr=Decimal("1000.00"), start_date=days(-30)
    )
    Account.objects.filter(pk=account_a.pk).update(mrr=Decimal("1000.00"))
    return line


@pytest.fixture
def bravo_line(account_b):
    return factories.SubscriptionFactory(account=account_b, external_id="s-bravo", mrr=Decimal("200.00"))


# --- reading ------------------------------------------------------------------------------------


def test_list_renders_lines(client_a, platform):
    response = client_a.get(URL)

    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert set(row) == FIELDS
    assert {k: v for k, v in row.items() if k not in ("created_at", "updated_at")} == {
        "id": platform.pk,
        "external_id": "s-plat",
        "deleted_at": None,
        "account": "a-001",
        "product": "Platform",
        "mrr": "1000.00",
        "quantity": 10,
        "start_date": days(-30).isoformat(),
        "end_date": None,
    }


def test_list_syncs_by_updated_since_and_include_deleted_in_change_order(client_a, account_a):
    old, new, gone = (factories.SubscriptionFactory(account=account_a, external_id=f"s-{n}") for n in range(3))
    Subscription.objects.filter(pk=new.pk).update(updated_at=datetime.datetime(2026, 3, 1, tzinfo=UTC))
    Subscription.objects.filter(pk=old.pk).update(updated_at=datetime.datetime(2026, 1, 1, tzinfo=UTC))
    Subscription.objects.filter(pk=gone.pk).update(
        deleted_at=datetime.datetime(2026, 2, 1, tzinfo=UTC), updated_at=datetime.datetime(2026, 2, 1, tzinfo=UTC)
    )

    assert ids(client_a.get(URL)) == ["s-0", "s-1"]
    assert ids(client_a.get(URL, {"include_deleted": "true"})) == ["s-0", "s-2", "s-1"]
    assert ids(client_a.get(URL, {"updated_since": "2026-02-01", "include_deleted": "true"})) == ["s-2", "s-1"]
    assert ids(client_a.get(URL, {"updated_since": "2026-02-02T00:00:00Z"})) == ["s-1"]


def test_list_filters(client_a, partner_a, account_a):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)
    on = datetime.date(2026, 6, 1)
    factories.SubscriptionFactory(account=account_a, external_id="s-open", product="Platform", start_date=on)
    factories.SubscriptionFactory(
        account=account_a,
        external_id="s-ends",
        product="Analytics",
        start_date=datetime.date(2026, 1, 1),
        end_date=on,
    )
    factories.SubscriptionFactory(
        account=other,
        external_id="s-later",
        product="Platform",
        start_date=datetime.date(2026, 6, 2),
        end_date=datetime.date(2026, 7, 1),
    )

    def listed(**params) -> list[str]:
        return sorted(ids(client_a.get(URL, params)))

    assert listed(account="a-001") == ["s-ends", "s-open"]
    assert listed(account="a-002") == ["s-later"]
    assert listed(product="Platform") == ["s-later", "s-open"]
    # Start inclusive, end exclusive, no end counts for ever.
    assert listed(active_on="2026-06-01") == ["s-open"]
    assert listed(active_on="2026-05-31") == ["s-ends"]
    assert listed(active_on="2026-06-15") == ["s-later", "s-open"]
    assert listed(active_on="2030-01-01") == ["s-open"]
    assert listed(active_on="2026-06-15", account="a-001") == ["s-open"]


@pytest.mark.parametrize("value", ["soon", "2026-02-30", "99999-01-01"])
def test_a_bad_active_on_is_400_in_the_error_shape(client_a, platform, value):
    response = client_a.get(URL, {"active_on": value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("invalid", ["active_on"])


def test_retrieve_and_unknown_is_404(client_a, platform):
    response = client_a.get(detail("s-plat"))

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["mrr"]) == (platform.pk, "1000.00")
    assert client_a.get(detail("nope")).status_code == 404


# --- writing one, and the account's MRR ---------------------------------------------------------


def test_post_creates_a_line_and_the_account_mrr_counts_it(client_a, platform, account_a):
    response = client_a.post(URL, body(external_id="s-new"), format="json")

    assert response.status_code == 201, response.content
    line = Subscription.objects.get(external_id="s-new")
    assert stored(line) == ("a-001", "Analytics", Decimal("1500.00"), 5, days(-10), None, False)
    assert response.json()["mrr"] == "1500.00"
    assert mrr(account_a) == Decimal("2500.00")  # 1,000.00 + 1,500.00


def test_a_line_starting_tomorrow_or_ended_does_not_count_today(client_a, platform, account_a):
    later = client_a.post(URL, body(external_id="s-later", start_date=days(1).isoformat()), format="json")
    ended = client_a.post(
        URL,
        body(external_id="s-ended", start_date=days(-60).isoformat(), end_date=days(0).isoformat()),
        format="json",
    )

    assert (later.status_code, ended.status_code) == (201, 201)
    assert mrr(account_a) == Decimal("1000.00")


def test_post_with_an_existing_external_id_is_409_and_changes_nothing(client_a, platform, account_a):
    response = client_a.post(URL, body(external_id="s-plat"), format="json")

    assert response.status_code == 409
    assert Subscription.objects.count() == 1
    assert stored(platform) == ("a-001", "Platform", Decimal("1000.00"), 10, days(-30), None, False)
    assert mrr(account_a) == Decimal("1000.00")


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"mrr": "-1.00"}, ["mrr"]),
        ({"mrr": "1e20"}, ["mrr"]),
        ({"quantity": -1}, ["quantity"]),
        ({"quantity": 2**40}, ["quantity"]),
        ({"start_date": "2026-02-30"}, ["start_date"]),
        ({"end_date": days(-10).isoformat()}, ["end_date"]),
        ({"product": ""}, ["product"]),
    ],
)
def test_bad_values_are_400_and_write_nothing(client_a, account_a, fields, errors):
    response = client_a.post(URL, body(external_id="s-new", **fields), format="json")

    assert response.status_code == 400, response.content
    assert sorted(response.json()["error"]["fields"]) == errors
    assert Subscription.objects.count() == 0
    assert mrr(account_a) == Decimal("0.00")


def test_put_creates_then_the_same_put_changes_nothing(client_a, account_a):
    first = client_a.put(detail("s-new"), body(), format="json")
    assert first.status_code == 201, first.content
    line = Subscription.objects.get(external_id="s-new")
    expected = ("a-001", "Analytics", Decimal("1500.00"), 5, days(-10), None, False)
    assert stored(line) == expected
    assert mrr(account_a) == Decimal("1500.00")
    updated_at = line.updated_at

    again = client_a.put(detail("s-new"), body(), format="json")

    assert again.status_code == 200
    assert again.json()["id"] == line.pk
    assert Subscription.objects.count() == 1
    assert stored(line) == expected
    assert line.updated_at == updated_at  # not even a sync echo
    assert mrr(account_a) == Decimal("1500.00")


def test_put_moving_a_line_to_another_account_fixes_both_mrrs(client_a, partner_a, platform, account_a):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)

    response = client_a.put(
        detail("s-plat"), body(account="a-002", mrr="1000.00", start_date=days(-30).isoformat()), format="json"
    )

    assert response.status_code == 200
    assert stored(platform)[0] == "a-002"
    assert (mrr(account_a), mrr(other)) == (Decimal("0.00"), Decimal("1000.00"))


def test_patch_changes_the_price_and_the_account_mrr(client_a, platform, account_a):
    factories.SubscriptionFactory(account=account_a, mrr=Decimal("300.00"), start_date=days(-5))

    response = client_a.patch(detail("s-plat"), {"mrr": "1250.50"}, format="json")

    assert response.status_code == 200
    assert stored(platform) == ("a-001", "Platform", Decimal("1250.50"), 10, days(-30), None, False)
    assert mrr(account_a) == Decimal("1550.50")  # 1,250.50 + 300.00


def test_patch_ending_before_the_start_is_400_and_changes_nothing(client_a, platform, account_a):
    response = client_a.patch(detail("s-plat"), {"end_date": days(-30).isoformat()}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["end_date"]
    assert stored(platform)[5] is None
    assert mrr(account_a) == Decimal("1000.00")


def test_patch_ending_a_line_today_takes_it_out_of_the_mrr(client_a, platform, account_a):
    response = client_a.patch(detail("s-plat"), {"end_date": days(0).isoformat()}, format="json")

    assert response.status_code == 200
    assert stored(platform)[5] == days(0)
    assert mrr(account_a) == Decimal("0.00")


def test_delete_leaves_a_tombstone_and_takes_it_out_of_the_mrr(client_a, platform, account_a):
    response = client_a.delete(detail("s-plat"))

    assert response.status_code == 204
    assert stored(platform)[-1] is True
    assert mrr(account_a) == Decimal("0.00")
    assert ids(client_a.get(URL)) == []
    assert ids(client_a.get(URL, {"include_deleted": "true"})) == ["s-plat"]


def test_a_stale_put_does_not_resurrect_a_tombstone_and_deleted_false_does(client_a, platform, account_a):
    assert client_a.delete(detail("s-plat")).status_code == 204

    stale = client_a.put(detail("s-plat"), body(), format="json")

    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "deleted"
    assert stored(platform) == ("a-001", "Platform", Decimal("1000.00"), 10, days(-30), None, True)
    assert mrr(account_a) == Decimal("0.00")

    restored = client_a.put(detail("s-plat"), body(deleted=False, mrr="800.00"), format="json")

    assert restored.status_code == 200, restored.content
    assert stored(platform) == ("a-001", "Analytics", Decimal("800.00"), 5, days(-10), None, False)
    assert mrr(account_a) == Decimal("800.00")


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_is_all_or_none_with_errors_by_index(client_a, platform, account_a):
    items = [
        body(external_id="s-1"),
        body(external_id="s-2", mrr="-5"),
        body(external_id="s-3", account="nope"),
        body(external_id="s-1"),
    ]

    response = client_a.post(f"{URL}bulk/", items, format="json")

    assert response.status_code == 400
    assert [(i["index"], sorted(i["error"]["fields"])) for i in response.json()["error"]["items"]] == [
        (1, ["mrr"]),
        (2, ["account"]),
        (3, ["external_id"]),
    ]
    assert list(Subscription.objects.values_list("external_id", flat=True)) == ["s-plat"]
    assert mrr(account_a) == Decimal("1000.00")


def test_bulk_writes_the_valid_items_when_not_all_or_none(client_a, platform, account_a):
    items = [
        body(external_id="s-1", mrr="250.00"),
        body(external_id="s-2", end_date=days(-20).isoformat()),
        body(external_id="s-plat", product="Platform", mrr="900.00", start_date=days(-30).isoformat()),
    ]

    response = client_a.post(f"{URL}bulk/?all_or_none=false", items, format="json")

    assert response.status_code == 200
    assert [(r["index"], r["status"]) for r in response.json()["results"]] == [
        (0, "created"),
        (1, "error"),
        (2, "updated"),
    ]
    assert list(response.json()["results"][1]["error"]["fields"]) == ["end_date"]
    assert sorted(Subscription.objects.values_list("external_id", "mrr")) == [
        ("s-1", Decimal("250.00")),
        ("s-plat", Decimal("900.00")),
    ]
    assert mrr(account_a) == Decimal("1150.00")  # 250.00 + 900.00


def test_bulk_writes_take_the_same_queries_for_3_and_30_items(client_a, partner_a, account_a):
    other = factories.AccountFactory(external_id="a-002", partner=partner_a)
    assert client_a.get(URL).status_code == 200  # the key's last use is recorded once

    def write(first: int, count: int) -> int:
        items = [
            body(external_id=f"s-{n}", mrr="10.00", account="a-001" if n % 2 else "a-002")
            for n in range(first, first + count)
        ]
        with CaptureQueriesContext(connection) as queries:
            response = client_a.post(f"{URL}bulk/", items, format="json")
        assert response.status_code == 200, response.content
        return len(queries)

    assert write(0, 3) == write(100, 30)
    # Odd numbers went to a-001: 1 of 0..2 and 15 of 100..129.
    assert (mrr(account_a), mrr(other)) == (Decimal("160.00"), Decimal("170.00"))


def test_list_pages_take_the_same_queries_for_3_and_30_rows(client_a, account_a):
    assert client_a.get(URL).status_code == 200

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client_a.get(URL, {"limit": 1000, "active_on": "2026-01-01"})
        assert response.status_code == 200
        return len(queries)

    factories.SubscriptionFactory.create_batch(3, account=account_a)
    small = list_queries()
    factories.SubscriptionFactory.create_batch(27, account=account_a)
    assert list_queries() == small
    assert len(client_a.get(URL).json()["results"]) == 30


# --- scope --------------------------------------------------------------------------------------


def test_scope_lists_and_filters(client_a, client_b, client_all, platform, bravo_line):
    assert ids(client_a.get(URL)) == ["s-plat"]
    assert ids(client_b.get(URL)) == ["s-bravo"]
    assert ids(client_b.get(URL, {"account": "a-001"})) == []
    assert ids(client_b.get(URL, {"product": "Platform"})) == ["s-bravo"]
    assert sorted(ids(client_all.get(URL))) == ["s-bravo", "s-plat"]
    assert ids(client_all.get(URL, {"account": "a-001"})) == ["s-plat"]


def test_scope_detail_routes_are_404_outside_it(client_b, client_all, platform, account_a):
    assert client_b.get(detail("s-plat")).status_code == 404
    assert client_b.patch(detail("s-plat"), {"mrr": "1.00"}, format="json").status_code == 404
    assert client_b.delete(detail("s-plat")).status_code == 404
    assert stored(platform) == ("a-001", "Platform", Decimal("1000.00"), 10, days(-30), None, False)
    assert mrr(account_a) == Decimal("1000.00")
    assert client_all.get(detail("s-plat")).status_code == 200


def test_scope_writes_naming_another_partners_account_are_unknown(client_b, account_a, bravo_line):
    single = client_b.post(URL, body(external_id="s-x"), format="json")
    put = client_b.put(detail("s-y"), body(), format="json")
    bulk = client_b.post(
        f"{URL}bulk/", [body(external_id="s-z", account="b-001"), body(external_id="s-w")], format="json"
    )

    for response in (single, put):
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"account": ["There is no account “a-001”."]}
    assert bulk.status_code == 400
    assert [i["index"] for i in bulk.json()["error"]["items"]] == [1]
    assert list(Subscription.objects.values_list("external_id", flat=True)) == ["s-bravo"]
    assert mrr(account_a) == Decimal("0.00")


def test_scope_put_on_an_external_id_held_by_another_partner_is_409(client_b, platform, account_a, account_b):
    response = client_b.put(detail("s-plat"), body(account="b-001"), format="json")

    assert response.status_code == 409
    assert stored(platform) == ("a-001", "Platform", Decimal("1000.00"), 10, days(-30), None, False)
    assert (mrr(account_a), mrr(account_b)) == (Decimal("1000.00"), Decimal("0.00"))


def test_scope_all_sees_and_writes_every_account(client_all, platform, account_b):
    response = client_all.put(detail("s-b2"), body(account="b-001", mrr="70.00"), format="json")

    assert response.status_code == 201
    assert mrr(account_b) == Decimal("70.00")


def test_a_retried_post_with_an_idempotency_key_counts_the_line_once(client_a, platform, account_a):
    headers = {"HTTP_IDEMPOTENCY_KEY": "line-retry-1"}
    first = client_a.post(URL, body(external_id="s-new"), format="json", **headers)
    again = client_a.post(URL, body(external_id="s-new"), format="json", **headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert Subscription.objects.count() == 2
    assert mrr(account_a) == Decimal("2500.00")


def test_a_line_of_an_account_without_external_id_renders_it_as_null(client_all):
    factories.SubscriptionFactory(account=factories.AccountFactory(external_id=None), external_id="s-ws")

    response = client_all.get(detail("s-ws"))

    assert (response.status_code, response.json()["account"]) == (200, None)
