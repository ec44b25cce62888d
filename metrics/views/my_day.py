"""My day: the signed-in CSM's book, alerts, renewals, overdue touches and plan work.

A CS leader sees their own day and may open any CSM's with `?csm=<user id>`; a CSM always sees their own.
Alerts are marked done or snoozed in place (htmx swaps the row) or by a plain POST that comes back here.
"""

import datetime
from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from csm.exceptions import DomainError
from csm.roles import can_edit_account, is_leader
from metrics.models import Alert
from metrics.selectors import my_day as selectors
from metrics.services.alerts import alert_close, alert_snooze

SNOOZE_DAYS = 7


def _resolves(name: str, *args) -> bool:
    try:
        reverse(name, args=args)
    except NoReverseMatch:
        return False
    return True


def _links() -> dict[str, bool]:
    """Which pages built elsewhere exist, so rows link to them only then."""
    return {
        "account": _resolves("metrics:account", 1),
        "new_touch": _resolves("accounts:new_touch", 1),
        "plan": _resolves("plans:detail", 1),
        "accounts": _resolves("accounts:list"),
    }


def _day_of(request: HttpRequest) -> tuple:
    """(whose day to show, the CSMs a leader may pick from or None). Only a leader may pick another's day;
    `?csm` from anyone else, or naming no CSM, is ignored."""
    if not is_leader(request.user):
        return request.user, None
    choices = list(selectors.csm_choices())
    wanted = request.GET.get("csm", "")
    chosen = next((user for user in choices if str(user.pk) == wanted), None)
    return chosen or request.user, choices


def _see_all(csm, viewer, **filters) -> str:
    """The accounts list filtered to this book (and `filters`, parameters of accounts.filters.AccountFilterSet),
    or "" while that list does not exist."""
    if not _resolves("accounts:list"):
        return ""
    owner = "mine" if csm.pk == viewer.pk else csm.pk
    return f"{reverse('accounts:list')}?{urlencode({'owner': owner, **filters})}"


@require_GET
def my_day_view(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    csm, choices = _day_of(request)
    viewer = request.user
    alerts = selectors.alerts_waiting(csm=csm, on=today)
    for alert in alerts.rows:
        alert.can_edit = can_edit_account(viewer, alert.account.owner_id)
    monday, sunday = selectors.week_of(today)
    context = {
        "csm": csm,
        "is_own_day": csm.pk == viewer.pk,
        "csm_choices": choices,
        "today": today,
        "book": selectors.book_summary(csm=csm),
        "alerts": alerts,
        "at_risk": selectors.at_risk(csm=csm, on=today),
        "renewals": selectors.renewals_ahead(csm=csm, on=today),
        "renewal_days": selectors.RENEWAL_WINDOW_DAYS,
        "overdue": selectors.touches_overdue(csm=csm, on=today),
        "initiatives": selectors.initiatives_this_week(csm=csm, on=today),
        "week": (monday, sunday),
        "stalled_plans": selectors.plans_without_progress(csm=csm, on=today),
        "links": _links(),
        "see_all": {
            "book": _see_all(csm, viewer),
            "at_risk": _see_all(csm, viewer, health_band="red", ordering="health"),
            "renewals": _see_all(csm, viewer, renewal_within=selectors.RENEWAL_WINDOW_DAYS, ordering="renewal"),
            "overdue": _see_all(csm, viewer, ordering="last_touch"),
        },
        "back": request.get_full_path(),
    }
    return render(request, "metrics/my_day/page.html", context)


def _back(request: HttpRequest) -> str:
    """Where a plain POST returns: the `next` page when it is on this site, else My day."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("home")


def _alert_action(request: HttpRequest, pk: int, act: Callable[[Alert], str]) -> HttpResponse:
    """Load the alert, check the viewer may edit its account's alerts, act, and answer htmx with the row
    (an error shown in it) or a plain POST with a message and a redirect back."""
    try:
        alert = selectors.alert_for_action(pk=pk)
    except Alert.DoesNotExist:
        raise Http404(_("No such alert.")) from None
    if not can_edit_account(request.user, alert.account.owner_id):
        raise PermissionDenied(_("Only the account's CSM or a CS leader can change its alerts."))
    error = done = ""
    try:
        done = act(alert)
    except DomainError as exc:
        error = " ".join(exc.messages)
    if request.htmx:
        alert.can_edit = True
        context = {
            "alert": alert,
            "error": error,
            "notice": done,
            "today": timezone.localdate(),
            "links": _links(),
            "back": _back(request),
        }
        return render(request, "metrics/my_day/alert_row.html", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect(_back(request))


def _done(alert: Alert) -> str:
    alert_close(alert=alert)
    return _("Alert on %(account)s marked done.") % {"account": alert.account}


def _snooze(alert: Alert) -> str:
    until = timezone.localdate() + datetime.timedelta(days=SNOOZE_DAYS)
    alert_snooze(alert=alert, until=until)
    return _("Alert on %(account)s snoozed until %(date)s.") % {"account": alert.account, "date": date_format(until)}


@require_POST
def alert_done_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_action(request, pk, _done)


@require_POST
def alert_snooze_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_action(request, pk, _snooze)


urlpatterns = [
    path("alerts/<int:pk>/done/", alert_done_view, name="alert_done"),
    path("alerts/<int:pk>/snooze/", alert_snooze_view, name="alert_snooze"),
]
