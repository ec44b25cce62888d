"""Template filters and tags shared by the workspace pages."""

from django import template
from django.http import QueryDict

from csm import formats

register = template.Library()


@register.filter
def money(value, decimal_pos: int = 2) -> str:
    return formats.money(value, decimal_pos)


@register.filter
def arr(mrr, decimal_pos: int = 0) -> str:
    """An MRR shown as ARR (12 x MRR)."""
    return formats.money(None if mrr is None else mrr * 12, decimal_pos)


@register.filter
def percent(value, decimal_pos: int = 0) -> str:
    return formats.percent(value, decimal_pos)


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with `changes` applied (None removes a key): for sorting and paging links."""
    params: QueryDict = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"
