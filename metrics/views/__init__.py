"""Workspace pages built on health, alerts and revenue, one module a page: My day (`my_day`), the
account 360 (`account`) and the portfolio (`portfolio`). Each module lists its own `urlpatterns`."""
