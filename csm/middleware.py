"""Workspace access: a signed-in user without a role sees a polite page, not the product."""

from django.conf import settings
from django.shortcuts import render

from csm.roles import role_of


class WorkspaceRoleMiddleware:
    """After LoginRequiredMiddleware: the workspace needs the CSM or CS leader role. The admin keeps its
    own permissions (staff and model permissions); the login and logout pages are open to everyone."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True):  # marked login_not_required
            return None
        if request.path.startswith(("/admin/", f"/{settings.STATIC_URL.strip('/')}/")):
            return None
        if request.resolver_match and request.resolver_match.url_name == "logout":
            return None
        if request.user.is_authenticated and role_of(request.user) is None:
            return render(request, "no_access.html", status=403)
        return None
