"""Writes over accounts. Every state change goes through here, so denormalised fields stay right.

`Account.mrr` is the MRR on today's date; `Account.last_touch_at` the latest live touch; the open
`TierAssignment` always names the account's current tier.
"""

import datetime
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.db.models import DateTimeField, F, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit.context import ActorKind, acting_as
from csm.db import any_of, bulk_insert, bulk_update, bulk_upsert, record_history
from csm.exceptions import DomainError, unstorable_values
from csm.models import SyncedModel

from .models import (
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
from .selectors import account_mrr_on_expression

T = TypeVar("T")
M = TypeVar("M", bound=models.Model)

# --- denormalised fields ------------------------------------------------------------------------


def account_mrr_refresh(*, account_ids: Iterable[int] | None = None, on: datetime.date | None = None) -> int:
    """Set `Account.mrr` to the MRR on `on` (default today) in one UPDATE; returns the rows changed."""
    on = on or timezone.localdate()
    accounts = Account.objects.all() if account_ids is None else Account.objects.filter(pk__in=list(account_ids))
    expression = account_mrr_on_expression(on)
    return (
        accounts.annotate(current_mrr=expression)
        .exclude(mrr=F("current_mrr"))
        .update(mrr=expression, updated_at=timezone.now())
    )


def account_last_touch_refresh(*, account_ids: Iterable[int]) -> None:
    """Set `Account.last_touch_at` to the latest live touch of each account, in one UPDATE."""
    latest = (
        Touch.objects.alive()
        .filter(account_id=OuterRef("pk"))
        .order_by()
        .values("account_id")
        .annotate(latest=Max("occurred_at"))
        .values("latest")
    )
    Account.objects.filter(pk__in=list(account_ids)).update(
        last_touch_at=Subquery(latest, output_field=DateTimeField())
    )


@dataclass
class _PendingRecompute:
    account_ids: set[int] = field(default_factory=set)
    revenue: bool = False


_pending_recompute: ContextVar[_PendingRecompute | None] = ContextVar("pending_recompute", default=None)


def queue_recompute(account_ids: Iterable[int | None], *, revenue: bool = False) -> None:
    """After the transaction commits, bring these accounts' MRR, tier, health and alerts up to date.

    `revenue=True` also recomputes every month of the revenue bridge: for changes that rewrite an
    account's whole history (deleting or restoring it). Inside `recompute_batch()` the ids are collected
    and queued once when the block ends.
    """
    ids = {pk for pk in account_ids if pk is not None}
    pending = _pending_recompute.get()
    if pending is not None:
        pending.account_ids |= ids
        pending.revenue |= revenue
        return
    # The one import of a higher app: the tasks build on these services, so they are imported when a
    # change queues them, never when this module loads.
    from metrics.tasks import recompute_accounts, recompute_revenue

    if ids:
        recompute_accounts.delay_on_commit(sorted(ids))
    if revenue:
        recompute_revenue.delay_on_commit()


@contextmanager
def recompute_batch(*, queue: bool = True) -> Iterator[None]:
    """Queue one recompute for everything queued inside the block, when it ends without an error.

    For requests and imports that call several services for the same accounts (an account saved with
    its contacts and revenue lines): each service queues its accounts, the block queues them once. An
    inner block joins the outer one. `queue=False` drops what the block asks for, for a caller that
    recomputes those accounts itself next (the nightly chain, the event-driven recompute).
    """
    if queue and _pending_recompute.get() is not None:
        yield
        return
    pending = _PendingRecompute()
    token = _pending_recompute.set(pending)
    try:
        yield
    finally:
        _pending_recompute.reset(token)
    if queue:
        queue_recompute(pending.account_ids, revenue=pending.revenue)


# --- validating and writing many objects --------------------------------------------------------

BATCH_SIZE = 1000  # objects per bulk statement, ids per IN (...) list
FieldErrors = dict[int, dict[str, list[str]]]  # position -> field name -> messages


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for first in range(0, len(items), BATCH_SIZE):
        yield items[first : first + BATCH_SIZE]


def _add_error(errors: FieldErrors, index: int, field_name: str, message: str) -> None:
    errors.setdefault(index, {}).setdefault(field_name, []).append(str(message))


def _check_many(instances: list[M]) -> FieldErrors:
    """Model validation of many objects in a fixed number of queries: each object's fields in memory, then
    the objects they refer to and their unique values once for all (`full_clean` would query per object).

    Database constraints across rows (one primary contact, a line's end after its start) are checked by
    the callers, which know them.
    """
    errors: FieldErrors = {}
    if not instances:
        return errors
    model = type(instances[0])
    relations = [f for f in model._meta.concrete_fields if f.many_to_one]
    for index, instance in enumerate(instances):
        unstorable = unstorable_values(instance)
        for field_name, messages in unstorable.items():
            _add_error(errors, index, field_name, messages[0])
        try:
            exclude = [f.name for f in relations] + list(unstorable)
            instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
        except ValidationError as error:
            for field_name, messages in error.message_dict.items():
                for message in messages:
                    _add_error(errors, index, field_name, message)
    for relation in relations:
        ids = sorted({getattr(instance, relation.attname) for instance in instances} - {None})
        known = {
            pk
            for chunk in _chunks(ids)
            for pk in relation.related_model._base_manager.filter(pk__in=chunk).values_list("pk", flat=True)
        }
        for index, instance in enumerate(instances):
            value = getattr(instance, relation.attname)
            if value is None and not relation.null:
                _add_error(errors, index, relation.name, relation.error_messages["null"])
            elif value is not None and value not in known:
                _add_error(
                    errors,
                    index,
                    relation.name,
                    _("There is no %(model)s with id %(id)s.")
                    % {"model": relation.related_model._meta.verbose_name, "id": value},
                )
    for unique in [f for f in model._meta.concrete_fields if f.unique and not f.primary_key]:
        first_at: dict[Any, int] = {}
        for index, instance in enumerate(instances):
            value = getattr(instance, unique.attname)
            if value is None or unique.name in errors.get(index, {}):
                continue  # an invalid value is not looked up (text no database stores would fail the query)
            if value in first_at:
                _add_error(
                    errors,
                    index,
                    unique.name,
                    _("%(field)s “%(value)s” appears more than once.")
                    % {"field": capfirst(unique.verbose_name), "value": value},
                )
            else:
                first_at[value] = index
        taken = {
            value: pk
            for chunk in _chunks(list(first_at))
            for value, pk in model._base_manager.filter(any_of(unique.attname, chunk)).values_list(unique.attname, "pk")
        }
        for value, index in first_at.items():
            if value in taken and taken[value] != instances[index].pk:
                for message in instances[index].unique_error_message(model, (unique.name,)).messages:
                    _add_error(errors, index, unique.name, message)
    return errors


def _domain_errors(errors: FieldErrors) -> dict[int, DomainError]:
    return {index: DomainError(fields) for index, fields in sorted(errors.items())}


def _refuse(errors: dict[int, DomainError], count: int) -> None:
    """Raise the errors: one object's by field, several objects' keyed by position ("0", "1", ...)."""
    if not errors:
        return
    if count == 1:
        raise errors[0]
    raise DomainError(
        {
            str(index): [
                message if field_name == NON_FIELD_ERRORS else f"{field_name}: {message}"
                for field_name, messages in error.message_dict.items()
                for message in messages
            ]
            for index, error in errors.items()
        }
    )


def _write_many(model: type[M], instances: list[M], now: datetime.datetime) -> None:
    """Update the instances that exist and insert the others, a statement per batch; all get `updated_at` now."""
    fields = [f.name for f in model._meta.concrete_fields if f.editable and not f.primary_key] + ["updated_at"]
    for instance in instances:
        instance.updated_at = now
    bulk_update(model, [i for i in instances if i.pk is not None], fields)
    bulk_insert(model, [i for i in instances if i.pk is None])


# --- accounts and tiers -------------------------------------------------------------------------


@transaction.atomic
def tier_assign(
    *,
    account: Account,
    tier: Tier,
    source: str,
    reason: str = "",
    assigned_by=None,
    at: datetime.datetime | None = None,
) -> TierAssignment:
    """Move one account into `tier` (see `tier_assignments_open`); a no-op when it is already there."""
    opened = tier_assignments_open(
        assignments=[(account.pk, tier, at or timezone.now(), source, reason)], assigned_by=assigned_by
    )
    account.tier = tier
    return opened[0] if opened else TierAssignment.objects.get(account=account, ended_at__isnull=True)


def account_save(
    *,
    account: Account,
    changed_by=None,
    source: str = TierAssignment.Source.MANUAL,
    reason: str = "",
) -> Account:
    """Validate and save an account built or edited by a caller (see `accounts_save`)."""
    return accounts_save(accounts=[account], changed_by=changed_by, source=source, reason=reason)[0]


def account_create(*, changed_by=None, source: str = TierAssignment.Source.MANUAL, **fields: Any) -> Account:
    return account_save(account=Account(**fields), changed_by=changed_by, source=source)


@transaction.atomic
def account_update(
    *,
    account: Account,
    data: dict[str, Any],
    changed_by=None,
    source: str = TierAssignment.Source.MANUAL,
) -> Account:
    for name, value in data.items():
        setattr(account, name, value)
    return account_save(account=account, changed_by=changed_by, source=source)


def accounts_check(*, accounts: Sequence[Account]) -> dict[int, DomainError]:
    """What is wrong with each account, by position (empty when all are valid); a fixed number of queries."""
    return _domain_errors(_check_many(list(accounts)))


@transaction.atomic
def accounts_save(
    *,
    accounts: Sequence[Account],
    changed_by=None,
    source: str = TierAssignment.Source.MANUAL,
    reason: str = "",
    checked: bool = False,
) -> list[Account]:
    """Validate and save accounts built or edited by a caller, all or none, in a fixed number of queries.

    `checked`: the caller has just run `accounts_check` on these accounts, unchanged since, in this
    transaction, and kept only valid ones (the API's bulk writes report each item's errors first).

    What follows from the change is recorded with it: a new or changed tier opens a tier history period
    (`source`, `reason` or "Set by hand", assigned by `changed_by`); locking or unlocking a tier is
    recorded as `account_tier_lock` does; a churn date set or changed, or its reason corrected, records a
    churn event (`churn_events_record`). The accounts are recomputed after commit.
    """
    accounts = list(accounts)
    if not checked:
        _refuse(accounts_check(accounts=accounts), len(accounts))
    now = timezone.now()
    existing_ids = [account.pk for account in accounts if account.pk is not None]
    before = {
        pk: rest
        for chunk in _chunks(existing_ids)
        for pk, *rest in Account.objects.filter(any_of("pk", chunk)).values_list(
            "pk", "tier_id", "tier_locked", "churned_at", "churn_reason"
        )
    }
    _write_many(Account, accounts, now)

    tier_changes: list[tuple[int, int, str]] = []  # account id, tier id, reason
    tier_removed: list[int] = []
    lock_changes: list[tuple[int, int, str]] = []
    churns: list[tuple[int, datetime.date, str]] = []
    for account in accounts:
        old_tier_id, was_locked, churned_at, churn_reason = before.get(account.pk, (None, None, None, None))
        lock_note = _tier_lock_reason(locked=account.tier_locked, changed_by=changed_by)
        lock_changed = was_locked is not None and was_locked != account.tier_locked
        if account.tier_id is not None and account.tier_id != old_tier_id:
            note = reason or _("Set by hand")
            tier_changes.append((account.pk, account.tier_id, f"{note}; {lock_note}" if lock_changed else note))
        elif account.tier_id is None and old_tier_id is not None:
            tier_removed.append(account.pk)
        elif lock_changed and account.tier_id is not None:
            lock_changes.append((account.pk, account.tier_id, lock_note))
        if account.churned_at is not None and (account.churned_at, account.churn_reason) != (churned_at, churn_reason):
            churns.append((account.pk, account.churned_at, account.churn_reason))

    tiers = Tier.objects.in_bulk({tier_id for _pk, tier_id, _note in tier_changes}) if tier_changes else {}
    tier_assignments_open(
        assignments=[(pk, tiers[tier_id], now, source, note) for pk, tier_id, note in tier_changes],
        assigned_by=changed_by,
    )
    for chunk in _chunks(tier_removed):
        TierAssignment.objects.filter(account_id__in=chunk, ended_at__isnull=True).update(ended_at=now, updated_at=now)
    _tier_history_restart(lock_changes, changed_by=changed_by, at=now)
    churn_events_record(events=churns)
    queue_recompute(account.pk for account in accounts)
    return accounts


def _tier_lock_reason(*, locked: bool, changed_by) -> str:
    if changed_by is None:
        return _("Tier locked") if locked else _("Tier unlocked")
    user = changed_by.get_username()
    return (_("Tier locked by %(user)s") if locked else _("Tier unlocked by %(user)s")) % {"user": user}


def _tier_history_restart(rows: list[tuple[int, int, str]], *, changed_by, at: datetime.datetime) -> None:
    """For each (account id, tier id, reason): close the open period and open one in the same tier.

    Locking or unlocking keeps the tier but changes who holds it (a person, or the rules): the new period
    says from when, why and by whom.
    """
    tiers = Tier.objects.in_bulk({tier_id for _pk, tier_id, _reason in rows}) if rows else {}
    tier_assignments_open(
        assignments=[(pk, tiers[tier_id], at, TierAssignment.Source.MANUAL, reason) for pk, tier_id, reason in rows],
        assigned_by=changed_by,
        restart=True,
    )


@transaction.atomic
def account_tier_lock(
    *,
    accounts: QuerySet[Account] | None = None,
    account_ids: Iterable[int] | None = None,
    locked: bool,
    changed_by=None,
    reason: str = "",
) -> int:
    """Lock accounts' tiers (tier rules leave them alone) or unlock them; returns the accounts changed.

    Give `accounts` (a queryset) or `account_ids`. Accounts already in that state are left alone. Each
    account that changes and has a tier gets a new tier history period in the same tier, source manual,
    assigned by `changed_by`, with `reason` or "Tier locked by <user>" / "Tier unlocked by <user>": the
    history then tells from when the tier was held by hand rather than by the rules. Unlocked accounts
    are recomputed after commit, so the rules place them now rather than at night.
    """
    if (accounts is None) == (account_ids is None):
        raise DomainError(_("Give either the accounts or their ids."))
    if accounts is None:
        accounts = Account.objects.filter(pk__in=list(account_ids))
    now = timezone.now()
    changing = list(accounts.exclude(tier_locked=locked).values_list("pk", "tier_id").order_by())
    ids = [pk for pk, _tier_id in changing]
    for chunk in _chunks(ids):
        Account.objects.filter(pk__in=chunk).update(tier_locked=locked, updated_at=now)
        record_history(Account, chunk)
    note = reason or _tier_lock_reason(locked=locked, changed_by=changed_by)
    _tier_history_restart(
        [(pk, tier_id, note) for pk, tier_id in changing if tier_id is not None], changed_by=changed_by, at=now
    )
    if not locked:
        queue_recompute(ids)
    return len(changing)


# --- churn --------------------------------------------------------------------------------------

ChurnEventRow = tuple[int, datetime.date, str]  # account id, churned on, reason
CHURN_REASON_LENGTH = ChurnEvent._meta.get_field("reason").max_length


@transaction.atomic
def churn_events_record(*, events: Iterable[ChurnEventRow]) -> int:
    """Record churns, each (account id, churned on, reason); returns the number of events written.

    One event per account and day: recording a day again replaces its reason (of two for the same day
    in one call, the later wins), and churns on other days are kept, so a reactivated account that
    churns again has both. All or nothing, in a fixed number of queries per batch.
    """
    latest: dict[tuple[int, datetime.date], str] = {}
    for account_id, churned_on, reason in events:
        if not isinstance(churned_on, datetime.date) or isinstance(churned_on, datetime.datetime):
            raise DomainError(_("A churn needs the date it happened on (got %(value)r).") % {"value": churned_on})
        reason = reason or ""
        if len(reason) > CHURN_REASON_LENGTH:
            raise DomainError(_("Keep a churn reason to %(max)s characters or fewer.") % {"max": CHURN_REASON_LENGTH})
        latest[(account_id, churned_on)] = reason
    if not latest:
        return 0
    ids = sorted({account_id for account_id, _day in latest})
    known = {pk for chunk in _chunks(ids) for pk in Account.objects.filter(pk__in=chunk).values_list("pk", flat=True)}
    unknown = [pk for pk in ids if pk not in known]
    if unknown:
        raise DomainError(_("There is no such account (id %(id)s).") % {"id": unknown[0]})
    now = timezone.now()
    rows = [
        {"account": account_id, "churned_on": day, "reason": reason, "created_at": now, "updated_at": now}
        for (account_id, day), reason in latest.items()
    ]
    return bulk_upsert(
        ChurnEvent, rows, unique_fields=["account", "churned_on"], update_fields=["reason", "updated_at"]
    )


# --- contacts -----------------------------------------------------------------------------------


def contact_save(*, contact: Contact) -> Contact:
    """Validate and save a contact (see `contacts_save`)."""
    return contacts_save(contacts=[contact])[0]


def contacts_check(*, contacts: Sequence[Contact]) -> dict[int, DomainError]:
    """What is wrong with each contact, by position (empty when all are valid); a fixed number of queries."""
    contacts = list(contacts)
    errors = _check_many(contacts)
    primary_made: set[int] = set()
    for index, contact in enumerate(contacts):
        if contact.is_primary and contact.deleted_at is None and contact.account_id is not None:
            if contact.account_id in primary_made:
                _add_error(errors, index, "is_primary", _("Another contact of this account is made primary too."))
            primary_made.add(contact.account_id)
    return _domain_errors(errors)


@transaction.atomic
def contacts_save(*, contacts: Sequence[Contact]) -> list[Contact]:
    """Validate and save contacts, all or none, in a fixed number of queries.

    A contact made primary demotes its account's previous primary contact; at most one contact per account
    may be made primary at once.
    """
    contacts = list(contacts)
    _refuse(contacts_check(contacts=contacts), len(contacts))
    now = timezone.now()
    promoted = sorted({c.account_id for c in contacts if c.is_primary and c.deleted_at is None})
    # Demote first: one live primary contact per account is enforced by a unique index.
    kept = [c.pk for c in contacts if c.pk is not None and c.is_primary and c.deleted_at is None]
    for chunk in _chunks(promoted):
        # A contact saved as primary that already is one stays primary: demoting it first would record a change.
        demoted = list(
            Contact.objects.alive()
            .filter(account_id__in=chunk, is_primary=True)
            .exclude(pk__in=kept)
            .values_list("pk", flat=True)
        )
        Contact.objects.filter(pk__in=demoted).update(is_primary=False, updated_at=now)
        record_history(Contact, demoted)
    _write_many(Contact, contacts, now)
    return contacts


# --- subscriptions ------------------------------------------------------------------------------


def subscription_save(*, subscription: Subscription) -> Subscription:
    """Validate and save a revenue line (see `subscriptions_save`)."""
    return subscriptions_save(subscriptions=[subscription])[0]


def subscriptions_check(*, subscriptions: Sequence[Subscription]) -> dict[int, DomainError]:
    """What is wrong with each line, by position (empty when all are valid); a fixed number of queries."""
    subscriptions = list(subscriptions)
    errors = _check_many(subscriptions)
    for index, line in enumerate(subscriptions):
        if line.start_date and line.end_date and line.end_date <= line.start_date:
            _add_error(errors, index, "end_date", _("The end date must be after the start date."))
    return _domain_errors(errors)


@transaction.atomic
def subscriptions_save(*, subscriptions: Sequence[Subscription]) -> list[Subscription]:
    """Validate and save revenue lines, all or none, in a fixed number of queries.

    The MRR of every account they belong to (or belonged to, for a line moved) is brought up to date, and
    those accounts are recomputed after commit.
    """
    subscriptions = list(subscriptions)
    _refuse(subscriptions_check(subscriptions=subscriptions), len(subscriptions))
    existing_ids = [line.pk for line in subscriptions if line.pk is not None]
    previous = {
        account_id
        for chunk in _chunks(existing_ids)
        for account_id in Subscription.objects.filter(pk__in=chunk).values_list("account_id", flat=True)
    }
    _write_many(Subscription, subscriptions, timezone.now())
    affected = sorted(previous | {line.account_id for line in subscriptions})
    for chunk in _chunks(affected):
        account_mrr_refresh(account_ids=chunk)
    queue_recompute(affected)
    return subscriptions


def subscription_add(
    *,
    account: Account,
    product: str,
    mrr: Decimal,
    start_date: datetime.date,
    end_date: datetime.date | None = None,
    quantity: int = 1,
    external_id: str | None = None,
) -> Subscription:
    line = Subscription(
        account=account,
        product=product,
        mrr=mrr,
        quantity=quantity,
        start_date=start_date,
        end_date=end_date,
        external_id=external_id,
    )
    return subscription_save(subscription=line)


def subscription_end(*, subscription: Subscription, end_date: datetime.date) -> Subscription:
    """End a line; `end_date` is the first day it no longer counts."""
    subscription.end_date = end_date
    return subscription_save(subscription=subscription)


@transaction.atomic
def subscription_change_price(
    *,
    subscription: Subscription,
    mrr: Decimal,
    on: datetime.date,
    quantity: int | None = None,
) -> Subscription:
    """A price change: the line ends on `on` and a new one with the new MRR starts that day."""
    if on <= subscription.start_date:
        raise DomainError(
            _("A price change must fall after the line's start date (%(start)s).")
            % {"start": subscription.start_date.isoformat()}
        )
    if subscription.end_date is not None and on >= subscription.end_date:
        raise DomainError(
            _("A price change must fall before the line's end date (%(end)s).")
            % {"end": subscription.end_date.isoformat()}
        )
    successor = Subscription(
        account=subscription.account,
        product=subscription.product,
        mrr=mrr,
        quantity=subscription.quantity if quantity is None else quantity,
        start_date=on,
        end_date=subscription.end_date,
    )
    subscription.end_date = on
    subscriptions_save(subscriptions=[subscription, successor])
    return successor


# --- touches ------------------------------------------------------------------------------------


TOUCH_FUTURE_GRACE = datetime.timedelta(minutes=5)  # clocks of partner systems drift


def touches_check(
    *, touches: Sequence[Touch], contacts: Sequence[list[Contact] | None] | None = None
) -> dict[int, DomainError]:
    """What is wrong with each touch, by position (empty when all are valid); a fixed number of queries.

    `contacts[i]` are the contacts to give `touches[i]` (None: leave them as they are); they must belong
    to that touch's account. A touch may not occur more than a few minutes in the future.
    """
    touches = list(touches)
    if contacts is not None and len(contacts) != len(touches):
        raise ValueError("contacts must have one entry (a list or None) per touch")
    errors = _check_many(touches)
    latest_allowed = timezone.now() + TOUCH_FUTURE_GRACE
    for index, touch in enumerate(touches):
        occurred_at = touch.occurred_at
        # After `_check_many`, a valid value is a datetime; a field already in error is not checked twice.
        if isinstance(occurred_at, datetime.datetime) and "occurred_at" not in errors.get(index, {}):
            if timezone.is_naive(occurred_at):
                occurred_at = timezone.make_aware(occurred_at)
            if occurred_at > latest_allowed:
                _add_error(errors, index, "occurred_at", _("A touch cannot be logged in the future."))
    # A touch moved to another account keeps the contacts it has unless new ones are given: they must
    # belong to its new account too (one query for the batch).
    kept = [
        index
        for index, touch in enumerate(touches)
        if touch.pk is not None and touch.account_id is not None and (contacts is None or contacts[index] is None)
    ]
    current: dict[int, list[Contact]] = {}
    for chunk in _chunks(kept):
        links = Touch.contacts.through.objects.filter(touch_id__in=[touches[i].pk for i in chunk])
        for link in links.select_related("contact"):
            current.setdefault(link.touch_id, []).append(link.contact)
    for index, touch in enumerate(touches):
        given = contacts[index] if contacts is not None else None
        if given is None:
            given = current.get(touch.pk, []) if touch.pk is not None else []
        if touch.account_id is None:
            continue
        strangers = [str(c.name) for c in given if c.account_id != touch.account_id]
        if strangers:
            _add_error(
                errors,
                index,
                "contacts",
                _("Not contacts of this account: %(names)s.") % {"names": ", ".join(strangers)},
            )
    return _domain_errors(errors)


@transaction.atomic
def touches_save(
    *, touches: Sequence[Touch], contacts: Sequence[Iterable[Contact] | None] | None = None
) -> list[Touch]:
    """Validate and save touches, all or none, in a fixed number of queries per batch.

    `contacts[i]`, when given and not None, replaces the contacts of `touches[i]`; otherwise they are left
    as they are. `Account.last_touch_at` is brought up to date for every account the touches belong to
    (or belonged to, for a touch moved), and those accounts are recomputed after commit.
    """
    touches = list(touches)
    given = [None if c is None else list(c) for c in contacts] if contacts is not None else [None] * len(touches)
    _refuse(touches_check(touches=touches, contacts=given), len(touches))
    existing_ids = [touch.pk for touch in touches if touch.pk is not None]
    previous = {
        account_id
        for chunk in _chunks(existing_ids)
        for account_id in Touch.objects.filter(pk__in=chunk).order_by().values_list("account_id", flat=True)
    }
    existed = [touch.pk is not None for touch in touches]
    _write_many(Touch, touches, timezone.now())

    through = Touch.contacts.through
    replaced = [(index, touch) for index, touch in enumerate(touches) if given[index] is not None]
    for chunk in _chunks(replaced):
        # A new touch has no contacts yet: only the touches that existed have rows to clear.
        cleared = [touch.pk for index, touch in chunk if existed[index]]
        if cleared:
            through.objects.filter(touch_id__in=cleared).delete()
        rows = [
            through(touch_id=touch.pk, contact_id=contact_id)
            for index, touch in chunk
            for contact_id in dict.fromkeys(contact.pk for contact in given[index])
        ]
        through.objects.bulk_create(rows, batch_size=BATCH_SIZE)
        for _index, touch in chunk:
            # What `contacts.set()` would do: a prefetched list is stale now.
            getattr(touch, "_prefetched_objects_cache", {}).pop(Touch.contacts.field.name, None)

    affected = sorted(previous | {touch.account_id for touch in touches})
    for chunk in _chunks(affected):
        account_last_touch_refresh(account_ids=chunk)
    queue_recompute(affected)
    return touches


def touch_save(*, touch: Touch, contacts: Iterable[Contact] | None = None) -> Touch:
    """Validate and save a touch, set its contacts when given, and keep `Account.last_touch_at` right.

    Errors are raised by field name (see `touches_save`).
    """
    return touches_save(touches=[touch], contacts=[contacts])[0]


def touch_log(
    *,
    account: Account,
    kind: str,
    occurred_at: datetime.datetime,
    subject: str,
    csm=None,
    contacts: Iterable[Contact] = (),
    duration_minutes: int | None = None,
    notes: str = "",
    sentiment: int | None = None,
    next_step: str = "",
    next_step_due: datetime.date | None = None,
    source: str = Touch.Source.WORKSPACE,
    external_id: str | None = None,
) -> Touch:
    touch = Touch(
        account=account,
        csm=csm,
        kind=kind,
        occurred_at=occurred_at,
        duration_minutes=duration_minutes,
        subject=subject,
        notes=notes,
        sentiment=sentiment,
        next_step=next_step,
        next_step_due=next_step_due,
        source=source,
        external_id=external_id,
    )
    return touch_save(touch=touch, contacts=contacts)


TOUCH_EDITABLE_FIELDS = [
    "account",
    "csm",
    "kind",
    "occurred_at",
    "duration_minutes",
    "subject",
    "notes",
    "sentiment",
    "next_step",
    "next_step_due",
]


def touch_update(*, touch: Touch, data: dict[str, Any]) -> Touch:
    """Change a touch's fields (and, when `data` has them, its contacts)."""
    for name in TOUCH_EDITABLE_FIELDS:
        if name in data:
            setattr(touch, name, data[name])
    return touch_save(touch=touch, contacts=data.get("contacts"))


# --- soft delete --------------------------------------------------------------------------------


def soft_delete(*, instance: SyncedModel, at: datetime.datetime | None = None) -> SyncedModel:
    """Mark one synced object deleted (see `soft_delete_many`); a no-op when it already is."""
    if instance.deleted_at is None:
        soft_delete_many(queryset=type(instance)._base_manager.filter(pk=instance.pk), at=at)
        changed = ["deleted_at", "updated_at", *(["is_primary"] if isinstance(instance, Contact) else [])]
        instance.refresh_from_db(fields=changed)
    return instance


@transaction.atomic
def soft_delete_many(*, queryset: QuerySet[SyncedModel], at: datetime.datetime | None = None) -> int:
    """Mark the live objects of `queryset` deleted (tombstones partners can sync); returns how many.

    What depended on them is fixed in bulk: accounts' MRR (revenue lines), last touch (touches), primary
    contact (a deleted contact is no longer primary). The accounts they belong to are recomputed after
    commit, once for the whole call; deleted accounts also have every revenue month recomputed, since
    the revenue history leaves them out. A fixed number of queries per batch of objects.
    """
    return _set_deleted(queryset.filter(deleted_at__isnull=True), at or timezone.now())


@transaction.atomic
def soft_restore_many(*, queryset: QuerySet[SyncedModel]) -> int:
    """Bring back the deleted objects of `queryset`; returns how many. Fixes and recomputes as deleting does."""
    return _set_deleted(queryset.filter(deleted_at__isnull=False), None)


def account_delete(*, account: Account, at: datetime.datetime | None = None) -> Account:
    """Soft-delete an account: it leaves health, alerts and the revenue history, which are recomputed."""
    return soft_delete(instance=account, at=at)


def account_restore(*, account: Account) -> Account:
    """Bring a deleted account back, with its health and revenue history (recomputed after commit)."""
    if account.deleted_at is not None:
        soft_restore_many(queryset=Account.objects.filter(pk=account.pk))
        account.refresh_from_db(fields=["deleted_at", "updated_at"])
    return account


def _set_deleted(queryset: QuerySet[SyncedModel], deleted_at: datetime.datetime | None) -> int:
    model = queryset.model
    belongs_to_account = any(f.name == "account" and f.many_to_one for f in model._meta.concrete_fields)
    columns = ("pk", "account_id") if belongs_to_account else ("pk", "pk")
    rows = list(queryset.values_list(*columns).order_by())
    now = timezone.now()
    account_ids: set[int] = set()
    for batch in _chunks(rows):
        ids = [pk for pk, _account_id in batch]
        owners = sorted({account_id for _pk, account_id in batch})
        changes: dict[str, Any] = {"deleted_at": deleted_at, "updated_at": now}
        if model is Contact and deleted_at is not None:
            # A tombstone cannot stay primary: restoring it would make two primary contacts.
            changes["is_primary"] = False
        model._base_manager.filter(pk__in=ids).update(**changes)
        record_history(model, ids)
        if model is Subscription:
            account_mrr_refresh(account_ids=owners)
        elif model is Touch:
            account_last_touch_refresh(account_ids=owners)
        account_ids.update(owners)
    # Whatever belongs to an account may feed its health; a deleted account leaves the revenue history.
    queue_recompute(account_ids, revenue=model is Account and bool(rows))
    return len(rows)


# --- partners -----------------------------------------------------------------------------------


@transaction.atomic
def partner_key_create(*, partner: Partner, name: str = "") -> tuple[PartnerKey, str]:
    """Create an API key; returns it with the raw key, which is not stored and cannot be shown again."""
    raw = f"csm_{secrets.token_urlsafe(32)}"
    key = PartnerKey(
        partner=partner,
        name=name,
        prefix=raw[4 : 4 + PartnerKey.PREFIX_LENGTH],
        key_hash=PartnerKey.hash_key(raw),
    )
    key.save()
    return key, raw


def partner_key_revoke(*, key: PartnerKey) -> PartnerKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
    return key


# --- tier rules ---------------------------------------------------------------------------------

ID_BATCH = 5000


def tier_for_arr(arr: Decimal, tiers: list[Tier]) -> Tier | None:
    """The lowest-rank (most attention) tier whose minimum ARR `arr` meets; `tiers` sorted by rank."""
    for tier in tiers:
        if tier.min_arr is None or arr >= tier.min_arr:
            return tier
    return None


def tier_rule_reason(arr: Decimal, tier: Tier, tiers: list[Tier]) -> str:
    if tier.min_arr is not None:
        return _("ARR %(arr)s meets the %(tier)s minimum of %(min)s") % {
            "arr": f"{arr:,.2f}",
            "tier": tier.name,
            "min": f"{tier.min_arr:,.2f}",
        }
    above = [t for t in tiers if t.rank < tier.rank and t.min_arr is not None]
    if not above:
        return _("ARR %(arr)s; %(tier)s has no minimum") % {"arr": f"{arr:,.2f}", "tier": tier.name}
    nearest = above[-1]
    return _("ARR %(arr)s is below the %(tier)s minimum of %(min)s") % {
        "arr": f"{arr:,.2f}",
        "tier": nearest.name,
        "min": f"{nearest.min_arr:,.2f}",
    }


TierOpening = tuple[int, Tier, datetime.datetime, str, str]  # account id, tier, at, source, reason
REASON_LENGTH = TierAssignment._meta.get_field("reason").max_length


@transaction.atomic
def tier_assignments_open(
    *, assignments: Iterable[TierOpening], assigned_by=None, restart: bool = False
) -> list[TierAssignment]:
    """Record many tier changes: each (account id, tier, at, source, reason) closes the account's open
    assignment at `at`, opens one in `tier` from `at` (assigned by `assigned_by`), and sets `Account.tier`.
    Returns the rows opened.

    An account already in `tier` keeps its open assignment (only `Account.tier` is brought in line), unless
    `restart`: then it gets a new period in the same tier (locking a tier changes who holds it). All or
    nothing; a fixed number of queries per ID_BATCH rows. Every writer of tier history comes through here.
    """
    rows = list(assignments)
    ids = [row[0] for row in rows]
    if len(set(ids)) != len(ids):
        raise DomainError(_("An account can change tier only once per call; it was given more than once."))
    opened: list[TierAssignment] = []
    for first in range(0, len(rows), ID_BATCH):
        opened += _tier_assignments_open_batch(rows[first : first + ID_BATCH], assigned_by, restart)
    return opened


def _tier_assignments_open_batch(rows: list[TierOpening], assigned_by, restart: bool) -> list[TierAssignment]:
    ids = [account_id for account_id, *_rest in rows]
    current_tiers = dict(Account.objects.filter(any_of("pk", ids)).values_list("pk", "tier_id"))
    open_now = {
        assignment.account_id: assignment
        for assignment in TierAssignment.objects.select_for_update().filter(
            any_of("account_id", ids), ended_at__isnull=True
        )
    }
    now = timezone.now()
    closing: list[TierAssignment] = []
    opening: list[TierAssignment] = []
    tier_of: dict[int, Tier] = {}  # account id -> the tier Account.tier must name
    for account_id, tier, at, source, reason in rows:
        if account_id not in current_tiers:
            raise DomainError(_("There is no such account (id %(id)s).") % {"id": account_id})
        if source not in TierAssignment.Source.values:
            raise DomainError(
                _("Unknown tier change source “%(source)s”; use one of %(choices)s.")
                % {"source": source, "choices": ", ".join(TierAssignment.Source.values)}
            )
        if len(reason) > REASON_LENGTH:
            raise DomainError(
                _("Keep the reason of a tier change to %(max)s characters or fewer.") % {"max": REASON_LENGTH}
            )
        current = open_now.get(account_id)
        if current is not None and current.tier_id == tier.pk and not restart:
            tier_of[account_id] = tier
            continue
        if current is not None:
            if at < current.started_at:
                raise DomainError(
                    _("A tier change cannot take effect before the current tier started (%(start)s).")
                    % {"start": current.started_at.isoformat()}
                )
            current.ended_at, current.updated_at = at, now
            closing.append(current)
        opening.append(
            TierAssignment(
                account_id=account_id,
                tier=tier,
                started_at=at,
                source=source,
                reason=reason,
                assigned_by=assigned_by,
                created_at=now,
                updated_at=now,
            )
        )
        tier_of[account_id] = tier
    # Close before opening: at most one open assignment per account, enforced by a unique index.
    bulk_update(TierAssignment, closing, ["ended_at", "updated_at"])
    bulk_insert(TierAssignment, opening)
    by_tier: dict[Tier, list[int]] = {}
    for account_id, tier in tier_of.items():
        if current_tiers[account_id] != tier.pk:
            by_tier.setdefault(tier, []).append(account_id)
    for tier, account_ids in by_tier.items():
        Account.objects.filter(pk__in=account_ids).update(tier=tier, updated_at=now)
        record_history(Account, account_ids)
    return opening


@transaction.atomic
def tier_rules_apply(*, account_ids: Iterable[int] | None = None, at: datetime.datetime | None = None) -> int:
    """Put every paying, unlocked account in the tier its ARR qualifies for; returns the accounts moved.

    Accounts with a locked tier and accounts without MRR (churned ones keep their last tier) are left
    alone. Each move closes the open TierAssignment and opens one with source "rule" and a reason.
    """
    at = at or timezone.now()
    tiers = list(Tier.objects.order_by("rank"))
    accounts = Account.objects.alive().filter(tier_locked=False, mrr__gt=0)
    if account_ids is not None:
        accounts = accounts.filter(pk__in=list(account_ids))
    moves: list[TierOpening] = []
    for pk, mrr, tier_id in accounts.values_list("pk", "mrr", "tier_id").order_by():
        arr = mrr * 12
        tier = tier_for_arr(arr, tiers)
        if tier is not None and tier.pk != tier_id:
            moves.append((pk, tier, at, TierAssignment.Source.RULE, tier_rule_reason(arr, tier, tiers)))
    with acting_as(ActorKind.RULE, _("tier rules")):
        tier_assignments_open(assignments=moves)
    return len(moves)
