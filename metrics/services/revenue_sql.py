"""The revenue bridge (SPEC 4) computed in the database, one statement per run.

Each account's month-end MRR and its month's movement are classified as `metrics.history.movement`
does, then added up per (month, segment kind, segment) for every kind and set beside the stored
RevenueMonth rows. Only those aggregated rows reach Python, so memory stays flat as accounts grow.
Months are month indexes (months since year 0, `metrics.history.month_index`); money travels as
integer cents, so sums are exact on SQLite too. The SQL runs on PostgreSQL and SQLite alike: months
come from a recursive CTE (SQLite has no generate_series) and the segment kinds from UNION ALL (it
has no GROUPING SETS).
"""

from collections.abc import Iterator, Sequence

from django.contrib.auth import get_user_model
from django.db import connection

from accounts.models import Account, Subscription, Tier
from metrics.history import month_start
from metrics.models import RevenueMonth

# The month index of a date column.
MONTH_OF = {
    "postgresql": "(CAST(EXTRACT(YEAR FROM {0}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {0}) AS INTEGER) - 1)",
    "sqlite": "(CAST(strftime('%%Y', {0}) AS INTEGER) * 12 + CAST(strftime('%%m', {0}) AS INTEGER) - 1)",
}

# What the query sums per segment, in the order it returns them: bridge money figures in cents, account
# counts, then the trailing-12-month retention inputs in cents.
MONEY_CENTS = (
    "start_mrr",
    "new_mrr",
    "reactivation_mrr",
    "expansion_mrr",
    "cross_sell_mrr",
    "contraction_mrr",
    "churned_mrr",
    "end_mrr",
)
COUNTS = (
    "start_accounts",
    "new_accounts",
    "reactivated_accounts",
    "expanding_accounts",
    "contracting_accounts",
    "churned_accounts",
    "end_accounts",
)
TRAILING_CENTS = ("base_mrr", "now_mrr", "kept_mrr")
SUMMED = (*MONEY_CENTS, *COUNTS, *TRAILING_CENTS)

# Month indexes first..last.
MONTHS = """
months(month) AS (
    SELECT %(first)s
    UNION ALL
    SELECT month + 1 FROM months WHERE month < %(last)s
)"""

# Live paid lines of live accounts as the month ends each covers, [starts, ends) in month indexes (a line
# counts on month end e when start_date <= e < end_date); an open line runs past the last month. Each line
# carries its account's labels (tier, industry, region, owner) down to the account-months.
LINES = """
lines AS (
    SELECT s.account_id, a.tier_id, a.industry, a.region, a.owner_id, s.product,
           CAST(ROUND(s.mrr * 100) AS BIGINT) AS cents,
           {start_month} AS starts, COALESCE({end_month}, %(last)s + 1) AS ends
    FROM {subscription} s JOIN {account} a ON a.id = s.account_id
    WHERE s.deleted_at IS NULL AND a.deleted_at IS NULL AND s.mrr > 0
)"""

# Lines that cover a month end up to the last month, with the account's first paid month end (an account
# paid before a month it starts from zero is reactivated, else new) and, for a line that opens its product
# (the product's first paid month end), its cents: a cross-sell candidate in that month.
PAID_LINES = """
paid_lines AS (
    SELECT account_id, tier_id, industry, region, owner_id, cents, starts, ends,
           MIN(starts) OVER (PARTITION BY account_id) AS first_paid,
           CASE WHEN starts = MIN(starts) OVER (PARTITION BY account_id, product) THEN cents ELSE 0 END AS opening
    FROM lines
    WHERE starts < ends AND starts <= %(last)s
)"""

# Per account and month its MRR at the previous month end (start), at this one (end) and at the month end
# a year before (year_before, the trailing retention base), wherever one is non-zero. A line covering month
# ends [starts, ends) counts in the start of months starts + 1..ends, in the end of months starts..ends - 1
# and a year on in months starts + 12..ends + 11.
ACCOUNT_MONTHS = """
account_months AS (
    SELECT l.account_id, l.tier_id, l.industry, l.region, l.owner_id, m.month,
           CAST(SUM(CASE WHEN m.month > l.starts AND m.month <= l.ends THEN l.cents ELSE 0 END) AS BIGINT)
               AS start_cents,
           CAST(SUM(CASE WHEN m.month < l.ends THEN l.cents ELSE 0 END) AS BIGINT) AS end_cents,
           CAST(SUM(CASE WHEN m.month >= l.starts + 12 AND m.month < l.ends + 12 THEN l.cents ELSE 0 END) AS BIGINT)
               AS year_before_cents,
           CAST(SUM(CASE WHEN m.month = l.starts THEN l.opening ELSE 0 END) AS BIGINT) AS opening_cents,
           MIN(l.first_paid) AS first_paid
    FROM paid_lines l JOIN months m ON m.month >= l.starts AND m.month <= l.ends + 11
    GROUP BY l.account_id, l.tier_id, l.industry, l.region, l.owner_id, m.month
)"""

# Each account's movement in each month, as `metrics.history.movement` classifies it ('steady': paying,
# unchanged; '': paying at neither end, there for its trailing base), the cross-sell part of an expansion
# (products first paid this month, capped at the expansion) and its trailing retention inputs (SPEC 4: when
# it paid a year before, base = MRR then, now = MRR now, kept = the lesser).
ACCOUNT_MOVES = """
account_moves AS (
    SELECT month, tier_id, industry, region, owner_id, start_cents, end_cents,
           CASE WHEN start_cents > 0 AND end_cents = 0 THEN 'churn'
                WHEN start_cents > 0 AND end_cents < start_cents THEN 'contraction'
                WHEN start_cents > 0 AND end_cents > start_cents THEN 'expansion'
                WHEN start_cents > 0 THEN 'steady'
                WHEN end_cents > 0 AND first_paid < month THEN 'reactivation'
                WHEN end_cents > 0 THEN 'new'
                ELSE '' END AS movement,
           CASE WHEN start_cents = 0 OR end_cents <= start_cents THEN 0
                WHEN opening_cents < end_cents - start_cents THEN opening_cents
                ELSE end_cents - start_cents END AS cross_sell_cents,
           year_before_cents AS base_cents,
           CASE WHEN year_before_cents > 0 THEN end_cents ELSE 0 END AS now_cents,
           CASE WHEN end_cents < year_before_cents THEN end_cents ELSE year_before_cents END AS kept_cents
    FROM account_months
    WHERE start_cents > 0 OR end_cents > 0 OR year_before_cents > 0
)"""

# Accounts and sums per month, movement and labels: per combination of tier, industry and region (few,
# rolled up to all, tier, industry and region below) and per owner.
BY_LABELS = """
by_labels AS (
    SELECT month, tier_id, industry, region, movement, COUNT(*) AS accounts, {sums}
    FROM account_moves
    GROUP BY month, tier_id, industry, region, movement
),
by_owner AS (
    SELECT month, owner_id, movement, COUNT(*) AS accounts, {sums}
    FROM account_moves
    GROUP BY month, owner_id, movement
)"""
BY_LABELS_SUMMED = ("start_cents", "end_cents", "cross_sell_cents", "base_cents", "now_cents", "kept_cents")


def _of(movements: str, amount: str) -> str:
    return f"SUM(CASE WHEN b.movement IN ({movements}) THEN {amount} ELSE 0 END)"


PAID_AT_START = "'churn', 'contraction', 'expansion', 'steady'"
PAID_AT_END = "'new', 'reactivation', 'expansion', 'contraction', 'steady'"
# Each figure of a segment (see SUMMED) from its by_labels rows.
FIGURE_SUMS = {
    "start_mrr": "SUM(b.start_cents)",
    "new_mrr": _of("'new'", "b.end_cents"),
    "reactivation_mrr": _of("'reactivation'", "b.end_cents"),
    "expansion_mrr": _of("'expansion'", "b.end_cents - b.start_cents"),
    "cross_sell_mrr": "SUM(b.cross_sell_cents)",
    "contraction_mrr": _of("'contraction'", "b.start_cents - b.end_cents"),
    "churned_mrr": _of("'churn'", "b.start_cents"),
    "end_mrr": "SUM(b.end_cents)",
    "start_accounts": _of(PAID_AT_START, "b.accounts"),
    "new_accounts": _of("'new'", "b.accounts"),
    "reactivated_accounts": _of("'reactivation'", "b.accounts"),
    "expanding_accounts": _of("'expansion'", "b.accounts"),
    "contracting_accounts": _of("'contraction'", "b.accounts"),
    "churned_accounts": _of("'churn'", "b.accounts"),
    "end_accounts": _of(PAID_AT_END, "b.accounts"),
    "base_mrr": "SUM(b.base_cents)",
    "now_mrr": "SUM(b.now_cents)",
    "kept_mrr": "SUM(b.kept_cents)",
}

# One branch per segment kind, labelled with the account's current tier name, industry, region and owner
# username ('' when unset), as `metrics.history.load_history` labels them; 'all' has one segment, '', with a
# row every month.
SEGMENTS = {
    "all": ("''", "months m LEFT JOIN by_labels b ON b.month = m.month"),
    "tier": ("COALESCE(t.name, '')", "by_labels b LEFT JOIN {tier} t ON t.id = b.tier_id"),
    "industry": ("b.industry", "by_labels b"),
    "region": ("b.region", "by_labels b"),
    "owner": ("COALESCE(u.{username}, '')", "by_owner b LEFT JOIN {user} u ON u.id = b.owner_id"),
}
SEGMENT_BRANCH = """
SELECT {month} AS month, '{kind}' AS segment_kind, {label} AS segment, {sums}
FROM {source}
GROUP BY {month}{group}"""

# The rows stored for these months, their figures as text (exact decimals on SQLite too, which keeps them as
# floating point), beside the computed ones: a row computed as stored needs no write, a row stored but no
# longer computed (its segment emptied) goes.
STORED = """
stored AS (
    SELECT id, {stored_month} AS month, segment_kind, segment, {stored_figures}
    FROM {revenue_month}
    WHERE month >= %(first_day)s AND month <= %(last_day)s
)"""
# A LEFT JOIN and the stored rows no longer computed, rather than a FULL JOIN, which SQLite lacks before 3.39.
BESIDE_STORED = """
SELECT n.month, n.segment_kind, n.segment, {computed}, s.id, {stored}
FROM segment_rows n LEFT JOIN stored s
    ON s.month = n.month AND s.segment_kind = n.segment_kind AND s.segment = n.segment
UNION ALL
SELECT NULL, NULL, NULL, {no_sums}, s.id, {stored}
FROM stored s
WHERE NOT EXISTS (
    SELECT 1 FROM segment_rows n
    WHERE n.month = s.month AND n.segment_kind = s.segment_kind AND n.segment = s.segment
)"""


def _bridge_sql(stored_figures: Sequence[str]) -> str:
    """The statement for this database, its tables named as the models name them."""
    month_of = MONTH_OF[connection.vendor]
    user = get_user_model()
    names = {
        "subscription": Subscription._meta.db_table,
        "account": Account._meta.db_table,
        "tier": Tier._meta.db_table,
        "user": user._meta.db_table,
        "username": user._meta.get_field(user.USERNAME_FIELD).column,
        "revenue_month": RevenueMonth._meta.db_table,
        "start_month": month_of.format("s.start_date"),
        "end_month": month_of.format("s.end_date"),
        "stored_month": month_of.format("month"),
    }
    # Sums as BIGINT: PostgreSQL widens a SUM of BIGINT to numeric, slower to add up again.
    label_sums = ", ".join(f"CAST(SUM({column}) AS BIGINT) AS {column}" for column in BY_LABELS_SUMMED)
    sums = ", ".join(f"CAST({FIGURE_SUMS[column]} AS BIGINT) AS {column}" for column in SUMMED)
    branches = [
        SEGMENT_BRANCH.format(
            kind=kind,
            month="m.month" if kind == "all" else "b.month",
            label=label.format(**names),
            source=source.format(**names),
            sums=sums,
            group="" if kind == "all" else f", {label.format(**names)}",
        )
        for kind, (label, source) in SEGMENTS.items()
    ]
    columns = [RevenueMonth._meta.get_field(name).column for name in stored_figures]
    stored = STORED.format(
        stored_figures=", ".join(f"CAST({c} AS TEXT) AS {c}" for c in columns),
        **names,
    )
    ctes = [
        MONTHS,
        LINES.format(**names),
        PAID_LINES,
        ACCOUNT_MONTHS,
        ACCOUNT_MOVES,
        BY_LABELS.format(sums=label_sums),
        "\nsegment_rows AS (" + "\nUNION ALL".join(branches) + "\n)",
        stored,
    ]
    select = BESIDE_STORED.format(
        computed=", ".join(f"n.{column}" for column in SUMMED),
        no_sums=", ".join("NULL" for _ in SUMMED),
        stored=", ".join(f"s.{column}" for column in columns),
    )
    return "WITH RECURSIVE" + ",".join(ctes) + select


def bridge_sums(first: int, last: int, stored_figures: Sequence[str], chunk: int = 5_000) -> Iterator[tuple]:
    """Per segment row of months first..last, computed or stored: (month index, segment kind, segment,
    *SUMMED, stored id, *stored_figures as text), from one query.

    Sums in cents (None for ('all', '') in a month without any MRR). A segment has a computed row in a
    month when one of its accounts had MRR at the month's start or end, or twelve months before; a stored
    row that is no longer computed has None for month, kind, segment and sums, and a computed row not yet
    stored None for the id and stored figures. Rows are read `chunk` at a time (from a server-side cursor on
    PostgreSQL), so memory holds one chunk however many segments there are.
    """
    params = {"first": first, "last": last, "first_day": month_start(first), "last_day": month_start(last)}
    with connection.chunked_cursor() as cursor:
        cursor.execute(_bridge_sql(stored_figures), params)
        while rows := cursor.fetchmany(chunk):
            yield from rows
