"""Django admin: every page renders in a fixed number of queries, and every change goes through a service."""

import datetime
import re
from decimal import Decimal
from typing import Any

import factory
import pytest
import tablib
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.forms import MultiWidget
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from import_export.formats.base_formats import CSV

from accounts.admin import AccountResource
from accounts.models import (
    Account,
    ChurnEvent,
    Contact,
    Partner,
    PartnerKey,
    Subscription,
    Tier,
    TierAssignment,
    Touch,
)
from accounts.services import account_create, subscription_add, touch_log
from csm.admin import EstimatedCountPaginator, is_unfiltered, table_row_estimate
from metrics.models import (
    AccountChurn,
    Alert,
    AlertRule,
    HealthComponent,
    HealthModel,
    HealthSnapshot,
    PortfolioHistory,
    RecomputeIssue,
    RevenueMonth,
    UsageRecord,
)
from success_plans.models import (
    Goal,
    Initiative,
    PlanTemplate,
    SuccessPlan,
    Target,
    TargetMeasurement,
    TemplateGoal,
    TemplateInitiative,
    TemplateTarget,
)
from tests import factories

pytestmark = pytest.mark.django_db

ADMIN_APPS = ("accounts", "success_plans", "metrics")


class AlertRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertRule

    name = factory.Sequence(lambda n: f"Rule {n}")
    kind = AlertRule.Kind.TOUCH_OVERDUE


class MonthlyRevenueFactory(factories.RevenueMonthFactory):
    """One row per month, so that batches respect the (month, segment) uniqueness."""

    month = factory.Sequence(lambda n: datetime.date(2000 + n // 12, n % 12 + 1, 1))


class PortfolioHistoryFactory(factory.django.DjangoModelFactory):
    through = factory.Sequence(lambda n: datetime.date(2000 + n // 12, n % 12 + 1, 1))
    computed_at = factory.LazyFunction(timezone.now)

    class Meta:
        model = PortfolioHistory


class AccountChurnFactory(factory.django.DjangoModelFactory):
    account = factory.SubFactory(factories.AccountFactory)
    month = datetime.date(2025, 4, 1)
    tenure_months = 3
    mrr = Decimal("500.00")
    reason = "Budget cut"

    class Meta:
        model = AccountChurn


FACTORIES = {
    Partner: factories.PartnerFactory,
    PartnerKey: factories.PartnerKeyFactory,
    Tier: factories.TierFactory,
    Account: factories.AccountFactory,
    Contact: factories.ContactFactory,
    Subscription: factories.SubscriptionFactory,
    TierAssignment: factories.TierAssignmentFactory,
    Touch: factories.TouchFactory,
    PlanTemplate: factories.PlanTemplateFactory,
    TemplateGoal: factories.TemplateGoalFactory,
    TemplateTarget: factories.TemplateTargetFactory,
    TemplateInitiative: factories.TemplateInitiativeFactory,
    SuccessPlan: factories.SuccessPlanFactory,
    Goal: factories.GoalFactory,
    Target: factories.TargetFactory,
    Initiative: factories.InitiativeFactory,
    UsageRecord: factories.UsageRecordFactory,
    HealthModel: factories.HealthModelFactory,
    HealthComponent: factories.HealthComponentFactory,
    HealthSnapshot: factories.HealthSnapshotFactory,
    RevenueMonth: MonthlyRevenueFactory,
    AlertRule: AlertRuleFactory,
    Alert: factories.AlertFactory,
    ChurnEvent: factories.ChurnEventFactory,
    TargetMeasurement: factories.TargetMeasurementFactory,
    RecomputeIssue: factories.RecomputeIssueFactory,
    PortfolioHistory: PortfolioHistoryFactory,
    AccountChurn: AccountChurnFactory,
}

# Most queries a page may take: (changelist, change page, add page). Every page pays two for the
# session and the user, every changelist one for the count and one for the rows, every change page one
# for the object (with the relations its list shows). The rest are named per admin; add pages take only
# the two (or refuse with 403 for admins of computed rows).
QUERY_LIMITS = {
    Partner: (4, 4, 2),  # change: key inline
    PartnerKey: (5, 3, 2),  # changelist: partner filter
    Tier: (4, 3, 2),
    # changelist: filters on tier, owner, industry, region
    # change: contacts, lines, tier history, recent touches, churn history; the owner and tier choices
    Account: (8, 10, 2),
    Contact: (4, 4, 2),  # change: account choice
    Subscription: (4, 4, 2),  # change: account choice
    TierAssignment: (5, 3, 2),  # changelist: tier filter
    Touch: (4, 6, 2),  # change: contacts, account, CSM choices
    PlanTemplate: (5, 4, 2),  # changelist: tier filter; change: goal inline
    TemplateGoal: (5, 6, 2),  # changelist: template filter; change: target and initiative inlines, template choice
    TemplateTarget: (4, 4, 2),  # change: goal choice
    TemplateInitiative: (4, 4, 2),  # change: goal choice
    SuccessPlan: (6, 6, 2),  # changelist: template and owner filters; change: goals, account, owner choices
    # change: target and initiative inlines, plan choice, initiative owner choices (once, for every row and the
    # blank row the add-another button copies; so on the add page too)
    Goal: (4, 7, 3),
    Target: (4, 4, 2),  # change: goal choice
    Initiative: (4, 4, 2),  # change: goal choice (owner empty)
    UsageRecord: (4, 3, 2),  # read-only: usage arrives through the usage service
    HealthModel: (5, 4, 2),  # changelist: open recompute issues; change: component inline
    HealthComponent: (5, 3, 2),  # changelist: model filter; change: the model is read-only
    HealthSnapshot: (4, 4, 2),
    RevenueMonth: (6, 3, 2),  # changelist: date hierarchy (range, then months)
    AlertRule: (4, 3, 2),
    Alert: (6, 4, 2),  # changelist: rule and owner filters; change: owner choice (the rest is read-only)
    ChurnEvent: (6, 3, 2),  # changelist: date hierarchy (range, then months)
    TargetMeasurement: (4, 3, 2),
    RecomputeIssue: (4, 3, 2),
    PortfolioHistory: (4, 3, 2),
    AccountChurn: (6, 4, 2),  # changelist: date hierarchy; change: the account's name
}


def registered_models() -> list:
    models = [model for model in admin.site._registry if model._meta.app_label in ADMIN_APPS]
    return sorted(models, key=lambda model: model._meta.label)


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def form_data(response) -> dict[str, Any]:
    """What a browser posts back from an admin add or change page as it was rendered."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, Any] = {}
    for form in forms:
        for bound in form:
            value = bound.value()
            widget = getattr(bound.field.widget, "widget", bound.field.widget)  # inside the admin's wrapper
            if isinstance(widget, MultiWidget):
                for index, part in enumerate(widget.decompress(value)):
                    data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
            elif isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
            elif getattr(widget, "allow_multiple_selected", False):
                data[bound.html_name] = [str(item) for item in value or []]
            else:
                data[bound.html_name] = "" if value is None else str(value)
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- every admin page ---------------------------------------------------------------------------


def test_every_model_has_an_admin():
    for label in ADMIN_APPS:
        for model in apps.get_app_config(label).get_models():
            assert model in admin.site._registry, model
    assert set(registered_models()) == set(QUERY_LIMITS) == set(FACTORIES)


@pytest.mark.parametrize("model", registered_models(), ids=lambda model: model._meta.label)
def test_admin_pages_render_in_bounded_queries(admin_client, admin_user, django_assert_max_num_queries, model):
    objects = FACTORIES[model].create_batch(3)
    changelist, change, add = QUERY_LIMITS[model]
    if connection.vendor == "postgresql" and admin.site._registry[model].paginator is EstimatedCountPaginator:
        changelist += 1  # the planner's estimate, read before a small table is counted exactly
    ContentType.objects.get_for_model(model)  # cached per process: keep it out of the counts

    with django_assert_max_num_queries(changelist):
        response = admin_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    for obj in objects:
        assert escape(str(obj)) in response.content.decode()

    with django_assert_max_num_queries(change):
        response = admin_client.get(admin_url(model, "change", objects[0].pk))
    assert response.status_code == 200

    request = RequestFactory().get("/")
    request.user = admin_user
    can_add = admin.site._registry[model].has_add_permission(request)
    with django_assert_max_num_queries(add):
        response = admin_client.get(admin_url(model, "add"))
    assert response.status_code == (200 if can_add else 403)


@pytest.mark.parametrize("model", registered_models(), ids=lambda model: model._meta.label)
def test_changelist_queries_do_not_grow_with_rows(admin_client, model):
    url = admin_url(model, "changelist")
    FACTORIES[model].create_batch(3)
    admin_client.get(url)  # warm per-process caches (content types) out of the comparison
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    FACTORIES[model].create_batch(27)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many) == len(few), "\n".join(query["sql"] for query in many.captured_queries)


def test_account_change_page_links_to_the_accounts_rows_elsewhere(admin_client):
    account = factories.AccountFactory()
    factories.UsageRecordFactory(account=account)
    other = factories.UsageRecordFactory()
    response = admin_client.get(admin_url(Account, "change", account.pk))
    usage_url = f"{admin_url(UsageRecord, 'changelist')}?account__id__exact={account.pk}"
    assert usage_url in response.content.decode()

    rows = admin_client.get(usage_url).context["cl"].result_list
    assert other not in rows and len(rows) == 1


# --- accounts -----------------------------------------------------------------------------------


@pytest.fixture
def account(csm):
    """An account made by the service, so that it has its tier history."""
    return account_create(
        name="Acme",
        external_id="acme",
        owner=csm,
        tier=factories.default_tier("low-touch"),
        customer_since=datetime.date(2025, 1, 1),
    )


def test_saving_an_account_with_a_new_tier_records_tier_history(admin_client, admin_user, account):
    url = admin_url(Account, "change", account.pk)
    data = form_data(admin_client.get(url))
    high = factories.default_tier("high-touch")
    data["tier"] = str(high.pk)

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    old, new = TierAssignment.objects.filter(account=account).order_by("started_at")
    assert old.tier.slug == "low-touch" and old.ended_at is not None
    assert new.tier == high and new.ended_at is None
    assert new.source == TierAssignment.Source.MANUAL and new.assigned_by == admin_user
    account.refresh_from_db()
    assert account.tier == high


def test_adding_an_account_in_admin_opens_its_tier_history(admin_client, admin_user, csm):
    data = form_data(admin_client.get(admin_url(Account, "add")))
    data.update(name="Globex", external_id="globex", owner=str(csm.pk), tier=str(factories.default_tier().pk))

    response = admin_client.post(admin_url(Account, "add"), data)

    assert response.status_code == 302
    assignment = TierAssignment.objects.get(account__external_id="globex")
    assert assignment.ended_at is None and assignment.assigned_by == admin_user


def test_a_subscription_added_through_the_account_inline_updates_mrr(admin_client, account):
    url = admin_url(Account, "change", account.pk)
    data = form_data(admin_client.get(url))
    data.update(
        {
            "subscriptions-TOTAL_FORMS": "1",
            "subscriptions-0-product": "Platform",
            "subscriptions-0-mrr": "1250.00",
            "subscriptions-0-quantity": "5",
            "subscriptions-0-start_date": "2025-01-01",
            "subscriptions-0-end_date": "",
            "subscriptions-0-external_id": "",
        }
    )

    response = admin_client.post(url, data)

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.mrr == Decimal("1250.00")


def test_deleting_a_subscription_in_the_account_inline_leaves_a_tombstone(admin_client, account):
    line = subscription_add(account=account, product="Platform", mrr=Decimal(800), start_date=datetime.date(2025, 1, 1))
    url = admin_url(Account, "change", account.pk)
    data = form_data(admin_client.get(url))
    data["subscriptions-0-DELETE"] = "on"

    assert admin_client.post(url, data).status_code == 302

    line.refresh_from_db()
    account.refresh_from_db()
    assert line.deleted_at is not None
    assert account.mrr == Decimal("0.00")


def test_account_list_shows_live_accounts_unless_asked(admin_client):
    live, gone = factories.AccountFactory(name="Live Co"), factories.AccountFactory(name="Gone Co")
    admin_client.post(admin_url(Account, "delete", gone.pk), {"post": "yes"})

    gone.refresh_from_db()
    assert gone.deleted_at is not None
    assert list(admin_client.get(admin_url(Account, "changelist")).context["cl"].result_list) == [live]
    deleted = admin_client.get(admin_url(Account, "changelist") + "?deleted=yes").context["cl"].result_list
    assert list(deleted) == [gone]


def test_deleting_an_account_asks_about_the_account_alone(admin_client, django_assert_max_num_queries):
    account = factories.AccountFactory()
    factories.UsageRecordFactory.create_batch(3, account=account)

    # session, user, account, its live lines (the months it adds to the revenue history): no walk over
    # related rows
    with django_assert_max_num_queries(4):
        response = admin_client.get(admin_url(Account, "delete", account.pk))

    assert response.status_code == 200
    assert response.context["deleted_objects"] == [f"Account: {account}"]
    assert dict(response.context["model_count"]) == {"accounts": 1}


def test_lock_and_unlock_tier_actions(admin_client):
    accounts = factories.AccountFactory.create_batch(2)
    url = admin_url(Account, "changelist")
    selected = [str(account.pk) for account in accounts]

    admin_client.post(url, {"action": "lock_tier", "_selected_action": selected})
    assert set(Account.objects.values_list("tier_locked", flat=True)) == {True}
    admin_client.post(url, {"action": "unlock_tier", "_selected_action": selected})
    assert set(Account.objects.values_list("tier_locked", flat=True)) == {False}


def test_recent_touches_inline_shows_the_latest_ten(admin_client, account):
    now = timezone.now()
    touches = [
        touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=now - datetime.timedelta(days=day), subject="Call")
        for day in range(12)
    ]
    other_account_touch = factories.TouchFactory()

    response = admin_client.get(admin_url(Account, "change", account.pk))

    (inline,) = [i for i in response.context["inline_admin_formsets"] if i.formset.model is Touch]
    shown = [form.instance for form in inline.formset.forms]
    assert shown == touches[:10]
    assert other_account_touch not in shown


def test_making_a_contact_primary_in_admin_demotes_the_previous_one(admin_client, account):
    first = factories.ContactFactory(account=account, is_primary=True)
    second = factories.ContactFactory(account=account)
    url = admin_url(Contact, "change", second.pk)
    data = form_data(admin_client.get(url))
    data["is_primary"] = "on"

    assert admin_client.post(url, data).status_code == 302

    first.refresh_from_db()
    second.refresh_from_db()
    assert second.is_primary and not first.is_primary


# --- touches ------------------------------------------------------------------------------------


def touch_form(client, account, occurred_at: datetime.datetime, **fields) -> dict[str, Any]:
    data = form_data(client.get(admin_url(Touch, "add")))
    local = timezone.localtime(occurred_at)
    data.update(
        account=str(account.pk),
        kind=Touch.Kind.MEETING,
        subject="Kick-off",
        occurred_at_0=local.date().isoformat(),
        occurred_at_1=local.time().replace(microsecond=0).isoformat(),
        **fields,
    )
    return data


def test_a_touch_logged_in_admin_sets_last_touch_and_its_contacts(admin_client, account):
    contact = factories.ContactFactory(account=account)
    occurred_at = (timezone.now() - datetime.timedelta(hours=2)).replace(microsecond=0)

    response = admin_client.post(
        admin_url(Touch, "add"), touch_form(admin_client, account, occurred_at, contacts=[str(contact.pk)])
    )

    assert response.status_code == 302
    touch = Touch.objects.get(account=account)
    assert list(touch.contacts.all()) == [contact]
    account.refresh_from_db()
    assert account.last_touch_at == occurred_at


def test_a_touch_with_another_accounts_contact_is_refused(admin_client, account):
    stranger = factories.ContactFactory()
    data = touch_form(admin_client, account, timezone.now(), contacts=[str(stranger.pk)])

    response = admin_client.post(admin_url(Touch, "add"), data)

    assert response.status_code == 200
    assert "contacts" in response.context["adminform"].form.errors
    assert not Touch.objects.exists()


def test_a_service_refusal_is_a_message_and_writes_nothing(admin_client, account):
    data = touch_form(admin_client, account, timezone.now() + datetime.timedelta(days=2))

    response = admin_client.post(admin_url(Touch, "add"), data, follow=True)

    assert "A touch cannot be logged in the future." in messages_of(response)
    assert not Touch.objects.exists()


def test_deleting_a_touch_in_admin_soft_deletes_it_and_recomputes_last_touch(admin_client, account):
    now = timezone.now()
    older = touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=now - datetime.timedelta(days=9), subject="A")
    newer = touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=now - datetime.timedelta(days=1), subject="B")
    account.refresh_from_db()
    assert account.last_touch_at == newer.occurred_at

    response = admin_client.post(admin_url(Touch, "delete", newer.pk), {"post": "yes"})

    assert response.status_code == 302
    newer.refresh_from_db()
    account.refresh_from_db()
    assert newer.deleted_at is not None
    assert account.last_touch_at == older.occurred_at


def test_deleting_selected_touches_soft_deletes_them(admin_client, account):
    touch = touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=timezone.now(), subject="A")

    response = admin_client.post(
        admin_url(Touch, "changelist"),
        {"action": "delete_selected", "_selected_action": [str(touch.pk)], "post": "yes"},
    )

    assert response.status_code == 302
    touch.refresh_from_db()
    account.refresh_from_db()
    assert touch.deleted_at is not None
    assert account.last_touch_at is None


# --- partners -----------------------------------------------------------------------------------


def test_a_partner_key_created_in_admin_is_shown_once_and_stored_hashed(admin_client):
    data = form_data(admin_client.get(admin_url(Partner, "add")))
    data.update(name="Billing", scope=Partner.Scope.OWN, is_active="on", new_key_name="billing sync")

    response = admin_client.post(admin_url(Partner, "add"), data, follow=True)

    (shown,) = [m for m in messages_of(response) if "csm_" in m]
    raw_key = re.search(r"csm_[\w-]+", shown).group()
    key = PartnerKey.objects.get(partner__name="Billing")
    assert key.name == "billing sync"
    assert key.key_hash == PartnerKey.hash_key(raw_key) and key.key_hash != raw_key
    assert raw_key.startswith(f"csm_{key.prefix}")
    for url in (admin_url(Partner, "change", key.partner_id), admin_url(PartnerKey, "change", key.pk)):
        page = admin_client.get(url).content.decode()
        assert raw_key not in page and key.key_hash not in page


def test_saving_a_partner_without_a_key_name_creates_no_key(admin_client):
    data = form_data(admin_client.get(admin_url(Partner, "add")))
    data.update(name="Support desk", scope=Partner.Scope.ALL)

    assert admin_client.post(admin_url(Partner, "add"), data).status_code == 302
    assert not PartnerKey.objects.exists()


def test_revoke_action_revokes_keys(admin_client):
    key, kept = factories.PartnerKeyFactory.create_batch(2)

    admin_client.post(admin_url(PartnerKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]})

    key.refresh_from_db()
    kept.refresh_from_db()
    assert key.revoked_at is not None and kept.revoked_at is None


# --- metrics ------------------------------------------------------------------------------------


def test_health_snapshot_shows_its_components_as_a_table(admin_client):
    snapshot = factories.HealthSnapshotFactory(
        components=[
            {"kind": "engagement", "raw": 0.5, "score": 100.0, "weight": 0.6},
            {"kind": "sentiment", "raw": None, "score": 25.0, "weight": 0.4},
        ]
    )

    page = admin_client.get(admin_url(HealthSnapshot, "change", snapshot.pk)).content.decode()

    assert "<th>raw value</th>" in page
    assert "<td>Engagement (days since touch / cadence)</td><td>0.5</td><td>100.0</td><td>0.6</td>" in page
    assert "<td>Touch sentiment (90 days)</td><td>-</td><td>25.0</td><td>0.4</td>" in page
    assert '"raw"' not in page and "&quot;raw&quot;" not in page


# --- import and export --------------------------------------------------------------------------

ACCOUNT_HEADER = "external_id,name,owner,tier,lifecycle_stage,renewal_date\n"


def csv_index(model) -> str:
    formats = admin.site._registry[model].get_import_formats()
    return str(formats.index(CSV))


def upload(client, model, content: str):
    return client.post(
        admin_url(model, "import"),
        {
            "resource": "0",
            "format": csv_index(model),
            "import_file": SimpleUploadedFile("rows.csv", content.encode(), content_type="text/csv"),
        },
    )


def import_csv(client, model, content: str):
    """Upload, then confirm, as an admin would; returns the preview response."""
    preview = upload(client, model, content)
    confirm = preview.context.get("confirm_form")
    if confirm is not None:
        client.post(admin_url(model, "process_import"), confirm.initial)
    return preview


def test_a_valid_account_csv_creates_accounts_with_tier_history(admin_client, admin_user, csm):
    content = ACCOUNT_HEADER + "a-1,Initech,casey,high-touch,adoption,2026-09-30\na-2,Umbrella,,tech-touch,,\n"

    import_csv(admin_client, Account, content)

    initech, umbrella = Account.objects.order_by("external_id")
    assert (initech.name, initech.owner, initech.tier.slug) == ("Initech", csm, "high-touch")
    assert initech.renewal_date == datetime.date(2026, 9, 30)
    assert umbrella.owner is None and umbrella.lifecycle_stage == Account.LifecycleStage.ONBOARDING
    history = TierAssignment.objects.get(account=initech)
    assert history.ended_at is None and history.assigned_by == admin_user


def test_reimporting_the_same_file_changes_nothing(csm):
    rows = tablib.Dataset(headers=["external_id", "name", "owner", "tier"])
    rows.append(["a-1", "Initech", "casey", "high-touch"])
    AccountResource().import_data(rows)
    result = AccountResource().import_data(rows)

    assert [row.import_type for row in result.rows] == ["skip"]
    assert TierAssignment.objects.count() == 1


def test_an_account_csv_with_one_bad_row_writes_nothing_and_names_the_row(admin_client, csm):
    content = ACCOUNT_HEADER + "a-1,Initech,casey,high-touch,,\na-2,Umbrella,nobody,no-such-tier,,\na-3,Hooli,,,,\n"

    response = import_csv(admin_client, Account, content)

    assert response.status_code == 200
    assert "Some rows failed to validate" in response.content.decode()
    assert "confirm_form" not in response.context
    (invalid,) = response.context["result"].invalid_rows
    assert invalid.number == 2
    assert invalid.field_specific_errors["owner"] == ["No user with username “nobody”."]
    assert invalid.field_specific_errors["tier"] == ["No tier with slug “no-such-tier”."]
    assert not Account.objects.exists()


def test_a_confirmed_import_that_turned_invalid_writes_and_logs_nothing(admin_client, csm):
    preview = upload(admin_client, Account, ACCOUNT_HEADER + "a-1,Initech,casey,high-touch,,\n")
    csm.delete()  # the owner the preview found is gone by the time the import is confirmed

    response = admin_client.post(
        admin_url(Account, "process_import"), preview.context["confirm_form"].initial, follow=True
    )

    assert "Nothing was imported. Invalid rows: 1. Correct the file and import it again." in messages_of(response)
    assert not Account.objects.exists() and not LogEntry.objects.exists()


def test_the_import_itself_writes_nothing_when_a_row_is_invalid(csm):
    rows = tablib.Dataset(headers=["external_id", "name", "tier"])
    rows.append(["a-1", "Initech", "high-touch"])
    rows.append(["", "No id", "high-touch"])

    result = AccountResource().import_data(rows, dry_run=False)

    assert [row.number for row in result.invalid_rows] == [2]
    assert not Account.objects.exists() and not TierAssignment.objects.exists()


def test_imported_subscriptions_keep_account_mrr_right(admin_client, account):
    content = (
        "external_id,account,product,mrr,quantity,start_date,end_date\n"
        "s-1,acme,Platform,1000.00,10,2025-01-01,\n"
        "s-2,acme,Add-on,250.00,1,2025-02-01,\n"
        "s-3,acme,Old plan,99.00,1,2024-01-01,2025-01-01\n"
    )

    import_csv(admin_client, Subscription, content)

    assert Subscription.objects.filter(account=account).count() == 3
    account.refresh_from_db()
    assert account.mrr == Decimal("1250.00")


def test_an_imported_contact_of_an_unknown_account_is_refused(admin_client, account):
    content = "external_id,account,name,email,role,is_primary\nc-1,acme,Ann,ann@acme.test,champion,1\n"
    content += "c-2,nope,Bob,bob@x.test,user,0\n"

    response = import_csv(admin_client, Contact, content)

    (invalid,) = response.context["result"].invalid_rows
    assert invalid.number == 2
    assert invalid.field_specific_errors["account"] == ["No account with external id “nope”."]
    assert not Contact.objects.exists()


def test_an_imported_primary_contact_demotes_the_previous_one(admin_client, account):
    first = factories.ContactFactory(account=account, is_primary=True)
    content = "external_id,account,name,email,role,is_primary\nc-1,acme,Ann,ann@acme.test,champion,1\n"

    import_csv(admin_client, Contact, content)

    first.refresh_from_db()
    assert Contact.objects.get(external_id="c-1").is_primary and not first.is_primary


def test_export_returns_the_rows_as_csv(admin_client, account):
    factories.AccountFactory(name="Globex", external_id="globex", owner=None)
    url = admin_url(Account, "export")
    form = admin_client.get(url).context["form"]
    data = {"resource": "0", "format": csv_index(Account)}
    data.update({name: "on" for name, field in form.fields.items() if name.startswith("accountresource_")})

    response = admin_client.post(url, data)

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("external_id,name,")
    assert any(line.startswith("acme,Acme,") and ",casey," in line and ",low-touch," in line for line in lines)
    assert any(line.startswith("globex,Globex,") for line in lines)


# --- the paginator ------------------------------------------------------------------------------


def test_paginator_counts_exactly_below_the_estimate_threshold():
    factories.UsageRecordFactory.create_batch(3)
    assert EstimatedCountPaginator(UsageRecord.objects.all(), 100).count == 3
    assert EstimatedCountPaginator(UsageRecord.objects.filter(metric="nps"), 100).count == 0


def test_only_whole_tables_count_as_unfiltered():
    assert is_unfiltered(UsageRecord.objects.all())
    assert is_unfiltered(Account.objects.alive().select_related("owner").order_by("name"))
    assert not is_unfiltered(Account.objects.deleted())
    assert not is_unfiltered(Account.objects.alive().filter(name="Acme"))
    assert not is_unfiltered(UsageRecord.objects.filter(metric="nps"))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner statistics are PostgreSQL's")
def test_paginator_estimates_big_unfiltered_tables_on_postgresql():
    account = factories.AccountFactory()
    start = datetime.date(2000, 1, 1)
    UsageRecord.objects.bulk_create(
        UsageRecord(account=account, metric="logins", date=start + datetime.timedelta(days=day), value=1)
        for day in range(12_000)
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE metrics_usagerecord")
        UsageRecord.objects.filter(date__lt=start + datetime.timedelta(days=1_000)).delete()  # stats now stale

        estimate = table_row_estimate(UsageRecord, "default")
        assert estimate == 12_000
        assert EstimatedCountPaginator(UsageRecord.objects.all(), 100).count == estimate
        assert EstimatedCountPaginator(UsageRecord.objects.filter(metric="logins"), 100).count == 11_000
    finally:
        # ANALYZE writes its statistics outside the test's transaction; leave them as an empty table's.
        UsageRecord.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE metrics_usagerecord")


# --- issue actions: recompute, tier rules, health model versions ---------------------------------


def test_recompute_and_tier_rule_actions(admin_client, django_capture_on_commit_callbacks):
    from metrics.models import HealthSnapshot

    account = factories.AccountFactory(tier=factories.default_tier("tech-touch"))
    factories.SubscriptionFactory(account=account, mrr=Decimal(9000), start_date=datetime.date(2025, 1, 1))
    Account.objects.filter(pk=account.pk).update(mrr=Decimal(9000))
    url = admin_url(Account, "changelist")
    response = admin_client.post(url, {"action": "run_tier_rules", "_selected_action": [account.pk]}, follow=True)
    assert "1 account changed tier." in messages_of(response)
    account.refresh_from_db()
    assert account.tier.slug == "high-touch"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"action": "recompute_health", "_selected_action": [account.pk]}, follow=True)
    assert "Recompute started for 1 account." in messages_of(response)
    assert HealthSnapshot.objects.filter(account=account).exists()


def test_editing_a_health_model_that_has_scored_publishes_a_new_version(admin_client):
    from metrics.models import HealthModel

    snapshot = factories.HealthSnapshotFactory()
    model = snapshot.model_version
    url = admin_url(HealthModel, "change", model.pk)
    data = form_data(admin_client.get(url))
    weight_key = next(k for k in data if k.endswith("-weight"))
    data[weight_key] = "50"
    response = admin_client.post(url, data, follow=True)
    assert any("saved as version 2" in m for m in messages_of(response))
    model.refresh_from_db()
    new = HealthModel.objects.get(version=2)
    assert (model.is_active, new.is_active) == (False, True)
    assert sorted(new.components.values_list("weight", flat=True)) != sorted(
        model.components.values_list("weight", flat=True)
    )
    assert HealthSnapshot.objects.get(pk=snapshot.pk).model_version == model


def test_an_unused_health_model_is_edited_in_place(admin_client):
    from metrics.models import HealthModel

    model = HealthModel.objects.get(is_active=True)
    url = admin_url(HealthModel, "change", model.pk)
    data = form_data(admin_client.get(url))
    data["notes"] = "Tuned"
    admin_client.post(url, data)
    assert HealthModel.objects.count() == 1
    assert HealthModel.objects.get().notes == "Tuned"
