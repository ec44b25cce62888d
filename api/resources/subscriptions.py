"""subscriptions/: revenue lines, by external id. Writing one brings its account's MRR up to date."""

from drf_spectacular.utils import extend_schema_view

from accounts.models import Account, Subscription
from accounts.services import subscriptions_check, subscriptions_save

from ..engine import Reference, SyncedSerializer, SyncedViewSet
from ..filters import SubscriptionFilterSet
from ..schema import synced_resource_schema


class SubscriptionSerializer(SyncedSerializer):
    """A revenue line: it counts towards its account's MRR on day d when start_date <= d < end_date."""

    account = Reference(
        model=Account,
        allow_null=True,
        help_text="The account's external id (required; null only on output, for an account that has none).",
    )

    class Meta(SyncedSerializer.Meta):
        model = Subscription
        fields = [
            *SyncedSerializer.SYNC_FIELDS,
            "account",
            "product",
            "mrr",
            "quantity",
            "start_date",
            "end_date",
        ]
        extra_kwargs = {
            "mrr": {"help_text": "Monthly recurring revenue of the line, in the deployment's currency."},
            "end_date": {"help_text": "Exclusive: the first day the line no longer counts. Null: open-ended."},
        }


@extend_schema_view(**synced_resource_schema("subscription", SubscriptionSerializer))
class SubscriptionViewSet(SyncedViewSet):
    model = Subscription
    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilterSet

    def check_rows(self, rows):
        return subscriptions_check(subscriptions=[row.instance for row in rows])

    def save_rows(self, rows) -> None:
        subscriptions_save(subscriptions=[row.instance for row in rows])
