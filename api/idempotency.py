"""Safe retries: a POST sent again with the same `Idempotency-Key` gets the first response back.

The key is kept for 24 hours per client (partner or user). The same key with a different request (method,
path, query or body) is refused with 422. The first request and its record commit together, and requests
with the same key wait for each other, so a retry racing the original never writes twice.
"""

import datetime
import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.response import Response

from csm.db import lock_keys

from .authentication import client_of
from .errors import IdempotencyMismatch
from .models import IdempotencyKey

HEADER = "Idempotency-Key"
LIFETIME = datetime.timedelta(hours=24)
MAX_KEY_LENGTH = 255


def _request_hash(request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method}\n{request.get_full_path()}\n{body}".encode()).hexdigest()


def _stored_body(stored):
    return json.loads(stored) if isinstance(stored, str) else stored


def idempotent(view, request, handler) -> Response:
    """Run `handler()` (which returns a Response, errors included) once per Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise exceptions.ValidationError(
            {HEADER: [_("At most %(max)s printable characters.") % {"max": MAX_KEY_LENGTH}]}
        )
    client = client_of(request)
    digest = _request_hash(request)
    cutoff = timezone.now() - LIFETIME
    # Forget expired keys in a statement of their own: inside the transaction below, the rows' locks
    # would make concurrent requests with other keys wait for this one's write.
    IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    with transaction.atomic():
        lock_keys("idempotency", [f"{client}:{key}"])
        first = IdempotencyKey.objects.filter(client=client, key=key).first()
        if first is not None and first.created_at < cutoff:
            first.delete()
            first = None
        if first is not None:
            if first.request_hash != digest:
                raise IdempotencyMismatch()
            response = Response(_stored_body(first.response), status=first.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = handler()
        except Exception as error:  # the error response is the first response too
            response = view.handle_exception(error)
        if response.status_code < 500 and response.status_code not in (409, 429):
            IdempotencyKey.objects.create(
                client=client,
                key=key,
                method=request.method,
                path=request.get_full_path()[:2000],
                request_hash=digest,
                status_code=response.status_code,
                # As JSON text: PostgreSQL's jsonb would reorder the keys of the replayed body.
                response=json.dumps(response.data, cls=DjangoJSONEncoder),
            )
    return response
