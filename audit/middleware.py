"""Requests name who changes things: the signed-in user (simple-history's request context), or the
partner key the API authenticates (`set_actor`), for the length of the request only."""

from simple_history.middleware import HistoryRequestMiddleware

from .context import actor_scope


class AuditMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = HistoryRequestMiddleware(get_response)

    def __call__(self, request):
        with actor_scope():
            return self.get_response(request)
