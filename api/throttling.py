"""Per-partner throttling: each partner's own limit (requests a minute), else the deployment's default."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import PartnerKey

from .authentication import client_of


class PartnerRateThrottle(SimpleRateThrottle):
    """All keys of a partner share its limit; a signed-in user has the default limit. A refused request
    gets 429 with Retry-After (seconds)."""

    scope = "partner"

    def get_rate(self) -> str:
        return f"{settings.CSM_API_RATE_PER_MINUTE}/min"

    def allow_request(self, request, view) -> bool:
        auth = getattr(request, "auth", None)
        per_minute = auth.partner.rate_limit if isinstance(auth, PartnerKey) else None
        self.num_requests, self.duration = per_minute or settings.CSM_API_RATE_PER_MINUTE, 60
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(getattr(request, "auth", None), PartnerKey) and not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": client_of(request)}
