from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = _("Audit history")

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the actor to history rows and tasks)
