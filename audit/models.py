"""History tables: who changed what and when, for the objects people configure and partners sync.

Each audited model gets a historical twin in this app (django-simple-history), so the apps' own
migrations never change. A history row holds the object's tracked fields after the change, when, and
the actor: a user, a partner key, a rule, a task, an import or the system. Fields that the engines
rewrite (an account's MRR, health and last touch, timestamps) are not tracked: recomputing them is not
a change anyone made. Rows come from two paths: model saves (simple-history's signals) and the shared
set-based writers in `csm.db`, which record the rows a statement changed in the same statement.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history import register
from simple_history.models import HistoricalRecords

from accounts.models import Account, Contact, Subscription, Tier
from metrics.models import AlertRule, HealthComponent, HealthModel
from success_plans.models import Goal, Initiative, SuccessPlan, Target

from .context import SYSTEM, Actor, ActorKind, explicit_actor, user_label


def current_actor() -> Actor:
    """The actor set for the current block, else the request's signed-in user, else the system."""
    actor = explicit_actor()
    if actor is not None:
        return actor
    request = getattr(HistoricalRecords.context, "request", None)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Actor(ActorKind.USER, user_label(user), user.pk)
    return SYSTEM


class AuditFields(models.Model):
    """What every history row says about who made the change."""

    actor_kind = models.CharField(_("by (kind)"), max_length=16, choices=ActorKind.choices, default=ActorKind.SYSTEM)
    actor_label = models.CharField(_("by"), max_length=200, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def audit_stamp(cls) -> dict:
        """The columns a set-based writer fills for each row it records, besides the tracked fields."""
        actor = current_actor()
        return {
            "history_user_id": actor.user_id,
            "history_change_reason": None,
            "actor_kind": actor.kind,
            "actor_label": actor.label,
        }


class AuditedRecords(HistoricalRecords):
    """simple-history's records, skipping saves that change no tracked field (a re-save, a derived field)."""

    def finalize(self, sender, **kwargs):
        super().finalize(sender, **kwargs)
        if sender is self.cls:
            # Hard deletes are recorded by whoever deletes, set-based (`csm.db.record_history`): a delete
            # receiver would make Django load and delete every row one by one (a demo reset, a cascade).
            models.signals.pre_delete.disconnect(self.pre_delete, sender=sender)
            models.signals.post_delete.disconnect(self.post_delete, sender=sender)

    def post_save(self, instance, created, using=None, **kwargs):
        update_fields = kwargs.get("update_fields")
        if not created and update_fields is not None:
            tracked = {f.name for f in self.fields_included(instance)} | {
                f.attname for f in self.fields_included(instance)
            }
            if not tracked & set(update_fields):
                return
        super().post_save(instance, created, using=using, **kwargs)

    def create_historical_record(self, instance, history_type, using=None):
        if history_type == "~" and self._unchanged(instance):
            return
        super().create_historical_record(instance, history_type, using=using)

    def _unchanged(self, instance) -> bool:
        """True when the latest history row already holds these tracked values (one query)."""
        fields = self.fields_included(instance)
        latest = (
            getattr(instance, self.manager_name)
            .order_by("-history_date", "-history_id")
            .values(*(f.attname for f in fields))
            .first()
        )
        if latest is None:
            return False
        return all(f.to_python(getattr(instance, f.attname)) == latest[f.attname] for f in fields)


# Never recorded: timestamps (the row's own date says when) and fields the engines keep current.
TIMESTAMPS = ["created_at", "updated_at"]
AUDITED = {
    Tier: {},
    Account: {
        "excluded": ["mrr", "health_score", "health_band", "last_touch_at"],
        "no_index": ["owner", "partner", "tier"],
    },
    Contact: {},
    Subscription: {},
    HealthModel: {},
    HealthComponent: {"excluded": ["order"]},
    AlertRule: {},
    SuccessPlan: {"excluded": ["closed_at"], "no_index": ["owner", "template"]},
    Goal: {"excluded": ["order"]},
    Target: {"excluded": ["current_value", "measured_at", "order"]},
    Initiative: {"excluded": ["order"], "no_index": ["owner"]},
}

for audited_model, options in AUDITED.items():
    register(
        audited_model,
        app="audit",
        records_class=AuditedRecords,
        bases=[AuditFields],
        excluded_fields=TIMESTAMPS + options.get("excluded", []),
        no_db_index=options.get("no_index", []),
        user_db_constraint=False,
        user_model=settings.AUTH_USER_MODEL,
    )
