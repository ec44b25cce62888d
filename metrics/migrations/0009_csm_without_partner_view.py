"""CSMs do not see partners or their keys in the admin: those are configuration, for leaders."""

from django.db import migrations

PARTNER_MODELS = ("partner", "partnerkey")


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    views = Permission.objects.filter(content_type__app_label="accounts", content_type__model__in=PARTNER_MODELS)
    for group in Group.objects.filter(name="CSM"):
        group.permissions.remove(*views.filter(codename__startswith="view_"))


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    views = Permission.objects.filter(content_type__app_label="accounts", content_type__model__in=PARTNER_MODELS)
    for group in Group.objects.filter(name="CSM"):
        group.permissions.add(*views.filter(codename__startswith="view_"))


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0008_snapshot_account_index_from_unique"),
    ]

    operations = [migrations.RunPython(revoke, grant)]
