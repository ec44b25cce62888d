"""The alert queue: rules evaluated for all accounts at once, one open alert per (rule, account).

An alert opens when its rule's condition holds, is closed with a reason once the condition clears (or
the account is deleted), and while snoozed stays quiet until its wake-up date (then reopens if the
condition still holds). "Health turned red" is a transition: once an alert for it is closed, it is not
raised again until the band has left red and returned.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter

from django.db import transaction
from django.db.models import Case, DateField, DateTimeField, Exists, F, OuterRef, Q, QuerySet, Subquery, When
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from accounts.models import Account
from csm.exceptions import DomainError
from metrics.models import Alert, AlertRule, HealthBand, HealthSnapshot
from metrics.services.health import (
    TREND_DAYS,
    VALUE,
    RowsByAccount,
    account_scope,
    stream_rows,
    trend_windows,
    usage_latest_expression,
    usage_window_sums,
)
from success_plans.models import SuccessPlan

Kind = AlertRule.Kind
ID_BATCH = 5000
ALERT_BATCH = 5000  # alerts per INSERT (nine parameters each, far below PostgreSQL's 65,535)


@dataclass(frozen=True)
class Evaluation:
    opened: int
    closed: int
    reopened: int
    reworded: int


def _metric_label(metric: str) -> str:
    return metric.replace("_", " ").capitalize()


def _annotations(rules: list[AlertRule], on: datetime.date) -> dict:
    active_plan = SuccessPlan.objects.alive().filter(account=OuterRef("pk"), status=SuccessPlan.Status.ACTIVE)
    annotations = {
        "cadence": F("tier__touch_cadence_days"),
        "tier_name": F("tier__name"),
        "renewal_alert_days": F("tier__renewal_alert_days"),
        "has_active_plan": Exists(active_plan),
    }
    if any(rule.kind == Kind.HEALTH_RED for rule in rules):
        annotations.update(_red_transition_annotations([r for r in rules if r.kind == Kind.HEALTH_RED], on))
    for rule in rules:
        if rule.kind == Kind.EXPANSION_SIGNAL and rule.metric and rule.per_metric:
            # Only green accounts can signal expansion: the others skip the two index lookups.
            annotations[f"used_{rule.pk}"] = _when_green(usage_latest_expression(rule.metric, on))
            annotations[f"licensed_{rule.pk}"] = _when_green(usage_latest_expression(rule.per_metric, on))
    return annotations


def _when_green(expression):
    return Case(When(health_band=HealthBand.GREEN, then=expression), default=None, output_field=VALUE)


def _usage_windows(rules: list[AlertRule], on: datetime.date) -> dict[str, tuple[str, datetime.date, datetime.date]]:
    """The usage sums usage-drop rules compare: the 30 days ending `on` and the 30 before (as health's trend)."""
    (recent_first, recent_last), (prior_first, prior_last) = trend_windows(on)
    windows = {}
    for rule in rules:
        if rule.kind == Kind.USAGE_DROP and rule.metric:
            windows[f"recent_{rule.pk}"] = (rule.metric, recent_first, recent_last)
            windows[f"prior_{rule.pk}"] = (rule.metric, prior_first, prior_last)
    return windows


def _red_transition_annotations(rules: list[AlertRule], on: datetime.date) -> dict:
    """For red accounts: the last day on or before `on` the band was not red, and each rule's latest alert.

    Only evaluated for red accounts (the CASE), so green ones cost nothing.
    """

    def when_red(expression, output_field):
        return Case(When(health_band=HealthBand.RED, then=expression), default=None, output_field=output_field)

    not_red = (
        HealthSnapshot.objects.filter(account=OuterRef("pk"), date__lte=on)
        .exclude(band=HealthBand.RED)
        .order_by("-date")
    )
    annotations = {"not_red_on": when_red(Subquery(not_red.values("date")[:1]), DateField())}
    for rule in rules:
        # An alert closed only because the account was deleted was never handled: a restored account
        # that is still red gets its alert back.
        latest = (
            Alert.objects.filter(rule=rule, account=OuterRef("pk"))
            .exclude(closed_by=Alert.ClosedBy.ACCOUNT_DELETED)
            .order_by("-created_at", "-pk")
        )
        annotations[f"red_alert_due_{rule.pk}"] = when_red(Subquery(latest.values("due")[:1]), DateField())
        annotations[f"red_alert_created_{rule.pk}"] = when_red(
            Subquery(latest.values("created_at")[:1]), DateTimeField()
        )
    return annotations


def _red_again(rule: AlertRule, row: dict) -> bool:
    """Whether a red account may get a new "health turned red" alert: never alerted, or the band has left
    red since its latest alert was raised (that alert was handled, or closed for any reason, within the
    same red spell otherwise).
    """
    created = row[f"red_alert_created_{rule.pk}"]
    if created is None:
        return True
    # The day the alert was raised for: `due` is `due_in_days` after it (exact unless the rule's delay was
    # changed since); never later than the day it was created, for evaluations of past dates.
    raised_on = timezone.localdate(created)
    due = row[f"red_alert_due_{rule.pk}"]
    if due is not None:
        raised_on = min(raised_on, due - datetime.timedelta(days=rule.due_in_days))
    return row["not_red_on"] is not None and row["not_red_on"] >= raised_on


def _reason(rule: AlertRule, row: dict, on: datetime.date) -> str | None:
    """Why `rule` fires for the account in `row`, in words a CSM understands; None when it does not."""
    if rule.kind == Kind.HEALTH_RED:
        if row["health_band"] == HealthBand.RED:
            return _("Health score is %(score)s (red)") % {"score": row["health_score"]}
    elif rule.kind == Kind.TOUCH_OVERDUE:
        if not row["cadence"]:
            return None
        if row["last_touch_at"] is not None:
            days = (on - timezone.localtime(row["last_touch_at"]).date()).days
            if days > row["cadence"]:
                return _("No touch for %(days)d days; %(tier)s cadence is %(cadence)d days") % {
                    "days": days,
                    "tier": row["tier_name"],
                    "cadence": row["cadence"],
                }
        elif row["customer_since"] is not None:
            days = (on - row["customer_since"]).days
            if days > row["cadence"]:
                return _("Never touched in %(days)d days as a customer; %(tier)s cadence is %(cadence)d days") % {
                    "days": days,
                    "tier": row["tier_name"],
                    "cadence": row["cadence"],
                }
    elif rule.kind == Kind.RENEWAL_RISK:
        renewal = row["renewal_date"]
        if renewal is None or row["renewal_alert_days"] is None:
            return None
        days = (renewal - on).days
        if not 0 <= days <= row["renewal_alert_days"]:
            return None
        risks = []
        if row["health_band"] != HealthBand.GREEN:
            risks.append(
                _("health is %(band)s") % {"band": row["health_band"]} if row["health_band"] else _("health is unknown")
            )
        if not row["has_active_plan"]:
            risks.append(_("there is no active success plan"))
        if risks:
            return _("Renewal in %(days)d days (%(date)s); %(risks)s") % {
                "days": days,
                "date": date_format(renewal),
                "risks": _(" and ").join(risks),
            }
    elif rule.kind == Kind.USAGE_DROP:
        prior = row.get(f"prior_{rule.pk}")
        recent = row.get(f"recent_{rule.pk}") or Decimal(0)
        if prior and rule.threshold_percent is not None:
            drop = (prior - recent) / prior * 100
            if drop >= rule.threshold_percent:
                return _("%(metric)s down %(drop)d%% (last %(days)d days against the %(days)d before)") % {
                    "metric": _metric_label(rule.metric),
                    "drop": round(drop),
                    "days": TREND_DAYS,
                }
    elif rule.kind == Kind.EXPANSION_SIGNAL:
        used, licensed = row.get(f"used_{rule.pk}"), row.get(f"licensed_{rule.pk}")
        if row["health_band"] == HealthBand.GREEN and used is not None and licensed and rule.threshold_percent:
            share = used / licensed * 100
            if share >= rule.threshold_percent:
                return _("Health is green and %(share)d%% of %(per)s in use (%(used)s of %(licensed)s)") % {
                    "share": round(share),
                    "per": _metric_label(rule.per_metric).lower(),
                    "used": f"{used.normalize():f}",
                    "licensed": f"{licensed.normalize():f}",
                }
    return None


@transaction.atomic
def alerts_evaluate(*, on: datetime.date | None = None, account_ids: Iterable[int] | None = None) -> Evaluation:
    """Evaluate every active rule for the paying accounts in scope (default: all) as of `on` (today)."""
    on = on or timezone.localdate()
    now = timezone.now()
    scope = account_scope(account_ids)
    rules = list(AlertRule.objects.filter(is_active=True))
    annotations = _annotations(rules, on)
    rows = stream_rows(
        Account.objects.alive()
        .filter(scope, mrr__gt=0)
        .annotate(**annotations)
        .values(
            "pk",
            "owner_id",
            "health_band",
            "health_score",
            "last_touch_at",
            "customer_since",
            "renewal_date",
            *annotations,
        )
        .order_by("pk")
    )
    # The usage sums of every account in scope in one scan, read alongside the accounts (both in id order).
    usage = RowsByAccount(
        usage_window_sums(account_scope(account_ids, field="account_id"), _usage_windows(rules, on)),
        key=itemgetter("account_id"),
    )
    firing: dict[tuple[int, int], tuple[str, int | None]] = {}
    handled: set[tuple[int, int]] = set()  # red spells whose alert was already raised and closed
    for row in rows:
        row.update(next(iter(usage(row["pk"])), {}))
        for rule in rules:
            reason = _reason(rule, row, on)
            if reason is not None:
                firing[(rule.pk, row["pk"])] = (reason, row["owner_id"])
                if rule.kind == Kind.HEALTH_RED and not _red_again(rule, row):
                    handled.add((rule.pk, row["pk"]))

    existing = (
        Alert.objects.filter(~Q(status=Alert.Status.DONE), account__in=Account.objects.filter(scope))
        .annotate(account_deleted_at=F("account__deleted_at"))
        .only("pk", "rule_id", "account_id", "status", "snoozed_until", "reason")
    )
    to_close, to_close_deleted, to_reopen, reworded = [], [], [], []
    for alert in existing:
        key = (alert.rule_id, alert.account_id)
        if alert.account_deleted_at is not None:
            to_close_deleted.append(alert.pk)
            continue
        if key not in firing:
            to_close.append(alert.pk)
            continue
        reason, _owner = firing.pop(key)
        if alert.status == Alert.Status.SNOOZED and alert.snoozed_until <= on:
            to_reopen.append(alert.pk)
        if alert.reason != reason:
            alert.reason = reason
            alert.updated_at = now
            reworded.append(alert)

    for key in handled:  # an alert still open for that spell was kept above
        firing.pop(key, None)
    rules_by_pk = {rule.pk: rule for rule in rules}
    Alert.objects.bulk_create(
        [
            Alert(
                rule_id=rule_id,
                account_id=account_id,
                owner_id=owner_id,
                status=Alert.Status.OPEN,
                due=on + datetime.timedelta(days=rules_by_pk[rule_id].due_in_days),
                reason=reason,
                created_at=now,
                updated_at=now,
            )
            for (rule_id, account_id), (reason, owner_id) in firing.items()
        ],
        batch_size=ALERT_BATCH,
    )
    for ids, closing_reason, closed_by in (
        (to_close, _("Condition cleared on %(date)s") % {"date": date_format(on)}, Alert.ClosedBy.CLEARED),
        (to_close_deleted, _("The account was deleted"), Alert.ClosedBy.ACCOUNT_DELETED),
    ):
        for first in range(0, len(ids), ID_BATCH):
            Alert.objects.filter(pk__in=ids[first : first + ID_BATCH]).update(
                status=Alert.Status.DONE,
                closed_at=now,
                closed_reason=closing_reason,
                closed_by=closed_by,
                snoozed_until=None,
                updated_at=now,
            )
    for first in range(0, len(to_reopen), ID_BATCH):
        Alert.objects.filter(pk__in=to_reopen[first : first + ID_BATCH]).update(
            status=Alert.Status.OPEN, snoozed_until=None, updated_at=now
        )
    Alert.objects.bulk_update(reworded, ["reason", "updated_at"], batch_size=500)
    return Evaluation(
        opened=len(firing),
        closed=len(to_close) + len(to_close_deleted),
        reopened=len(to_reopen),
        reworded=len(reworded),
    )


@transaction.atomic
def alerts_snooze(*, alerts: QuerySet[Alert], until: datetime.date) -> int:
    """Quiet the alerts not done yet until `until`, in one UPDATE; returns how many were snoozed.

    The nightly evaluation reopens each on that day if its condition still holds.
    """
    if until <= timezone.localdate():
        raise DomainError({"snoozed_until": _("Snooze until a day after today.")})
    return alerts.exclude(status=Alert.Status.DONE).update(
        status=Alert.Status.SNOOZED, snoozed_until=until, updated_at=timezone.now()
    )


@transaction.atomic
def alerts_close(*, alerts: QuerySet[Alert], reason: str = "") -> int:
    """A CSM marks alerts done, in one UPDATE (those already done keep their closing); returns how many."""
    now = timezone.now()
    return alerts.exclude(status=Alert.Status.DONE).update(
        status=Alert.Status.DONE,
        snoozed_until=None,
        closed_at=now,
        closed_reason=reason or _("Marked done"),
        closed_by=Alert.ClosedBy.CSM,
        updated_at=now,
    )


ALERT_STATE = ["status", "snoozed_until", "closed_at", "closed_reason", "closed_by", "updated_at"]


@transaction.atomic
def alert_snooze(*, alert: Alert, until: datetime.date) -> Alert:
    """Quiet one alert until `until`; see `alerts_snooze`."""
    if alert.status == Alert.Status.DONE:
        raise DomainError(_("A closed alert cannot be snoozed."))
    alerts_snooze(alerts=Alert.objects.filter(pk=alert.pk), until=until)
    alert.refresh_from_db(fields=ALERT_STATE)
    return alert


@transaction.atomic
def alert_close(*, alert: Alert, reason: str = "") -> Alert:
    """A CSM marks one alert done; see `alerts_close`."""
    alerts_close(alerts=Alert.objects.filter(pk=alert.pk), reason=reason)
    alert.refresh_from_db(fields=ALERT_STATE)
    return alert
