"""Reads over accounts and their revenue lines."""

import datetime
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from csm.exceptions import DomainError

from .filters import AccountFilterSet, owner_search
from .models import Account, Subscription

ZERO = Decimal("0.00")
OWNER_SUGGESTIONS = 10  # people the owner picker offers at a time


def account_filterset(*, filters: Mapping[str, Any] | None, user=None) -> AccountFilterSet:
    """The accounts FilterSet bound to `filters` (a QueryDict or dict), over live accounts with their tier
    and owner; `user` is who "mine" means. Pages read its form (and errors) and its `qs`."""
    queryset = Account.objects.alive().select_related("tier", "owner")
    return AccountFilterSet(filters if filters is not None else {}, queryset, user=user)


def account_list(*, filters: Mapping[str, Any] | None = None, user=None) -> QuerySet[Account]:
    """Live accounts matching `filters` (see `accounts.filters`), sorted; bad filter values raise a DomainError
    naming the fields."""
    filterset = account_filterset(filters=filters, user=user)
    if not filterset.is_valid():
        raise DomainError(filterset.errors.as_data())
    return filterset.qs


def owner_suggestions(*, text: str, limit: int = OWNER_SUGGESTIONS) -> list:
    """At most `limit` people whose user name, first, last or full name starts with `text` (case ignored), by
    name: what the accounts list's owner picker offers as one types. None for empty or overlong text. One query."""
    text = text.strip()
    if not text or len(text) > 150:
        return []
    people = owner_search(text).order_by("first_name", "last_name", "username")
    return list(people.only("username", "first_name", "last_name")[:limit])


def subscriptions_active_on(on: datetime.date) -> QuerySet[Subscription]:
    """Live revenue lines counting on day `on`: start_date <= on < end_date (end exclusive, open when empty)."""
    return Subscription.objects.alive().filter(start_date__lte=on).filter(Q(end_date__isnull=True) | Q(end_date__gt=on))


def account_mrr_on(*, account_id: int, on: datetime.date) -> Decimal:
    """An account's MRR on one day, in the deployment currency."""
    total = subscriptions_active_on(on).filter(account_id=account_id).aggregate(total=Sum("mrr"))["total"]
    return total if total is not None else ZERO


def account_mrr_on_map(*, on: datetime.date, account_ids: Iterable[int] | None = None) -> dict[int, Decimal]:
    """MRR on day `on` for many accounts in one query.

    With `account_ids`, every id is in the result (0.00 when it has no live line that day); without,
    only accounts with MRR on that day are.
    """
    lines = subscriptions_active_on(on)
    result: dict[int, Decimal] = {}
    if account_ids is not None:
        account_ids = list(account_ids)
        lines = lines.filter(account_id__in=account_ids)
        result = dict.fromkeys(account_ids, ZERO)
    for account_id, total in lines.values_list("account_id").annotate(total=Sum("mrr")).order_by():
        result[account_id] = total
    return result


def account_mrr_on_expression(on: datetime.date) -> Coalesce:
    """An expression for annotating or updating an Account queryset with its MRR on day `on`."""
    total = (
        subscriptions_active_on(on)
        .filter(account_id=OuterRef("pk"))
        .order_by()
        .values("account_id")
        .annotate(total=Sum("mrr"))
        .values("total")
    )
    money = DecimalField(max_digits=14, decimal_places=2)
    return Coalesce(Subquery(total, output_field=money), Value(ZERO), output_field=money)


def account_paid_month_counts(*, account_ids: Iterable[int], until: datetime.date | None = None) -> dict[int, int]:
    """For each account, the months up to `until`'s month (default this month) with MRR at month end.

    These are the months an account adds to the revenue history (an account's MRR in a month is its MRR on
    the month's last day), read from its live lines in one query.
    """
    account_ids = list(account_ids)
    last = _month_number(until or timezone.localdate())
    paid: set[tuple[int, int]] = set()
    lines = Subscription.objects.alive().filter(account_id__in=account_ids, mrr__gt=0)
    for account_id, start, end in lines.values_list("account_id", "start_date", "end_date").order_by():
        # A month end e counts when start <= e < end: always the start's month, and every month before the
        # end's month (a month's last day is never before a day of that month).
        stop = last + 1 if end is None else min(_month_number(end), last + 1)
        paid.update((account_id, month) for month in range(_month_number(start), stop))
    counts = dict.fromkeys(account_ids, 0)
    for account_id, _month in paid:
        counts[account_id] += 1
    return counts


def _month_number(day: datetime.date) -> int:
    return day.year * 12 + day.month - 1
