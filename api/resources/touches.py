"""touches/: the touch log, by external id. Writing one keeps its account's last touch current."""

import dataclasses

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers

from accounts.models import Account, Contact, Touch
from accounts.services import touches_check, touches_save

from ..engine import Reference, ReferenceList, Row, SyncedSerializer, SyncedViewSet
from ..filters import TouchFilterSet
from ..schema import synced_resource_schema


@extend_schema_field({"type": "array", "items": {"type": "string", "nullable": True}})
class ContactList(ReferenceList):
    """Contacts by external id; on output a contact that has none (one added in the workspace) is null."""


class TouchSerializer(SyncedSerializer):
    """A logged interaction with a customer. Writing one keeps its account's last touch current."""

    account = Reference(
        model=Account,
        allow_null=True,
        help_text="The account's external id (required; null only on output, for an account that has none).",
    )
    csm = Reference(key="username", scoped=False, required=False, allow_null=True, help_text="The CSM's username.")
    contacts = ContactList(
        model=Contact,
        required=False,
        help_text="External ids of the account's contacts who took part. Given, it replaces the list; "
        "left out, the list stays as it is.",
    )
    sentiment = serializers.ChoiceField(
        choices=Touch.Sentiment.choices,
        required=False,
        allow_null=True,
        help_text="-1 negative, 0 neutral, 1 positive.",
    )
    source = serializers.ChoiceField(
        choices=Touch.Source.choices,
        read_only=True,
        help_text="Where the touch was logged; api for touches created through this API.",
    )

    class Meta(SyncedSerializer.Meta):
        model = Touch
        fields = [
            *SyncedSerializer.SYNC_FIELDS,
            "account",
            "csm",
            "contacts",
            "kind",
            "occurred_at",
            "duration_minutes",
            "subject",
            "notes",
            "sentiment",
            "next_step",
            "next_step_due",
            "source",
        ]
        extra_kwargs = {
            "occurred_at": {"help_text": "When it happened (ISO 8601); at most a few minutes in the future."},
        }


def given_contacts(row: Row) -> list[Contact] | None:
    """The contacts the item gives its touch, or None when it leaves them as they are."""
    if "contacts" not in row.data:
        return None
    # An empty list resolves to nothing: it still replaces the touch's contacts (with none).
    return row.resolved.get("contacts", [])


@extend_schema_view(
    # "touches", not "touchs"
    list=extend_schema(summary="List touches changed since a time, oldest change first"),
    bulk=extend_schema(summary="Create or update many touches by external id"),
)
@extend_schema_view(**synced_resource_schema("touch", TouchSerializer))
class TouchViewSet(SyncedViewSet):
    model = Touch
    serializer_class = TouchSerializer
    filterset_class = TouchFilterSet

    def match_existing(self, rows: list[Row], mode: str) -> None:
        """Also load the current contacts of the existing touches the items give contacts to (one query),
        so an item repeating a touch as it is changes nothing."""
        super().match_existing(rows, mode)
        touch_ids = [row.existing.pk for row in rows if row.existing is not None and "contacts" in row.data]
        self.current_contacts: dict[int, set[int]] = {}
        if touch_ids:
            through = Touch.contacts.through.objects.filter(touch_id__in=touch_ids)
            for touch_id, contact_id in through.values_list("touch_id", "contact_id"):
                self.current_contacts.setdefault(touch_id, set()).add(contact_id)

    def row_changed(self, row: Row, before: dict) -> bool:
        if "contacts" in row.data:
            given = {contact.pk for contact in given_contacts(row)}
            if given != self.current_contacts.get(row.existing.pk, set()):
                return True
            row = dataclasses.replace(row, data={k: v for k, v in row.data.items() if k != "contacts"})
        return super().row_changed(row, before)

    def on_create(self, instance: Touch) -> None:
        instance.source = Touch.Source.API

    def check_rows(self, rows):
        return touches_check(touches=[row.instance for row in rows], contacts=[given_contacts(row) for row in rows])

    def save_rows(self, rows) -> None:
        touches_save(touches=[row.instance for row in rows], contacts=[given_contacts(row) for row in rows])
