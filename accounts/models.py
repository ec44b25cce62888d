"""Customers and what we know of them: accounts, contacts, revenue lines, tiers, touches, partners."""

import hashlib
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from csm.models import SyncedModel, TimeStampedModel

from .querysets import AccountPartQuerySet, AccountQuerySet

MONEY = {"max_digits": 14, "decimal_places": 2}


class Partner(TimeStampedModel):
    """A partner system (billing, product analytics, support desk, reseller) using the API."""

    class Scope(models.TextChoices):
        ALL = "all", _("All accounts")
        OWN = "own", _("Own accounts only")

    name = models.CharField(_("name"), max_length=100, unique=True)
    scope = models.CharField(_("scope"), max_length=3, choices=Scope.choices, default=Scope.OWN)
    is_active = models.BooleanField(_("active"), default=True)
    rate_limit = models.PositiveIntegerField(
        _("rate limit (requests per minute)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Empty: the deployment's default (setting CSM_API_RATE_PER_MINUTE)."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("partner")
        verbose_name_plural = _("partners")

    def __str__(self) -> str:
        return self.name


class PartnerKey(TimeStampedModel):
    """An API key of a partner. Only a SHA-256 hash is stored; the key is shown once, at creation."""

    PREFIX_LENGTH = 8

    partner = models.ForeignKey(Partner, models.CASCADE, related_name="keys", verbose_name=_("partner"))
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("prefix"), max_length=PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("partner API key")
        verbose_name_plural = _("partner API keys")

    def __str__(self) -> str:
        return f"{self.partner} · {self.prefix}…"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.partner.is_active


class Tier(TimeStampedModel):
    """A touch model: how much attention an account gets, and which ARR qualifies for it."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    rank = models.PositiveSmallIntegerField(_("rank"), unique=True, help_text=_("Lower means more attention."))
    touch_cadence_days = models.PositiveIntegerField(
        _("touch cadence (days)"),
        help_text=_("Most days between touches before a touch is overdue."),
    )
    qbr_cadence_days = models.PositiveIntegerField(_("QBR cadence (days)"), null=True, blank=True)
    min_arr = models.DecimalField(
        _("minimum ARR"),
        **MONEY,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("An account qualifies when its ARR is at least this. Empty: no minimum."),
    )
    renewal_alert_days = models.PositiveIntegerField(_("renewal alert (days)"), default=90)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.CheckConstraint(condition=Q(touch_cadence_days__gte=1), name="tier_cadence_positive"),
            models.CheckConstraint(
                condition=Q(min_arr__isnull=True) | Q(min_arr__gte=0),
                name="tier_min_arr_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Account(SyncedModel):
    """A customer. `mrr`, `health_*` and `last_touch_at` are read fields kept current by services."""

    class LifecycleStage(models.TextChoices):
        ONBOARDING = "onboarding", _("Onboarding")
        ADOPTION = "adoption", _("Adoption")
        EXPANSION = "expansion", _("Expansion")
        RENEWAL = "renewal", _("Renewal")
        CHURNED = "churned", _("Churned")

    class PricingModel(models.TextChoices):
        SUBSCRIPTION = "subscription", _("Subscription")
        USAGE = "usage", _("Usage-based")
        HYBRID = "hybrid", _("Hybrid")

    class HealthBand(models.TextChoices):
        RED = "red", _("Red")
        YELLOW = "yellow", _("Yellow")
        GREEN = "green", _("Green")

    name = models.CharField(_("name"), max_length=200)
    domain = models.CharField(_("domain"), max_length=200, blank=True)
    industry = models.CharField(_("industry"), max_length=100, blank=True, db_index=True)
    region = models.CharField(_("region"), max_length=100, blank=True, db_index=True)
    country = models.CharField(_("country"), max_length=2, blank=True, help_text=_("ISO 3166 alpha-2 code."))
    employees = models.PositiveIntegerField(_("employees"), null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_accounts",
        verbose_name=_("CSM"),
    )
    partner = models.ForeignKey(
        Partner,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="accounts",
        verbose_name=_("partner"),
    )
    tier = models.ForeignKey(
        Tier,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="accounts",
        verbose_name=_("tier"),
    )
    tier_locked = models.BooleanField(
        _("tier locked"),
        default=False,
        help_text=_("Tier set by hand: tier rules leave this account alone."),
    )
    lifecycle_stage = models.CharField(
        _("lifecycle stage"),
        max_length=20,
        choices=LifecycleStage.choices,
        default=LifecycleStage.ONBOARDING,
    )
    pricing_model = models.CharField(
        _("pricing model"),
        max_length=20,
        choices=PricingModel.choices,
        default=PricingModel.SUBSCRIPTION,
    )
    customer_since = models.DateField(_("customer since"), null=True, blank=True)
    renewal_date = models.DateField(_("renewal date"), null=True, blank=True, db_index=True)
    churned_at = models.DateField(_("churned on"), null=True, blank=True)
    churn_reason = models.CharField(_("churn reason"), max_length=200, blank=True)

    mrr = models.DecimalField(_("MRR"), **MONEY, default=Decimal("0.00"), editable=False)
    health_score = models.DecimalField(
        _("health score"),
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        editable=False,
    )
    health_band = models.CharField(
        _("health band"),
        max_length=6,
        choices=HealthBand.choices,
        blank=True,
        db_index=True,
        editable=False,
    )
    last_touch_at = models.DateTimeField(_("last touch"), null=True, blank=True, editable=False)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        indexes = [
            models.Index(fields=["name"], name="account_name_idx"),
            models.Index(fields=["owner", "health_band"], name="account_owner_band_idx"),
            # The accounts list: its industry and region filters skip through these (one probe per value),
            # and sorting by ARR reads its first page from the MRR index instead of sorting every account.
            models.Index(fields=["industry"], name="account_industry_live_idx", condition=Q(deleted_at__isnull=True)),
            models.Index(fields=["region"], name="account_region_live_idx", condition=Q(deleted_at__isnull=True)),
            models.Index(fields=["mrr"], name="account_mrr_live_idx", condition=Q(deleted_at__isnull=True)),
            # Partner sync pages in (updated_at, id) order.
            models.Index(fields=["updated_at", "id"], name="account_sync_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(mrr__gte=0), name="account_mrr_not_negative"),
            models.CheckConstraint(
                condition=Q(health_score__isnull=True) | Q(health_score__gte=0, health_score__lte=100),
                name="account_health_score_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def arr(self) -> Decimal:
        return self.mrr * 12


class Contact(SyncedModel):
    class Role(models.TextChoices):
        CHAMPION = "champion", _("Champion")
        ECONOMIC_BUYER = "economic_buyer", _("Economic buyer")
        EXECUTIVE_SPONSOR = "executive_sponsor", _("Executive sponsor")
        ADMIN = "admin", _("Admin")
        USER = "user", _("User")

    account = models.ForeignKey(Account, models.CASCADE, related_name="contacts", verbose_name=_("account"))
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("email"), blank=True)
    title = models.CharField(_("job title"), max_length=200, blank=True)
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.USER)
    is_primary = models.BooleanField(_("primary contact"), default=False)

    objects = AccountPartQuerySet.as_manager()

    class Meta:
        ordering = ["-is_primary", "name"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        indexes = [models.Index(fields=["updated_at", "id"], name="contact_sync_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(is_primary=True, deleted_at__isnull=True),
                name="contact_one_primary_per_account",
                violation_error_message=_("This account already has a primary contact."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Subscription(SyncedModel):
    """A revenue line. It counts towards MRR on day d when start_date <= d < end_date (end exclusive)."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="subscriptions", verbose_name=_("account"))
    product = models.CharField(_("product"), max_length=100)
    mrr = models.DecimalField(_("MRR"), **MONEY, validators=[MinValueValidator(Decimal(0))])
    quantity = models.PositiveIntegerField(_("quantity"), default=1)
    start_date = models.DateField(_("start date"))
    end_date = models.DateField(
        _("end date"),
        null=True,
        blank=True,
        help_text=_("Exclusive: the first day the line no longer counts."),
    )

    objects = AccountPartQuerySet.as_manager()

    class Meta:
        ordering = ["account_id", "start_date", "id"]
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        indexes = [
            models.Index(fields=["account", "start_date"], name="subscription_account_start_idx"),
            models.Index(fields=["updated_at", "id"], name="subscription_sync_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(mrr__gte=0),
                name="subscription_mrr_not_negative",
                violation_error_message=_("MRR cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gt=models.F("start_date")),
                name="subscription_end_after_start",
                violation_error_message=_("The end date must be after the start date."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} ({self.start_date} – {self.end_date or '…'})"


class ChurnEvent(TimeStampedModel):
    """One time an account churned, with the reason recorded then. A reactivated account that churns
    again keeps both, so churn analysis reads each churn's own reason, not the account's latest one."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="churn_events", verbose_name=_("account"))
    churned_on = models.DateField(_("churned on"))
    reason = models.CharField(_("churn reason"), max_length=200, blank=True)

    class Meta:
        ordering = ["account_id", "-churned_on"]
        verbose_name = _("churn event")
        verbose_name_plural = _("churn events")
        constraints = [
            models.UniqueConstraint(fields=["account", "churned_on"], name="churnevent_unique_account_day"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.churned_on}"


class TierAssignment(TimeStampedModel):
    """One period an account spent in a tier: [started_at, ended_at). At most one is open per account."""

    class Source(models.TextChoices):
        RULE = "rule", _("Tier rule")
        MANUAL = "manual", _("Manual")
        API = "api", _("API")

    account = models.ForeignKey(
        Account,
        models.CASCADE,
        related_name="tier_assignments",
        verbose_name=_("account"),
    )
    tier = models.ForeignKey(Tier, models.PROTECT, related_name="assignments", verbose_name=_("tier"))
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned by"),
    )

    class Meta:
        ordering = ["account_id", "-started_at"]
        verbose_name = _("tier assignment")
        verbose_name_plural = _("tier history")
        indexes = [models.Index(fields=["account", "started_at"], name="tierassign_account_start_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(ended_at__isnull=True),
                name="tierassign_one_open_per_account",
                violation_error_message=_("This account already has a current tier assignment."),
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
                name="tierassign_end_after_start",
                violation_error_message=_("A tier assignment cannot end before it starts."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} → {self.tier}"


class Touch(SyncedModel):
    """A logged interaction between a CSM and a customer."""

    class Kind(models.TextChoices):
        CALL = "call", _("Call")
        MEETING = "meeting", _("Meeting")
        EMAIL = "email", _("Email")
        QBR = "qbr", _("QBR")
        ONBOARDING = "onboarding", _("Onboarding")
        TRAINING = "training", _("Training")
        CHAT = "chat", _("Chat")
        CAMPAIGN = "campaign", _("Campaign")

    class Sentiment(models.IntegerChoices):
        NEGATIVE = -1, _("Negative")
        NEUTRAL = 0, _("Neutral")
        POSITIVE = 1, _("Positive")

    class Source(models.TextChoices):
        WORKSPACE = "workspace", _("Workspace")
        API = "api", _("API")
        IMPORT = "import", _("Import")

    account = models.ForeignKey(Account, models.CASCADE, related_name="touches", verbose_name=_("account"))
    csm = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="touches",
        verbose_name=_("CSM"),
    )
    contacts = models.ManyToManyField(Contact, blank=True, related_name="touches", verbose_name=_("contacts"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    duration_minutes = models.PositiveIntegerField(_("duration (minutes)"), null=True, blank=True)
    subject = models.CharField(_("subject"), max_length=200)
    notes = models.TextField(_("notes"), blank=True)
    sentiment = models.SmallIntegerField(_("sentiment"), choices=Sentiment.choices, null=True, blank=True)
    next_step = models.CharField(_("next step"), max_length=300, blank=True)
    next_step_due = models.DateField(_("next step due"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.WORKSPACE)

    objects = AccountPartQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("touch")
        verbose_name_plural = _("touches")
        indexes = [
            models.Index(fields=["account", "occurred_at"], name="touch_account_occurred_idx"),
            models.Index(fields=["updated_at", "id"], name="touch_sync_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(sentiment__isnull=True) | Q(sentiment__gte=-1, sentiment__lte=1),
                name="touch_sentiment_range",
                violation_error_message=_("Sentiment must be -1, 0 or 1."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"
