"""Product usage pushed by partners: one value per (account, metric, day); re-sending a day replaces it."""

import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services import queue_recompute
from metrics.models import UsageRecord

MAX_VALUE = Decimal("1e14")


def _clean(index: int, record: dict) -> tuple[UsageRecord | None, list[str]]:
    errors = []
    metric = record.get("metric")
    try:
        validate_slug(metric or "")
    except ValidationError:
        errors.append(_("metric: a slug (letters, digits, - and _) is required."))
    day = record.get("date")
    if not isinstance(day, datetime.date):
        errors.append(_("date: a date is required."))
    try:
        value = Decimal(str(record.get("value")))
        if not value.is_finite() or abs(value) >= MAX_VALUE:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors.append(_("value: a finite number is required."))
        value = None
    if not record.get("account_id"):
        errors.append(_("account: required."))
    if errors:
        return None, errors
    return UsageRecord(account_id=record["account_id"], metric=metric, date=day, value=value), []


@transaction.atomic
def usage_records_upsert(*, records: list[dict]) -> int:
    """Validate every record, then write all of them or none; queues a recompute of the accounts touched.

    Each record has `account_id`, `metric`, `date` and `value`. Raises ValidationError keyed by the
    record's index when any is invalid.
    """
    now = timezone.now()
    rows, problems = [], {}
    for index, record in enumerate(records):
        row, errors = _clean(index, record)
        if errors:
            problems[str(index)] = errors
        else:
            row.created_at = row.updated_at = now
            rows.append(row)
    if problems:
        raise ValidationError(problems)
    UsageRecord.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["account", "metric", "date"],
        update_fields=["value", "updated_at"],
    )
    queue_recompute(row.account_id for row in rows)
    return len(rows)
