from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data (`seed_demo`) and the scale benchmark; no models. Nothing else imports this app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
