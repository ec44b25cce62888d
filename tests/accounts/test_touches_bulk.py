"""Touches saved many at once: all or none, contacts and last touch kept right, queries fixed per batch."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account, Contact, Touch
from accounts.services import touch_log, touch_save, touches_check, touches_save
from csm.exceptions import DomainError
from tests import factories
from tests.accounts.conftest import recomputed

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
Through = Touch.contacts.through


def ago(days: int) -> datetime.datetime:
    return NOW - datetime.timedelta(days=days)


def touch(account: Account, days: int, subject: str = "Call", **fields) -> Touch:
    return Touch(account=account, kind=Touch.Kind.CALL, occurred_at=ago(days), subject=subject, **fields)


def contact_names(touch: Touch) -> set[str]:
    return set(Contact.objects.filter(touches=touch).values_list("name", flat=True))


def last_touch_at(account: Account) -> datetime.datetime | None:
    return Account.objects.values_list("last_touch_at", flat=True).get(pk=account.pk)


class TestBulkCreate:
    def test_sets_contacts_and_each_accounts_latest_live_touch(self, task_runs, django_capture_on_commit_callbacks):
        acme, globex = factories.AccountFactory.create_batch(2)
        ann = factories.ContactFactory(account=acme, name="Ann")
        bob = factories.ContactFactory(account=acme, name="Bob")
        cy = factories.ContactFactory(account=globex, name="Cy")
        # The newest touch of acme is deleted: it does not count.
        factories.TouchFactory(account=acme, occurred_at=ago(1), deleted_at=ago(1))

        with django_capture_on_commit_callbacks(execute=True):
            saved = touches_save(
                touches=[touch(acme, 10, "Kickoff"), touch(acme, 3, "QBR"), touch(globex, 7), touch(globex, 20)],
                contacts=[[ann, bob], [ann], [cy], []],
            )

        assert all(t.pk is not None for t in saved)
        assert [contact_names(t) for t in saved] == [{"Ann", "Bob"}, {"Ann"}, {"Cy"}, set()]
        assert last_touch_at(acme) == ago(3)
        assert last_touch_at(globex) == ago(7)
        assert Touch.objects.alive().count() == 4
        assert recomputed(task_runs) == [sorted([acme.pk, globex.pk])]

    def test_a_contact_given_twice_is_linked_once(self):
        account = factories.AccountFactory()
        ann = factories.ContactFactory(account=account, name="Ann")
        [saved] = touches_save(touches=[touch(account, 1)], contacts=[[ann, ann]])
        assert Through.objects.filter(touch=saved).count() == 1


class TestBulkUpdate:
    def test_moving_a_touch_refreshes_both_accounts(self, task_runs, django_capture_on_commit_callbacks):
        first, second, third = factories.AccountFactory.create_batch(3)
        moved = touch_log(account=first, kind=Touch.Kind.CALL, occurred_at=ago(2), subject="Moved")
        touch_log(account=first, kind=Touch.Kind.CALL, occurred_at=ago(9), subject="Stays")
        edited = touch_log(account=third, kind=Touch.Kind.CALL, occurred_at=ago(4), subject="Edited")
        touch_log(account=second, kind=Touch.Kind.CALL, occurred_at=ago(6), subject="Older")
        task_runs.clear()

        moved.account = second
        edited.occurred_at = ago(8)
        with django_capture_on_commit_callbacks(execute=True):
            touches_save(touches=[moved, edited])

        assert last_touch_at(first) == ago(9)
        assert last_touch_at(second) == ago(2)
        assert last_touch_at(third) == ago(8)
        assert Touch.objects.get(pk=moved.pk).account_id == second.pk
        assert recomputed(task_runs) == [sorted([first.pk, second.pk, third.pk])]

    def test_contacts_are_replaced_only_when_given(self):
        account = factories.AccountFactory()
        ann, bob, cy = (factories.ContactFactory(account=account, name=name) for name in ("Ann", "Bob", "Cy"))
        first = touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=ago(3), subject="A", contacts=[ann])
        second = touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=ago(2), subject="B", contacts=[bob])
        third = touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=ago(1), subject="C", contacts=[cy])

        first.subject = "A, edited"
        touches_save(touches=[first, second, third], contacts=[[bob, cy], None, []])
        assert (contact_names(first), contact_names(second), contact_names(third)) == ({"Bob", "Cy"}, {"Bob"}, set())

        # Without contacts at all, every touch keeps its own.
        second.subject = "B, edited"
        touches_save(touches=[first, second])
        assert (contact_names(first), contact_names(second)) == ({"Bob", "Cy"}, {"Bob"})
        assert Touch.objects.get(pk=second.pk).subject == "B, edited"

    def test_a_prefetched_contact_list_is_not_left_stale(self):
        account = factories.AccountFactory()
        ann = factories.ContactFactory(account=account, name="Ann")
        bob = factories.ContactFactory(account=account, name="Bob")
        touch_log(account=account, kind=Touch.Kind.CALL, occurred_at=ago(1), subject="A", contacts=[ann])
        loaded = Touch.objects.prefetch_related("contacts").get()
        assert [c.name for c in loaded.contacts.all()] == ["Ann"]

        touches_save(touches=[loaded], contacts=[[bob]])

        assert [c.name for c in loaded.contacts.all()] == ["Bob"]


def future(acme: Account, _globex: Account) -> tuple[Touch, list[Contact] | None]:
    return Touch(account=acme, kind="call", occurred_at=timezone.now() + datetime.timedelta(days=2), subject="x"), None


def foreign_contact(acme: Account, globex: Account) -> tuple[Touch, list[Contact] | None]:
    return touch(acme, 1), [Contact.objects.get(account=globex)]


def unknown_account(acme: Account, _globex: Account) -> tuple[Touch, list[Contact] | None]:
    return Touch(account_id=acme.pk + 1000, kind="call", occurred_at=ago(1), subject="x"), None


def external_id_twice(acme: Account, _globex: Account) -> tuple[Touch, list[Contact] | None]:
    return touch(acme, 1, external_id="t-1"), None  # the first item of the batch has it too


def external_id_taken(acme: Account, _globex: Account) -> tuple[Touch, list[Contact] | None]:
    return touch(acme, 1, external_id="taken"), None


class TestAllOrNone:
    @pytest.mark.parametrize(
        ("invalid", "expected"),
        [
            (future, "occurred_at: A touch cannot be logged in the future."),
            (foreign_contact, "contacts: Not contacts of this account: Someone Else."),
            (unknown_account, "account: There is no account with id {missing}."),
            (external_id_twice, "external_id: External id “t-1” appears more than once."),
            (external_id_taken, "external_id: Touch with this External id already exists."),
        ],
    )
    def test_one_invalid_item_refuses_the_call_and_writes_nothing(self, invalid, expected):
        acme, globex = factories.AccountFactory.create_batch(2)
        ann = factories.ContactFactory(account=acme, name="Ann")
        factories.ContactFactory(account=globex, name="Someone Else")
        existing = factories.TouchFactory(account=acme, occurred_at=ago(5), external_id="taken")
        Through.objects.create(touch=existing, contact=ann)
        bad_touch, bad_contacts = invalid(acme, globex)
        touches = [touch(acme, 1, external_id="t-1"), touch(globex, 2), bad_touch]
        before = (Touch.objects.count(), Through.objects.count())

        with pytest.raises(DomainError) as error:
            touches_save(touches=touches, contacts=[[ann], None, bad_contacts])

        assert error.value.message_dict == {"2": [expected.format(missing=acme.pk + 1000)]}
        assert (Touch.objects.count(), Through.objects.count()) == before == (1, 1)
        assert (last_touch_at(acme), last_touch_at(globex)) == (None, None)

    def test_check_reports_every_invalid_item_by_position_without_writing(self):
        acme, globex = factories.AccountFactory.create_batch(2)
        stranger = factories.ContactFactory(account=globex, name="Someone Else")
        touches = [
            touch(acme, 1),
            Touch(account=acme, kind="call", occurred_at=timezone.now() + datetime.timedelta(hours=1), subject="x"),
            touch(acme, 1),
            Touch(
                account=acme,
                kind="call",
                occurred_at=timezone.now() + datetime.timedelta(minutes=1),
                subject="Almost now",
            ),
        ]

        errors = touches_check(touches=touches, contacts=[None, None, [stranger], None])

        assert {index: error.message_dict for index, error in errors.items()} == {
            1: {"occurred_at": ["A touch cannot be logged in the future."]},
            2: {"contacts": ["Not contacts of this account: Someone Else."]},
        }
        assert not Touch.objects.exists()
        assert touches_check(touches=[touch(acme, 1)]) == {}


class TestQueries:
    def test_the_query_count_does_not_grow_with_touches_and_contacts(self):
        def save(count: int) -> int:
            accounts = factories.AccountFactory.create_batch(count)
            contacts = [factories.ContactFactory(account=a) for a in accounts]
            touches: list[Touch] = []
            given: list[list[Contact]] = []
            for i, account in enumerate(accounts):
                if i % 3 == 0:  # an existing touch, moved to the next account with that account's contact
                    existing = factories.TouchFactory(account=account, occurred_at=ago(1))
                    Through.objects.create(touch=existing, contact=contacts[i])
                    existing.account = accounts[(i + 1) % count]
                    touches.append(existing)
                    given.append([contacts[(i + 1) % count]])
                else:
                    touches.append(touch(account, 2, csm=account.owner, external_id=f"t-{count}-{i}"))
                    given.append([contacts[i]])
            with CaptureQueriesContext(connection) as queries:
                touches_save(touches=touches, contacts=given)
            assert Through.objects.filter(touch__in=touches).count() == count
            return len(queries)

        assert save(3) == save(30)

    def test_the_single_touch_path_takes_the_bulk_paths_queries(self):
        account = factories.AccountFactory()
        ann = factories.ContactFactory(account=account)
        existing = factories.TouchFactory(account=account, occurred_at=ago(3))

        # savepoint, account exists, csm exists, previous account, update, delete and insert contacts,
        # last touch, release savepoint
        with CaptureQueriesContext(connection) as queries:
            touch_save(touch=existing, contacts=[ann])
        assert len(queries) == 9


class TestSingleTouch:
    def test_errors_are_keyed_by_field(self):
        acme, globex = factories.AccountFactory.create_batch(2)
        stranger = factories.ContactFactory(account=globex, name="Someone Else")
        future_touch = Touch(
            account=acme, kind="telepathy", occurred_at=timezone.now() + datetime.timedelta(days=1), subject="x"
        )

        with pytest.raises(DomainError) as error:
            touch_save(touch=future_touch, contacts=[stranger])

        assert error.value.message_dict == {
            "kind": ["Value 'telepathy' is not a valid choice."],
            "occurred_at": ["A touch cannot be logged in the future."],
            "contacts": ["Not contacts of this account: Someone Else."],
        }
        with pytest.raises(DomainError) as error:
            touches_save(touches=[Touch(account_id=acme.pk + 1000, kind="call", occurred_at=ago(1), subject="x")])
        assert error.value.message_dict == {"account": [f"There is no account with id {acme.pk + 1000}."]}
        assert not Touch.objects.exists()

    def test_an_unreadable_date_is_a_field_error(self):
        account = factories.AccountFactory()
        with pytest.raises(DomainError) as error:
            touch_save(touch=Touch(account=account, kind="call", occurred_at="yesterday", subject="x"))
        assert list(error.value.message_dict) == ["occurred_at"]

    def test_saving_a_touch_sets_its_contacts_and_the_last_touch(self):
        account = factories.AccountFactory()
        ann = factories.ContactFactory(account=account, name="Ann")
        saved = touch_save(touch=touch(account, 2), contacts=[ann])
        assert contact_names(saved) == {"Ann"}
        assert last_touch_at(account) == ago(2)


def test_a_touch_moved_to_another_account_cannot_keep_contacts_of_the_first():
    first, second = factories.AccountFactory(), factories.AccountFactory()
    contact = factories.ContactFactory(account=first, name="Dana")
    touch = factories.TouchFactory(account=first)
    touch.contacts.set([contact])
    touch.account = second
    with pytest.raises(DomainError) as raised:
        touches_save(touches=[touch])
    assert raised.value.message_dict == {"contacts": ["Not contacts of this account: Dana."]}
    assert Touch.objects.get(pk=touch.pk).account_id == first.pk
    # Given new contacts (none here), the move goes through.
    touches_save(touches=[touch], contacts=[[]])
    assert Touch.objects.get(pk=touch.pk).account_id == second.pk
    assert list(touch.contacts.all()) == []
