"""Charts are inline SVG with no script and nothing from the internet."""

from csm.charts import bar_chart, line_chart


def test_charts_are_svg_without_scripts_or_remote_links():
    for chart in (
        line_chart(title="NRR", labels=["2026-01", "2026-02"], series={"All": [1.02, None]}),
        bar_chart(title="Churn", labels=["A", "B"], series={"MRR": [10, 20]}, stacked=True),
    ):
        assert chart.startswith("<svg")
        assert "<script" not in chart
        assert "http://kozea" not in chart and "cdn" not in chart.lower()
        assert "NRR" in chart or "Churn" in chart
