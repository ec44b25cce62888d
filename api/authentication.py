"""Partner keys: `Authorization: Bearer <key>`. Only a hash of each key is stored."""

import datetime
import hmac
import re

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.models import Partner, PartnerKey
from audit.context import ActorKind, set_actor

# The last-used time is written at most this often per key, so a busy key costs no write per request.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)
# What a key can look like (keys are "csm_" and URL-safe base64); anything else is refused unread.
KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,200}")


class PartnerKeyAuthentication(authentication.BaseAuthentication):
    """A request with a partner key is made by that key's partner: `request.user` stays anonymous and
    `request.auth` is the PartnerKey. A missing, unknown or revoked key, or an inactive partner: 401."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("The Authorization header must be “Bearer <key>”."))
        raw = header[1].decode("latin-1")
        if not KEY_SHAPE.fullmatch(raw):
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        key = self.key_for(raw)
        # What the request changes is recorded as changed by this key (until the request ends).
        set_actor(ActorKind.PARTNER_KEY, key_label(key))
        return AnonymousUser(), key

    @staticmethod
    def key_for(raw: str) -> PartnerKey:
        prefix = raw[4 : 4 + PartnerKey.PREFIX_LENGTH]
        key = PartnerKey.objects.select_related("partner").filter(prefix=prefix).first() if prefix else None
        # Compare the hashes in constant time even when no key has that prefix.
        expected = key.key_hash if key is not None else "0" * 64
        if not hmac.compare_digest(expected, PartnerKey.hash_key(raw)) or key is None:
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This API key was revoked."))
        if not key.partner.is_active:
            raise exceptions.AuthenticationFailed(_("This partner is not active."))
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            PartnerKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


def key_label(key: PartnerKey) -> str:
    """How history names a key's changes: "Billing (key production)", or the key's prefix when unnamed."""
    return f"{key.partner.name} (key {key.name or key.prefix})"


def viewer_of(request) -> Partner | object:
    """Who the request acts for: the key's partner, or the signed-in user."""
    auth = getattr(request, "auth", None)
    return auth.partner if isinstance(auth, PartnerKey) else request.user


def client_of(request) -> str:
    """A stable name of the caller for idempotency keys and throttling."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, PartnerKey):
        return f"partner:{auth.partner_id}"
    return f"user:{request.user.pk}"


class PartnerKeyScheme(OpenApiAuthenticationExtension):
    target_class = PartnerKeyAuthentication
    name = "partnerKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A partner API key, shown once when it is created (admin or create_partner_key).",
        }
