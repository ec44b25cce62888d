"""Portfolio: retention, churn, expansion, cohorts, concentration and LTV, with drill-downs."""

urlpatterns: list = []
