from django.apps import AppConfig


class SuccessPlansConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "success_plans"
