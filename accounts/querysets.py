"""Query vocabulary of accounts: who may see which accounts, as one rule for every list and reference."""

from django.db import models

from csm.models import SyncedQuerySet
from csm.roles import role_of


def _partner_scope(viewer) -> tuple[bool, object]:
    """(is a partner, the partner when its scope is `own`, else None)."""
    from accounts.models import Partner  # the models module builds on this one

    if isinstance(viewer, Partner):
        return True, viewer if viewer.scope == Partner.Scope.OWN else None
    return False, None


class AccountQuerySet(SyncedQuerySet):
    def visible_to(self, viewer) -> "AccountQuerySet":
        """The accounts `viewer` may see: a partner with scope `own` its own accounts, one with scope `all`
        every account; a user with a workspace role every account (CSMs read every account); anyone else
        none. An inactive partner sees none. Soft-deleted accounts are kept (tombstones partners sync)."""
        is_partner, own = _partner_scope(viewer)
        if is_partner:
            if not viewer.is_active:
                return self.none()
            return self.filter(partner=own) if own is not None else self
        return self if role_of(viewer) is not None else self.none()


class AccountPartQuerySet(SyncedQuerySet):
    """Rows that hang off an account (contacts, revenue lines, touches): visible with their account."""

    def visible_to(self, viewer) -> models.QuerySet:
        from accounts.models import Account

        return self.filter(account__in=Account.objects.visible_to(viewer).values("pk"))
