"""The portfolio's history figures, stored by the nightly revenue step so the page reads rows instead of
summing every account's history on each request.

Cohort retention and upsell timing (one `PortfolioHistory` row) and every churn with its tenure, tier and
recorded reason (`AccountChurn` rows) come from one query over the accounts' month-end MRR steps
(`metrics.selectors.revenue_steps.history_steps`) and one over their churn events: the same figures
`metrics.selectors.revenue` computes live, as of the day of the run. Concentration and time to value, which
rank or scan every account, are stored in the same row as the book stood then.
"""

import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from csm.db import bulk_upsert
from metrics.history import month_start
from metrics.models import AccountChurn, PortfolioHistory
from metrics.selectors import revenue_steps
from metrics.selectors.revenue import churns_with_reasons, concentration, time_to_value

COHORT_MONTHS = 12  # months after each cohort's first month that are stored (the page's cohort table)
WRITE_ROWS = 5_000  # churn rows upserted or deleted per statement
CHURN_FIGURES = ("tenure_months", "mrr", "tier", "reason")


def _cents(amount: Decimal) -> int:
    return int(amount.scaleb(2))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def book_figures() -> dict:
    """Concentration and time to value (`revenue.concentration`, `revenue.time_to_value` without each
    tier's list of days) as JSON, Decimals as text. Two queries."""
    share = concentration()
    days = time_to_value()
    return {
        "concentration": {
            **share,
            "top_arr": str(share["top_arr"]),
            "total_arr": str(share["total_arr"]),
            "top_share": _text(share["top_share"]),
        },
        "time_to_value": {
            "median_days": _text(days["median_days"]),
            "accounts": days["accounts"],
            "by_tier": {
                tier: {"median_days": _text(figures["median_days"]), "count": figures["count"]}
                for tier, figures in days["by_tier"].items()
            },
        },
    }


@transaction.atomic
def portfolio_history_recompute(*, on: datetime.date | None = None) -> int:
    """Store cohorts, upsell timing and churns of the revenue history up to `on`'s month (default this month).

    Concentration and time to value are stored with them, as the book stands. Idempotent: the history row is
    replaced; only churn rows that are new or whose figures changed are written, and churns that no longer
    happen are deleted. Returns the number of churn rows written. Five queries beyond the writes, whatever
    the number of accounts.
    """
    last = revenue_steps.last_month(on)
    steps = revenue_steps.history_steps(last=last, months_after=COHORT_MONTHS, delays=True, churn_months=(0, last))
    churns, recorded = churns_with_reasons(steps.churns, 0, last)
    stamp = timezone.now()
    history = {
        "through": month_start(last),
        "computed_at": stamp,
        "cohorts": [
            [month_start(cohort.cohort).isoformat(), cohort.accounts, [_cents(mrr) for mrr in cohort.mrr]]
            for cohort in steps.cohorts
        ],
        "upsell_delays": sorted([months, accounts] for months, accounts in steps.upsell_delays.items()),
        "book": book_figures(),
    }
    if not PortfolioHistory.objects.update(**history, updated_at=stamp):  # one row, replaced; made by the first run
        PortfolioHistory.objects.create(**history)
    stored = {
        (account_id, month): (pk, figures)
        for pk, account_id, month, *figures in AccountChurn.objects.values_list(
            "pk", "account_id", "month", *CHURN_FIGURES
        ).order_by()
    }
    changed = []
    for churn in churns:
        key = (churn.account_id, month_start(churn.month))
        figures = [churn.tenure, churn.mrr, churn.tier, recorded.get((churn.account_id, churn.month), "").strip()]
        _pk, before = stored.pop(key, (None, None))
        if before != figures:
            changed.append(
                {
                    "account_id": churn.account_id,
                    "month": key[1],
                    **dict(zip(CHURN_FIGURES, figures, strict=True)),
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
    written = 0
    for start in range(0, len(changed), WRITE_ROWS):
        written += bulk_upsert(
            AccountChurn,
            changed[start : start + WRITE_ROWS],
            unique_fields=["account_id", "month"],
            update_fields=[*CHURN_FIGURES, "updated_at"],
        )
    gone = [pk for pk, _figures in stored.values()]
    for start in range(0, len(gone), WRITE_ROWS):
        AccountChurn.objects.filter(pk__in=gone[start : start + WRITE_ROWS]).delete()
    return written
