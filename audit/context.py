"""Who is making the current change: a signed-in user, a partner key, a rule, a task, an import or the system.

Kept apart from the audit models so that any app's services can name the actor of the work they do
(`acting_as`) without importing the history tables. The actor lives in a context variable: each
request, task or block sets it and puts the previous one back when it ends.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class ActorKind(models.TextChoices):
    USER = "user", _("user")
    PARTNER_KEY = "partner_key", _("partner key")
    RULE = "rule", _("rule")
    TASK = "task", _("task")
    IMPORT = "import", _("import")
    SYSTEM = "system", _("system")


@dataclass(frozen=True)
class Actor:
    kind: str
    label: str
    user_id: int | None = None


SYSTEM = Actor(ActorKind.SYSTEM, "system")

_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def user_label(user) -> str:
    """How a person is named in the history: their full name, else their username."""
    return (user.get_full_name() or user.get_username())[:200]


@contextmanager
def acting_as(kind: str, label: str, *, user=None) -> Iterator[Actor]:
    """Changes made inside the block are recorded as made by this actor (`user`: the person behind it)."""
    actor = Actor(kind, label[:200], user.pk if user is not None and user.is_authenticated else None)
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


@contextmanager
def actor_scope() -> Iterator[None]:
    """A request's or task's own actor: whatever it sets (`set_actor`) ends with it."""
    token = _actor.set(None)
    try:
        yield
    finally:
        _actor.reset(token)


def set_actor(kind: str, label: str, *, user_id: int | None = None) -> None:
    """Name the actor of the rest of the current scope (see `actor_scope`), e.g. once a request's API key is known."""
    _actor.set(Actor(kind, label[:200], user_id))


def enter(actor: Actor) -> Token:
    """Make `actor` current until `leave(token)`: for work whose start and end are separate callbacks (tasks)."""
    return _actor.set(actor)


def leave(token: Token) -> None:
    try:
        _actor.reset(token)
    except ValueError:  # set in another context: that context's actor ends with it
        pass


def explicit_actor() -> Actor | None:
    """The actor set by `acting_as` or `set_actor`, if any."""
    return _actor.get()
