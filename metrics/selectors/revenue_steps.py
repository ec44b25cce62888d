"""Month-end MRR as steps, in the database: what the portfolio reads without loading every account's history.

An account's month-end MRR only changes in a month where one of its paid lines starts or ends, so each
account is a few *steps* (month, change) rather than a series per month: its level after a step is the
running sum of the changes, its level before is that less the change. The classification is
`metrics.history.movement`'s, on those two levels: a step from 0 is the account's first paid month or a
reactivation, a rise from above 0 an expansion, a fall to 0 a churn. The work grows with the number of
revenue lines, and only per-cohort, per-delay or per-churn rows come back.

Months are month indexes (`metrics.history.month_index`); money is summed as integer cents, so sums are
exact on SQLite too, and handed back as Decimal in CSM_CURRENCY. The SQL runs on PostgreSQL and SQLite.
"""

import datetime
from collections import Counter, defaultdict
from decimal import Decimal
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from accounts.models import Account, Subscription, Tier
from metrics.history import month_end, month_index, month_start

# The month index of a date column.
MONTH_OF = {
    "postgresql": "(CAST(EXTRACT(YEAR FROM {0}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {0}) AS INTEGER) - 1)",
    "sqlite": "(CAST(strftime('%%Y', {0}) AS INTEGER) * 12 + CAST(strftime('%%m', {0}) AS INTEGER) - 1)",
}

# Live paid lines of live accounts covering a month end up to `last`: [starts, ends) in month indexes (a line
# counts on month end e when start_date <= e < end_date); an open line runs past `last`. Then each account's
# steps up to `last` (a line ending after it changes nothing shown), and its level after each step.
LINES = """
WITH lines AS (
    SELECT s.account_id, s.product, CAST(ROUND(s.mrr * 100) AS BIGINT) AS cents, {start_month} AS starts,
           CASE WHEN s.end_date IS NULL OR {end_month} > %(last)s THEN %(last)s + 1 ELSE {end_month} END AS ends
    FROM {subscription} s JOIN {account} a ON a.id = s.account_id
    WHERE s.deleted_at IS NULL AND a.deleted_at IS NULL AND s.mrr > 0 {only}
)"""
LEVELS = """, moves AS (
    SELECT l.account_id, CASE WHEN e.edge = 0 THEN l.starts ELSE l.ends END AS month,
           CASE WHEN e.edge = 0 THEN l.cents ELSE -l.cents END AS cents
    FROM lines l CROSS JOIN (SELECT 0 AS edge UNION ALL SELECT 1) e
    WHERE l.starts < l.ends AND (e.edge = 0 OR l.ends <= %(last)s)
), steps AS (
    SELECT account_id, month, SUM(cents) AS change FROM moves GROUP BY account_id, month
), levels AS (
    -- One window: ordered by month, the running minimum is the first paid month.
    SELECT account_id, month, change, SUM(change) OVER running AS level, MIN(month) OVER running AS first_paid
    FROM steps WINDOW running AS (PARTITION BY account_id ORDER BY month)
)"""

# The parts `history_steps` can ask for, each a branch of one UNION ALL of rows (part, a, b, c, d, tier, name).
# Per cohort (first paid month) and month: the change of its MRR and of its paying accounts.
COHORT_CHANGES = """
SELECT 'cohort', first_paid, month, SUM(change),
       SUM(CASE WHEN level > 0 AND level - change <= 0 THEN 1 WHEN level <= 0 AND level - change > 0 THEN -1
                ELSE 0 END), NULL, NULL
FROM levels GROUP BY first_paid, month"""
# Accounts per number of months from the first paid month to the first expansion (a rise from above 0).
UPSELL_DELAYS = """
SELECT 'delay', delay, COUNT(*), NULL, NULL, NULL, NULL FROM (
    SELECT account_id, MIN(month) - MIN(first_paid) AS delay FROM levels
    WHERE change > 0 AND level - change > 0 GROUP BY account_id
) firsts GROUP BY delay"""
# Every churn (a fall to 0) of the accounts with a churn in months low..high: the others' churns tell which
# churn event belongs to which churn.
CHURNS = """
SELECT 'churn', c.account_id, c.month, c.month - c.first_paid, -c.change, COALESCE(t.name, ''), a.name
FROM (
    SELECT account_id, month, first_paid, change,
           MAX(CASE WHEN month >= %(low)s AND month <= %(high)s THEN 1 ELSE 0 END)
               OVER (PARTITION BY account_id) AS in_range
    FROM levels WHERE level = 0 AND change < 0
) c JOIN {account} a ON a.id = c.account_id LEFT JOIN {tier} t ON t.id = a.tier_id
WHERE c.in_range = 1"""


# One month's movements: per account its MRR at the end of the month before (start) and of `month` (end),
# whether it paid before `month`, and the MRR at `month`'s end of products first paid in `month` (cross-sell
# candidates, see `metrics.history.movement`); only the accounts `{wanted}` keeps, of the segment asked for.
MONTH_MOVES = """
, paid AS (
    SELECT account_id, cents, starts, ends, MIN(starts) OVER (PARTITION BY account_id, product) AS product_first
    FROM lines WHERE starts < ends
), moves AS (
    SELECT account_id,
           SUM(CASE WHEN starts < %(last)s AND ends >= %(last)s THEN cents ELSE 0 END) AS start_cents,
           SUM(CASE WHEN ends > %(last)s THEN cents ELSE 0 END) AS end_cents,
           MAX(CASE WHEN starts < %(last)s THEN 1 ELSE 0 END) AS paid_before,
           SUM(CASE WHEN starts = %(last)s AND product_first = %(last)s THEN cents ELSE 0 END) AS fresh_cents
    FROM paid GROUP BY account_id
)
SELECT m.account_id, a.name, m.start_cents, m.end_cents, m.paid_before, m.fresh_cents
FROM moves m JOIN {account} a ON a.id = m.account_id
LEFT JOIN {tier} t ON t.id = a.tier_id LEFT JOIN {user} u ON u.id = a.owner_id
WHERE {wanted} AND {segment}
"""
# Which accounts can have a part of each bridge figure: MRR at the start, at the end, or a change between.
NEW = "m.start_cents = 0 AND m.end_cents > 0"
RISE = "m.start_cents > 0 AND m.end_cents > m.start_cents"
WANTED = {
    "start_mrr": "m.start_cents > 0",
    "new_mrr": NEW,
    "reactivation_mrr": NEW,
    "expansion_mrr": RISE,
    "upsell_mrr": RISE,
    "cross_sell_mrr": RISE,
    "contraction_mrr": "m.end_cents > 0 AND m.end_cents < m.start_cents",
    "churned_mrr": "m.start_cents > 0 AND m.end_cents = 0",
    "end_mrr": "m.end_cents > 0",
}
# An account's current segment of each kind, as `metrics.history.load_history` labels it.
SEGMENT_OF = {
    "tier": "COALESCE(t.name, '')",
    "industry": "a.industry",
    "region": "a.region",
    "owner": "COALESCE(u.username, '')",
}
# Only the accounts with a line starting or ending in the month: the MRR of no other changes then.
# Only the accounts with a line ending in months low..high: no other account's MRR falls to 0 then.
ENDED_IN_MONTHS = """AND s.account_id IN (
    SELECT account_id FROM {subscription} WHERE end_date >= %(first_day)s AND end_date <= %(last_day)s
)"""
CHANGED_IN_MONTH = """AND s.account_id IN (
    SELECT account_id FROM {subscription}
    WHERE (start_date >= %(month_first)s AND start_date <= %(month_last)s)
       OR (end_date >= %(month_first)s AND end_date <= %(month_last)s)
)"""


def _money(cents: int | Decimal) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def steps_sql(sql: str, *, only: str = "", wanted: str = "1 = 1", segment: str = "1 = 1", **parts: str) -> str:
    """LINES followed by `sql`, with this database's table names and month arithmetic filled in; `only`
    narrows the lines read, `wanted` and `segment` are conditions, `parts` fill further placeholders."""
    month_of = MONTH_OF[connection.vendor]
    quote = connection.ops.quote_name
    return (LINES + sql).format(
        start_month=month_of.format("s.start_date"),
        end_month=month_of.format("s.end_date"),
        subscription=quote(Subscription._meta.db_table),
        account=quote(Account._meta.db_table),
        tier=quote(Tier._meta.db_table),
        user=quote(get_user_model()._meta.db_table),
        only=only.format(subscription=quote(Subscription._meta.db_table)),
        wanted=wanted,
        segment=segment,
        **parts,
    )


def _run(sql: str, last: int, *, only: str = "", **params) -> list[tuple]:
    text = steps_sql(sql, only=only, wanted=params.pop("wanted", "1 = 1"), segment=params.pop("segment_sql", "1 = 1"))
    with connection.cursor() as cursor:
        cursor.execute(text, {"last": last, **params})
        return cursor.fetchall()


def last_month(until: datetime.date | None) -> int:
    """The month index the history ends with: `until`'s month, by default this month."""
    return month_index(until or timezone.localdate())


class CohortCounts(NamedTuple):
    """A cohort's paying accounts and their MRR (CSM_CURRENCY) at each month end from its first on."""

    cohort: int  # month index of the first paid month
    accounts: list[int]
    mrr: list[Decimal]


class Churn(NamedTuple):
    account_id: int
    month: int  # month index
    tenure: int  # months from the first paid month
    mrr: Decimal  # the MRR lost (CSM_CURRENCY)
    tier: str  # the account's current tier name, '' without one
    name: str


class HistorySteps(NamedTuple):
    """What `history_steps` was asked for; the parts not asked for are None."""

    cohorts: list[CohortCounts] | None
    upsell_delays: Counter[int] | None
    churns: list[Churn] | None


def history_steps(
    *, last: int, months_after: int | None = None, delays: bool = False, churn_months: tuple[int, int] | None = None
) -> HistorySteps:
    """From the history up to month `last`, in one query: every cohort (oldest first, with its figures for
    months cohort..min(cohort + months_after, last)) when `months_after` is given; accounts per months from
    their first paid month to their first expansion when `delays`; every churn of the accounts that
    churned in months `churn_months` (low, high), in any order, when given."""
    parts = []
    if months_after is not None:
        parts.append(COHORT_CHANGES)
    if delays:
        parts.append(UPSELL_DELAYS)
    low, high = churn_months or (0, -1)
    only, days = "", {}
    if churn_months is not None:
        parts.append(CHURNS)
        if len(parts) == 1:  # churns alone: only accounts with a line ending in those months can churn then
            only, days = ENDED_IN_MONTHS, {"first_day": month_start(low), "last_day": month_end(high)}
    rows = _run(LEVELS + "\nUNION ALL".join(parts), last, only=only, low=low, high=high, **days) if parts else []
    changes: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    upsell: Counter[int] = Counter()
    churns = []
    for part, a, b, c, d, tier, name in rows:
        if part == "cohort":
            changes[int(a)][int(b)] = (int(c), int(d))
        elif part == "delay":
            upsell[int(a)] = int(b)
        else:
            churns.append(Churn(a, int(b), int(c), _money(d), tier, name))
    return HistorySteps(
        _cohort_counts(changes, months_after, last) if months_after is not None else None,
        upsell if delays else None,
        churns if churn_months is not None else None,
    )


def _cohort_counts(changes: dict[int, dict[int, tuple[int, int]]], months_after: int, last: int) -> list[CohortCounts]:
    result = []
    for cohort in sorted(changes):
        cents = logos = 0
        accounts, mrr = [], []
        for month in range(cohort, min(cohort + months_after, last) + 1):
            change, joined = changes[cohort].get(month, (0, 0))
            cents += change
            logos += joined
            accounts.append(logos)
            mrr.append(_money(cents))
        result.append(CohortCounts(cohort, accounts, mrr))
    return result


class MonthMove(NamedTuple):
    account_id: int
    name: str
    start: Decimal  # MRR at the end of the month before (CSM_CURRENCY)
    end: Decimal  # MRR at the month's end
    paid_before: bool  # MRR at some month end before the month
    fresh: Decimal  # MRR at the month's end of products paid for the first time in the month


def month_moves(*, month: int, figure: str, segment_kind: str, segment: str) -> list[MonthMove]:
    """The accounts that may have a part of `figure` (a bridge figure) in `month`, of one segment of the
    kind (every account for the 'all' kind), from the history up to `month`. One query."""
    params: dict = {"wanted": WANTED[figure]}
    if segment_kind in SEGMENT_OF:
        params |= {"segment_sql": f"{SEGMENT_OF[segment_kind]} = %(segment)s", "segment": segment}
    only = ""
    if figure not in ("start_mrr", "end_mrr"):
        only = CHANGED_IN_MONTH
        params |= {"month_first": month_start(month), "month_last": month_end(month)}
    return [
        MonthMove(pk, name, _money(start), _money(end), bool(paid_before), _money(fresh))
        for pk, name, start, end, paid_before, fresh in _run(MONTH_MOVES, month, only=only, **params)
    ]
