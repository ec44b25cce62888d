"""Set-based writers record every row they change, in a fixed number of statements, and nothing else:
no history for unchanged rows, derived fields (MRR, health, last touch) or the nightly recompute."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account, Contact, Tier
from csm.db import bulk_insert, bulk_update, record_history
from metrics.tasks import nightly_workflow
from tests import factories
from tests.api.conftest import key_client
from tests.audit.conftest import actors, history_count, history_of

pytestmark = pytest.mark.django_db

# The write itself; on SQLite, also the old rows copied aside, the history insert and the copy dropped.
STATEMENTS_PER_BATCH = 1 if connection.vendor == "postgresql" else 4


def accounts(n: int) -> list[Account]:
    return [factories.AccountFactory(name=f"A{i}") for i in range(n)]


@pytest.mark.parametrize("n", [3, 12])
def test_bulk_update_records_the_changed_rows_only_in_a_fixed_number_of_statements(n):
    rows = accounts(n)
    changed = rows[::3]  # every third account gets a new name; the others are written unchanged
    for account in changed:
        account.name += " renamed"
    before = history_count(Account)

    with CaptureQueriesContext(connection) as queries:
        bulk_update(Account, rows, ["name", "renewal_date"])

    assert len(queries) == STATEMENTS_PER_BATCH
    assert history_count(Account) == before + len(changed)
    for account in changed:
        latest = history_of(account)[-1]
        assert (latest.history_type, latest.name, latest.actor_kind) == ("~", account.name, "system")


def test_bulk_update_of_derived_fields_only_writes_no_history():
    rows = accounts(4)
    for account in rows:
        account.mrr, account.health_score, account.health_band = Decimal(100), Decimal("55.5"), "yellow"
    before = history_count(Account)

    with CaptureQueriesContext(connection) as queries:
        bulk_update(Account, rows, ["mrr", "health_score", "health_band", "updated_at"])

    assert len(queries) == 1  # the plain UPDATE: no history statement at all
    assert history_count(Account) == before
    assert Account.objects.filter(health_band="yellow").count() == 4


@pytest.mark.parametrize("n", [2, 9])
def test_bulk_insert_records_every_new_row(n):
    account = factories.AccountFactory()
    contacts = [Contact(account=account, name=f"C{i}") for i in range(n)]
    before = history_count(Contact)

    with CaptureQueriesContext(connection) as queries:
        bulk_insert(Contact, contacts)

    # PostgreSQL: the keys drawn, then one statement inserting and recording; elsewhere bulk_create and
    # the history insert.
    assert len(queries) == 2
    assert history_count(Contact) == before + n
    assert sorted(row.name for c in contacts for row in history_of(c)) == sorted(f"C{i}" for i in range(n))
    assert {row.history_type for c in contacts for row in history_of(c)} == {"+"}


def test_record_history_is_one_statement_per_batch():
    rows = accounts(5)
    Account.objects.filter(pk__in=[a.pk for a in rows]).update(lifecycle_stage="adoption")
    with CaptureQueriesContext(connection) as queries:
        record_history(Account, [a.pk for a in rows])
    assert len(queries) == 1
    assert [history_of(a)[-1].lifecycle_stage for a in rows] == ["adoption"] * 5


def test_an_api_bulk_of_more_items_runs_the_same_queries_and_records_each_change():
    partner = factories.PartnerFactory(name="Billing", scope="all")
    client = key_client(partner)
    by_key = ("partner_key", "Billing (key tests)")

    def bulk(n: int) -> int:
        """Half the items change an account, half create one; returns the request's queries."""
        for i in range(n // 2):
            factories.AccountFactory(partner=partner, external_id=f"b{n}-{i}", name=f"B {i}")
        items = [{"external_id": f"b{n}-{i}", "name": f"B {i} changed"} for i in range(n // 2)]
        items += [{"external_id": f"n{n}-{i}", "name": f"N {i}"} for i in range(n - n // 2)]
        client.get("/api/v1/accounts/")  # the key's last use is written at most once a minute
        before = history_count(Account)
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/api/v1/accounts/bulk/", items, format="json")
        assert response.status_code == 200, response.json()
        assert history_count(Account) == before + n
        changed = Account.objects.filter(external_id__startswith=f"b{n}-")
        created = Account.objects.filter(external_id__startswith=f"n{n}-")
        assert [actors(history_of(a))[-1] for a in changed] == [("~", *by_key)] * (n // 2)
        assert [actors(history_of(a)) for a in created] == [[("+", *by_key)]] * (n - n // 2)
        return len(queries)

    assert bulk(2) == bulk(8)


def test_the_nightly_recompute_records_no_history_for_unchanged_accounts():
    tier = Tier.objects.get(slug="low-touch")  # ARR 30,000 qualifies for low touch: the rules move nothing
    rows = [factories.AccountFactory(tier=tier) for _ in range(3)]
    for account in rows:
        factories.SubscriptionFactory(account=account, mrr=Decimal(2_500), start_date=datetime.date(2025, 1, 1))
        factories.TouchFactory(account=account, occurred_at=timezone.now() - datetime.timedelta(days=2))
    Account.objects.update(mrr=0, health_score=None, health_band="", last_touch_at=None)
    before = {model: history_count(model) for model in (Account, Contact, Tier)}

    nightly_workflow().apply()

    assert Account.objects.filter(mrr=Decimal(2_500)).count() == 3  # the derived fields were rewritten
    assert Account.objects.exclude(health_band="").count() == 3
    assert {model: history_count(model) for model in (Account, Contact, Tier)} == before


def test_the_nightly_tier_rules_record_each_move_as_the_rule():
    account = factories.AccountFactory(tier=Tier.objects.get(slug="tech-touch"))
    factories.SubscriptionFactory(account=account, mrr=Decimal(10_000), start_date=datetime.date(2025, 1, 1))

    nightly_workflow().apply()

    assert actors(history_of(account)[1:]) == [("~", "rule", "tier rules")]
    assert history_of(account)[-1].tier_id == Tier.objects.get(slug="high-touch").pk
