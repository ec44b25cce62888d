"""An index of the live accounts' MRR: the accounts list sorted by ARR (either way) reads its first page from
it instead of sorting every account."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_account_industry_region_live_indexes"),
    ]

    operations = [
        migrations.RunSQL(
            sql="CREATE INDEX account_mrr_live_idx ON accounts_account (mrr) WHERE deleted_at IS NULL",
            reverse_sql="DROP INDEX account_mrr_live_idx",
        )
    ]
