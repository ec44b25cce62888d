"""CSMs do not see partners or their keys in the admin: those are configuration, for leaders."""

from django.db import migrations

PARTNER_MODELS = ("partner", "partnerkey")


def _partner_views(apps) -> tuple:
    """The CSM groups and the view permissions of partners and keys."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    views = Permission.objects.filter(
        content_type__app_label="accounts", content_type__model__in=PARTNER_MODELS, codename__startswith="view_"
    )
    return Group.objects.filter(name="CSM"), list(views)


def revoke(apps, schema_editor):
    groups, views = _partner_views(apps)
    for group in groups:
        group.permissions.remove(*views)


def grant(apps, schema_editor):
    groups, views = _partner_views(apps)
    for group in groups:
        group.permissions.add(*views)


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0008_snapshot_account_index_from_unique"),
    ]

    operations = [migrations.RunPython(revoke, grant)]
