"""The accounts admin: actions, deletes, inlines and imports go through the services, set-based."""

import datetime
from decimal import Decimal

import pytest
import tablib
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.admin import AccountResource, ContactResource, SubscriptionResource
from accounts.models import Account, ChurnEvent, Contact, Partner, Subscription, TierAssignment, Touch
from accounts.services import account_create, account_delete, touch_log
from tests import factories
from tests.accounts.conftest import recomputed, revenue_recomputes
from tests.admin.test_admin import admin_url, form_data, import_csv, messages_of

pytestmark = pytest.mark.django_db

D = datetime.date


@pytest.fixture
def account(csm):
    """An account made by the service, so that it has its tier history."""
    return account_create(
        name="Acme",
        external_id="acme",
        owner=csm,
        tier=factories.default_tier("low-touch"),
        customer_since=D(2025, 1, 1),
    )


def queries_of(client, url: str) -> int:
    ContentType.objects.get_for_models(Account, Partner)  # cached per process: keep it out of the counts
    client.get(url)  # warm any other per-process cache
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


# --- change pages with inline rows ---------------------------------------------------------------


def test_account_change_page_queries_do_not_grow_with_inline_rows(admin_client, csm):
    def account_with(rows: int) -> Account:
        account = factories.AccountFactory(owner=csm)
        start = timezone.now() - datetime.timedelta(days=10 * rows + 10)
        for row in range(rows):
            factories.ContactFactory(account=account)
            factories.SubscriptionFactory(account=account, start_date=D(2024, 1, 1) + datetime.timedelta(days=row))
            factories.TierAssignmentFactory(
                account=account,
                started_at=start + datetime.timedelta(days=10 * row),
                ended_at=start + datetime.timedelta(days=10 * row + 10),
                assigned_by=csm,
            )
            factories.TouchFactory(account=account, occurred_at=timezone.now() - datetime.timedelta(days=row + 1))
            factories.ChurnEventFactory(account=account, churned_on=D(2024, 1, 31) + datetime.timedelta(days=row))
        return account

    few, many = account_with(2), account_with(6)

    page = admin_client.get(admin_url(Account, "change", many.pk))
    shown = {inline.formset.model: len(inline.formset.forms) for inline in page.context["inline_admin_formsets"]}
    assert shown == {Contact: 6, Subscription: 6, TierAssignment: 6, Touch: 6, ChurnEvent: 6}
    assert queries_of(admin_client, admin_url(Account, "change", few.pk)) == queries_of(
        admin_client, admin_url(Account, "change", many.pk)
    )


def test_partner_change_page_queries_do_not_grow_with_keys(admin_client):
    few, many = factories.PartnerFactory(), factories.PartnerFactory()
    factories.PartnerKeyFactory.create_batch(2, partner=few)
    factories.PartnerKeyFactory.create_batch(6, partner=many)

    assert queries_of(admin_client, admin_url(Partner, "change", few.pk)) == queries_of(
        admin_client, admin_url(Partner, "change", many.pk)
    )


def test_churn_events_are_shown_read_only_on_the_account(admin_client, account):
    factories.ChurnEventFactory(account=account, churned_on=D(2025, 3, 31), reason="Budget cut")

    page = admin_client.get(admin_url(Account, "change", account.pk))

    (inline,) = [i for i in page.context["inline_admin_formsets"] if i.formset.model is ChurnEvent]
    assert not inline.has_add_permission and not inline.has_change_permission and not inline.has_delete_permission
    assert "Budget cut" in page.content.decode()


# --- saving an account with its inlines ----------------------------------------------------------


def test_saving_an_account_with_inline_rows_queues_one_recompute(
    admin_client, account, task_runs, django_capture_on_commit_callbacks
):
    url = admin_url(Account, "change", account.pk)
    data = form_data(admin_client.get(url))
    data["renewal_date"] = "2026-09-30"
    data["subscriptions-TOTAL_FORMS"] = data["contacts-TOTAL_FORMS"] = "2"
    for row, (product, mrr) in enumerate([("Platform", "1000.00"), ("Seats", "250.00")]):
        data.update(
            {
                f"subscriptions-{row}-product": product,
                f"subscriptions-{row}-mrr": mrr,
                f"subscriptions-{row}-quantity": "1",
                f"subscriptions-{row}-start_date": "2025-01-01",
                f"contacts-{row}-name": f"Contact {row}",
                f"contacts-{row}-role": Contact.Role.USER,
            }
        )

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert recomputed(task_runs) == [[account.pk]]
    account.refresh_from_db()
    assert account.mrr == Decimal("1250.00") and account.contacts.count() == 2


def test_a_churn_date_set_in_admin_records_a_churn_event(admin_client, account):
    url = admin_url(Account, "change", account.pk)
    data = form_data(admin_client.get(url))
    data.update(churned_at="2026-01-31", churn_reason="Moved to a rival", lifecycle_stage="churned")

    assert admin_client.post(url, data).status_code == 302

    assert list(account.churn_events.values_list("churned_on", "reason")) == [(D(2026, 1, 31), "Moved to a rival")]


# --- actions --------------------------------------------------------------------------------------


def test_lock_and_unlock_actions_record_tier_history(admin_client, admin_user, account):
    url = admin_url(Account, "changelist")

    response = admin_client.post(url, {"action": "lock_tier", "_selected_action": [account.pk]}, follow=True)

    assert "1 account changed." in messages_of(response)
    account.refresh_from_db()
    assert account.tier_locked
    current = TierAssignment.objects.get(account=account, ended_at__isnull=True)
    assert (current.tier.slug, current.source, current.reason, current.assigned_by) == (
        "low-touch",
        TierAssignment.Source.MANUAL,
        "Tier locked by admin",
        admin_user,
    )

    admin_client.post(url, {"action": "unlock_tier", "_selected_action": [account.pk]})
    current = TierAssignment.objects.get(account=account, ended_at__isnull=True)
    assert current.reason == "Tier unlocked by admin"
    assert TierAssignment.objects.filter(account=account).count() == 3


def test_bulk_delete_is_set_based_and_queues_one_recompute(admin_client, task_runs, django_capture_on_commit_callbacks):
    def delete_touches(count: int) -> tuple[int, list]:
        accounts = factories.AccountFactory.create_batch(count)
        touches = [
            touch_log(account=a, kind=Touch.Kind.CALL, occurred_at=timezone.now(), subject="Call") for a in accounts
        ]
        task_runs.clear()
        data = {"action": "delete_selected", "_selected_action": [t.pk for t in touches], "post": "yes"}
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=False):
            assert admin_client.post(admin_url(Touch, "changelist"), data).status_code == 302
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(admin_url(Touch, "changelist"), data)  # nothing left to delete: nothing queued
        return len(queries), accounts

    few, _accounts = delete_touches(2)
    many, accounts = delete_touches(6)
    assert few == many
    assert not Touch.objects.alive().exists()
    assert set(Account.objects.values_list("last_touch_at", flat=True)) == {None}

    touches = [touch_log(account=a, kind=Touch.Kind.CALL, occurred_at=timezone.now(), subject="A") for a in accounts]
    task_runs.clear()
    data = {"action": "delete_selected", "_selected_action": [t.pk for t in touches], "post": "yes"}
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(admin_url(Touch, "changelist"), data)
    assert recomputed(task_runs) == [sorted(a.pk for a in accounts)]


def test_deleting_and_restoring_accounts_in_admin(admin_client, task_runs, django_capture_on_commit_callbacks):
    lines = factories.SubscriptionFactory.create_batch(3, start_date=D(2025, 1, 1))
    selected = [lines[0].account_id, lines[1].account_id]
    url = admin_url(Account, "changelist")

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"action": "delete_selected", "_selected_action": selected, "post": "yes"})

    assert set(Account.objects.deleted().values_list("pk", flat=True)) == set(selected)
    assert recomputed(task_runs) == [sorted(selected)] and revenue_recomputes(task_runs) == 1

    task_runs.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url + "?deleted=yes", {"action": "restore_selected", "_selected_action": selected}, follow=True
        )

    assert "2 accounts restored." in messages_of(response)
    assert not Account.objects.deleted().exists()
    assert recomputed(task_runs) == [sorted(selected)] and revenue_recomputes(task_runs) == 1


def test_the_delete_confirmation_says_how_many_months_of_revenue_history_leave_the_metrics(admin_client):
    today = timezone.localdate()
    this_month = today.replace(day=1)
    three_months_ago = (this_month - datetime.timedelta(days=80)).replace(day=1)
    acme = factories.AccountFactory(name="Acme")
    # Paid at the ends of the month three months ago, the two after it and this month: 4 months.
    factories.SubscriptionFactory(account=acme, start_date=three_months_ago)
    idle = factories.AccountFactory(name="Idle")

    page = admin_client.get(admin_url(Account, "delete", acme.pk)).content.decode()
    assert "4 months of revenue history" in page

    response = admin_client.post(
        admin_url(Account, "changelist"), {"action": "delete_selected", "_selected_action": [acme.pk, idle.pk]}
    )
    assert response.context["deletable_objects"] == [
        ["Account: Acme (4 months of revenue history leave the metrics)", "Account: Idle"]
    ]
    assert dict(response.context["model_count"]) == {"accounts": 2, "months of revenue history": 4}


def test_a_deleted_account_is_restored_from_its_page_too(admin_client, account):
    account_delete(account=account)
    response = admin_client.post(
        admin_url(Account, "changelist") + "?deleted=yes",
        {"action": "restore_selected", "_selected_action": [account.pk]},
        follow=True,
    )
    assert "1 account restored." in messages_of(response)
    account.refresh_from_db()
    assert account.deleted_at is None


# --- imports --------------------------------------------------------------------------------------


def import_queries(resource_class, headers: list[str], rows: list[list]) -> int:
    dataset = tablib.Dataset(*rows, headers=headers)
    with CaptureQueriesContext(connection) as queries:
        result = resource_class().import_data(dataset)
    assert not result.has_errors() and not result.has_validation_errors(), [
        (row.number, row.error_dict) for row in result.invalid_rows
    ] + [str(e.error) for e in result.base_errors]
    return len(queries)


ACCOUNT_COLUMNS = ["external_id", "name", "owner", "partner", "tier", "tier_locked", "churned_at", "churn_reason"]


def test_account_imports_take_a_fixed_number_of_queries(csm):
    factories.PartnerFactory(name="Reseller")

    def rows(first: int, count: int) -> list[list]:
        return [
            [f"a-{n}", f"Account {n}", "casey", "Reseller", "high-touch", "0", "", ""]
            for n in range(first, first + count)
        ]

    assert import_queries(AccountResource, ACCOUNT_COLUMNS, rows(0, 3)) == import_queries(
        AccountResource, ACCOUNT_COLUMNS, rows(100, 12)
    )
    # And updating as many existing accounts (a new tier each) costs the same for few and many.
    changed = [[*row[:4], "low-touch", *row[5:]] for row in rows(0, 3)]
    many_changed = [[*row[:4], "low-touch", *row[5:]] for row in rows(100, 12)]
    assert import_queries(AccountResource, ACCOUNT_COLUMNS, changed) == import_queries(
        AccountResource, ACCOUNT_COLUMNS, many_changed
    )
    assert TierAssignment.objects.filter(ended_at__isnull=True, tier__slug="low-touch").count() == 15
    assert TierAssignment.objects.filter(ended_at__isnull=False, tier__slug="high-touch").count() == 15


def test_an_account_import_records_churns_and_tier_locks(admin_client, admin_user, account):
    content = (
        "external_id,name,tier,tier_locked,churned_at,churn_reason\n"
        "acme,Acme,low-touch,1,2026-01-31,Moved to a rival\n"
        "new-1,Newco,tech-touch,0,,\n"
    )

    import_csv(admin_client, Account, content)

    account.refresh_from_db()
    assert account.tier_locked
    assert list(account.churn_events.values_list("churned_on", "reason")) == [(D(2026, 1, 31), "Moved to a rival")]
    current = TierAssignment.objects.get(account=account, ended_at__isnull=True)
    assert (current.reason, current.assigned_by) == ("Tier locked by admin", admin_user)
    newco = TierAssignment.objects.get(account__external_id="new-1")
    assert (newco.tier.slug, newco.reason, newco.assigned_by) == ("tech-touch", "Imported from a file", admin_user)


CONTACT_COLUMNS = ["external_id", "account", "name", "email", "role", "is_primary"]


def test_contact_imports_take_a_fixed_number_of_queries_and_keep_one_primary(account):
    other = factories.AccountFactory(external_id="other")
    first = factories.ContactFactory(account=account, is_primary=True)

    def rows(first_number: int, count: int, primary_at: int | None = None) -> list[list]:
        return [
            [f"c-{n}", "acme" if n % 2 else "other", f"Contact {n}", f"c{n}@example.com", "user", int(n == primary_at)]
            for n in range(first_number, first_number + count)
        ]

    assert import_queries(ContactResource, CONTACT_COLUMNS, rows(0, 3, primary_at=1)) == import_queries(
        ContactResource, CONTACT_COLUMNS, rows(100, 12, primary_at=103)
    )
    first.refresh_from_db()
    assert not first.is_primary and not Contact.objects.get(external_id="c-1").is_primary
    assert list(Contact.objects.filter(is_primary=True).values_list("external_id", flat=True)) == ["c-103"]
    assert Contact.objects.filter(account=other).count() == 8  # c-0, c-2 and the six even ones from c-100


def test_a_contact_file_making_two_primaries_of_one_account_is_refused_by_row(account):
    dataset = tablib.Dataset(
        ["c-1", "acme", "Ann", "ann@example.com", "user", 1],
        ["c-2", "acme", "Bob", "bob@example.com", "user", 1],
        headers=CONTACT_COLUMNS,
    )

    result = ContactResource().import_data(dataset)

    (invalid,) = result.invalid_rows
    assert invalid.number == 2 and "is_primary" in invalid.field_specific_errors
    assert not Contact.objects.exists()


SUBSCRIPTION_COLUMNS = ["external_id", "account", "product", "mrr", "quantity", "start_date", "end_date"]


def test_subscription_imports_take_a_fixed_number_of_queries_and_keep_mrr_right(account):
    other = factories.AccountFactory(external_id="other")

    def rows(first: int, count: int) -> list[list]:
        return [
            [f"s-{n}", "acme" if n % 2 else "other", "Platform", "100.00", 1, "2025-01-01", ""]
            for n in range(first, first + count)
        ]

    assert import_queries(SubscriptionResource, SUBSCRIPTION_COLUMNS, rows(0, 3)) == import_queries(
        SubscriptionResource, SUBSCRIPTION_COLUMNS, rows(100, 12)
    )
    account.refresh_from_db()
    other.refresh_from_db()
    # acme: s-1, s-101, s-103, ..., s-111 (7 lines); other: s-0, s-2, s-100, ..., s-110 (8 lines).
    assert (account.mrr, other.mrr) == (Decimal("700.00"), Decimal("800.00"))


def test_a_subscription_import_queues_the_accounts_recompute_once(
    admin_client, account, task_runs, django_capture_on_commit_callbacks
):
    other = factories.AccountFactory(external_id="other")
    content = (
        "external_id,account,product,mrr,quantity,start_date,end_date\n"
        "s-1,acme,Platform,1000.00,10,2025-01-01,\n"
        "s-2,other,Platform,250.00,1,2025-02-01,\n"
        "s-3,acme,Add-on,99.00,1,2025-03-01,\n"
    )

    with django_capture_on_commit_callbacks(execute=True):
        import_csv(admin_client, Subscription, content)

    assert Subscription.objects.count() == 3
    assert recomputed(task_runs) == [sorted([account.pk, other.pk])]


def test_a_subscription_row_ending_before_it_starts_is_refused_by_row(account):
    dataset = tablib.Dataset(
        ["s-1", "acme", "Platform", "100.00", 1, "2025-01-01", ""],
        ["s-2", "acme", "Platform", "100.00", 1, "2025-03-01", "2025-02-01"],
        ["s-1", "acme", "Platform", "120.00", 1, "2025-01-01", ""],
        headers=SUBSCRIPTION_COLUMNS,
    )

    result = SubscriptionResource().import_data(dataset)

    assert {row.number: set(row.field_specific_errors) for row in result.invalid_rows} == {
        2: {"end_date"},
        3: {"external_id"},
    }
    assert not Subscription.objects.exists()
    account.refresh_from_db()
    assert account.mrr == Decimal("0.00")
