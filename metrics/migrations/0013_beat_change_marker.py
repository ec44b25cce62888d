from django.db import migrations
from django.utils import timezone


def create_marker(apps, schema_editor):
    # Beat notices an edited schedule when this marker's time moves; without the row, the first edit
    # only creates it and a running beat takes that as its starting point, missing the change.
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.get_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0012_portfolio_book_figures"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_marker, migrations.RunPython.noop)]
