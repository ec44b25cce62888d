"""contacts/: the people at customers, by external id."""

from drf_spectacular.utils import extend_schema_view

from accounts.models import Account, Contact
from accounts.services import contacts_check, contacts_save

from ..engine import Reference, SyncedSerializer, SyncedViewSet
from ..filters import ContactFilterSet
from ..schema import synced_resource_schema


class ContactSerializer(SyncedSerializer):
    """A person at a customer. Making one primary demotes the account's previous primary contact."""

    account = Reference(
        model=Account,
        allow_null=True,
        help_text="The account's external id (required; null only on output, for an account that has none).",
    )

    class Meta(SyncedSerializer.Meta):
        model = Contact
        fields = [
            *SyncedSerializer.SYNC_FIELDS,
            "account",
            "name",
            "email",
            "title",
            "role",
            "is_primary",
        ]
        extra_kwargs = {
            "is_primary": {"help_text": "true makes this the account's primary contact; the previous one is demoted."}
        }


@extend_schema_view(**synced_resource_schema("contact", ContactSerializer))
class ContactViewSet(SyncedViewSet):
    model = Contact
    serializer_class = ContactSerializer
    filterset_class = ContactFilterSet

    def check_rows(self, rows):
        return contacts_check(contacts=[row.instance for row in rows])

    def save_rows(self, rows) -> None:
        contacts_save(contacts=[row.instance for row in rows])
