"""Services keep the denormalised fields and the tier history right."""

import ast
import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import accounts
from accounts.models import Account, ChurnEvent, PartnerKey, Subscription, TierAssignment, Touch
from accounts.services import (
    account_create,
    account_delete,
    account_mrr_refresh,
    account_restore,
    account_update,
    accounts_save,
    churn_events_record,
    contact_save,
    partner_key_create,
    partner_key_revoke,
    queue_recompute,
    recompute_batch,
    soft_delete,
    soft_delete_many,
    soft_restore_many,
    subscription_add,
    subscription_change_price,
    subscription_end,
    subscription_save,
    subscriptions_save,
    tier_assign,
    touch_log,
    touch_update,
)
from csm.exceptions import DomainError
from tests import factories
from tests.accounts.conftest import recomputed, revenue_recomputes
from tests.factories import default_tier

pytestmark = pytest.mark.django_db

D = datetime.date


def days_ago(n: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=n)


class TestTouchLog:
    def test_keeps_last_touch_at_at_the_latest_touch(self, csm):
        account = factories.AccountFactory(owner=csm)
        recent = touch_log(account=account, csm=csm, kind="call", occurred_at=days_ago(2), subject="Call")
        account.refresh_from_db()
        assert account.last_touch_at == recent.occurred_at
        # Logging an older touch afterwards does not move it back.
        touch_log(account=account, csm=csm, kind="email", occurred_at=days_ago(20), subject="Old email")
        account.refresh_from_db()
        assert account.last_touch_at == recent.occurred_at

    def test_editing_and_deleting_touches_recompute_last_touch(self, csm):
        account = factories.AccountFactory(owner=csm)
        older = touch_log(account=account, csm=csm, kind="call", occurred_at=days_ago(10), subject="A")
        newer = touch_log(account=account, csm=csm, kind="call", occurred_at=days_ago(1), subject="B")
        touch_update(touch=newer, data={"occurred_at": days_ago(30)})
        account.refresh_from_db()
        assert account.last_touch_at == older.occurred_at
        soft_delete(instance=older)
        account.refresh_from_db()
        assert account.last_touch_at == newer.occurred_at
        soft_delete(instance=Touch.objects.get(pk=newer.pk))
        account.refresh_from_db()
        assert account.last_touch_at is None

    def test_moving_a_touch_fixes_both_accounts(self, csm):
        first, second = factories.AccountFactory.create_batch(2, owner=csm)
        touch = touch_log(account=first, csm=csm, kind="call", occurred_at=days_ago(1), subject="Call")
        touch_update(touch=touch, data={"account": second})
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.last_touch_at is None
        assert second.last_touch_at == touch.occurred_at

    def test_rejects_contacts_of_another_account_and_writes_nothing(self, csm):
        account = factories.AccountFactory(owner=csm)
        stranger = factories.ContactFactory(name="Someone Else")
        with pytest.raises(DomainError, match="Not contacts of this account: Someone Else"):
            touch_log(account=account, csm=csm, kind="call", occurred_at=days_ago(1), subject="x", contacts=[stranger])
        assert not Touch.objects.exists()
        account.refresh_from_db()
        assert account.last_touch_at is None

    def test_rejects_future_touches_and_bad_sentiment(self, csm):
        account = factories.AccountFactory(owner=csm)
        with pytest.raises(DomainError, match="cannot be logged in the future"):
            touch_log(
                account=account, kind="call", occurred_at=timezone.now() + datetime.timedelta(days=2), subject="x"
            )
        with pytest.raises(DomainError) as error:
            touch_log(account=account, kind="call", occurred_at=days_ago(1), subject="x", sentiment=3)
        assert "sentiment" in error.value.message_dict
        with pytest.raises(DomainError) as error:
            touch_log(account=account, kind="telepathy", occurred_at=days_ago(1), subject="x")
        assert "kind" in error.value.message_dict
        assert not Touch.objects.exists()


class TestSubscriptions:
    def test_add_end_and_price_change_keep_account_mrr(self):
        today = timezone.localdate()
        account = factories.AccountFactory()
        line = subscription_add(account=account, product="Platform", mrr=Decimal("1000.00"), start_date=D(2024, 1, 1))
        subscription_add(
            account=account, product="Seats", mrr=Decimal("200.00"), start_date=today + datetime.timedelta(days=10)
        )
        account.refresh_from_db()
        assert account.mrr == Decimal("1000.00")  # the future line does not count yet

        yesterday = today - datetime.timedelta(days=1)
        new_line = subscription_change_price(subscription=line, mrr=Decimal("1250.00"), on=yesterday)
        account.refresh_from_db()
        assert account.mrr == Decimal("1250.00")
        line.refresh_from_db()
        assert line.end_date == yesterday
        assert (new_line.start_date, new_line.end_date, new_line.product) == (yesterday, None, "Platform")

        subscription_end(subscription=new_line, end_date=today)
        account.refresh_from_db()
        assert account.mrr == Decimal("0.00")

    def test_invalid_line_is_rejected_and_nothing_changes(self):
        account = factories.AccountFactory()
        with pytest.raises(DomainError, match="The end date must be after the start date"):
            subscription_add(
                account=account, product="Platform", mrr=Decimal(10), start_date=D(2026, 2, 1), end_date=D(2026, 1, 1)
            )
        with pytest.raises(DomainError) as error:
            subscription_add(account=account, product="Platform", mrr=Decimal(-10), start_date=D(2026, 2, 1))
        assert "mrr" in error.value.message_dict
        assert not Subscription.objects.exists()

    def test_price_change_must_fall_inside_the_line(self):
        line = factories.SubscriptionFactory(start_date=D(2026, 1, 1), end_date=D(2026, 6, 1))
        with pytest.raises(DomainError, match="after the line's start date"):
            subscription_change_price(subscription=line, mrr=Decimal(1), on=D(2026, 1, 1))
        with pytest.raises(DomainError, match="before the line's end date"):
            subscription_change_price(subscription=line, mrr=Decimal(1), on=D(2026, 6, 1))
        assert Subscription.objects.count() == 1

    def test_soft_deleting_a_line_drops_it_from_mrr(self):
        account = factories.AccountFactory()
        line = subscription_add(account=account, product="Platform", mrr=Decimal("80.00"), start_date=D(2025, 1, 1))
        soft_delete(instance=line)
        account.refresh_from_db()
        assert account.mrr == Decimal("0.00")
        assert Subscription.objects.deleted().count() == 1

    def test_refresh_touches_only_accounts_whose_mrr_changed(self):
        stale, fresh = factories.AccountFactory.create_batch(2)
        factories.SubscriptionFactory(account=stale, mrr=Decimal("10.00"), start_date=D(2025, 1, 1))
        Account.objects.filter(pk=fresh.pk).update(updated_at=timezone.now() - datetime.timedelta(days=1))
        fresh.refresh_from_db()
        assert account_mrr_refresh() == 1
        untouched = Account.objects.get(pk=fresh.pk)
        assert untouched.updated_at == fresh.updated_at
        assert Account.objects.get(pk=stale.pk).mrr == Decimal("10.00")


class TestTiers:
    def test_tier_changes_close_the_previous_assignment(self, admin_user):
        low, high = default_tier("low-touch"), default_tier("high-touch")
        account = account_create(name="Acme", external_id="acme-001", tier=low, changed_by=admin_user)
        first = account.tier_assignments.get()
        assert (first.tier, first.source, first.ended_at, first.assigned_by) == (low, "manual", None, admin_user)

        account_update(account=account, data={"tier": high}, changed_by=admin_user)
        history = list(TierAssignment.objects.filter(account=account).order_by("started_at"))
        assert [h.tier for h in history] == [low, high]
        assert history[0].ended_at == history[1].started_at
        assert history[1].ended_at is None
        account.refresh_from_db()
        assert account.tier == high

    def test_assigning_the_current_tier_is_a_no_op(self):
        account = account_create(name="Acme", tier=default_tier())
        tier_assign(account=account, tier=default_tier(), source="rule", reason="again")
        assert account.tier_assignments.count() == 1

    def test_history_has_no_overlaps(self):
        account = account_create(name="Acme", tier=default_tier("tech-touch"))
        start = account.tier_assignments.get().started_at
        for days, slug in [(10, "low-touch"), (20, "high-touch"), (30, "low-touch"), (40, "tech-touch")]:
            tier_assign(
                account=account, tier=default_tier(slug), source="rule", at=start + datetime.timedelta(days=days)
            )
        periods = list(account.tier_assignments.order_by("started_at").values_list("started_at", "ended_at"))
        assert len(periods) == 5
        for (_, end), (next_start, _) in zip(periods, periods[1:], strict=False):
            assert end == next_start
        assert periods[-1][1] is None

    def test_change_cannot_predate_the_current_tier(self):
        account = account_create(name="Acme", tier=default_tier())
        started = account.tier_assignments.get().started_at
        with pytest.raises(DomainError, match="cannot take effect before"):
            tier_assign(
                account=account, tier=default_tier("high-touch"), source="manual", at=started - datetime.timedelta(1)
            )
        assert account.tier_assignments.count() == 1

    def test_removing_the_tier_closes_the_history(self):
        account = account_create(name="Acme", tier=default_tier())
        account_update(account=account, data={"tier": None})
        assert account.tier_assignments.get().ended_at is not None

    def test_invalid_account_is_rejected(self):
        with pytest.raises(DomainError) as error:
            account_create(name="", tier=default_tier())
        assert "name" in error.value.message_dict
        assert not Account.objects.exists()
        assert not TierAssignment.objects.exists()


def test_making_a_contact_primary_demotes_the_previous_one():
    account = factories.AccountFactory()
    first = factories.ContactFactory(account=account, is_primary=True)
    second = factories.ContactFactory.build(account=account, is_primary=True, email="second@example.com")
    contact_save(contact=second)
    first.refresh_from_db()
    assert not first.is_primary
    assert second.is_primary


def test_partner_keys_are_stored_hashed_and_revocable():
    partner = factories.PartnerFactory()
    key, raw = partner_key_create(partner=partner, name="billing sync")
    stored = PartnerKey.objects.get(pk=key.pk)
    assert raw not in (stored.key_hash, stored.prefix, stored.name)
    assert stored.key_hash == PartnerKey.hash_key(raw)
    assert raw.startswith("csm_") and raw[4:12] == stored.prefix
    assert stored.is_usable
    partner_key_revoke(key=stored)
    assert not PartnerKey.objects.get(pk=key.pk).is_usable


class TestQueueRecompute:
    def test_a_price_change_queues_one_recompute(self, task_runs, django_capture_on_commit_callbacks):
        account = factories.AccountFactory()
        line = factories.SubscriptionFactory(account=account, start_date=D(2025, 1, 1))

        with django_capture_on_commit_callbacks(execute=True):
            subscription_change_price(subscription=line, mrr=Decimal("1500.00"), on=D(2025, 6, 1))

        assert recomputed(task_runs) == [[account.pk]]

    def test_a_batch_queues_what_its_block_queued_once_after_commit(
        self, task_runs, django_capture_on_commit_callbacks
    ):
        first, second = (line.account for line in factories.SubscriptionFactory.create_batch(2))
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with recompute_batch():
                queue_recompute([second.pk, first.pk])
                queue_recompute([first.pk, None])
                with recompute_batch():  # an inner batch joins the outer one
                    queue_recompute([second.pk], revenue=True)
                assert not callbacks and not task_runs
        assert recomputed(task_runs) == [sorted([first.pk, second.pk])]
        assert revenue_recomputes(task_runs) == 1

    def test_a_batch_that_does_not_queue_drops_what_its_block_asked_for(
        self, task_runs, django_capture_on_commit_callbacks
    ):
        first, second = factories.AccountFactory.create_batch(2)
        with django_capture_on_commit_callbacks(execute=True):
            with recompute_batch():
                queue_recompute([first.pk])
                with recompute_batch(queue=False):  # the caller recomputes these itself
                    queue_recompute([second.pk], revenue=True)
            with recompute_batch(queue=False):
                queue_recompute([second.pk])
        assert recomputed(task_runs) == [[first.pk]]
        assert revenue_recomputes(task_runs) == 0

    def test_a_failed_batch_queues_nothing(self, task_runs, django_capture_on_commit_callbacks):
        account = factories.AccountFactory()
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(DomainError):
            with recompute_batch():
                queue_recompute([account.pk])
                raise DomainError("refused")
        assert task_runs == []
        with django_capture_on_commit_callbacks(execute=True):
            queue_recompute([account.pk])  # and the next change queues as usual
        assert recomputed(task_runs) == [[account.pk]]


def test_accounts_reaches_higher_apps_only_through_queue_recompute():
    """csm <- accounts <- success_plans <- metrics <- demo: the one way back is queue_recompute's import."""
    root = Path(accounts.__file__).parent
    higher = ("metrics", "success_plans", "demo")
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            if any(module.split(".")[0] in higher for module in modules):
                inside = [f.name for f in functions if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)]
                found.append((path.relative_to(root).as_posix(), inside, modules))
    assert found == [("services.py", ["queue_recompute"], ["metrics.tasks"])]


class TestChurnEvents:
    def events(self, account: Account) -> list[tuple]:
        return list(account.churn_events.order_by("churned_on").values_list("churned_on", "reason"))

    def test_saving_a_churned_account_records_the_churn_with_its_reason(self):
        account = account_create(name="Acme", tier=default_tier())
        assert self.events(account) == []

        account_update(account=account, data={"churned_at": D(2025, 3, 31), "churn_reason": "Budget cut"})

        assert self.events(account) == [(D(2025, 3, 31), "Budget cut")]

    def test_correcting_the_reason_updates_that_churn(self):
        account = account_create(name="Acme", churned_at=D(2025, 3, 31), churn_reason="Budget")
        account_update(account=account, data={"churn_reason": "Budget cut after a merger"})
        account_update(account=account, data={"name": "Acme Inc."})  # no churn change: nothing recorded
        assert self.events(account) == [(D(2025, 3, 31), "Budget cut after a merger")]

    def test_a_reactivated_account_that_churns_again_keeps_both_churns(self):
        account = account_create(name="Acme", churned_at=D(2025, 3, 31), churn_reason="Budget cut")
        account_update(account=account, data={"churned_at": None, "churn_reason": ""})  # won back
        account_update(account=account, data={"churned_at": D(2026, 1, 31), "churn_reason": "Moved to a rival"})

        assert self.events(account) == [(D(2025, 3, 31), "Budget cut"), (D(2026, 1, 31), "Moved to a rival")]
        account.refresh_from_db()
        assert (account.churned_at, account.churn_reason) == (D(2026, 1, 31), "Moved to a rival")


class TestChurnEventsRecord:
    def test_upserts_by_account_and_day(self):
        first, second = factories.AccountFactory.create_batch(2)
        factories.ChurnEventFactory(account=first, churned_on=D(2025, 3, 31), reason="old reason")

        written = churn_events_record(
            events=[
                (first.pk, D(2025, 3, 31), "Budget cut"),
                (first.pk, D(2026, 1, 31), "Moved to a rival"),
                (second.pk, D(2025, 6, 30), ""),
                (second.pk, D(2025, 6, 30), "No adoption"),  # the later of two for the same day wins
            ]
        )

        assert written == 3
        rows = set(ChurnEvent.objects.values_list("account_id", "churned_on", "reason"))
        assert rows == {
            (first.pk, D(2025, 3, 31), "Budget cut"),
            (first.pk, D(2026, 1, 31), "Moved to a rival"),
            (second.pk, D(2025, 6, 30), "No adoption"),
        }

    def test_queries_do_not_grow_with_events(self):
        accounts = factories.AccountFactory.create_batch(12)

        def run(batch) -> int:
            with CaptureQueriesContext(connection) as queries:
                churn_events_record(events=[(a.pk, D(2025, 3, 31), "Budget cut") for a in batch])
            return len(queries)

        assert run(accounts[:2]) == run(accounts)

    def test_refuses_unknown_accounts_long_reasons_and_non_dates_and_writes_nothing(self):
        account = factories.AccountFactory()
        with pytest.raises(DomainError, match="no such account"):
            churn_events_record(events=[(account.pk, D(2025, 3, 31), "x"), (account.pk + 1000, D(2025, 3, 31), "")])
        with pytest.raises(DomainError, match="200 characters"):
            churn_events_record(events=[(account.pk, D(2025, 3, 31), "x" * 201)])
        with pytest.raises(DomainError, match="date"):
            churn_events_record(events=[(account.pk, "2025-03-31", "x")])
        assert not ChurnEvent.objects.exists()


class TestSoftDelete:
    def test_deleting_many_touches_fixes_each_accounts_last_touch_in_fixed_queries(self):
        def setup(count: int) -> list[Account]:
            accounts = factories.AccountFactory.create_batch(count)
            for account in accounts:
                touch_log(account=account, kind="call", occurred_at=days_ago(5), subject="Kept")
                touch_log(account=account, kind="call", occurred_at=days_ago(1), subject="Dropped")
            return accounts

        def delete(accounts) -> int:
            dropped = Touch.objects.filter(account__in=accounts, subject="Dropped")
            with CaptureQueriesContext(connection) as queries:
                assert soft_delete_many(queryset=dropped) == len(accounts)
            return len(queries)

        few, many = setup(2), setup(6)
        assert delete(few) == delete(many)
        for account in Account.objects.all():
            kept = Touch.objects.get(account=account, subject="Kept")
            assert account.last_touch_at == kept.occurred_at
        assert Touch.objects.deleted().count() == 8 and Touch.objects.alive().count() == 8

    def test_deleting_lines_of_several_accounts_queues_one_recompute(
        self, task_runs, django_capture_on_commit_callbacks
    ):
        lines = factories.SubscriptionFactory.create_batch(3)
        account_mrr_refresh()
        with django_capture_on_commit_callbacks(execute=True):
            soft_delete_many(queryset=Subscription.objects.filter(pk__in=[lines[0].pk, lines[1].pk]))
        assert recomputed(task_runs) == [sorted([lines[0].account_id, lines[1].account_id])]
        assert list(Account.objects.order_by("pk").values_list("mrr", flat=True)) == [
            Decimal("0.00"),
            Decimal("0.00"),
            Decimal("1000.00"),
        ]

    def test_a_deleted_primary_contact_is_no_longer_primary(self):
        contact = factories.ContactFactory(is_primary=True)
        soft_delete(instance=contact)
        contact.refresh_from_db()
        assert contact.deleted_at is not None and not contact.is_primary

    def test_deleting_an_account_recomputes_it_and_the_revenue_months(
        self, task_runs, django_capture_on_commit_callbacks
    ):
        account = factories.SubscriptionFactory(start_date=D(2025, 1, 1)).account
        factories.SubscriptionFactory(start_date=D(2025, 3, 1))  # another account keeps the history alive

        with django_capture_on_commit_callbacks(execute=True):
            account_delete(account=account)

        account.refresh_from_db()
        assert account.deleted_at is not None
        assert recomputed(task_runs) == [[account.pk]]
        assert revenue_recomputes(task_runs) == 1

    def test_restoring_an_account_brings_it_back_and_recomputes_the_same(
        self, task_runs, django_capture_on_commit_callbacks
    ):
        account = factories.SubscriptionFactory(start_date=D(2025, 1, 1)).account
        account_delete(account=account)

        with django_capture_on_commit_callbacks(execute=True):
            restored = account_restore(account=account)

        assert restored.deleted_at is None
        assert Account.objects.alive().filter(pk=account.pk).exists()
        assert recomputed(task_runs) == [[account.pk]]
        assert revenue_recomputes(task_runs) == 1

    def test_restoring_many_in_fixed_queries(self):
        def restore(count: int) -> int:
            accounts = factories.AccountFactory.create_batch(count)
            ids = [a.pk for a in accounts]
            soft_delete_many(queryset=Account.objects.filter(pk__in=ids))
            with CaptureQueriesContext(connection) as queries:
                assert soft_restore_many(queryset=Account.objects.filter(pk__in=ids)) == count
            return len(queries)

        assert restore(2) == restore(6)
        assert not Account.objects.deleted().exists()


class TestBulkSave:
    def test_errors_are_keyed_by_position_and_nothing_is_written(self, csm):
        factories.AccountFactory(external_id="taken")
        accounts = [
            Account(name="Fine", external_id="a-1", owner=csm),
            Account(name="", external_id="taken"),
            Account(name="Twice", external_id="a-1", owner_id=csm.pk + 1000),
        ]

        with pytest.raises(DomainError) as error:
            accounts_save(accounts=accounts)

        assert error.value.message_dict == {
            "1": ["name: This field cannot be blank.", "external_id: Account with this External id already exists."],
            "2": [
                f"owner: There is no user with id {csm.pk + 1000}.",
                "external_id: External id “a-1” appears more than once.",
            ],
        }
        assert Account.objects.count() == 1

    def test_lines_of_many_accounts_are_saved_in_fixed_queries_with_their_mrr(self):
        def save(count: int) -> int:
            accounts = factories.AccountFactory.create_batch(count)
            lines = [
                Subscription(account=a, product="Platform", mrr=Decimal(100), start_date=D(2025, 1, 1))
                for a in accounts
            ]
            with CaptureQueriesContext(connection) as queries:
                subscriptions_save(subscriptions=lines)
            return len(queries)

        assert save(2) == save(8)
        assert set(Account.objects.values_list("mrr", flat=True)) == {Decimal("100.00")}

    def test_moving_a_line_refreshes_both_accounts(self):
        line = factories.SubscriptionFactory(mrr=Decimal(300), start_date=D(2025, 1, 1))
        old, new = line.account, factories.AccountFactory()
        account_mrr_refresh()
        line.account = new
        subscription_save(subscription=line)
        assert Account.objects.get(pk=old.pk).mrr == Decimal("0.00")
        assert Account.objects.get(pk=new.pk).mrr == Decimal("300.00")
