"""Sign-in throttled against password guessing, for the workspace and the admin alike.

After CSM_LOGIN_ATTEMPTS failed sign-ins from one address, or for one user name, sign-in is refused, even
with the right password, until CSM_LOGIN_LOCKOUT_SECONDS have passed since the last failure. A successful
sign-in clears the counts of its address and its user name. The counts live in the cache (CACHE_URL shares
them between processes).
"""

import hashlib
import logging
import math

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest
from django.utils.translation import ngettext

THROTTLED = "throttled"
logger = logging.getLogger(__name__)


def _counters(request: HttpRequest | None, username: str) -> list[str]:
    """The cache keys counting failures of the request's address and of the user name (hashed: any text)."""
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()
    return [f"csm:login-failures:address:{address}", f"csm:login-failures:user:{name}"]


def sign_in_refused(request: HttpRequest | None, username: str) -> bool:
    counts = cache.get_many(_counters(request, username)).values()
    return any(count >= settings.CSM_LOGIN_ATTEMPTS for count in counts)


def sign_in_failed(request: HttpRequest | None, username: str) -> None:
    timeout = settings.CSM_LOGIN_LOCKOUT_SECONDS
    for key in _counters(request, username):
        cache.add(key, 0, timeout)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, timeout)
        cache.touch(key, timeout)  # the lockout runs from the last failure


def sign_in_succeeded(request: HttpRequest | None, username: str) -> None:
    cache.delete_many(_counters(request, username))


class ThrottledSignInMixin:
    """For an authentication form: refuse while throttled, count failures, clear the counts on success."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        if sign_in_refused(self.request, username):
            address = self.request.META.get("REMOTE_ADDR", "") if self.request is not None else ""
            logger.warning("Sign-in refused after repeated failures, from %s.", address)
            minutes = math.ceil(settings.CSM_LOGIN_LOCKOUT_SECONDS / 60)
            message = ngettext(
                "Too many failed sign-ins. Try again in %(minutes)d minute.",
                "Too many failed sign-ins. Try again in %(minutes)d minutes.",
                minutes,
            )
            raise ValidationError(message, code=THROTTLED, params={"minutes": minutes})
        try:
            cleaned = super().clean()
        except ValidationError:
            sign_in_failed(self.request, username)
            raise
        if self.get_user() is not None:
            sign_in_succeeded(self.request, username)
        return cleaned


class SignInForm(ThrottledSignInMixin, AuthenticationForm):
    pass


class AdminSignInForm(ThrottledSignInMixin, AdminAuthenticationForm):
    pass


class SignInView(LoginView):
    """The workspace's sign-in page; a throttled attempt is answered 429 (Too Many Requests)."""

    form_class = SignInForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, THROTTLED):
            response.status_code = 429
        return response
