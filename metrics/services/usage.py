"""Product usage pushed by partners: one value per (account, metric, day); re-sending a day replaces it."""

import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services import queue_recompute, recompute_batch
from csm.exceptions import DomainError
from metrics.models import UsageRecord
from metrics.services.targets import targets_follow_usage

# The column holds 18 digits, 4 of them after the point: |value| < 10^14 once rounded to 4 places. SQLite
# stores a double and reads it back to 15 significant digits, so a value much above 99999999999999.9 (say
# 99999999999999.95, or .9499, whose nearest double is .953125) would come back as 10^14, which no longer
# fits, and break every page that lists it. The bound leaves that margin on every database, so a value is
# accepted or refused alike everywhere.
PLACES = Decimal("0.0001")
MAX_VALUE = Decimal("99999999999999.9")


def usage_value(raw) -> tuple[Decimal | None, str | None]:
    """The value as stored (rounded half away from zero to 4 places, as PostgreSQL rounds), or an error."""
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None, _("value: a finite number is required.")
    if not value.is_finite():
        return None, _("value: a finite number is required.")
    # Checking the magnitude first keeps the rounding below from needing more digits than it has.
    rounded = value.quantize(PLACES, rounding=ROUND_HALF_UP) if value.adjusted() < 15 else None
    if rounded is None or abs(rounded) > MAX_VALUE:
        return None, _(
            "value: %(value)s is out of range; a usage value, rounded to 4 decimal places, must lie between "
            "%(low)s and %(high)s."
        ) % {"value": raw, "low": -MAX_VALUE, "high": MAX_VALUE}
    return rounded, None


def _clean(record: dict) -> tuple[UsageRecord | None, list[str]]:
    errors = []
    metric = record.get("metric")
    try:
        validate_slug(metric or "")
    except ValidationError:
        errors.append(_("metric: a slug (letters, digits, - and _) is required."))
    day = record.get("date")
    if not isinstance(day, datetime.date):
        errors.append(_("date: a date is required."))
    value, problem = usage_value(record.get("value"))
    if problem:
        errors.append(problem)
    if not record.get("account_id"):
        errors.append(_("account: required."))
    if errors:
        return None, errors
    return UsageRecord(account_id=record["account_id"], metric=metric, date=day, value=value), []


@transaction.atomic
def usage_records_upsert(*, records: list[dict]) -> int:
    """Validate every record, then write all of them or none; queues a recompute of the accounts touched.

    Each record has `account_id`, `metric`, `date` and `value`. Raises DomainError keyed by the record's
    index when any is invalid. The touched accounts' usage-linked targets then record their metric's
    latest value.
    """
    now = timezone.now()
    rows, problems = [], {}
    for index, record in enumerate(records):
        row, errors = _clean(record)
        if errors:
            problems[str(index)] = errors
        else:
            row.created_at = row.updated_at = now
            rows.append(row)
    if problems:
        raise DomainError(problems)
    touched = {row.account_id for row in rows}
    with recompute_batch():  # one recompute for the usage and the target readings it brings
        UsageRecord.objects.bulk_create(
            rows,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["account", "metric", "date"],
            update_fields=["value", "updated_at"],
        )
        queue_recompute(touched)
        targets_follow_usage(account_ids=touched)
    return len(rows)
