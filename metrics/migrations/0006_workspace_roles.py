"""The workspace roles as Django groups: CSM and CS leader (see csm.roles), with model permissions.

Here, in the app that comes last among the domain apps, so every model's permissions exist.
"""

from django.db import migrations

APPS = ("accounts", "success_plans", "metrics")
# What a CSM does in the workspace, as model permissions; the rest of the rules (own accounts only) are
# checked by the workspace itself. Everything else is for leaders.
CSM_PERMISSIONS = {
    "view": None,  # every model of the apps
    "add": ("touch", "successplan", "goal", "target", "initiative", "targetmeasurement"),
    "change": ("touch", "successplan", "goal", "target", "initiative", "alert"),
    "delete": ("goal", "target", "initiative"),
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ours = Permission.objects.filter(content_type__app_label__in=APPS)
    leader, _ = Group.objects.get_or_create(name="CS leader")
    leader.permissions.add(*ours, *Permission.objects.filter(content_type__app_label="django_celery_beat"))
    csm, _ = Group.objects.get_or_create(name="CSM")
    granted = []
    for action, models in CSM_PERMISSIONS.items():
        rows = ours.filter(codename__startswith=f"{action}_")
        if models is not None:
            rows = rows.filter(content_type__model__in=models)
        granted += list(rows)
    csm.permissions.add(*granted)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["CSM", "CS leader"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("accounts", "0004_churn_events"),
        ("success_plans", "0003_seed_playbooks"),
        ("metrics", "0005_alert_closed_by"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
