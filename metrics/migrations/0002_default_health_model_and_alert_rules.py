from decimal import Decimal

from django.db import migrations

# (kind, weight, bad, good, metric, per_metric)
DEFAULT_COMPONENTS = [
    ("usage_trend", "25", "0.6", "1.0", "active_users", ""),
    ("usage_level", "20", "0.2", "0.8", "active_users", "seats_licensed"),
    ("engagement", "20", "2", "1", "", ""),
    ("sentiment", "15", "-0.5", "0.5", "", ""),
    ("plan_progress", "10", "0.2", "0.8", "", ""),
    ("renewal_proximity", "10", "30", "180", "", ""),
]

DEFAULT_ALERT_RULES = [
    {
        "name": "Health turned red",
        "kind": "health_red",
        "due_in_days": 2,
        "description": "The account's health score fell into the red band.",
    },
    {
        "name": "Touch overdue",
        "kind": "touch_overdue",
        "due_in_days": 3,
        "description": "No touch within the tier's touch cadence.",
    },
    {
        "name": "Renewal at risk",
        "kind": "renewal_risk",
        "due_in_days": 5,
        "description": "Renewal within the tier's renewal alert window while health is not green or "
        "there is no active success plan.",
    },
    {
        "name": "Usage dropped",
        "kind": "usage_drop",
        "threshold_percent": Decimal("30"),
        "metric": "active_users",
        "due_in_days": 3,
        "description": "Active users over the last 30 days fell by at least the threshold against the 30 before.",
    },
    {
        "name": "Expansion signal",
        "kind": "expansion_signal",
        "threshold_percent": Decimal("90"),
        "metric": "active_users",
        "per_metric": "seats_licensed",
        "due_in_days": 14,
        "description": "Green health and active users at or above the threshold share of licensed seats.",
    },
]


def create_defaults(apps, schema_editor):
    HealthModel = apps.get_model("metrics", "HealthModel")
    HealthComponent = apps.get_model("metrics", "HealthComponent")
    AlertRule = apps.get_model("metrics", "AlertRule")
    if not HealthModel.objects.exists():
        model = HealthModel.objects.create(
            name="Default",
            version=1,
            is_active=True,
            yellow_from=Decimal(40),
            green_from=Decimal(70),
        )
        HealthComponent.objects.bulk_create(
            HealthComponent(
                model=model,
                kind=kind,
                weight=Decimal(weight),
                bad=Decimal(bad),
                good=Decimal(good),
                metric=metric,
                per_metric=per_metric,
                order=order,
            )
            for order, (kind, weight, bad, good, metric, per_metric) in enumerate(DEFAULT_COMPONENTS)
        )
    for fields in DEFAULT_ALERT_RULES:
        AlertRule.objects.get_or_create(name=fields["name"], defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("metrics", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
