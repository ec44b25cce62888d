"""Workspace pages of accounts (the accounts list, logging touches)."""

from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("", views.account_list, name="list"),
    path("export.csv", views.account_export, name="export"),
    path("owners/", views.owner_options, name="owner_options"),
    path("<int:pk>/touches/", views.touch_create, name="log_touch"),
    path("<int:pk>/touches/new/", views.touch_new, name="new_touch"),
]
