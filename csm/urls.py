from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from csm.login import AdminSignInForm, SignInView
from metrics.views.my_day import my_day_view

# The admin's sign-in counts failures with the workspace's: one throttle for both doors.
admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("api.urls")),
    path("accounts/", include("accounts.urls")),
    path("plans/", include("success_plans.urls")),
    path("", include("metrics.urls")),
    path("", my_day_view, name="home"),
]
