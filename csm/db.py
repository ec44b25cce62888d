"""Database helpers shared by the apps."""

import datetime
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

UPSERT_BATCH_SIZE = 20_000


class _Encoder(DjangoJSONEncoder):
    """Keeps microseconds (DjangoJSONEncoder cuts datetimes to milliseconds)."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


def bulk_upsert(
    model: type[models.Model],
    rows: list[dict],
    *,
    unique_fields: list[str],
    update_fields: list[str],
    batch_size: int = UPSERT_BATCH_SIZE,
) -> int:
    """Insert rows, updating those that clash on `unique_fields`; returns the number of rows sent.

    The rows of a batch travel as one JSON document expanded by the database (jsonb_to_recordset on
    PostgreSQL, json_each on SQLite), so a batch is one statement whatever its size: far faster than
    multi-row VALUES (capped at 999 parameters on SQLite) or bulk_update. Every row has the same keys,
    which are model field names.
    """
    if not rows:
        return 0
    fields = [model._meta.get_field(name) for name in rows[0]]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    conflict = ", ".join(quote(model._meta.get_field(name).column) for name in unique_fields)
    updates = ", ".join(
        f"{quote(c)} = excluded.{quote(c)}" for c in (model._meta.get_field(name).column for name in update_fields)
    )
    if connection.vendor == "postgresql":
        definitions = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in fields)
        select = f"SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS r({definitions})"
    elif connection.vendor == "sqlite":
        # `->` keeps JSON values as JSON text; json_extract unwraps scalars.
        extracts = ", ".join(
            f"value -> '$.{f.column}'" if isinstance(f, models.JSONField) else f"json_extract(value, '$.{f.column}')"
            for f in fields
        )
        select = f"SELECT {extracts} FROM json_each(%s) WHERE true"
    else:  # pragma: no cover - the project supports PostgreSQL and SQLite
        raise NotImplementedError(f"bulk_upsert does not support {connection.vendor}")
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) {select} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )

    def prepare(field: models.Field, value):
        if isinstance(field, models.JSONField):
            return value
        return field.get_db_prep_save(value, connection)

    with connection.cursor() as cursor:
        for first in range(0, len(rows), batch_size):
            batch = [
                {field.column: prepare(field, row[field.name]) for field in fields}
                for row in rows[first : first + batch_size]
            ]
            cursor.execute(sql, [json.dumps(batch, cls=_Encoder)])
    return len(rows)


def lock_keys(namespace: str, keys) -> None:
    """Make transactions that write the same keys (external ids, idempotency keys) wait for each other,
    until the current transaction ends: PostgreSQL advisory locks, taken in a fixed order so two writers
    never deadlock. SQLite lets one writer in at a time already. Call inside `transaction.atomic()`."""
    if connection.vendor != "postgresql":
        return
    names = sorted({f"{namespace}:{key}" for key in keys})
    if not names:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(name, 0)) FROM unnest(%s::text[]) AS name",
            [names],
        )
