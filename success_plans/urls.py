"""Workspace pages of success plans."""

app_name = "plans"
urlpatterns: list = []
