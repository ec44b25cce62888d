"""Workspace pages of success plans, under /plans/."""

from django.urls import path

from . import views

app_name = "plans"
urlpatterns = [
    path("new/", views.plan_new, name="new"),
    path("<int:pk>/", views.plan_detail, name="detail"),
    path("<int:pk>/edit/", views.plan_edit, name="edit"),
    path("<int:pk>/status/", views.plan_status, name="status"),
    path("<int:pk>/delete/", views.plan_delete, name="delete"),
    path("<int:pk>/goals/add/", views.goal_add, name="goal_add"),
    path("account/<int:pk>/", views.account_plans, name="account_plans"),
    path("goals/<int:pk>/edit/", views.goal_edit, name="goal_edit"),
    path("goals/<int:pk>/status/", views.goal_status, name="goal_status"),
    path("goals/<int:pk>/remove/", views.goal_remove, name="goal_remove"),
    path("goals/<int:pk>/move/", views.goal_move, name="goal_move"),
    path("goals/<int:pk>/targets/add/", views.target_add, name="target_add"),
    path("goals/<int:pk>/initiatives/add/", views.initiative_add, name="initiative_add"),
    path("targets/<int:pk>/edit/", views.target_edit, name="target_edit"),
    path("targets/<int:pk>/remove/", views.target_remove, name="target_remove"),
    path("targets/<int:pk>/move/", views.target_move, name="target_move"),
    path("targets/<int:pk>/readings/", views.target_measure, name="target_measure"),
    path("initiatives/<int:pk>/edit/", views.initiative_edit, name="initiative_edit"),
    path("initiatives/<int:pk>/status/", views.initiative_status, name="initiative_status"),
    path("initiatives/<int:pk>/remove/", views.initiative_remove, name="initiative_remove"),
    path("initiatives/<int:pk>/move/", views.initiative_move, name="initiative_move"),
]
