"""Server-rendered SVG charts (pygal), with no script and nothing loaded from the internet.

Pages embed the returned SVG inline (`{{ chart }}`); labels are translated by the caller.
"""

import re
from collections.abc import Callable, Sequence

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1c2430",
    foreground_strong="#1c2430",
    foreground_subtle="#5a6473",
    colors=("#1d5fbf", "#b42318", "#146c43", "#8a5a00", "#6b3fa0", "#0f766e"),
    font_family="system-ui, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    title_font_size=14,
)
Number = float | int | None


INLINE_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _render(chart: pygal.graph.graph.Graph) -> SafeString:
    # js=[]: pygal otherwise links its tooltip script from the internet. It still writes its settings into
    # an inline script, which nothing here reads (and a strict content policy would refuse): drop it.
    svg = chart.render(is_unicode=True, disable_xml_declaration=True)
    return mark_safe(COMMENT.sub("", INLINE_SCRIPT.sub("", svg)))  # noqa: S308 - pygal escapes labels


def _chart(kind, *, title: str, labels: Sequence[str], formatter: Callable | None, height: int, **options):
    chart = kind(
        js=[],
        style=STYLE,
        title=title,
        height=height,
        width=800,
        explicit_size=False,
        show_legend=True,
        legend_at_bottom=True,
        x_label_rotation=0,
        truncate_label=-1,
        print_values=False,
        show_minor_x_labels=len(labels) <= 24,
        x_labels_major_every=max(1, len(labels) // 12),
        **options,
    )
    chart.x_labels = list(labels)
    if formatter is not None:
        chart.value_formatter = formatter
    return chart


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Number]],
    formatter: Callable | None = None,
    height: int = 320,
    **options,
) -> SafeString:
    """A line chart: one line per series, `None` values leave gaps."""
    chart = _chart(pygal.Line, title=title, labels=labels, formatter=formatter, height=height, **options)
    for name, values in series.items():
        chart.add(name, [None if v is None else float(v) for v in values], allow_interruptions=True)
    return _render(chart)


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Number]],
    formatter: Callable | None = None,
    height: int = 320,
    stacked: bool = False,
    **options,
) -> SafeString:
    """A bar chart (stacked when asked): one bar group per label, one colour per series."""
    kind = pygal.StackedBar if stacked else pygal.Bar
    chart = _chart(kind, title=title, labels=labels, formatter=formatter, height=height, **options)
    for name, values in series.items():
        chart.add(name, [None if v is None else float(v) for v in values])
    return _render(chart)
