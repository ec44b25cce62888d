"""Workspace pages built on health, alerts and revenue: My day, account 360, the portfolio."""

app_name = "metrics"
urlpatterns: list = []
