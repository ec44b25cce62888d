"""Workspace pages of accounts (the accounts list, logging touches)."""

app_name = "accounts"
urlpatterns: list = []
