"""Audit personas and helpers: the history rows of an object, read straight from its history table."""

from django.db import models

from csm.db import history_model


def history_of(obj: models.Model) -> list:
    """The object's history rows, oldest first."""
    return list(history_model(type(obj)).objects.filter(id=obj.pk).order_by("history_date", "history_id"))


def history_count(model: type[models.Model]) -> int:
    return history_model(model).objects.count()


def actors(rows) -> list[tuple[str, str, str]]:
    """(history type, actor kind, actor label) of each row."""
    return [(row.history_type, row.actor_kind, row.actor_label) for row in rows]
