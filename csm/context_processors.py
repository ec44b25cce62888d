"""Template context every workspace page shares."""

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from csm.roles import Role, role_of

# The sections after "My day", in order: (URL name, label).
NAVIGATION = (
    ("accounts:list", _("Accounts")),
    ("metrics:portfolio", _("Portfolio")),
)


def workspace(request) -> dict:
    role = role_of(getattr(request, "user", None))
    nav = []
    if role is not None:
        for name, label in NAVIGATION:
            try:
                url = reverse(name)
            except NoReverseMatch:
                continue
            nav.append({"url": url, "label": label, "current": request.path.startswith(url)})
    return {
        "csm_role": role,
        "csm_is_leader": role == Role.LEADER,
        "csm_currency": settings.CSM_CURRENCY,
        "workspace_nav": nav,
    }
