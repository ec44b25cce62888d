"""Product usage pushed by partners: one value per (account, metric, day); re-sending a day replaces it."""

import datetime
import re
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services import queue_recompute, recompute_batch
from csm.db import bulk_upsert
from csm.exceptions import DomainError
from csm.numbers import clean_decimal, decimal_bound
from metrics.models import UsageRecord
from metrics.services.targets import targets_follow_usage

VALUE = {"max_digits": 18, "decimal_places": 4}  # UsageRecord.value


VALUE_BOUND = decimal_bound(**VALUE)


def usage_value(raw) -> tuple[Decimal | None, str | None]:
    """The value as stored (see `csm.numbers.clean_decimal`), or the error naming the field."""
    if type(raw) is Decimal and raw.as_tuple().exponent == -VALUE["decimal_places"] and abs(raw) <= VALUE_BOUND:
        return raw, None  # cleaned already (the API's input is): clean_decimal would give it back unchanged
    try:
        return clean_decimal(raw, **VALUE), None
    except DomainError as error:
        return None, _("value: %(problem)s") % {"problem": error.messages[0]}


# Django's `validate_slug` pattern, compiled here: its lazy regex costs a proxy call per record.
SLUG = re.compile(r"^[-a-zA-Z0-9_]+\Z")
METRIC_MAX_LENGTH = UsageRecord._meta.get_field("metric").max_length


def _clean(record: dict) -> tuple[dict | None, list[str]]:
    """The record as the upsert writes it (account id, metric, date, value), or its errors."""
    errors = []
    metric = record.get("metric")
    if not SLUG.search(str(metric or "")):
        errors.append(_("metric: a slug (letters, digits, - and _) is required."))
    elif len(str(metric)) > METRIC_MAX_LENGTH:
        errors.append(_("metric: at most %(count)d characters.") % {"count": METRIC_MAX_LENGTH})
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
    return {"account": record["account_id"], "metric": metric, "date": day, "value": value}, []


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
            rows.append(row)
    if problems:
        raise DomainError(problems)
    touched = {row["account"] for row in rows}
    with recompute_batch():  # one recompute for the usage and the target readings it brings
        # One statement per batch on every database (SQLite caps a multi-row VALUES at 999 parameters).
        bulk_upsert(
            UsageRecord,
            [{**row, "created_at": now, "updated_at": now} for row in rows],
            unique_fields=["account", "metric", "date"],
            update_fields=["value", "updated_at"],
        )
        queue_recompute(touched)
        targets_follow_usage(account_ids=touched)
    return len(rows)
