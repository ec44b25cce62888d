"""Who may use the API: partners with an active key, and signed-in users with a workspace role."""

from django.utils.translation import gettext_lazy as _
from rest_framework import permissions

from accounts.models import PartnerKey
from csm.roles import is_leader, role_of


class ApiAccess(permissions.BasePermission):
    """A partner key may read and write (within its scope). A signed-in CSM may read; a CS leader may
    also write. Anyone else is refused (401 without credentials, 403 with a session but no role)."""

    message = _("Your account has no access to the API.")

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, PartnerKey):
            return True
        user = request.user
        if role_of(user) is None:
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        self.message = _("Only CS leaders may change data through the API.")
        return is_leader(user)
