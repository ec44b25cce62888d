"""factory-boy factories for every model; tests build their data from these."""

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import (
    Account,
    ChurnEvent,
    Contact,
    Partner,
    PartnerKey,
    Subscription,
    Tier,
    TierAssignment,
    Touch,
)
from csm.roles import CSM_GROUP, LEADER_GROUP
from metrics.models import (
    Alert,
    AlertRule,
    HealthComponent,
    HealthModel,
    HealthSnapshot,
    RecomputeIssue,
    RevenueMonth,
    UsageRecord,
)
from success_plans.models import (
    Goal,
    Initiative,
    PlanTemplate,
    SuccessPlan,
    Target,
    TargetMeasurement,
    TemplateGoal,
    TemplateInitiative,
    TemplateTarget,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"csm{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("pass-word-123")


class StaffUserFactory(UserFactory):
    is_staff = True
    is_superuser = True


def csm_user(**fields):
    """A user in the CSM group (the workspace role)."""
    user = UserFactory(**fields)
    user.groups.add(Group.objects.get(name=CSM_GROUP))
    return user


def leader(**fields):
    """A user in the CS leader group, staff so the admin opens too."""
    user = UserFactory(is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=LEADER_GROUP))
    return user


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner

    name = factory.Sequence(lambda n: f"Partner {n}")
    scope = Partner.Scope.OWN


class PartnerKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PartnerKey

    partner = factory.SubFactory(PartnerFactory)
    name = "test key"
    prefix = factory.Sequence(lambda n: f"p{n:07d}")
    key_hash = factory.LazyAttribute(lambda k: PartnerKey.hash_key(f"raw-{k.prefix}"))


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    name = factory.Sequence(lambda n: f"Tier {n}")
    slug = factory.Sequence(lambda n: f"tier-{n}")
    rank = factory.Sequence(lambda n: 10 + n)
    touch_cadence_days = 30


def default_tier(slug: str = "low-touch") -> Tier:
    """One of the tiers the migrations seed."""
    return Tier.objects.get(slug=slug)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    external_id = factory.Sequence(lambda n: f"acct-{n:05d}")
    domain = factory.LazyAttribute(lambda a: f"{a.external_id}.example.com")
    industry = "Software"
    region = "EMEA"
    country = "DE"
    employees = 250
    owner = factory.SubFactory(UserFactory)
    tier = factory.LazyFunction(default_tier)
    customer_since = datetime.date(2025, 1, 1)


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    title = "Head of Operations"
    role = Contact.Role.CHAMPION


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    account = factory.SubFactory(AccountFactory)
    product = "Platform"
    mrr = Decimal("1000.00")
    quantity = 10
    start_date = datetime.date(2025, 1, 1)
    end_date = None


class TierAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierAssignment

    account = factory.SubFactory(AccountFactory)
    tier = factory.LazyFunction(default_tier)
    started_at = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(days=30))
    source = TierAssignment.Source.MANUAL
    reason = "Set by hand"


class TouchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Touch

    account = factory.SubFactory(AccountFactory)
    csm = factory.SelfAttribute("account.owner")
    kind = Touch.Kind.CALL
    occurred_at = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(days=3))
    subject = "Check-in call"
    sentiment = Touch.Sentiment.POSITIVE


class PlanTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlanTemplate

    name = factory.Sequence(lambda n: f"Playbook {n}")
    description = "Onboarding playbook"


class TemplateGoalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TemplateGoal

    template = factory.SubFactory(PlanTemplateFactory)
    title = "Go live"
    due_in_days = 30


class TemplateTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TemplateTarget

    goal = factory.SubFactory(TemplateGoalFactory)
    name = "Active users"
    baseline = Decimal(0)
    target_value = Decimal(50)
    usage_metric = "active_users"


class TemplateInitiativeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TemplateInitiative

    goal = factory.SubFactory(TemplateGoalFactory)
    title = "Kick-off workshop"
    due_in_days = 7


class SuccessPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuccessPlan

    account = factory.SubFactory(AccountFactory)
    title = "Year-one success plan"
    status = SuccessPlan.Status.ACTIVE
    owner = factory.SelfAttribute("account.owner")
    success_definition = "Every team runs its weekly report in the product."
    start_date = datetime.date(2026, 1, 1)
    target_date = datetime.date(2026, 12, 31)


class GoalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Goal

    plan = factory.SubFactory(SuccessPlanFactory)
    title = "Adoption across teams"
    status = Goal.Status.IN_PROGRESS


class TargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Target

    goal = factory.SubFactory(GoalFactory)
    name = "Weekly active users"
    unit = "users"
    baseline = Decimal(10)
    target_value = Decimal(110)
    current_value = Decimal(60)


class TargetMeasurementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TargetMeasurement

    target = factory.SubFactory(TargetFactory)
    value = Decimal(60)
    measured_at = factory.LazyFunction(timezone.now)
    source = TargetMeasurement.Source.WORKSPACE


class InitiativeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Initiative

    goal = factory.SubFactory(GoalFactory)
    title = "Train the team leads"
    status = Initiative.Status.PLANNED
    due_date = datetime.date(2026, 6, 30)


class UsageRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageRecord

    account = factory.SubFactory(AccountFactory)
    metric = "active_users"
    date = factory.Sequence(lambda n: datetime.date(2026, 1, 1) + datetime.timedelta(days=n))
    value = Decimal(42)


def active_health_model() -> HealthModel:
    """The default model the migrations seed."""
    return HealthModel.objects.get(is_active=True)


class HealthModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealthModel

    name = "Test model"
    version = factory.Sequence(lambda n: 100 + n)


class HealthComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealthComponent

    model = factory.SubFactory(HealthModelFactory)
    kind = HealthComponent.Kind.ENGAGEMENT
    weight = Decimal(1)
    bad = Decimal(2)
    good = Decimal(1)


class HealthSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealthSnapshot

    account = factory.SubFactory(AccountFactory)
    date = factory.Sequence(lambda n: datetime.date(2026, 1, 1) + datetime.timedelta(days=n))
    score = Decimal("72.5")
    band = "green"
    model_version = factory.LazyFunction(active_health_model)
    # Stored form: [raw, score, weight] or None per component of the default model, in its order (usage
    # trend, usage level, engagement, sentiment, plan progress, renewal proximity): engagement alone.
    components = factory.LazyFunction(lambda: [None, None, [0.5, 100.0, 1.0], None, None, None])


class RevenueMonthFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RevenueMonth

    month = datetime.date(2026, 1, 1)
    segment_kind = RevenueMonth.SegmentKind.ALL
    segment = ""
    start_mrr = Decimal("1000.00")
    expansion_mrr = Decimal("100.00")
    end_mrr = Decimal("1100.00")
    start_accounts = 1
    end_accounts = 1


def alert_rule(kind: str = AlertRule.Kind.HEALTH_RED) -> AlertRule:
    """One of the alert rules the migrations seed."""
    return AlertRule.objects.get(kind=kind)


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    rule = factory.LazyFunction(alert_rule)
    account = factory.SubFactory(AccountFactory)
    owner = factory.SelfAttribute("account.owner")
    status = Alert.Status.OPEN
    due = datetime.date(2026, 1, 10)
    reason = "Health is red (31.0)"


class ChurnEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChurnEvent

    account = factory.SubFactory(AccountFactory)
    churned_on = datetime.date(2026, 3, 31)
    reason = "Budget cut"


class RecomputeIssueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecomputeIssue

    code = factory.Sequence(lambda n: f"issue-{n}")
    message = factory.Sequence(lambda n: f"No health model is active ({n}).")
    first_seen_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)
