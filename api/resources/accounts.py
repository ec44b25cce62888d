"""accounts/: customers, by external id."""

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_view
from rest_framework import exceptions, serializers

from accounts.filters import MINE, NONE, AccountFilterSet
from accounts.models import Account, Partner, Tier, TierAssignment
from accounts.services import accounts_check, accounts_save

from ..engine import Reference, SyncedSerializer, SyncedViewSet
from ..schema import synced_resource_schema


class AccountSerializer(SyncedSerializer):
    owner = Reference(key="username", scoped=False, required=False, allow_null=True, help_text="The CSM's username.")
    tier = Reference(model=Tier, key="slug", scoped=False, required=False, allow_null=True, help_text="A tier slug.")
    partner = serializers.CharField(source="partner.name", read_only=True, allow_null=True)
    mrr = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    health_score = serializers.DecimalField(max_digits=4, decimal_places=1, read_only=True, allow_null=True)

    class Meta(SyncedSerializer.Meta):
        model = Account
        fields = [
            *SyncedSerializer.SYNC_FIELDS,
            "name",
            "domain",
            "industry",
            "region",
            "country",
            "employees",
            "owner",
            "partner",
            "tier",
            "tier_locked",
            "lifecycle_stage",
            "pricing_model",
            "customer_since",
            "renewal_date",
            "churned_at",
            "churn_reason",
            "mrr",
            "health_score",
            "health_band",
            "last_touch_at",
        ]
        read_only_fields = ["health_band", "last_touch_at"]


class ApiAccountFilterSet(AccountFilterSet):
    """The workspace's filters; tombstones and order are the sync list's business."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.filters.pop("ordering", None)

    def filter_queryset(self, queryset):
        return super(AccountFilterSet, self).filter_queryset(queryset)

    def filter_owner(self, queryset, name: str, value: str):
        # The form field takes any str.isdigit() text ("²" too); a user id is a few ASCII digits.
        if value not in (MINE, NONE) and not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise exceptions.ValidationError({"owner": [_("A user id, “mine” or “none”.")]})
        return super().filter_owner(queryset, name, value)


@extend_schema_view(**synced_resource_schema("account", AccountSerializer))
class AccountViewSet(SyncedViewSet):
    model = Account
    serializer_class = AccountSerializer
    filterset_class = ApiAccountFilterSet

    def on_create(self, instance: Account) -> None:
        viewer = self.viewer
        if isinstance(viewer, Partner) and viewer.scope == Partner.Scope.OWN:
            instance.partner = viewer

    def check_rows(self, rows):
        return accounts_check(accounts=[row.instance for row in rows])

    def save_rows(self, rows) -> None:
        user = self.request.user if self.request.user.is_authenticated else None
        accounts_save(
            accounts=[row.instance for row in rows], changed_by=user, source=TierAssignment.Source.API, checked=True
        )
