"""Workspace pages built on health, alerts and revenue: My day, account 360, the portfolio."""

from metrics.views import account, my_day, portfolio

app_name = "metrics"
urlpatterns = [*my_day.urlpatterns, *account.urlpatterns, *portfolio.urlpatterns]
