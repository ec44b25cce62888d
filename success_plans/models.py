"""Success plans: the customer's goals, measurable targets and the initiatives that reach them."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Account, Tier
from accounts.querysets import AccountPartQuerySet
from csm.models import SyncedModel, TimeStampedModel

VALUE = {"max_digits": 18, "decimal_places": 4}
ZERO, ONE = Decimal(0), Decimal(1)


def target_progress(*, baseline: Decimal, target_value: Decimal, current_value: Decimal | None) -> Decimal:
    """The one definition of a target's progress: clamp((current - baseline) / (target - baseline), 0, 1).

    Works for targets that go down as well as up. A target not measured yet is at its baseline: 0.
    """
    if current_value is None or target_value == baseline:
        return ZERO
    share = (current_value - baseline) / (target_value - baseline)
    return min(max(share, ZERO), ONE)


class Priority(models.IntegerChoices):
    HIGH = 1, _("High")
    MEDIUM = 2, _("Medium")
    LOW = 3, _("Low")


class PlanTemplate(TimeStampedModel):
    """A playbook: goals, targets and initiatives with due dates relative to the plan's start."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    tier = models.ForeignKey(
        Tier,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="plan_templates",
        verbose_name=_("tier"),
    )
    lifecycle_stage = models.CharField(
        _("lifecycle stage"),
        max_length=20,
        choices=Account.LifecycleStage.choices,
        blank=True,
    )
    duration_days = models.PositiveIntegerField(_("duration (days)"), default=90)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("plan template")
        verbose_name_plural = _("plan templates")

    def __str__(self) -> str:
        return self.name


class TemplateGoal(TimeStampedModel):
    template = models.ForeignKey(PlanTemplate, models.CASCADE, related_name="goals", verbose_name=_("template"))
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices, default=Priority.MEDIUM)
    due_in_days = models.PositiveIntegerField(_("due after (days)"), null=True, blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["template_id", "order", "id"]
        verbose_name = _("template goal")
        verbose_name_plural = _("template goals")

    def __str__(self) -> str:
        return self.title


class TemplateTarget(TimeStampedModel):
    goal = models.ForeignKey(TemplateGoal, models.CASCADE, related_name="targets", verbose_name=_("goal"))
    name = models.CharField(_("name"), max_length=200)
    unit = models.CharField(_("unit"), max_length=50, blank=True)
    baseline = models.DecimalField(_("baseline"), **VALUE, default=Decimal(0))
    target_value = models.DecimalField(_("target value"), **VALUE)
    due_in_days = models.PositiveIntegerField(_("due after (days)"), null=True, blank=True)
    usage_metric = models.SlugField(_("usage metric"), max_length=50, blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["goal_id", "order", "id"]
        verbose_name = _("template target")
        verbose_name_plural = _("template targets")
        constraints = [
            models.CheckConstraint(
                condition=~Q(target_value=F("baseline")),
                name="templatetarget_target_differs_from_baseline",
                violation_error_message=_("The target value must differ from the baseline."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TemplateInitiative(TimeStampedModel):
    goal = models.ForeignKey(TemplateGoal, models.CASCADE, related_name="initiatives", verbose_name=_("goal"))
    title = models.CharField(_("title"), max_length=200)
    due_in_days = models.PositiveIntegerField(_("due after (days)"), null=True, blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["goal_id", "order", "id"]
        verbose_name = _("template initiative")
        verbose_name_plural = _("template initiatives")

    def __str__(self) -> str:
        return self.title


class SuccessPlan(SyncedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        ACHIEVED = "achieved", _("Achieved")
        ABANDONED = "abandoned", _("Abandoned")

    account = models.ForeignKey(Account, models.CASCADE, related_name="success_plans", verbose_name=_("account"))
    title = models.CharField(_("title"), max_length=200)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="success_plans",
        verbose_name=_("owner"),
    )
    success_definition = models.TextField(
        _("success definition"),
        blank=True,
        help_text=_("The customer's own words for success."),
    )
    start_date = models.DateField(_("start date"))
    target_date = models.DateField(_("target date"), null=True, blank=True)
    template = models.ForeignKey(
        PlanTemplate,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="plans",
        verbose_name=_("template"),
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True, editable=False)
    status_reason = models.CharField(
        _("reason"), max_length=300, blank=True, help_text=_("Why the plan was achieved or abandoned.")
    )

    objects = AccountPartQuerySet.as_manager()

    class Meta:
        ordering = ["-start_date", "id"]
        verbose_name = _("success plan")
        verbose_name_plural = _("success plans")
        indexes = [
            models.Index(fields=["account", "status"], name="plan_account_status_idx"),
            models.Index(fields=["updated_at", "id"], name="plan_sync_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(target_date__isnull=True) | Q(target_date__gte=F("start_date")),
                name="plan_target_after_start",
                violation_error_message=_("The target date cannot be before the start date."),
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Goal(TimeStampedModel):
    class Status(models.TextChoices):
        NOT_STARTED = "not_started", _("Not started")
        IN_PROGRESS = "in_progress", _("In progress")
        ACHIEVED = "achieved", _("Achieved")
        ABANDONED = "abandoned", _("Abandoned")

    plan = models.ForeignKey(SuccessPlan, models.CASCADE, related_name="goals", verbose_name=_("plan"))
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.NOT_STARTED)
    due_date = models.DateField(_("due date"), null=True, blank=True)
    achieved_at = models.DateField(_("achieved on"), null=True, blank=True)
    status_reason = models.CharField(
        _("reason"), max_length=300, blank=True, help_text=_("Why the goal was achieved or abandoned.")
    )
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["plan_id", "order", "id"]
        verbose_name = _("goal")
        verbose_name_plural = _("goals")

    def __str__(self) -> str:
        return self.title


class Target(TimeStampedModel):
    """A measurable target. Progress runs from baseline to target_value, in either direction."""

    goal = models.ForeignKey(Goal, models.CASCADE, related_name="targets", verbose_name=_("goal"))
    name = models.CharField(_("name"), max_length=200)
    unit = models.CharField(_("unit"), max_length=50, blank=True)
    baseline = models.DecimalField(_("baseline"), **VALUE, default=Decimal(0))
    target_value = models.DecimalField(_("target value"), **VALUE)
    current_value = models.DecimalField(_("current value"), **VALUE, null=True, blank=True)
    measured_at = models.DateTimeField(_("measured at"), null=True, blank=True)
    due_date = models.DateField(_("due date"), null=True, blank=True)
    usage_metric = models.SlugField(
        _("usage metric"),
        max_length=50,
        blank=True,
        help_text=_("When set, the current value follows this usage metric's latest value."),
    )
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["goal_id", "order", "id"]
        verbose_name = _("target")
        verbose_name_plural = _("targets")
        constraints = [
            models.CheckConstraint(
                condition=~Q(target_value=F("baseline")),
                name="target_target_differs_from_baseline",
                violation_error_message=_("The target value must differ from the baseline."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_measured(self) -> bool:
        return self.current_value is not None

    @property
    def progress(self) -> Decimal:
        """Share of the way from baseline to target, 0..1; a target not measured yet is at 0."""
        return target_progress(baseline=self.baseline, target_value=self.target_value, current_value=self.current_value)

    @property
    def progress_label(self) -> str:
        """Progress as users read it: a percentage, or "not measured yet" (which counts as 0)."""
        if not self.is_measured:
            return str(_("not measured yet"))
        return f"{self.progress:.0%}"


class TargetMeasurement(TimeStampedModel):
    """One reading of a target. The target's `current_value` and `measured_at` are the latest reading."""

    class Source(models.TextChoices):
        WORKSPACE = "workspace", _("Workspace")
        API = "api", _("API")
        USAGE = "usage", _("Usage metric")
        IMPORT = "import", _("Import")

    target = models.ForeignKey(Target, models.CASCADE, related_name="measurements", verbose_name=_("target"))
    value = models.DecimalField(_("value"), **VALUE)
    measured_at = models.DateTimeField(_("measured at"))
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )

    class Meta:
        ordering = ["target_id", "-measured_at", "-id"]
        verbose_name = _("target measurement")
        verbose_name_plural = _("target measurements")
        indexes = [models.Index(fields=["target", "measured_at"], name="measurement_target_when_idx")]
        constraints = [
            # A usage-linked target gets one reading per usage day, however often usage is synced.
            models.UniqueConstraint(
                fields=["target", "measured_at"],
                condition=Q(source="usage"),
                name="measurement_one_usage_reading_per_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.target}: {self.value.normalize():f} ({self.measured_at:%Y-%m-%d})"


class Initiative(TimeStampedModel):
    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        IN_PROGRESS = "in_progress", _("In progress")
        DONE = "done", _("Done")
        BLOCKED = "blocked", _("Blocked")

    goal = models.ForeignKey(Goal, models.CASCADE, related_name="initiatives", verbose_name=_("goal"))
    title = models.CharField(_("title"), max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="initiatives",
        verbose_name=_("owner"),
    )
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PLANNED)
    due_date = models.DateField(_("due date"), null=True, blank=True, db_index=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    status_reason = models.CharField(
        _("reason"), max_length=300, blank=True, help_text=_("Why the initiative is blocked.")
    )
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["goal_id", "order", "id"]
        verbose_name = _("initiative")
        verbose_name_plural = _("initiatives")

    def __str__(self) -> str:
        return self.title
