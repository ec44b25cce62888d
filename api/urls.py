"""/api/v1/: the partner API, its OpenAPI schema and its docs (served from this server, no CDN)."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from .resources.accounts import AccountViewSet
from .resources.alerts import AlertViewSet
from .resources.contacts import ContactViewSet
from .resources.health import AccountHealthView
from .resources.revenue import RevenueView
from .resources.subscriptions import SubscriptionViewSet
from .resources.success_plans import SuccessPlanViewSet
from .resources.touches import TouchViewSet
from .resources.usage import UsageViewSet

router = SimpleRouter(trailing_slash=True)
router.register("accounts", AccountViewSet, basename="account")
router.register("contacts", ContactViewSet, basename="contact")
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("success-plans", SuccessPlanViewSet, basename="success-plan")
router.register("touches", TouchViewSet, basename="touch")
router.register("usage", UsageViewSet, basename="usage")
router.register("alerts", AlertViewSet, basename="alert")


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 document (YAML; JSON with ?format=json). Not itself an operation of the API."""

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@csrf_exempt
@login_not_required
def not_found(request, *args, **kwargs):
    """Any other path under the API: a 404 in the API's error shape, not the site's HTML page."""
    return JsonResponse({"error": {"code": "not_found", "message": _("Not found.")}}, status=404)


app_name = "api"
urlpatterns = [
    path("accounts/<str:external_id>/health/", AccountHealthView.as_view(), name="account-health"),
    path("metrics/revenue/", RevenueView.as_view(), name="revenue"),
    path("", include(router.urls)),
    path("schema/", login_not_required(SchemaView.as_view(api_version="v1")), name="schema"),
    path("docs/", login_not_required(SpectacularSwaggerView.as_view(url_name="api:schema")), name="docs"),
    path(
        "redoc/",
        login_not_required(SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html")),
        name="redoc",
    ),
    re_path(r"", not_found),
]
