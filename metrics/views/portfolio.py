"""Portfolio: retention, churn, expansion, cohorts, concentration and LTV, with drill-downs.

The page reads the stored revenue bridge (`RevenueMonth`) for the chosen months, and the figures that
follow accounts month by month (cohorts, upsell timing, churns), with concentration and time to value, as the
nightly revenue step stored them (`metrics.services.portfolio`), saying when: no account's history is summed
and no account ranked per request. Every bridge
figure links to `drilldown`, whose rows add up to the stored figure; churn figures link to
`churn_drilldown`, a page of the stored churns behind them.
"""

import datetime
import hashlib
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse
from django.utils.formats import date_format, number_format
from django.utils.text import capfirst
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from accounts.models import Tier
from csm import charts, formats
from csm.exceptions import DomainError
from metrics.history import FIGURES, ZERO, check_month_range, month_index, month_start, parse_month
from metrics.models import RevenueMonth
from metrics.selectors import portfolio as selectors
from metrics.selectors import revenue
from metrics.services.portfolio import COHORT_MONTHS  # months after the cohort month

SegmentKind = RevenueMonth.SegmentKind

# The bridge as the months table reads it: start + new + reactivation + expansion - contraction - churned = end.
BRIDGE = (
    "start_mrr",
    "new_mrr",
    "reactivation_mrr",
    "expansion_mrr",
    "contraction_mrr",
    "churned_mrr",
    "end_mrr",
)
MAX_MONTHS = 60  # the longest range the page shows: one table row and one chart point a month
COHORTS = 12  # the most recent cohorts in the cohort table
DRILLDOWN_PAGE = 50
CHARTS_SECONDS = 24 * 3600  # rendered charts are kept this long, or until their rows change
NO_VALUE = "none"  # the accounts list's filter value for "no tier" / "no owner"
NOT_RECORDED = "not-recorded"  # the churn drill-down's `reason` for churns without a recorded reason
User = get_user_model()


# --- forms ----------------------------------------------------------------------------------------


class MonthField(forms.CharField):
    """A calendar month typed as YYYY-MM (the browser's month input), cleaned to its first day."""

    widget = forms.TextInput(attrs={"type": "month", "pattern": r"\d{4}-\d{2}", "placeholder": "YYYY-MM"})

    def to_python(self, value):
        value = super().to_python(value)
        return parse_month(value) if value else None  # DomainError is a ValidationError: a form error


class PortfolioForm(forms.Form):
    """The months shown (`from`, `to`) and the segment kind of the breakdown."""

    segment = forms.ChoiceField(label=gettext_lazy("Breakdown by"), choices=SegmentKind.choices, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so these two are added here rather than declared.
        self.fields["from"] = MonthField(label=gettext_lazy("From"), required=False)
        self.fields["to"] = MonthField(label=gettext_lazy("To"), required=False)
        self.order_fields(["from", "to", "segment"])

    def clean(self):
        cleaned = super().clean()
        first, last = cleaned.get("from"), cleaned.get("to")
        if first and last:
            check_month_range(first, last)  # DomainError: a form error
            if month_index(last) - month_index(first) + 1 > MAX_MONTHS:
                raise forms.ValidationError(
                    _("Choose at most %(months)s months.") % {"months": MAX_MONTHS}, code="too_long"
                )
        return cleaned


class DrilldownForm(forms.Form):
    month = MonthField(label=gettext_lazy("Month"))
    figure = forms.ChoiceField(label=gettext_lazy("Figure"), choices=[(figure, figure) for figure in FIGURES])
    segment_kind = forms.ChoiceField(label=gettext_lazy("Segment kind"), choices=SegmentKind.choices, required=False)
    segment = forms.CharField(label=gettext_lazy("Segment"), max_length=200, required=False, strip=False)


class ChurnDrilldownForm(forms.Form):
    """The churns of the months `from`..`to`, optionally of one tenure band and/or one reason."""

    tenure = forms.ChoiceField(label=gettext_lazy("Tenure"), required=False)
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=200, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["from"] = MonthField(label=gettext_lazy("From"))
        self.fields["to"] = MonthField(label=gettext_lazy("To"))
        self.fields["tenure"].choices = [("", "")] + [(band, band) for band in selectors.tenure_bands()]

    def clean(self):
        cleaned = super().clean()
        first, last = cleaned.get("from"), cleaned.get("to")
        if first and last:
            check_month_range(first, last)  # DomainError: a form error
            if month_index(last) - month_index(first) + 1 > MAX_MONTHS:
                raise forms.ValidationError(
                    _("Choose at most %(months)s months.") % {"months": MAX_MONTHS}, code="too_long"
                )
        reason = cleaned.get("reason") or ""
        cleaned["reason"] = selectors.not_recorded_reason() if reason == NOT_RECORDED else (reason.strip() or None)
        cleaned["tenure"] = cleaned.get("tenure") or None
        return cleaned


# --- labels and links -----------------------------------------------------------------------------


def figure_label(figure: str) -> str:
    return capfirst(RevenueMonth._meta.get_field(figure).verbose_name)


def segment_label(segment_kind: str, segment: str) -> str:
    if segment_kind == SegmentKind.ALL:
        return str(SegmentKind.ALL.label)
    return segment or _("(none)")


def month_label(month: datetime.date) -> str:
    return date_format(month, "YEAR_MONTH_FORMAT")


def drilldown_url(month: datetime.date, figure: str, segment_kind: str = SegmentKind.ALL, segment: str = "") -> str:
    params = {"month": f"{month:%Y-%m}", "figure": figure, "segment_kind": segment_kind}
    if segment_kind != SegmentKind.ALL:
        params["segment"] = segment
    return f"{reverse('metrics:drilldown')}?{urlencode(params)}"


def churn_drilldown_url(
    first: datetime.date, last: datetime.date, *, tenure: str | None = None, reason: str | None = None
) -> str:
    params = {"from": f"{first:%Y-%m}", "to": f"{last:%Y-%m}"}
    if tenure is not None:
        params["tenure"] = tenure
    if reason is not None:
        params["reason"] = NOT_RECORDED if reason == selectors.not_recorded_reason() else reason
    return f"{reverse('metrics:churn_drilldown')}?{urlencode(params)}"


def churn_links(churn: revenue.ChurnAnalysis | None, first: datetime.date, last: datetime.date) -> dict:
    """The churn analysis' bands and reasons, each with the drill-down of the churns behind it."""
    if churn is None:
        return {"bands": [], "reasons": [], "url": None}
    return {
        "bands": [
            {"label": band, "group": group, "url": churn_drilldown_url(first, last, tenure=band)}
            for band, group in churn["by_tenure"].items()
        ],
        "reasons": [
            {"label": reason, "count": count, "url": churn_drilldown_url(first, last, reason=reason)}
            for reason, count in churn["reasons"].items()
        ],
        "url": churn_drilldown_url(first, last),
    }


def optional_url(name: str, *args, params: dict | None = None) -> str | None:
    """The URL of a page another part of the workspace provides, None while it does not exist."""
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(params)}" if params else url


def bridge_cells(row: RevenueMonth, segment_kind: str = SegmentKind.ALL) -> list[dict]:
    return [
        {
            "figure": figure,
            "value": getattr(row, figure),
            "url": drilldown_url(row.month, figure, segment_kind, row.segment),
        }
        for figure in BRIDGE
    ]


# --- the page -------------------------------------------------------------------------------------


def chosen_range(form: PortfolioForm, bounds: selectors.MonthBounds) -> tuple[datetime.date, datetime.date]:
    """The form's months, filled in from the last twelve stored months; the default range when invalid."""
    default_first, default_last = selectors.default_month_range(bounds)
    if not form.is_valid():
        return default_first, default_last
    last = form.cleaned_data["to"] or default_last
    first = form.cleaned_data["from"] or month_start(max(month_index(last) - 11, month_index(bounds.first)))
    if month_index(first) > month_index(last):  # only `from` given, after the stored bridge's end
        last = first
    return first, last


def rate_formatter(value) -> str:
    return formats.percent(value, 1)


def ratio_formatter(value) -> str:
    return number_format(value, decimal_pos=2)


def money_formatter(value) -> str:
    return formats.money(value, 0)


def build_charts(months: list[RevenueMonth]) -> list:
    labels = [date_format(row.month, "M Y") for row in months]

    def series(field: str, sign: int = 1) -> list:
        return [None if getattr(row, field) is None else sign * getattr(row, field) for row in months]

    return [
        charts.line_chart(
            title=_("Gross and net revenue retention"),
            labels=labels,
            series={_("GRR"): series("grr"), _("NRR"): series("nrr")},
            formatter=rate_formatter,
        ),
        charts.line_chart(
            title=_("Logo and gross revenue churn rate"),
            labels=labels,
            series={_("Logo churn"): series("logo_churn_rate"), _("Revenue churn"): series("gross_revenue_churn_rate")},
            formatter=rate_formatter,
        ),
        charts.bar_chart(
            title=_("Expansion against contraction and churn (MRR)"),
            labels=labels,
            series={
                _("Upsell"): series("upsell_mrr"),
                _("Cross-sell"): series("cross_sell_mrr"),
                _("Contraction"): series("contraction_mrr", -1),
                _("Churn"): series("churned_mrr", -1),
            },
            formatter=money_formatter,
            stacked=True,
        ),
        charts.line_chart(
            title=_("Quick ratio"),
            labels=labels,
            series={_("Quick ratio"): series("quick_ratio")},
            formatter=ratio_formatter,
        ),
    ]


def cached_charts(months: list[RevenueMonth]) -> list:
    """`build_charts(months)`, rendered once per language and version of the rows: drawing the SVG costs more
    than the rest of the page, and the stored rows change only when the bridge is recomputed (a changed row
    gets a new `updated_at`, so a new key)."""
    if not months:
        return []
    shown = [(row.pk, row.month.isoformat(), row.updated_at.isoformat()) for row in months]
    key = "portfolio-charts:" + hashlib.sha256(repr((get_language(), shown)).encode()).hexdigest()
    charts = cache.get(key)
    if charts is None:
        charts = build_charts(months)
        cache.set(key, charts, CHARTS_SECONDS)
    return charts


def cohort_rows(cohorts: list[revenue.Cohort]) -> list[dict]:
    rows = []
    for cohort in cohorts[-COHORTS:]:
        width = COHORT_MONTHS + 1
        rows.append(
            {
                "cohort": cohort["cohort"],
                "accounts": cohort["accounts"],
                "start_mrr": cohort["start_mrr"],
                # A cohort is the accounts whose first paid month it is: that month's new MRR.
                "url": drilldown_url(cohort["cohort"], "new_mrr"),
                "revenue": cohort["revenue"] + [""] * (width - len(cohort["revenue"])),
                "logos": cohort["logos"] + [""] * (width - len(cohort["logos"])),
            }
        )
    return rows


def accounts_filter(segment_kind: str, segment: str, tiers: dict[str, str], owners: dict[str, int]) -> dict | None:
    """The accounts list's filter for the accounts now in a segment (accounts.filters.AccountFilterSet)."""
    if segment_kind == SegmentKind.TIER:
        return {"tier": tiers.get(segment) or NO_VALUE} if segment in tiers or not segment else None
    if segment_kind == SegmentKind.OWNER:
        return {"owner": owners.get(segment) or NO_VALUE} if segment in owners or not segment else None
    if segment_kind in (SegmentKind.INDUSTRY, SegmentKind.REGION) and segment:
        return {segment_kind: segment}
    return None


def segment_url(segment_kind: str, segment: str, tiers: dict[str, str], owners: dict[str, int]) -> str | None:
    params = accounts_filter(segment_kind, segment, tiers, owners)
    return optional_url("accounts:list", params=params) if params else None


def tier_rows(figures: dict[str, dict], tiers: dict[str, str]) -> list[dict]:
    """Per-tier figures with the tier's label and a link to its accounts."""
    return [
        {
            "label": tier or _("(none)"),
            "figures": values,
            "url": segment_url(SegmentKind.TIER, tier, tiers, {}),
        }
        for tier, values in figures.items()
    ]


def portfolio(request: HttpRequest) -> HttpResponse:
    form = PortfolioForm(request.GET or None)
    bounds = selectors.revenue_month_bounds()
    context: dict = {"form": form, "bounds": bounds}
    if bounds is None:
        return render(request, "metrics/portfolio/page.html", context)
    segment_kind = (form.is_valid() and form.cleaned_data["segment"]) or SegmentKind.TIER
    first, last = chosen_range(form, bounds)
    rows = selectors.portfolio_rows(first=first, last=last, segment_kind=segment_kind)
    errors = []
    history = selectors.stored_history()
    churn = None
    try:
        revenue.check_within_history(last)
    except DomainError as error:  # a range reaching past this month: no churn analysis
        errors.extend(error.messages)
    else:
        churn = selectors.stored_churn_analysis(first=first, last=last) if history else None
    tiers = dict(Tier.objects.values_list("name", "slug"))
    owners, owner_names = {}, {}
    if segment_kind == SegmentKind.OWNER:  # segments are usernames: show the CSM's name
        for user in User.objects.filter(username__in=[row.segment for row in rows.segments]).only(
            "username", "first_name", "last_name"
        ):
            owners[user.username] = user.pk
            owner_names[user.username] = user.get_full_name() or user.username
    time_to_value = history.time_to_value if history else {"median_days": None, "accounts": 0, "by_tier": {}}
    book = rows.months[-1] if rows.months and rows.months[-1].month == last else None
    context.update(
        {
            "first": first,
            "last": last,
            "segment_kind": segment_kind,
            "segment_kind_label": SegmentKind(segment_kind).label,
            "errors": errors,
            "book": book,
            "months": [{"row": row, "cells": bridge_cells(row)} for row in rows.months],
            "segments": [
                {
                    "row": row,
                    "label": owner_names.get(row.segment) or segment_label(segment_kind, row.segment),
                    "cells": bridge_cells(row, segment_kind),
                    "url": segment_url(segment_kind, row.segment, tiers, owners),
                }
                for row in rows.segments
            ],
            "bridge_labels": [figure_label(figure) for figure in BRIDGE],
            "charts": cached_charts(rows.months),
            "history": history,
            "cohorts": cohort_rows(history.cohorts) if history else [],
            "cohort_months": range(COHORT_MONTHS + 1),
            "concentration": history.concentration if history else {"accounts": 0},
            "concentration_url": optional_url("accounts:list", params={"ordering": "-arr"}),
            "timing": history.upsell_timing if history else None,
            "churn": churn,
            "churn_links": churn_links(churn, first, last),
            "time_to_value": time_to_value,
            "ttv_rows": tier_rows(time_to_value["by_tier"], tiers),
            "ltv_rows": tier_rows(revenue.ltv_by_segment(month=last, segment_kind=SegmentKind.TIER), tiers),
        }
    )
    return render(request, "metrics/portfolio/page.html", context)


# --- the drill-down -------------------------------------------------------------------------------


def bad_request(request: HttpRequest, messages: list[str]) -> HttpResponse:
    return render(request, "metrics/portfolio/bad_request.html", {"errors": messages}, status=400)


def form_errors(form: forms.Form) -> list[str]:
    return [
        f"{form[name].label}: {message}" if name in form.fields else message
        for name, messages in form.errors.items()
        for message in messages
    ]


def page_number(request: HttpRequest) -> int:
    """The `page` asked for; the first when it is not a number."""
    page = request.GET.get("page", "")
    return int(page) if page.isascii() and page.isdigit() and len(page) < 10 else 1


def drilldown(request: HttpRequest) -> HttpResponse:
    form = DrilldownForm(request.GET)
    if not form.is_valid():
        return bad_request(request, form_errors(form))
    month, figure = form.cleaned_data["month"], form.cleaned_data["figure"]
    segment_kind = form.cleaned_data["segment_kind"] or SegmentKind.ALL
    segment = "" if segment_kind == SegmentKind.ALL else form.cleaned_data["segment"]
    try:
        # A month still to come is refused rather than projected.
        revenue.check_within_history(month)
    except DomainError as error:
        return bad_request(request, error.messages)
    stored = selectors.stored_bridge_figure(month=month, figure=figure, segment_kind=segment_kind, segment=segment)
    found, number = selectors.drilldown_page(
        month=month,
        figure=figure,
        segment_kind=segment_kind,
        segment=segment,
        number=page_number(request),
        size=DRILLDOWN_PAGE,
    )
    # The rows come a page at a time from the database: the paginator only numbers the pages.
    page_obj = Paginator(range(found.count), DRILLDOWN_PAGE).get_page(number)
    page_obj.object_list = found.rows
    for row in found.rows:
        row["url"] = optional_url("metrics:account", row["account_id"])
    total = found.total
    back = {"to": f"{month:%Y-%m}", "segment": segment_kind}
    return render(
        request,
        "metrics/portfolio/drilldown.html",
        {
            "month": month,
            "month_label": month_label(month),
            "figure_label": figure_label(figure),
            "segment_kind_label": SegmentKind(segment_kind).label,
            "segment_label": segment_label(segment_kind, segment),
            "is_segment": segment_kind != SegmentKind.ALL,
            "page_obj": page_obj,
            "count": found.count,
            "total": total,
            "stored": stored,
            "matches": stored is not None and stored == total,
            "back_url": f"{reverse('metrics:portfolio')}?{urlencode(back)}",
        },
    )


def churn_drilldown(request: HttpRequest) -> HttpResponse:
    """The churns behind a figure of the portfolio's churn section: they add up to it."""
    form = ChurnDrilldownForm(request.GET)
    if not form.is_valid():
        return bad_request(request, form_errors(form))
    first, last = form.cleaned_data["from"], form.cleaned_data["to"]
    tenure, reason = form.cleaned_data["tenure"], form.cleaned_data["reason"]
    try:
        revenue.check_within_history(last)
    except DomainError as error:  # a range reaching past this month
        return bad_request(request, error.messages)
    history = selectors.stored_history()
    churns = selectors.stored_churns(first=first, last=last, tenure=tenure, reason=reason)
    totals = selectors.churn_totals(churns) if history else selectors.ChurnTotals(0, ZERO)
    paginator = Paginator(selectors.churn_rows_of(churns), DRILLDOWN_PAGE)
    paginator.count = totals.count  # counted with the total: the page itself is one more query
    page_obj = paginator.get_page(request.GET.get("page"))
    rows = [selectors.churn_row(values) for values in page_obj] if totals.count else []
    back = {"from": f"{first:%Y-%m}", "to": f"{last:%Y-%m}"}
    return render(
        request,
        "metrics/portfolio/churn_drilldown.html",
        {
            "first_label": month_label(first),
            "last_label": month_label(last),
            "tenure": tenure,
            "reason": reason,
            "history": history,
            "page_obj": page_obj,
            "rows": [
                {"row": row, "url": optional_url("metrics:account", row.account_id), "month": month_label(row.month)}
                for row in rows
            ],
            "count": totals.count,
            "total": totals.mrr,
            "back_url": f"{reverse('metrics:portfolio')}?{urlencode(back)}",
        },
    )


urlpatterns = [
    path("portfolio/", portfolio, name="portfolio"),
    path("portfolio/drilldown/", drilldown, name="drilldown"),
    path("portfolio/churn/", churn_drilldown, name="churn_drilldown"),
]
