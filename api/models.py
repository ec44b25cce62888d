"""What the API keeps of its own: the responses of POSTs sent with an Idempotency-Key."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from csm.models import TimeStampedModel


class IdempotencyKey(TimeStampedModel):
    """The first response to a POST sent with an `Idempotency-Key`; a repeat within 24 hours gets it back."""

    client = models.CharField(_("client"), max_length=40, help_text=_("partner:<id> or user:<id>."))
    key = models.CharField(_("key"), max_length=255)
    method = models.CharField(_("method"), max_length=10)
    path = models.CharField(_("path"), max_length=2000)
    request_hash = models.CharField(_("request hash"), max_length=64)
    status_code = models.PositiveSmallIntegerField(_("status code"))
    response = models.JSONField(_("response"), null=True, encoder=DjangoJSONEncoder)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_unique_client_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.client} {self.key}"
