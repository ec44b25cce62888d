"""Workspace pages of accounts: the accounts list (with its owner picker's suggestions) and its CSV export,
and logging a touch.

Every page needs a sign-in and a workspace role (csm.middleware); any role reads every account and may
log a touch on any of them.
"""

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from csm.exceptions import DomainError
from csm.formats import spreadsheet_safe

from .filters import DEFAULT_ORDERING, ORDERING_LABELS, AccountFilterSet, owner_specials
from .forms import TouchForm
from .models import Account, Touch
from .selectors import account_filterset, owner_suggestions
from .services import touch_log

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
NUMERIC_COLUMNS = {"health", "arr"}


def _account_url(pk: int) -> str | None:
    """The account page, once the workspace has one."""
    try:
        return reverse("metrics:account", args=[pk])
    except NoReverseMatch:
        return None


def _columns(current: str) -> list[dict[str, Any]]:
    """The list's sortable columns: a header link toggles its column between ascending and descending."""
    columns = []
    for param, label in ORDERING_LABELS.items():
        sort = "ascending" if current == param else "descending" if current == f"-{param}" else None
        columns.append(
            {
                "label": label,
                "next": f"-{param}" if sort == "ascending" else param,
                "sort": sort,
                "num": param in NUMERIC_COLUMNS,
            }
        )
    return columns


def _filtered(request: HttpRequest) -> AccountFilterSet:
    return account_filterset(filters=request.GET, user=request.user)


def _list_page(request: HttpRequest, filterset: AccountFilterSet, *, status: int = 200) -> HttpResponse:
    # Bad filter values list nothing rather than more than asked for; the form shows what is wrong.
    valid = filterset.is_valid()
    accounts = filterset.qs if valid else filterset.queryset.none()
    page_obj = Paginator(accounts, PAGE_SIZE).get_page(request.GET.get("page"))
    ordering = filterset.form.cleaned_data.get("ordering") if valid else None
    current = ordering[0] if ordering else DEFAULT_ORDERING
    filtering = any(value for key, value in request.GET.items() if key not in ("page", "ordering"))
    context = {
        "filter": filterset,
        "page_obj": page_obj,
        "accounts": page_obj.object_list,
        "columns": _columns(current),
        "ordering": current,
        "filtering": filtering,
        "account_pages": _account_url(0) is not None,
    }
    return render(request, "accounts/account_list.html", context, status=status)


@require_GET
def account_list(request: HttpRequest) -> HttpResponse:
    filterset = _filtered(request)
    return _list_page(request, filterset, status=200 if filterset.is_valid() else 400)


@require_GET
def owner_options(request: HttpRequest) -> HttpResponse:
    """The owner picker's suggestions for what was typed (`owner`): a few <option>s for its datalist."""
    people = owner_suggestions(text=request.GET.get("owner", ""))
    return render(request, "accounts/includes/owner_options.html", {"people": people, "special": owner_specials()})


class _Echo:
    """A file-like object whose `write` hands the line back, for streaming csv.writer's output."""

    def write(self, value: str) -> str:
        return value


def _export_rows(
    accounts: Iterable[Any], header: list[str], bands: dict[str, str], stages: dict[str, str]
) -> Iterator[list[Any]]:
    yield header
    for row in accounts:
        owner = ""
        if row.owner__username is not None:
            owner = f"{row.owner__first_name} {row.owner__last_name}".strip() or row.owner__username
        yield [
            row.external_id or "",
            row.name,
            row.tier__name or "",
            owner,
            bands.get(row.health_band, ""),
            "" if row.health_score is None else row.health_score,
            row.mrr * 12,
            row.mrr,
            "" if row.last_touch_at is None else timezone.localtime(row.last_touch_at).strftime("%Y-%m-%d %H:%M"),
            "" if row.renewal_date is None else row.renewal_date.isoformat(),
            stages.get(row.lifecycle_stage, row.lifecycle_stage),
            row.industry,
            row.region,
        ]


@require_GET
def account_export(request: HttpRequest) -> HttpResponse:
    """The filtered list as CSV (UTF-8 with a byte-order mark so spreadsheets read it as UTF-8), streamed."""
    filterset = _filtered(request)
    if not filterset.is_valid():
        return _list_page(request, filterset, status=400)
    header = [
        _("External id"),
        _("Name"),
        _("Tier"),
        _("CSM"),
        _("Health band"),
        _("Health score"),
        _("ARR"),
        _("MRR"),
        _("Last touch"),
        _("Renewal date"),
        _("Lifecycle stage"),
        _("Industry"),
        _("Region"),
    ]
    rows = filterset.qs.values_list(
        "external_id",
        "name",
        "tier__name",
        "owner__first_name",
        "owner__last_name",
        "owner__username",
        "health_band",
        "health_score",
        "mrr",
        "last_touch_at",
        "renewal_date",
        "lifecycle_stage",
        "industry",
        "region",
        named=True,
    ).iterator(chunk_size=EXPORT_CHUNK)
    # Labels are translated here, in the request's language: the rows are written after the view returns.
    bands = {key: str(label) for key, label in Account.HealthBand.choices}
    stages = {key: str(label) for key, label in Account.LifecycleStage.choices}
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield "\ufeff"
        for row in _export_rows(rows, header, bands, stages):
            yield writer.writerow([spreadsheet_safe(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    filename = f"accounts-{timezone.localdate().isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- touches ------------------------------------------------------------------------------------


def _next_url(request: HttpRequest, account: Account) -> str:
    """Where to go after logging: `next` when it is a URL of this site, else the account page or the list."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return _account_url(account.pk) or reverse("accounts:list")


def _touch_account(pk: int) -> Account:
    return get_object_or_404(Account.objects.alive(), pk=pk)


def _touch_form_context(account: Account, form: TouchForm, next_url: str, **extra: Any) -> dict[str, Any]:
    return {"account": account, "form": form, "next": next_url, **extra}


@require_GET
def touch_new(request: HttpRequest, pk: int) -> HttpResponse:
    """The touch form alone on a page, for browsers without JavaScript and links from elsewhere."""
    account = _touch_account(pk)
    context = _touch_form_context(account, TouchForm(account=account), _next_url(request, account))
    context["account_url"] = _account_url(account.pk)
    return render(request, "accounts/touch_new.html", context)


@require_POST
def touch_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Log a touch (POST). With htmx the form's fragment comes back: with its errors, or fresh with a notice
    of the touch logged and a `touchLogged` event for the page's other parts; without, a redirect to `next`."""
    account = _touch_account(pk)
    form = TouchForm(request.POST, account=account)
    next_url = _next_url(request, account)
    if form.is_valid():
        try:
            touch = touch_log(account=account, csm=request.user, source=Touch.Source.WORKSPACE, **form.cleaned_data)
        except DomainError as error:
            form.add_domain_error(error)
        else:
            if request.htmx:
                context = _touch_form_context(account, TouchForm(account=account), next_url, logged=touch)
                response = render(request, "accounts/includes/touch_form.html", context)
                response["HX-Trigger"] = json.dumps({"touchLogged": {"account": account.pk, "touch": touch.pk}})
                return response
            messages.success(
                request,
                _("Touch logged on %(account)s: %(subject)s.") % {"account": account.name, "subject": touch.subject},
            )
            return redirect(next_url)
    context = _touch_form_context(account, form, next_url)
    if request.htmx:
        # htmx swaps only successful responses, so the form with its errors comes back as a 200.
        return render(request, "accounts/includes/touch_form.html", context)
    context["account_url"] = _account_url(account.pk)
    return render(request, "accounts/touch_new.html", context, status=400)
