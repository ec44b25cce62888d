"""Writes over accounts. Every state change goes through here, so denormalised fields stay right.

`Account.mrr` is the MRR on today's date; `Account.last_touch_at` the latest live touch; the open
`TierAssignment` always names the account's current tier.
"""

import datetime
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import DateTimeField, F, Max, OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from csm.exceptions import DomainError, full_clean
from csm.models import SyncedModel

from .models import (
    Account,
    Contact,
    Partner,
    PartnerKey,
    Subscription,
    Tier,
    TierAssignment,
    Touch,
)
from .selectors import account_mrr_on_expression

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
def recompute_batch() -> Iterator[None]:
    """Queue one recompute for everything queued inside the block, when it ends without an error.

    For requests and imports that call several services for the same accounts (an account saved with
    its contacts and revenue lines): each service queues its accounts, the block queues them once. An
    inner block joins the outer one.
    """
    if _pending_recompute.get() is not None:
        yield
        return
    pending = _PendingRecompute()
    token = _pending_recompute.set(pending)
    try:
        yield
    finally:
        _pending_recompute.reset(token)
    queue_recompute(pending.account_ids, revenue=pending.revenue)


def _previous_account_id(model, pk: int | None) -> int | None:
    if pk is None:
        return None
    return model.objects.filter(pk=pk).values_list("account_id", flat=True).first()


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
    """Move an account into `tier`, closing its current assignment; a no-op when already there."""
    at = at or timezone.now()
    current = TierAssignment.objects.select_for_update().filter(account=account, ended_at__isnull=True).first()
    if current is not None and current.tier_id == tier.pk:
        if account.tier_id != tier.pk:
            Account.objects.filter(pk=account.pk).update(tier=tier, updated_at=timezone.now())
            account.tier = tier
        return current
    if current is not None:
        if at < current.started_at:
            raise DomainError(
                _("A tier change cannot take effect before the current tier started (%(start)s).")
                % {"start": current.started_at.isoformat()}
            )
        current.ended_at = at
        current.save(update_fields=["ended_at", "updated_at"])
    assignment = TierAssignment(
        account=account,
        tier=tier,
        started_at=at,
        source=source,
        reason=reason,
        assigned_by=assigned_by,
    )
    full_clean(assignment)
    assignment.save()
    Account.objects.filter(pk=account.pk).update(tier=tier, updated_at=timezone.now())
    account.tier = tier
    return assignment


@transaction.atomic
def account_save(
    *,
    account: Account,
    changed_by=None,
    source: str = TierAssignment.Source.MANUAL,
    reason: str = "",
) -> Account:
    """Validate and save an account built or edited by a caller; a tier change is recorded in history."""
    full_clean(account)
    is_new = account.pk is None
    previous_tier_id = (
        None if is_new else Account.objects.filter(pk=account.pk).values_list("tier_id", flat=True).first()
    )
    new_tier = account.tier
    if is_new:
        account.tier = None  # the assignment below sets it, with its history row
    account.save()
    if new_tier is not None and (is_new or previous_tier_id != new_tier.pk):
        tier_assign(
            account=account,
            tier=new_tier,
            source=source,
            reason=reason or _("Set by hand"),
            assigned_by=changed_by,
        )
    elif new_tier is None and previous_tier_id is not None:
        TierAssignment.objects.filter(account=account, ended_at__isnull=True).update(
            ended_at=timezone.now(), updated_at=timezone.now()
        )
    return account


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


# --- contacts -----------------------------------------------------------------------------------


@transaction.atomic
def contact_save(*, contact: Contact) -> Contact:
    """Save a contact; making it primary demotes the account's previous primary contact."""
    if contact.is_primary and contact.account_id:
        Contact.objects.filter(account_id=contact.account_id, is_primary=True).exclude(pk=contact.pk).update(
            is_primary=False, updated_at=timezone.now()
        )
    full_clean(contact)
    contact.save()
    return contact


# --- subscriptions ------------------------------------------------------------------------------


@transaction.atomic
def subscription_save(*, subscription: Subscription) -> Subscription:
    """Validate and save a revenue line, then bring the MRR of the accounts it touches up to date."""
    previous_account_id = _previous_account_id(Subscription, subscription.pk)
    full_clean(subscription)
    subscription.save()
    account_mrr_refresh(account_ids={subscription.account_id, previous_account_id} - {None})
    queue_recompute([subscription.account_id, previous_account_id])
    return subscription


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
    old_end = subscription.end_date
    with recompute_batch():
        subscription_end(subscription=subscription, end_date=on)
        return subscription_add(
            account=subscription.account,
            product=subscription.product,
            mrr=mrr,
            quantity=subscription.quantity if quantity is None else quantity,
            start_date=on,
            end_date=old_end,
        )


# --- touches ------------------------------------------------------------------------------------


@transaction.atomic
def touch_save(*, touch: Touch, contacts: Iterable[Contact] | None = None) -> Touch:
    """Validate and save a touch, set its contacts, and keep `Account.last_touch_at` right."""
    if touch.occurred_at and touch.occurred_at > timezone.now() + datetime.timedelta(minutes=5):
        raise DomainError({"occurred_at": _("A touch cannot be logged in the future.")})
    previous_account_id = _previous_account_id(Touch, touch.pk)
    full_clean(touch)
    touch.save()
    if contacts is not None:
        contacts = list(contacts)
        strangers = [c.name for c in contacts if c.account_id != touch.account_id]
        if strangers:
            raise DomainError(
                {"contacts": _("Not contacts of this account: %(names)s.") % {"names": ", ".join(strangers)}}
            )
        touch.contacts.set(contacts)
    account_last_touch_refresh(account_ids={touch.account_id, previous_account_id} - {None})
    queue_recompute([touch.account_id, previous_account_id])
    return touch


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


@transaction.atomic
def soft_delete(*, instance: SyncedModel, at: datetime.datetime | None = None) -> SyncedModel:
    """Mark a synced object deleted (a tombstone partners can sync) and fix what depended on it."""
    if instance.deleted_at is not None:
        return instance
    instance.deleted_at = at or timezone.now()
    instance.save(update_fields=["deleted_at", "updated_at"])
    if isinstance(instance, Subscription):
        account_mrr_refresh(account_ids=[instance.account_id])
        queue_recompute([instance.account_id])
    elif isinstance(instance, Touch):
        account_last_touch_refresh(account_ids=[instance.account_id])
        queue_recompute([instance.account_id])
    elif isinstance(instance, Contact) and instance.is_primary:
        Contact.objects.filter(pk=instance.pk).update(is_primary=False)
        instance.is_primary = False
    return instance


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
def tier_assignments_open(*, assignments: Iterable[TierOpening]) -> list[TierAssignment]:
    """Record many tier changes: each (account id, tier, at, source, reason) closes the account's open
    assignment at `at`, opens one in `tier` from `at`, and sets `Account.tier`. Returns the rows opened.

    An account already in `tier` keeps its open assignment (only `Account.tier` is brought in line). All or
    nothing; a fixed number of queries per ID_BATCH rows. Bulk writers of tier history (the tier rules,
    imports, demo data) come through here.
    """
    rows = list(assignments)
    ids = [row[0] for row in rows]
    if len(set(ids)) != len(ids):
        raise DomainError(_("An account can change tier only once per call; it was given more than once."))
    opened: list[TierAssignment] = []
    for first in range(0, len(rows), ID_BATCH):
        opened += _tier_assignments_open_batch(rows[first : first + ID_BATCH])
    return opened


def _tier_assignments_open_batch(rows: list[TierOpening]) -> list[TierAssignment]:
    ids = [account_id for account_id, *_rest in rows]
    current_tiers = dict(Account.objects.filter(pk__in=ids).values_list("pk", "tier_id"))
    open_now = {
        assignment.account_id: assignment
        for assignment in TierAssignment.objects.select_for_update().filter(account_id__in=ids, ended_at__isnull=True)
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
        if current is not None and current.tier_id == tier.pk:
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
                created_at=now,
                updated_at=now,
            )
        )
        tier_of[account_id] = tier
    # Close before opening: at most one open assignment per account, enforced by a unique index.
    TierAssignment.objects.bulk_update(closing, ["ended_at", "updated_at"], batch_size=1000)
    TierAssignment.objects.bulk_create(opening, batch_size=1000)
    by_tier: dict[Tier, list[int]] = {}
    for account_id, tier in tier_of.items():
        if current_tiers[account_id] != tier.pk:
            by_tier.setdefault(tier, []).append(account_id)
    for tier, account_ids in by_tier.items():
        Account.objects.filter(pk__in=account_ids).update(tier=tier, updated_at=now)
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
    tier_assignments_open(assignments=moves)
    return len(moves)
