"""Database helpers shared by the apps."""

import datetime
import decimal
import json
from collections.abc import Iterable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import F, Lookup, Q

UPSERT_BATCH_SIZE = 20_000


class _Encoder(DjangoJSONEncoder):
    """Keeps microseconds (DjangoJSONEncoder cuts datetimes to milliseconds)."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


def _memo_key(value) -> tuple | None:
    """A key under which equal values have the same database and JSON form, or None (not memoised)."""
    kind = type(value)
    if kind is decimal.Decimal:
        return kind, value.as_tuple()  # 1 and 1.0 are equal but written differently
    if kind is datetime.datetime:
        return kind, value, value.tzinfo, value.fold
    if kind is float:
        return kind, repr(value)  # 0.0 == -0.0
    if kind in (int, str, bool, datetime.date, type(None)):
        return kind, value
    return None


def _converter(field: models.Field, db, encoder: json.JSONEncoder):
    """The field's value as the statement's JSON carries it: prepared for the database as a save would,
    dates and decimals already in their JSON text. Repeated values (ids, days, timestamps) are converted once."""
    if isinstance(field, models.JSONField):
        return lambda value: value
    memo: dict = {}
    native = (str, int, float, bool, type(None), list, dict)
    # Values the field would write unchanged skip the preparation: most of a large batch's values.
    target = field.target_field if field.is_relation else field
    unchanged: set[type] = {type(None)}
    if isinstance(target, models.IntegerField):
        unchanged.add(int)
    if isinstance(target, models.CharField | models.TextField):
        unchanged.add(str)
    if isinstance(target, models.BooleanField):
        unchanged.add(bool)
    decimal_text = isinstance(target, models.DecimalField)

    def convert(value):
        kind = type(value)
        if kind in unchanged:
            return value
        if decimal_text and kind is decimal.Decimal:
            return str(value)  # what preparing it, then encoding it, gives
        key = _memo_key(value)
        if key is not None and key in memo:
            return memo[key]
        prepared = field.get_db_prep_save(value, db)
        if not isinstance(prepared, native):
            prepared = encoder.default(prepared)
        if key is not None:
            memo[key] = prepared
        return prepared

    return convert


def _json_rows(fields: list[models.Field]) -> str:
    """A FROM item reading one statement parameter, a JSON array of row objects keyed by column, as the
    relation `r` with the fields' columns (jsonb_to_recordset on PostgreSQL, json_each on SQLite)."""
    quote = connection.ops.quote_name
    if connection.vendor == "postgresql":
        definitions = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in fields)
        return f"jsonb_to_recordset(%s::jsonb) AS r({definitions})"
    if connection.vendor == "sqlite":
        # `->` keeps JSON values as JSON text; json_extract unwraps scalars.
        extracts = ", ".join(
            (f"value -> '$.{f.column}'" if isinstance(f, models.JSONField) else f"json_extract(value, '$.{f.column}')")
            + f" AS {quote(f.column)}"
            for f in fields
        )
        return f"(SELECT {extracts} FROM json_each(%s)) AS r"
    raise NotImplementedError(f"csm.db does not support {connection.vendor}")  # pragma: no cover


def _execute_batches(sql: str, fields: list[models.Field], names: list[str], rows: list[dict], batch_size: int) -> None:
    """Run `sql` once per batch of rows, the batch as its JSON parameter (see `_json_rows`)."""
    db = connections[DEFAULT_DB_ALIAS]
    encoder = _Encoder()
    converters = [(field.column, _converter(field, db, encoder)) for field in fields]
    with db.cursor() as cursor:
        for first in range(0, len(rows), batch_size):
            batch = [
                {column: convert(row[name]) for (column, convert), name in zip(converters, names, strict=True)}
                for row in rows[first : first + batch_size]
            ]
            cursor.execute(sql, [json.dumps(batch, cls=_Encoder)])


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
    names = list(rows[0])
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    conflict = ", ".join(quote(model._meta.get_field(name).column) for name in unique_fields)
    updates = ", ".join(
        f"{quote(c)} = excluded.{quote(c)}" for c in (model._meta.get_field(name).column for name in update_fields)
    )
    # `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not to a join.
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT {columns} FROM {_json_rows(fields)} "
        f"WHERE true ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    _execute_batches(sql, fields, names, rows, batch_size)
    return len(rows)


def bulk_update(
    model: type[models.Model], objects: list[models.Model], fields: list[str], *, batch_size: int = UPSERT_BATCH_SIZE
) -> int:
    """Write `fields` of saved objects, one UPDATE per batch whatever its size, the values prepared as a
    save prepares them; returns the number of objects. Django's `bulk_update` builds a CASE per field and
    row, which costs seconds for a thousand objects of twenty fields."""
    if not objects:
        return 0
    pk = model._meta.pk
    targets = [model._meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    sets = ", ".join(f"{quote(f.column)} = r.{quote(f.column)}" for f in targets)
    key = quote(pk.column)
    sql = f"UPDATE {table} SET {sets} FROM {_json_rows([pk, *targets])} WHERE {table}.{key} = r.{key}"
    names = [pk.name, *(f.name for f in targets)]
    rows = [
        {name: getattr(obj, field.attname) for name, field in zip(names, [pk, *targets], strict=True)}
        for obj in objects
    ]
    _execute_batches(sql, [pk, *targets], names, rows, batch_size)
    return len(objects)


def bulk_insert(model: type[models.Model], objects: list[models.Model], *, batch_size: int = UPSERT_BATCH_SIZE) -> None:
    """Insert new objects as `bulk_create` does (fields' `pre_save`, no signals) and set their primary keys.

    On PostgreSQL the keys are drawn from the table's sequence first and the rows travel as JSON, one
    statement per batch: Django's multi-row VALUES costs a placeholder and a parameter per field and row.
    Elsewhere, `bulk_create`.
    """
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._base_manager.bulk_create(objects, batch_size=batch_size)
        return
    meta = model._meta
    pk = meta.pk
    fields = [f for f in meta.concrete_fields if f is not pk]
    for obj in objects:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(objects)],
        )
        for obj, (key,) in zip(objects, cursor.fetchall(), strict=True):
            obj.pk = key
    columns = ", ".join(quote(f.column) for f in (pk, *fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {columns} FROM {_json_rows([pk, *fields])}"
    names = [pk.attname, *(f.attname for f in fields)]
    rows = [{pk.attname: obj.pk, **{f.attname: f.pre_save(obj, True) for f in fields}} for obj in objects]
    _execute_batches(sql, [pk, *fields], names, rows, batch_size)
    for obj in objects:
        obj._state.adding, obj._state.db = False, connection.alias


class _AnyOf(Lookup):
    """`column = ANY(%s)` with the values as one array parameter (PostgreSQL)."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        return f"{lhs} = ANY(%s)", [*params, [field.get_db_prep_value(v, connection) for v in self.rhs]]


def any_of(path: str, values: Iterable) -> Q | _AnyOf:
    """A filter keeping rows whose `path` is one of `values`, like `path__in`. On PostgreSQL the values
    travel as one array: the driver splits a query of ten thousand IN placeholders in tens of milliseconds."""
    values = list(values)
    if values and connection.vendor == "postgresql":
        return _AnyOf(F(path), values)
    return Q(**{f"{path}__in": values})


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
