"""Database helpers shared by the apps."""

import datetime
import decimal
import json
from collections.abc import Iterable

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import F, Lookup, Q
from django.utils import timezone

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


# Stands in a statement's parameters for the batch's JSON document (see `_json_rows`).
BATCH = object()


def _execute_batches(
    sql: str | list[tuple[str, list]], fields: list[models.Field], names: list[str], rows: list[dict], batch_size: int
) -> None:
    """Run `sql` once per batch of rows, the batch as its JSON parameter (see `_json_rows`); or run each
    (statement, parameters) of a list in turn, `BATCH` among the parameters standing for the batch."""
    db = connections[DEFAULT_DB_ALIAS]
    encoder = _Encoder()
    converters = [(field.column, _converter(field, db, encoder)) for field in fields]
    statements = [(sql, [BATCH])] if isinstance(sql, str) else sql
    with db.cursor() as cursor:
        for first in range(0, len(rows), batch_size):
            batch = [
                {column: convert(row[name]) for (column, convert), name in zip(converters, names, strict=True)}
                for row in rows[first : first + batch_size]
            ]
            document = json.dumps(batch, cls=_Encoder)
            for statement, params in statements:
                cursor.execute(statement, [document if param is BATCH else param for param in params])


# --- history ------------------------------------------------------------------------------------
# Audited models (see the audit app) have a history table that simple-history fills on save. The
# writers here bypass saves, so they record the rows they insert, and the rows whose tracked fields
# they change, themselves: on PostgreSQL in the writing statement itself (the old rows read in a CTE,
# the new ones returned by the write), elsewhere in three more statements per batch. Never per row.


def history_model(model: type[models.Model]) -> type[models.Model] | None:
    """The model's history table, when it is audited and history is on."""
    manager = getattr(model._meta, "simple_history_manager_attribute", None)
    if manager is None or not getattr(settings, "SIMPLE_HISTORY_ENABLED", True):
        return None
    return getattr(model, manager).model


def _audited(model: type[models.Model], written: Iterable[str]) -> type[models.Model] | None:
    """The history table to record a write of these fields in: None when the model is not audited or
    the write touches no tracked field (derived fields, timestamps)."""
    history = history_model(model)
    if history is None:
        return None
    tracked = {f.name for f in history.tracked_fields} | {f.attname for f in history.tracked_fields}
    return history if tracked & set(written) else None


def _history_insert(history: type[models.Model]) -> tuple[str, list[str], list]:
    """The INSERT INTO head of a history table, the tracked columns it copies and the actor's values."""
    quote = connection.ops.quote_name
    stamp = {"history_date": timezone.now(), **history.audit_stamp()}
    tracked = [f.column for f in history.tracked_fields]
    columns = ", ".join(quote(c) for c in [*tracked, *stamp, "history_type"])
    return f"INSERT INTO {quote(history._meta.db_table)} ({columns})", tracked, list(stamp.values())


def _recording(
    model: type[models.Model], history: type[models.Model], write: str, fields: list[models.Field], match: list[str]
) -> list[tuple[str, list]]:
    """The statements that run `write` (reading the batch as `{rows}`) and record in `history` each row it
    inserts ('+') or whose tracked fields it changes ('~'). `match`: the columns that find a batch row's
    table row (the primary key, or the upsert's unique columns)."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    head, tracked, stamp = _history_insert(history)
    marks = ", ".join(["%s"] * len(stamp))

    def found(alias: str) -> str:
        return " AND ".join(f"{alias}.{quote(c)} = r.{quote(c)}" for c in match)

    def values(alias: str) -> str:
        return ", ".join(f"{alias}.{quote(c)}" for c in tracked)

    kind = f"CASE WHEN old.{pk} IS NULL THEN '+' ELSE '~' END"
    if connection.vendor == "postgresql":
        sql = (
            f"WITH r AS (SELECT * FROM {_json_rows(fields)}), "
            # Materialised: once inlined, the planner rereads the batch for each row written.
            f"old AS MATERIALIZED (SELECT t.* FROM {table} t JOIN r ON {found('t')}), "
            f"new AS ({write.format(rows='r')} RETURNING {table}.*) "
            f"{head} SELECT {values('new')}, {marks}, {kind} FROM new LEFT JOIN old ON old.{pk} = new.{pk} "
            f"WHERE old.{pk} IS NULL OR ({values('old')}) IS DISTINCT FROM ({values('new')})"
        )
        return [(sql, [BATCH, *stamp])]
    before = quote("audit_before")
    differs = " OR ".join(f"NOT (old.{quote(c)} IS new.{quote(c)})" for c in tracked)
    return [
        (f"CREATE TEMP TABLE {before} AS SELECT t.* FROM {table} t JOIN {_json_rows(fields)} ON {found('t')}", [BATCH]),
        (write.format(rows=_json_rows(fields)), [BATCH]),
        (
            f"{head} SELECT {values('new')}, {marks}, {kind} FROM {table} new JOIN {_json_rows(fields)} "
            f"ON {found('new')} LEFT JOIN {before} old ON old.{pk} = new.{pk} WHERE old.{pk} IS NULL OR {differs}",
            [*stamp, BATCH],
        ),
        (f"DROP TABLE {before}", []),
    ]


def record_history(model: type[models.Model], ids: Iterable, *, history_type: str = "~") -> None:
    """Record the current state of these rows in the model's history, one statement per batch: for writes
    that know the rows they changed (a queryset `update()` over ids). Not audited: nothing."""
    history = history_model(model)
    ids = list(ids)
    if history is None or not ids:
        return
    quote = connection.ops.quote_name
    head, tracked, stamp = _history_insert(history)
    pk = quote(model._meta.pk.column)
    columns = ", ".join(quote(c) for c in tracked)
    marks = ", ".join(["%s"] * len(stamp))
    chosen = f"{pk} = ANY(%s)" if connection.vendor == "postgresql" else f"{pk} IN (SELECT value FROM json_each(%s))"
    sql = f"{head} SELECT {columns}, {marks}, %s FROM {quote(model._meta.db_table)} WHERE {chosen}"
    with connection.cursor() as cursor:
        for first in range(0, len(ids), UPSERT_BATCH_SIZE):
            batch = ids[first : first + UPSERT_BATCH_SIZE]
            cursor.execute(
                sql, [*stamp, history_type, batch if connection.vendor == "postgresql" else json.dumps(batch)]
            )


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
    write = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT {columns} FROM {{rows}} "
        f"WHERE true ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    history = _audited(model, names)
    if history is None:
        _execute_batches(write.format(rows=_json_rows(fields)), fields, names, rows, batch_size)
    else:
        match = [model._meta.get_field(name).column for name in unique_fields]
        _execute_batches(_recording(model, history, write, fields, match), fields, names, rows, batch_size)
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
    write = f"UPDATE {table} SET {sets} FROM {{rows}} WHERE {table}.{key} = r.{key}"
    names = [pk.name, *(f.name for f in targets)]
    rows = [
        {name: getattr(obj, field.attname) for name, field in zip(names, [pk, *targets], strict=True)}
        for obj in objects
    ]
    history = _audited(model, fields)
    if history is None:
        _execute_batches(write.format(rows=_json_rows([pk, *targets])), [pk, *targets], names, rows, batch_size)
    else:
        statements = _recording(model, history, write, [pk, *targets], [pk.column])
        _execute_batches(statements, [pk, *targets], names, rows, batch_size)
    return len(objects)


def bulk_insert(model: type[models.Model], objects: list[models.Model], *, batch_size: int = UPSERT_BATCH_SIZE) -> None:
    """Insert new objects as `bulk_create` does (fields' `pre_save`, no signals) and set their primary keys.

    On PostgreSQL the keys are drawn from the table's sequence first and the rows travel as JSON, one
    statement per batch: Django's multi-row VALUES costs a placeholder and a parameter per field and row.
    Elsewhere, `bulk_create`.
    """
    if not objects:
        return
    history = _audited(model, [f.name for f in model._meta.concrete_fields])
    if connection.vendor != "postgresql":
        model._base_manager.bulk_create(objects, batch_size=batch_size)
        record_history(model, [obj.pk for obj in objects], history_type="+")
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
    write = f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {columns} FROM {{rows}}"
    names = [pk.attname, *(f.attname for f in fields)]
    rows = [{pk.attname: obj.pk, **{f.attname: f.pre_save(obj, True) for f in fields}} for obj in objects]
    if history is None:
        _execute_batches(write.format(rows=_json_rows([pk, *fields])), [pk, *fields], names, rows, batch_size)
    else:
        statements = _recording(model, history, write, [pk, *fields], [pk.column])
        _execute_batches(statements, [pk, *fields], names, rows, batch_size)
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
