"""Celery tasks: thin, idempotent callers of the services, retried with back-off on database errors.

The nightly task chains: MRR refresh -> tier rules -> revenue bridge -> portfolio history -> usage-linked targets
-> health (a group of id-range chunks, so more workers finish sooner) -> alerts. Every step works as of one day
(default: today); health also scores again the day `CSM_USAGE_LAG_DAYS` back, whose usage partners send late.
Without a broker everything runs eagerly, chunks one after another.
"""

import datetime

from celery import chain, chord, group, shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError
from django.utils import timezone

from accounts.services import account_mrr_refresh, recompute_batch, tier_rules_apply
from metrics.services.alerts import alerts_evaluate
from metrics.services.health import (
    CHUNK_SIZE,
    day_bounds,
    health_recompute_range,
    health_recompute_reported,
    id_ranges,
)
from metrics.services.portfolio import portfolio_history_recompute
from metrics.services.revenue import revenue_recompute
from metrics.services.targets import targets_follow_usage

# Back-off stays far below the broker's visibility timeout (CSM_BROKER_VISIBILITY_TIMEOUT, an hour by default), or a
# retried task is delivered twice.
RETRYING = {
    "autoretry_for": (DatabaseError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
    "acks_late": True,
}


def _date(value: str | None) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value else None


def _moment(on: str | None) -> datetime.datetime | None:
    """When changes made as of `on` take effect: now for today (or no date), the start of an earlier day."""
    day = _date(on)
    if day is None or day >= timezone.localdate():
        return None
    return day_bounds(day)[0]


@shared_task(**RETRYING)
def refresh_mrr(on: str | None = None) -> int:
    return account_mrr_refresh(on=_date(on))


@shared_task(**RETRYING)
def run_tier_rules(on: str | None = None) -> int:
    return tier_rules_apply(at=_moment(on))


@shared_task(**RETRYING)
def recompute_revenue(on: str | None = None) -> int:
    return revenue_recompute(last=_date(on))


@shared_task(**RETRYING)
def recompute_portfolio_history(on: str | None = None) -> int:
    """Store the portfolio's cohorts, upsell timing and churns of the history up to `on` (default today)."""
    return portfolio_history_recompute(on=_date(on))


@shared_task(**RETRYING)
def follow_usage_targets(on: str | None = None) -> int:
    """Usage-linked targets record their metric's latest value on or before `on` (default today)."""
    # Every night most usage-linked targets get a reading; the chain scores health next, so the
    # recompute those readings ask for is not queued.
    with recompute_batch(queue=False):
        return targets_follow_usage(on=_date(on))


@shared_task(**RETRYING)
def recompute_health_chunk(low: int, high: int, on: str | None = None, lag_days: int = 0) -> int:
    """Score the accounts with ids in [low, high) on `on` (default today), after `lag_days` before it, if any."""
    day = _date(on) or timezone.localdate()
    # Both days in one pass: one read of the chunk's usage and touches serves the two.
    days = [day - datetime.timedelta(days=lag_days), day] if lag_days else [day]
    return health_recompute_reported(days=days, id_range=(low, high))


@shared_task(**RETRYING)
def backfill_health_chunk(low: int, high: int, first: str, last: str) -> int:
    """Rebuild the snapshots of the accounts with ids in [low, high) for every day from `first` to `last`."""
    return health_recompute_range(first=_date(first), last=_date(last), id_range=(low, high))


def backfill_health_workflow(first: str, last: str, chunk_size: int = CHUNK_SIZE):
    """A backfill spread over the workers: one task per chunk of account ids, each over the whole range."""
    return group(backfill_health_chunk.si(low, high, first, last) for low, high in id_ranges(chunk_size))


@shared_task(**RETRYING)
def evaluate_alerts(*_results, on: str | None = None) -> dict:
    # *_results: a chord passes the header's results first; they are not needed.
    return alerts_evaluate(on=_date(on)).__dict__


@shared_task(**RETRYING)
def recompute_accounts(account_ids: list[int]) -> int:
    """Event-driven: bring a few accounts' MRR, tier, usage-linked targets, health and alerts up to date."""
    account_mrr_refresh(account_ids=account_ids)
    tier_rules_apply(account_ids=account_ids)
    with recompute_batch(queue=False):  # health and alerts follow here
        targets_follow_usage(account_ids=account_ids)
    written = health_recompute_reported(account_ids=account_ids)
    alerts_evaluate(account_ids=account_ids)
    return written


def nightly_workflow(on: str | None = None, chunk_size: int = CHUNK_SIZE):
    """The nightly canvas as of `on` (ISO date, default today); health chunks run in parallel, alerts wait for all."""
    lag = settings.CSM_USAGE_LAG_DAYS
    chunks = [recompute_health_chunk.si(low, high, on, lag) for low, high in id_ranges(chunk_size)]
    steps = [refresh_mrr.si(on), run_tier_rules.si(on), recompute_revenue.si(on)]
    steps += [recompute_portfolio_history.si(on), follow_usage_targets.si(on)]
    if chunks:
        steps.append(chord(chunks, evaluate_alerts.s(on=on)))
    else:
        steps.append(evaluate_alerts.si(on=on))
    return chain(*steps)


@shared_task(**RETRYING)
def nightly(on: str | None = None) -> str:
    """Start the nightly recompute; returns the id of the workflow's last task."""
    return nightly_workflow(on).apply_async().id
