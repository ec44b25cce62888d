"""Reads for the account 360: the account, its tier history, one timeline, revenue lines and MRR history.

Every selector costs a fixed number of queries whatever the number of touches, alerts, plans and lines,
and returns a bounded list (the latest `limit` rows).
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import models
from django.db.models import F, Max, Q, Window
from django.db.models.functions import Coalesce, Lag
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from accounts.models import Account, Contact, Subscription, TierAssignment, Touch
from audit.context import ActorKind
from csm.db import history_model
from metrics.history import ZERO, history_from_lines, month_end, month_index, month_start
from metrics.models import Alert, HealthBand
from metrics.selectors.health import BandChange
from success_plans.models import Goal, Initiative, SuccessPlan

TIMELINE_LIMIT = 50


def account_360_get(*, pk: int) -> Account:
    """A live account with its tier and owner (one query); Account.DoesNotExist when deleted or unknown."""
    return Account.objects.alive().select_related("tier", "owner").get(pk=pk)


def tier_history(*, account: Account, limit: int = TIMELINE_LIMIT) -> list[TierAssignment]:
    """The account's tier periods, newest first, with tier and who assigned it (one query)."""
    return list(
        TierAssignment.objects.filter(account=account)
        .select_related("tier", "assigned_by")
        .order_by("-started_at", "-id")[:limit]
    )


def account_contacts(*, account: Account, limit: int = 50) -> list[Contact]:
    """Live contacts, the primary first, then by name (one query)."""
    return list(Contact.objects.alive().filter(account=account).order_by("-is_primary", "name", "id")[:limit])


def account_subscriptions(*, account: Account, limit: int = 20) -> list[Subscription]:
    """Live revenue lines, newest start first (one query)."""
    return list(Subscription.objects.alive().filter(account=account).order_by("-start_date", "-id")[:limit])


def account_open_alerts(*, account: Account, limit: int = 20) -> list[Alert]:
    """Alerts not done (open or snoozed), soonest due first, with rule and owner (one query)."""
    return list(
        Alert.objects.filter(account=account)
        .exclude(status=Alert.Status.DONE)
        .select_related("rule", "owner")
        .order_by("due", "-created_at")[:limit]
    )


def account_plans(*, account: Account, limit: int = 20) -> list[SuccessPlan]:
    """Live success plans, newest start first, with owner (one query)."""
    return list(
        SuccessPlan.objects.alive()
        .filter(account=account)
        .select_related("owner")
        .order_by("-start_date", "-id")[:limit]
    )


@dataclass(frozen=True)
class MrrMonth:
    month: datetime.date  # the month's last day
    mrr: Decimal


def account_mrr_history(*, account: Account, months: int = 24, until: datetime.date | None = None) -> list[MrrMonth]:
    """Month-end MRR of the account's live lines for the `months` months up to `until`'s month (default
    this month), oldest first, in CSM_CURRENCY. One query reads the lines that count at one of those
    month ends; `metrics.history` turns them into month-end MRR as the revenue bridge does."""
    last = month_index(until or timezone.localdate())
    first = last - months + 1
    lines = list(
        Subscription.objects.alive()
        .filter(account=account, start_date__lte=month_end(last))
        .filter(Q(end_date__isnull=True) | Q(end_date__gt=month_start(first)))
        .values_list("account_id", "product", "mrr", "start_date", "end_date")
        .order_by()
    )
    history = history_from_lines(lines, {}, last)
    mine = history.accounts.get(account.pk)
    return [
        MrrMonth(month=month_end(index), mrr=mine.at(index - history.first) if mine else ZERO)
        for index in range(first, last + 1)
    ]


# --- timeline -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEvent:
    """One thing that happened to the account. `at` orders the timeline; `day_only` events (a snapshot's
    band change, a goal achieved) know their day, not their time, and sort at the end of that day."""

    at: datetime.datetime
    day_only: bool
    kind: str  # touch, tier, health, alert_raised, alert_closed, plan_created, plan_closed, goal, initiative, change
    title: str
    detail: str = ""
    plan_id: int | None = None
    band: str = ""


def _end_of_day(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(23, 59, 59)))


def _person(user) -> str:
    return (user.get_full_name() or user.get_username()) if user is not None else ""


def _touch_events(account: Account, limit: int) -> list[TimelineEvent]:
    touches = Touch.objects.alive().filter(account=account).select_related("csm").order_by("-occurred_at", "-id")
    events = []
    for touch in touches[:limit]:
        details = [_person(touch.csm)]
        if touch.sentiment is not None:
            details.append(str(touch.get_sentiment_display()))
        if touch.next_step:
            details.append(_("Next step: %(step)s") % {"step": touch.next_step})
        events.append(
            TimelineEvent(
                at=touch.occurred_at,
                day_only=False,
                kind="touch",
                title=_("%(kind)s: %(subject)s") % {"kind": touch.get_kind_display(), "subject": touch.subject},
                detail=" · ".join(d for d in details if d),
            )
        )
    return events


def _tier_events(assignments: list[TierAssignment]) -> list[TimelineEvent]:
    events = []
    for position, assignment in enumerate(assignments):
        previous = assignments[position + 1] if position + 1 < len(assignments) else None
        if previous is not None and previous.tier_id != assignment.tier_id:
            title = _("Tier changed from %(old)s to %(new)s") % {"old": previous.tier, "new": assignment.tier}
        else:
            title = _("Tier: %(tier)s") % {"tier": assignment.tier}
        details = [assignment.reason, str(assignment.get_source_display()), _person(assignment.assigned_by)]
        events.append(
            TimelineEvent(
                at=assignment.started_at,
                day_only=False,
                kind="tier",
                title=title,
                detail=" · ".join(d for d in details if d),
            )
        )
    return events


def _band_events(changes: list[BandChange]) -> list[TimelineEvent]:
    labels = dict(HealthBand.choices)
    return [
        TimelineEvent(
            at=_end_of_day(change.date),
            day_only=True,
            kind="health",
            title=_("Health turned %(band)s (%(score)s)")
            % {"band": str(labels.get(change.band, change.band)).lower(), "score": change.score},
            detail=_("Was %(band)s") % {"band": str(labels.get(change.previous, change.previous)).lower()},
            band=change.band,
        )
        for change in changes
    ]


def _alert_events(account: Account, limit: int) -> list[TimelineEvent]:
    # The `limit` alerts whose latest event (closing, else raising) is newest hold every alert event
    # among the newest `limit` events: each alert ranked above holds a newer event.
    alerts = (
        Alert.objects.filter(account=account)
        .select_related("rule")
        .annotate(latest=Coalesce("closed_at", "created_at"))
        .order_by("-latest", "-id")[:limit]
    )
    events = []
    for alert in alerts:
        events.append(
            TimelineEvent(
                at=alert.created_at,
                day_only=False,
                kind="alert_raised",
                title=_("Alert raised: %(rule)s") % {"rule": alert.rule},
                detail=alert.reason,
            )
        )
        if alert.closed_at is not None:
            details = [str(alert.get_closed_by_display()) if alert.closed_by else "", alert.closed_reason]
            events.append(
                TimelineEvent(
                    at=alert.closed_at,
                    day_only=False,
                    kind="alert_closed",
                    title=_("Alert closed: %(rule)s") % {"rule": alert.rule},
                    detail=" · ".join(d for d in details if d),
                )
            )
    return events


def _plan_events(account: Account, limit: int) -> list[TimelineEvent]:
    plans = SuccessPlan.objects.alive().filter(account=account)
    latest = plans.annotate(latest=Coalesce("closed_at", "created_at")).order_by("-latest", "-id")[:limit]
    events = []
    for plan in latest:
        events.append(
            TimelineEvent(
                at=plan.created_at,
                day_only=False,
                kind="plan_created",
                title=_("Success plan created: %(plan)s") % {"plan": plan.title},
                plan_id=plan.pk,
            )
        )
        if plan.closed_at is not None:
            if plan.status == SuccessPlan.Status.ACHIEVED:
                title = _("Success plan achieved: %(plan)s") % {"plan": plan.title}
            else:
                title = _("Success plan closed (%(status)s): %(plan)s") % {
                    "status": str(plan.get_status_display()).lower(),
                    "plan": plan.title,
                }
            events.append(
                TimelineEvent(
                    at=plan.closed_at,
                    day_only=False,
                    kind="plan_closed",
                    title=title,
                    detail=plan.status_reason,
                    plan_id=plan.pk,
                )
            )
    goals = (
        Goal.objects.filter(plan__in=plans, status=Goal.Status.ACHIEVED, achieved_at__isnull=False)
        .select_related("plan")
        .order_by("-achieved_at", "-id")[:limit]
    )
    events.extend(
        TimelineEvent(
            at=_end_of_day(goal.achieved_at),
            day_only=True,
            kind="goal",
            title=_("Goal achieved: %(goal)s") % {"goal": goal.title},
            detail=goal.plan.title,
            plan_id=goal.plan_id,
        )
        for goal in goals
    )
    initiatives = (
        Initiative.objects.filter(goal__plan__in=plans, status=Initiative.Status.DONE, completed_at__isnull=False)
        .select_related("goal__plan")
        .order_by("-completed_at", "-id")[:limit]
    )
    events.extend(
        TimelineEvent(
            at=initiative.completed_at,
            day_only=False,
            kind="initiative",
            title=_("Initiative completed: %(initiative)s") % {"initiative": initiative.title},
            detail=initiative.goal.plan.title,
            plan_id=initiative.goal.plan_id,
        )
        for initiative in initiatives
    )
    return events


def _object_name(model: type[models.Model], row: dict) -> str:
    """How a change names what it changed: nothing for the account itself, else its kind and name."""
    if model is Contact:
        return _("contact %(name)s") % {"name": row["name"]}
    if model is Subscription:
        return _("line %(line)s") % {"line": row["external_id"] or row["product"]}
    if model is SuccessPlan:
        return _("plan %(plan)s") % {"plan": row["title"]}
    return ""


def _shown(field: models.Field, value, names: dict) -> str:
    """A field's value as the timeline writes it: choices by label, relations by name, dates ISO."""
    if value is None or value == "":
        return "—"
    if field.is_relation:
        return names.get((field.related_model, value), f"#{value}")
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(field, models.DecimalField):
        return str(Decimal(value).quantize(Decimal(1).scaleb(-field.decimal_places)))  # as stored, 100.00
    if isinstance(value, datetime.datetime):
        return date_format(timezone.localtime(value), "DATETIME_FORMAT")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _history_rows(model: type[models.Model], account: Account, limit: int) -> list[tuple[type, list, dict]]:
    """The latest `limit` history rows of the account (or of its contacts, lines or plans), each with the
    values of the row before it (window LAG over the object's own rows): one query. Rows written by the
    system (data loads, the shell) name no one and stay in the admin's history only."""
    history = history_model(model)
    if history is None:
        return []
    fields = [f for f in history.tracked_fields if f.name != "id"]
    order = [F("history_date").asc(), F("history_id").asc()]
    earlier = {
        f"was_{f.attname}": Window(
            Lag(f.attname), partition_by=[F("id")], order_by=order, output_field=f.target_field if f.is_relation else f
        )
        for f in fields
    }
    rows = (
        history.objects.filter(**({"id": account.pk} if model is Account else {"account_id": account.pk}))
        .annotate(
            was_history_id=Window(Lag("history_id"), partition_by=[F("id")], order_by=order),
            # The row's own actor as a window value: filtering on it leaves out the system's rows after the
            # LAGs have read them (a filter on the column itself would hide them from the LAGs too).
            by=Window(Max("actor_kind"), partition_by=[F("history_id")]),
            **earlier,
        )
        .exclude(by=ActorKind.SYSTEM)
        .order_by("-history_date", "-history_id")
        .values(
            "id",
            "history_date",
            "history_type",
            "actor_label",
            "was_history_id",
            *(f.attname for f in fields),
            *earlier,
        )
    )
    return [(model, fields, row) for row in rows[:limit]]


def _change_events(account: Account, limit: int) -> list[TimelineEvent]:
    """Recorded changes to the account and to its contacts, revenue lines and plans: who changed which
    fields from what to what, or who added, deleted or restored them. Four queries for the rows, and one
    per kind of related object they name (tiers, users, partners, templates)."""
    rows = [
        row for model in (Account, Contact, Subscription, SuccessPlan) for row in _history_rows(model, account, limit)
    ]
    wanted: dict[type, set] = {}
    for _model, fields, row in rows:
        for f in fields:
            if f.is_relation and f.name not in ("account",):
                for value in (row[f.attname], row[f"was_{f.attname}"]):
                    if value is not None:
                        wanted.setdefault(f.related_model, set()).add(value)
    names = {
        (related, pk): _person(obj) if hasattr(obj, "get_username") else str(obj)
        for related, pks in wanted.items()
        for pk, obj in related._base_manager.in_bulk(list(pks)).items()
    }
    events = []
    for model, fields, row in rows:
        actor, what = row["actor_label"] or _("system"), _object_name(model, row)
        was_deleted, deleted = row["was_deleted_at"] is not None, row["deleted_at"] is not None
        if row["history_type"] == "+":
            if model in (Account, SuccessPlan):
                continue  # the header shows since when the account exists; plans have their own event
            title = _("%(actor)s added %(what)s") % {"actor": actor, "what": what}
        elif row["was_history_id"] is None:  # the first recorded version of an object older than its history
            title = _("%(actor)s changed %(what)s") % {"actor": actor, "what": what or _("the account")}
        elif row["history_type"] == "-":
            title = _("%(actor)s removed %(what)s") % {"actor": actor, "what": what or _("the account")}
        elif deleted != was_deleted:
            verb = _("%(actor)s deleted %(what)s") if deleted else _("%(actor)s restored %(what)s")
            title = verb % {"actor": actor, "what": what or _("the account")}
        else:
            changes = [
                _("%(field)s %(old)s → %(new)s")
                % {
                    "field": f.verbose_name,
                    "old": _shown(f, row[f"was_{f.attname}"], names),
                    "new": _shown(f, row[f.attname], names),
                }
                for f in fields
                if f.name != "deleted_at" and row[f.attname] != row[f"was_{f.attname}"]
            ]
            if not changes:
                continue
            title = _("%(actor)s changed %(changes)s") % {"actor": actor, "changes": "; ".join(changes)}
            if what:
                title = _("%(change)s of %(what)s") % {"change": title, "what": what}
        events.append(
            TimelineEvent(
                at=row["history_date"],
                day_only=False,
                kind="change",
                title=title,
                plan_id=row["id"] if model is SuccessPlan else None,
            )
        )
    return events


def account_timeline(
    *,
    account: Account,
    tier_assignments: list[TierAssignment],
    band_changes: list[BandChange],
    limit: int = TIMELINE_LIMIT,
) -> list[TimelineEvent]:
    """The latest `limit` events, newest first, merging touches, tier changes, health band changes, alerts
    raised and closed, plan events (plans created and closed, goals achieved, initiatives completed), and
    the recorded changes to the account, its contacts, revenue lines and plans (who changed what).

    Tier history and band changes come from the caller, who reads them for the header and the trend
    anyway; the rest costs nine queries, each limited to `limit` rows, and one per kind of object the
    changes name (tiers, users, partners, plan templates).
    """
    events = [
        *_touch_events(account, limit),
        *_tier_events(tier_assignments),
        *_band_events(band_changes),
        *_alert_events(account, limit),
        *_plan_events(account, limit),
        *_change_events(account, limit),
    ]
    events.sort(key=lambda event: event.at, reverse=True)
    return events[:limit]
