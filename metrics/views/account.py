"""Account 360: header, health trend and "why did health change", timeline, contacts, revenue, plans.

Anyone with a workspace role reads any live account; a deleted account is a 404. The page runs a fixed
number of queries whatever the number of touches, snapshots, lines and plans: every list is read by one
query with a limit (see `metrics.selectors.account` and `metrics.selectors.health`).
"""

import datetime
from decimal import Decimal

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.forms import TouchForm
from accounts.models import Account
from csm import charts, formats
from csm.roles import can_edit_account
from metrics.selectors import account as account_selectors
from metrics.selectors.health import (
    band_changes,
    health_history,
    latest_health,
)
from success_plans.selectors import plans_progress

RANGES = (90, 365)  # days of health trend the page offers
CHANGE_DEFAULT_DAYS = 30  # "why did health change" compares this many days ago with today by default
TIER_HISTORY_SHOWN = 5  # tier periods in the header
MRR_MONTHS = 24
CONTACTS_SHOWN = 50
LINES_SHOWN = 20  # revenue lines, newest start first

TIMELINE_KINDS = {
    "touch": gettext_lazy("Touch"),
    "tier": gettext_lazy("Tier"),
    "health": gettext_lazy("Health"),
    "alert_raised": gettext_lazy("Alert"),
    "alert_closed": gettext_lazy("Alert"),
    "plan_created": gettext_lazy("Success plan"),
    "plan_closed": gettext_lazy("Success plan"),
    "goal": gettext_lazy("Goal"),
    "initiative": gettext_lazy("Initiative"),
    "change": gettext_lazy("Change"),
}


class HealthChangeForm(forms.Form):
    """The two dates of "why did health change" (GET `from` and `to`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        widget = {"widget": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}
        self.fields["from"] = forms.DateField(label=gettext_lazy("From"), **widget)
        self.fields["to"] = forms.DateField(label=gettext_lazy("To"), **widget)


def _change_dates(request: HttpRequest, today: datetime.date) -> tuple[HealthChangeForm, datetime.date, datetime.date]:
    """The dates asked for, or the defaults (30 days ago, today) with the form's errors when they are not dates."""
    defaults = {"from": today - datetime.timedelta(days=CHANGE_DEFAULT_DAYS), "to": today}
    if "from" not in request.GET and "to" not in request.GET:
        return HealthChangeForm(initial=defaults), defaults["from"], defaults["to"]
    data = {key: request.GET.get(key) or defaults[key].isoformat() for key in defaults}
    form = HealthChangeForm(data)
    if form.is_valid():
        return form, form.cleaned_data["from"], form.cleaned_data["to"]
    return form, defaults["from"], defaults["to"]


def _url_or_none(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def _plan_url_builder():
    """A function from a plan's id to its page, or to None while the plan page does not exist."""
    if _url_or_none("plans:detail", 1) is None:
        return lambda plan_id: None
    return lambda plan_id: reverse("plans:detail", args=[plan_id])


def _health_trend_chart(points, days: int, snapshot) -> str:
    series = {_("Health score"): [p.score for p in points]}
    if snapshot is not None:
        # The band edges of the latest snapshot's model as flat lines, in the chart's red and green, so
        # the legend reads as the bands (yellow lies between).
        model = snapshot.model_version
        series[_("Red below %(score)s") % {"score": model.yellow_from}] = [model.yellow_from] * len(points)
        series[_("Green from %(score)s") % {"score": model.green_from}] = [model.green_from] * len(points)
    title = (
        _("Health score, last 90 days (0–100; yellow between the lines)")
        if days == 90
        else _("Health score, last year (0–100; yellow between the lines)")
    )
    return charts.line_chart(
        title=title,
        labels=[date_format(p.date, "SHORT_DATE_FORMAT") for p in points],
        series=series,
        range=(0, 100),
        show_dots=len(points) <= 90,
    )


def _mrr_chart(months) -> str:
    # Every third month is labelled, counting back from this month, so 24 labels do not overlap.
    last = len(months) - 1
    return charts.bar_chart(
        title=_("MRR at month end, last %(months)s months") % {"months": len(months)},
        labels=[date_format(m.month, "M Y") if (last - k) % 3 == 0 else "" for k, m in enumerate(months)],
        series={_("MRR"): [m.mrr for m in months]},
        formatter=lambda value: formats.money(Decimal(str(value)), 0),
    )


def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The account 360."""
    try:
        account = account_selectors.account_360_get(pk=pk)
    except Account.DoesNotExist:
        raise Http404(_("No such account.")) from None
    today = timezone.localdate()
    days = 365 if request.GET.get("range") == "365" else 90

    # Health: the latest snapshot for the header, one year of scores for the trend and band changes.
    change_form, first, second = _change_dates(request, today)
    snapshot, components, change = latest_health(account=account, change=(first, second))
    year = health_history(account=account, since=today - datetime.timedelta(days=364), until=today)
    trend = [p for p in year if p.date > today - datetime.timedelta(days=days)]

    tiers = account_selectors.tier_history(account=account)
    current_tier = next((t for t in tiers if t.ended_at is None), None)
    timeline = account_selectors.account_timeline(
        account=account, tier_assignments=tiers, band_changes=band_changes(year)
    )
    plan_url = _plan_url_builder()

    plans = account_selectors.account_plans(account=account)
    progress = plans_progress(plan_ids=[plan.pk for plan in plans], on=today)
    mrr_months = account_selectors.account_mrr_history(account=account, months=MRR_MONTHS, until=today)
    can_edit = can_edit_account(request.user, account.owner_id)

    context = {
        "account": account,
        "today": today,
        "snapshot": snapshot,
        "components": components,
        "current_tier": current_tier,
        "tier_history": tiers[:TIER_HISTORY_SHOWN],
        "range_days": days,
        "ranges": RANGES,
        "trend_chart": _health_trend_chart(trend, days, snapshot) if trend else None,
        "change_form": change_form,
        "change": change,
        "timeline": [
            {
                "event": event,
                "kind_label": TIMELINE_KINDS.get(event.kind, event.kind),
                "url": plan_url(event.plan_id) if event.plan_id else None,
            }
            for event in timeline
        ],
        "timeline_limit": account_selectors.TIMELINE_LIMIT,
        "contacts": account_selectors.account_contacts(account=account, limit=CONTACTS_SHOWN),
        "contacts_shown": CONTACTS_SHOWN,
        "subscriptions": account_selectors.account_subscriptions(account=account, limit=LINES_SHOWN),
        "lines_shown": LINES_SHOWN,
        "mrr_chart": _mrr_chart(mrr_months) if any(m.mrr for m in mrr_months) else None,
        "plans": [{"plan": plan, "progress": progress[plan.pk], "url": plan_url(plan.pk)} for plan in plans],
        "open_alerts": account_selectors.account_open_alerts(account=account),
        "can_edit": can_edit,
        "new_plan_url": _url_or_none("plans:new") if can_edit else None,
        "all_plans_url": _url_or_none("plans:account_plans", account.pk),
        "touch_form": TouchForm(account=account),
        "touch_next": request.get_full_path(),
    }
    return render(request, "metrics/account/detail.html", context)


urlpatterns: list = [path("account/<int:pk>/", account_detail, name="account")]
