"""Usage, health scores, the revenue bridge and the alert queue."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from accounts.models import MONEY, Account
from csm.models import TimeStampedModel

RATE = {"max_digits": 12, "decimal_places": 6}


class UsageRecord(TimeStampedModel):
    """One day of one product-usage metric for an account. Re-sending a day replaces it."""

    # Every read names the account and the metric: the unique (account, metric, date) index serves them
    # all, so the column indexes Django would add are left out (they cost more than the data at scale).
    account = models.ForeignKey(
        Account, models.CASCADE, related_name="usage_records", verbose_name=_("account"), db_index=False
    )
    metric = models.SlugField(
        _("metric"), max_length=50, db_index=False, help_text=_("e.g. active_users, api_calls, logins.")
    )
    date = models.DateField(_("date"))
    value = models.DecimalField(_("value"), max_digits=18, decimal_places=4)

    class Meta:
        ordering = ["account_id", "metric", "date"]
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "metric", "date"],
                name="usage_unique_account_metric_date",
                violation_error_message=_("This account already has a value for this metric on this date."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.date}: {self.value}"


HealthBand = Account.HealthBand


class HealthModel(TimeStampedModel):
    """One version of the health-score model. Editing makes a new version; snapshots keep theirs."""

    name = models.CharField(_("name"), max_length=100, default="Default")
    version = models.PositiveIntegerField(_("version"), unique=True)
    is_active = models.BooleanField(_("active"), default=False)
    yellow_from = models.DecimalField(
        _("yellow from"),
        max_digits=4,
        decimal_places=1,
        default=Decimal(40),
        help_text=_("Below this: red."),
    )
    green_from = models.DecimalField(_("green from"), max_digits=4, decimal_places=1, default=Decimal(70))
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        ordering = ["-version"]
        verbose_name = _("health model")
        verbose_name_plural = _("health models")
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="healthmodel_one_active",
                violation_error_message=_("Only one health model can be active."),
            ),
            models.CheckConstraint(
                condition=Q(
                    yellow_from__gte=0,
                    yellow_from__lte=F("green_from"),
                    green_from__lte=100,
                ),
                name="healthmodel_band_order",
                violation_error_message=_("Bands need 0 <= yellow from <= green from <= 100."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class HealthComponent(TimeStampedModel):
    """One measured input of a health model, mapped to 0–100 by its bad and good thresholds."""

    class Kind(models.TextChoices):
        USAGE_TREND = "usage_trend", _("Usage trend (30 days vs prior 30)")
        USAGE_LEVEL = "usage_level", _("Usage level")
        ENGAGEMENT = "engagement", _("Engagement (days since touch / cadence)")
        SENTIMENT = "sentiment", _("Touch sentiment (90 days)")
        PLAN_PROGRESS = "plan_progress", _("Success plan progress")
        RENEWAL_PROXIMITY = "renewal_proximity", _("Days to renewal")

    model = models.ForeignKey(HealthModel, models.CASCADE, related_name="components", verbose_name=_("model"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    weight = models.DecimalField(_("weight"), max_digits=6, decimal_places=2)
    bad = models.DecimalField(_("bad"), max_digits=12, decimal_places=4, help_text=_("Raw value scoring 0."))
    good = models.DecimalField(
        _("good"),
        max_digits=12,
        decimal_places=4,
        help_text=_("Raw value scoring 100."),
    )
    metric = models.SlugField(
        _("metric"),
        max_length=50,
        blank=True,
        help_text=_("Usage metric (usage trend and usage level)."),
    )
    per_metric = models.SlugField(
        _("divided by metric"),
        max_length=50,
        blank=True,
        help_text=_("Usage level only: divide by this metric's latest value (e.g. seats_licensed)."),
    )
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["model_id", "order", "id"]
        verbose_name = _("health component")
        verbose_name_plural = _("health components")
        constraints = [
            models.CheckConstraint(
                condition=Q(weight__gte=0),
                name="healthcomponent_weight_not_negative",
                violation_error_message=_("Weights cannot be negative."),
            ),
            models.CheckConstraint(
                condition=~Q(bad=F("good")),
                name="healthcomponent_bad_differs_from_good",
                violation_error_message=_("Bad and good thresholds must differ."),
            ),
        ]

    def __str__(self) -> str:
        return self.get_kind_display()


class HealthSnapshot(TimeStampedModel):
    """An account's health on a date, with the components that explain it. One per (account, date)."""

    account = models.ForeignKey(
        Account,
        models.CASCADE,
        related_name="health_snapshots",
        verbose_name=_("account"),
        db_index=False,  # the unique (account, date) index leads with it
    )
    date = models.DateField(_("date"))
    score = models.DecimalField(_("score"), max_digits=4, decimal_places=1)
    band = models.CharField(_("band"), max_length=6, choices=HealthBand.choices)
    model_version = models.ForeignKey(
        HealthModel,
        models.PROTECT,
        related_name="snapshots",
        verbose_name=_("model version"),
    )
    components = models.JSONField(
        _("components"),
        default=list,
        help_text=_(
            "One entry per component of the model version, in its order (order, id): [raw value, score, "
            "weight], or null when the component had no data."
        ),
    )

    class Meta:
        ordering = ["account_id", "-date"]
        verbose_name = _("health snapshot")
        verbose_name_plural = _("health snapshots")
        indexes = [models.Index(fields=["date", "band"], name="snapshot_date_band_idx")]
        constraints = [
            models.UniqueConstraint(fields=["account", "date"], name="snapshot_unique_account_date"),
            models.CheckConstraint(
                condition=Q(score__gte=0, score__lte=100),
                name="snapshot_score_range",
                violation_error_message=_("A health score lies between 0 and 100."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.date}: {self.score}"


class RevenueMonth(TimeStampedModel):
    """The revenue bridge of one month and segment. Money is MRR at month ends, in CSM_CURRENCY.

    start + new + reactivation + expansion - contraction - churned = end. Rates are empty when the
    month starts with no MRR (they cannot be computed), never 0.
    """

    class SegmentKind(models.TextChoices):
        ALL = "all", _("All accounts")
        TIER = "tier", _("Tier")
        INDUSTRY = "industry", _("Industry")
        REGION = "region", _("Region")
        OWNER = "owner", _("CSM")

    month = models.DateField(_("month"), help_text=_("The first day of the month."))
    segment_kind = models.CharField(_("segment kind"), max_length=10, choices=SegmentKind.choices)
    segment = models.CharField(_("segment"), max_length=200, blank=True)

    start_mrr = models.DecimalField(_("start MRR"), **MONEY, default=Decimal(0))
    new_mrr = models.DecimalField(_("new MRR"), **MONEY, default=Decimal(0))
    reactivation_mrr = models.DecimalField(_("reactivation MRR"), **MONEY, default=Decimal(0))
    expansion_mrr = models.DecimalField(_("expansion MRR"), **MONEY, default=Decimal(0))
    upsell_mrr = models.DecimalField(_("upsell MRR"), **MONEY, default=Decimal(0))
    cross_sell_mrr = models.DecimalField(_("cross-sell MRR"), **MONEY, default=Decimal(0))
    contraction_mrr = models.DecimalField(_("contraction MRR"), **MONEY, default=Decimal(0))
    churned_mrr = models.DecimalField(_("churned MRR"), **MONEY, default=Decimal(0))
    end_mrr = models.DecimalField(_("end MRR"), **MONEY, default=Decimal(0))

    start_accounts = models.PositiveIntegerField(_("accounts at start"), default=0)
    new_accounts = models.PositiveIntegerField(_("new accounts"), default=0)
    reactivated_accounts = models.PositiveIntegerField(_("reactivated accounts"), default=0)
    expanding_accounts = models.PositiveIntegerField(_("expanding accounts"), default=0)
    contracting_accounts = models.PositiveIntegerField(_("contracting accounts"), default=0)
    churned_accounts = models.PositiveIntegerField(_("churned accounts"), default=0)
    end_accounts = models.PositiveIntegerField(_("accounts at end"), default=0)

    grr = models.DecimalField(_("GRR"), **RATE, null=True, blank=True)
    nrr = models.DecimalField(_("NRR"), **RATE, null=True, blank=True)
    logo_churn_rate = models.DecimalField(_("logo churn rate"), **RATE, null=True, blank=True)
    gross_revenue_churn_rate = models.DecimalField(_("gross revenue churn rate"), **RATE, null=True, blank=True)
    net_revenue_churn_rate = models.DecimalField(_("net revenue churn rate"), **RATE, null=True, blank=True)
    quick_ratio = models.DecimalField(_("quick ratio"), **RATE, null=True, blank=True)
    arpa = models.DecimalField(_("ARPA"), **MONEY, null=True, blank=True)
    trailing_nrr = models.DecimalField(
        _("trailing-12-month NRR"),
        **RATE,
        null=True,
        blank=True,
        help_text=_("MRR now of the accounts paying 12 months before / their MRR then."),
    )
    trailing_grr = models.DecimalField(
        _("trailing-12-month GRR"),
        **RATE,
        null=True,
        blank=True,
        help_text=_("As trailing NRR, each account counted at most at its MRR 12 months before."),
    )

    class Meta:
        ordering = ["segment_kind", "segment", "month"]
        verbose_name = _("revenue month")
        verbose_name_plural = _("revenue months")
        constraints = [
            models.UniqueConstraint(
                fields=["month", "segment_kind", "segment"],
                name="revenuemonth_unique_segment",
            ),
        ]

    def __str__(self) -> str:
        label = self.segment or self.get_segment_kind_display()
        return f"{self.month:%Y-%m} {label}"


class PortfolioHistory(TimeStampedModel):
    """The portfolio's figures that follow accounts month by month: cohort retention and upsell timing
    (SPEC 4), as the nightly revenue step last summed them from each account's month-end MRR steps, with the
    book's concentration and time to value then. One row; the page reads it instead of summing the history
    and ranking every account on each request.
    """

    through = models.DateField(_("history through"), help_text=_("The last month of the history (its first day)."))
    computed_at = models.DateTimeField(_("computed at"))
    # [[cohort month (YYYY-MM-DD), [paying accounts k months later, k = 0, 1, ...], [their MRR in cents]], ...]
    cohorts = models.JSONField(_("cohorts"), default=list)
    # [[months from the first paid month to the first expansion, accounts], ...]
    upsell_delays = models.JSONField(_("upsell delays"), default=list)
    # The book as it stood then: {"concentration": {...}, "time_to_value": {...}}, money and days as text.
    book = models.JSONField(_("book figures"), default=dict)

    class Meta:
        verbose_name = _("portfolio history")
        verbose_name_plural = _("portfolio histories")

    def __str__(self) -> str:
        return f"{self.through:%Y-%m} ({self.computed_at:%Y-%m-%d %H:%M})"


class AccountChurn(TimeStampedModel):
    """One churn, an account's month-end MRR falling to zero (SPEC 4), as the nightly revenue step last
    found it: what the portfolio's churn analysis sums and its drill-down lists. Money in CSM_CURRENCY.
    """

    account = models.ForeignKey(Account, models.CASCADE, related_name="churns", verbose_name=_("account"))
    month = models.DateField(_("month"), help_text=_("The first day of the month whose end it stopped paying."))
    tenure_months = models.PositiveIntegerField(_("tenure (months)"), help_text=_("Months since its first paid month."))
    mrr = models.DecimalField(_("churned MRR"), **MONEY)
    tier = models.CharField(_("tier"), max_length=200, blank=True, help_text=_("Its tier's name when computed."))
    reason = models.CharField(
        _("churn reason"), max_length=200, blank=True, help_text=_("The churn event's reason; empty: not recorded.")
    )

    class Meta:
        ordering = ["month", "-mrr", "account_id"]
        verbose_name = _("account churn")
        verbose_name_plural = _("account churns")
        indexes = [models.Index(fields=["month", "tenure_months"], name="accountchurn_month_idx")]
        constraints = [
            models.UniqueConstraint(fields=["account", "month"], name="accountchurn_unique_account_month"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.month:%Y-%m}: {self.mrr}"


class AlertRule(TimeStampedModel):
    """A condition that puts an account into its CSM's queue of calls to action."""

    class Kind(models.TextChoices):
        HEALTH_RED = "health_red", _("Health turned red")
        TOUCH_OVERDUE = "touch_overdue", _("Touch overdue for the tier's cadence")
        RENEWAL_RISK = (
            "renewal_risk",
            _("Renewal near and health not green or no active plan"),
        )
        USAGE_DROP = "usage_drop", _("Usage dropped (30 days vs prior 30)")
        EXPANSION_SIGNAL = (
            "expansion_signal",
            _("Expansion signal (green health, seats nearly full)"),
        )

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    is_active = models.BooleanField(_("active"), default=True)
    threshold_percent = models.DecimalField(
        _("threshold (%)"),
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Usage drop: the drop that fires it. Expansion signal: usage as a share of licensed seats."),
    )
    metric = models.SlugField(_("metric"), max_length=50, blank=True)
    per_metric = models.SlugField(_("divided by metric"), max_length=50, blank=True)
    due_in_days = models.PositiveIntegerField(_("due within (days)"), default=3)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold_percent__isnull=True) | Q(threshold_percent__gte=0),
                name="alertrule_threshold_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Alert(TimeStampedModel):
    """A call to action for a CSM. At most one alert that is not done per (rule, account)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        SNOOZED = "snoozed", _("Snoozed")
        DONE = "done", _("Done")

    class ClosedBy(models.TextChoices):
        CSM = "csm", _("A CSM marked it done")
        CLEARED = "cleared", _("The condition cleared")
        ACCOUNT_DELETED = "account_deleted", _("The account was deleted")

    rule = models.ForeignKey(AlertRule, models.CASCADE, related_name="alerts", verbose_name=_("rule"))
    account = models.ForeignKey(Account, models.CASCADE, related_name="alerts", verbose_name=_("account"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.OPEN)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("owner"),
    )
    due = models.DateField(_("due"), null=True, blank=True)
    reason = models.TextField(_("reason"))
    snoozed_until = models.DateField(_("snoozed until"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_reason = models.CharField(_("closing reason"), max_length=300, blank=True)
    closed_by = models.CharField(_("closed by"), max_length=16, choices=ClosedBy.choices, blank=True, editable=False)

    class Meta:
        ordering = ["due", "-created_at"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        indexes = [models.Index(fields=["owner", "status"], name="alert_owner_status_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "account"],
                condition=~Q(status="done"),
                name="alert_one_open_per_rule_account",
                violation_error_message=_("This account already has an open alert for this rule."),
            ),
            models.CheckConstraint(
                condition=~Q(status="snoozed") | Q(snoozed_until__isnull=False),
                name="alert_snoozed_has_date",
                violation_error_message=_("A snoozed alert needs a date to wake up."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.account}"


class RecomputeIssue(TimeStampedModel):
    """A configuration problem a background recompute ran into (say, no active health model).

    Writes that queued the recompute still succeed; the problem is logged and kept here, shown in the
    admin until a later run no longer meets it.
    """

    code = models.SlugField(_("code"), max_length=50, unique=True)
    message = models.TextField(_("message"))
    occurrences = models.PositiveIntegerField(_("occurrences"), default=1)
    first_seen_at = models.DateTimeField(_("first seen"))
    last_seen_at = models.DateTimeField(_("last seen"))
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        verbose_name = _("recompute issue")
        verbose_name_plural = _("recompute issues")

    def __str__(self) -> str:
        return self.message
