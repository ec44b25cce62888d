from decimal import Decimal

from django.db import migrations

DEFAULT_TIERS = [
    {
        "name": "High touch",
        "slug": "high-touch",
        "rank": 1,
        "touch_cadence_days": 14,
        "qbr_cadence_days": 90,
        "min_arr": Decimal("100000.00"),
        "renewal_alert_days": 120,
        "description": "Named CSM, regular meetings and QBRs for the accounts that carry the most revenue.",
    },
    {
        "name": "Low touch",
        "slug": "low-touch",
        "rank": 2,
        "touch_cadence_days": 45,
        "qbr_cadence_days": 180,
        "min_arr": Decimal("20000.00"),
        "renewal_alert_days": 90,
        "description": "Pooled CSMs, webinars and check-ins at key moments of the lifecycle.",
    },
    {
        "name": "Tech touch",
        "slug": "tech-touch",
        "rank": 3,
        "touch_cadence_days": 90,
        "qbr_cadence_days": None,
        "min_arr": None,
        "renewal_alert_days": 60,
        "description": "One-to-many: in-product guidance, e-mail campaigns, community and help centre.",
    },
]


def create_tiers(apps, schema_editor):
    Tier = apps.get_model("accounts", "Tier")
    for fields in DEFAULT_TIERS:
        Tier.objects.get_or_create(slug=fields["slug"], defaults=fields)


def remove_tiers(apps, schema_editor):
    Tier = apps.get_model("accounts", "Tier")
    Tier.objects.filter(slug__in=[t["slug"] for t in DEFAULT_TIERS], accounts__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(create_tiers, remove_tiers)]
