"""Property tests: arbitrary text, numbers and dates given to the services and the workspace forms either save
valid data or are refused with a ValidationError (the services' DomainError is one), on SQLite and PostgreSQL.
Never another exception, never a database error: NUL bytes, lone surrogates, emoji, huge integers, NaN and
infinite decimals, dates at the ends of the calendar. Each example runs in a savepoint rolled back after it."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.forms import TouchForm
from accounts.models import Account, Touch
from accounts.services import account_create, account_update, touch_log
from metrics.models import UsageRecord
from metrics.services.usage import usage_records_upsert
from success_plans import services as plans
from success_plans.forms import GoalForm, InitiativeForm, PlanEditForm, ReadingForm, TargetForm
from success_plans.models import TargetMeasurement
from tests import factories

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is repeatable
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "🚀" * 50, "x" * 10_000, "<script>alert(1)</script>"]
texts = st.one_of(st.text(max_size=300), st.sampled_from(NASTY_TEXT))
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("1e400"), Decimal("-0"), "12.5", "abc", None]),
)
dates = st.one_of(st.dates(), st.sampled_from([datetime.date.min, datetime.date.max]))
zones = st.sampled_from([None, datetime.UTC, zoneinfo.ZoneInfo("Pacific/Kiritimati"), zoneinfo.ZoneInfo("Etc/GMT+12")])
datetimes = st.one_of(
    st.builds(lambda moment, zone: moment.replace(tzinfo=zone), st.datetimes(), zones),
    # The ends of the calendar in zones where UTC lies beyond them.
    st.sampled_from(
        [
            datetime.datetime.min.replace(tzinfo=zoneinfo.ZoneInfo("Pacific/Kiritimati")),
            datetime.datetime.max.replace(tzinfo=zoneinfo.ZoneInfo("Etc/GMT+12")),
        ]
    ),
)
# What a browser can post: any text, and numbers and dates written in ways forms may or may not accept.
posted = st.one_of(
    st.text(max_size=60).filter(lambda s: "\x00" not in s),  # a NUL is refused by every form field anyway
    st.sampled_from(["0", "-1", "1e5", "NaN", "Infinity", "-inf", "1" * 40, "0001-01-01", "9999-12-31"]),
    st.sampled_from(["9999-12-31T23:59", "0001-01-01T00:00", "2026-02-30", "2026-01-01T25:00", "", " "]),
    st.builds(str, st.integers()),
    st.builds(str, st.decimals(allow_nan=True, allow_infinity=True)),
    st.builds(lambda d: d.isoformat(), st.dates()),
    st.builds(lambda d: d.strftime("%Y-%m-%dT%H:%M"), st.datetimes()),
)


def saves_or_refuses(write) -> bool:
    """Run `write` in a savepoint rolled back afterwards; True when it saved, False when refused with a
    ValidationError. Any other exception fails the test."""
    with transaction.atomic():
        try:
            write()
        except ValidationError:
            saved = False
        else:
            saved = True
        transaction.set_rollback(True)
    return saved


@pytest.fixture
def target(db):
    return factories.TargetFactory(baseline=Decimal(0), target_value=Decimal(100))


# --- services -----------------------------------------------------------------------------------


@pytest.mark.django_db
@FUZZ
@given(name=texts, external_id=st.one_of(st.none(), texts), domain=texts, employees=numbers, renewal=dates)
def test_account_saves_take_any_input(name, external_id, domain, employees, renewal):
    def write():
        account = account_create(
            name=name, external_id=external_id, domain=domain, employees=employees, renewal_date=renewal
        )
        stored = Account.objects.get(pk=account.pk)
        assert (stored.name, stored.domain, stored.renewal_date) == (name, domain, renewal)

    saves_or_refuses(write)


@pytest.mark.django_db
@FUZZ
@given(industry=texts, customer_since=dates)
def test_account_updates_take_any_input(industry, customer_since):
    account = factories.AccountFactory()
    saves_or_refuses(
        lambda: account_update(account=account, data={"industry": industry, "customer_since": customer_since})
    )
    assert Account.objects.get(pk=account.pk).industry == "Software"


@pytest.mark.django_db
@FUZZ
@given(
    kind=st.one_of(st.sampled_from(Touch.Kind.values), texts),
    occurred_at=datetimes,
    subject=texts,
    notes=texts,
    duration=st.one_of(st.none(), numbers),
    sentiment=st.one_of(st.none(), numbers),
    next_step_due=st.one_of(st.none(), dates),
)
def test_touch_logs_take_any_input(kind, occurred_at, subject, notes, duration, sentiment, next_step_due):
    account = factories.AccountFactory()

    def write():
        touch = touch_log(
            account=account,
            kind=kind,
            occurred_at=occurred_at,
            subject=subject,
            notes=notes,
            duration_minutes=duration,
            sentiment=sentiment,
            next_step="call back" if next_step_due else "",
            next_step_due=next_step_due,
        )
        stored = Touch.objects.get(pk=touch.pk)
        assert (stored.subject, stored.notes) == (subject, notes)

    saves_or_refuses(write)


@pytest.mark.django_db
@FUZZ
@given(value=numbers, measured_at=st.one_of(st.none(), datetimes))
def test_target_readings_take_any_input(target, value, measured_at):
    def write():
        reading = plans.target_measure(target=target, value=value, measured_at=measured_at)
        assert TargetMeasurement.objects.get(pk=reading.pk).value == reading.value

    saves_or_refuses(write)


@pytest.mark.django_db
@FUZZ
@given(name=texts, unit=texts, baseline=numbers, target_value=numbers, due=st.one_of(st.none(), dates), metric=texts)
def test_targets_take_any_input(target, name, unit, baseline, target_value, due, metric):
    saves_or_refuses(
        lambda: plans.target_add(
            goal=target.goal,
            name=name,
            unit=unit,
            baseline=baseline,
            target_value=target_value,
            due_date=due,
            usage_metric=metric,
        )
    )


@pytest.mark.django_db
@FUZZ
@given(title=texts, description=texts, priority=numbers, due=st.one_of(st.none(), dates))
def test_goals_and_initiatives_take_any_input(target, title, description, priority, due):
    plan = target.goal.plan
    saves_or_refuses(
        lambda: plans.goal_add(plan=plan, title=title, description=description, priority=priority, due_date=due)
    )
    saves_or_refuses(lambda: plans.initiative_add(goal=target.goal, title=title, due_date=due))
    saves_or_refuses(lambda: plans.plan_update(plan=plan, data={"title": title, "target_date": due}))


@pytest.mark.django_db
@FUZZ
@given(metric=texts, day=st.one_of(dates, texts), value=numbers)
def test_usage_ingest_takes_any_input(metric, day, value):
    account = factories.AccountFactory()
    records = [{"account_id": account.pk, "metric": metric, "date": day, "value": value}]

    def write():
        assert usage_records_upsert(records=records) == 1
        assert UsageRecord.objects.get(account=account, metric=metric).date == day

    saves_or_refuses(write)


# --- workspace forms ----------------------------------------------------------------------------


def form_then_service(form, write) -> None:
    """A form's errors are its answer; valid input goes to the service, which saves or refuses."""
    if form.is_valid():
        saves_or_refuses(lambda: write(form.cleaned_data))


@pytest.mark.django_db
@FUZZ
@given(
    data=st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(
            ["kind", "occurred_at", "subject", "sentiment", "notes", "next_step", "next_step_due", "contacts"], posted
        ),
    )
)
def test_the_touch_form_takes_any_input(data):
    account = factories.AccountFactory()
    form_then_service(TouchForm(data, account=account), lambda cleaned: touch_log(account=account, **cleaned))


@pytest.mark.django_db
@FUZZ
@given(
    reading=st.fixed_dictionaries({}, optional=dict.fromkeys(["value", "measured_at"], posted)),
    target_data=st.fixed_dictionaries(
        {}, optional=dict.fromkeys(["name", "unit", "baseline", "target_value", "due_date", "usage_metric"], posted)
    ),
)
def test_the_reading_and_target_forms_take_any_input(target, reading, target_data):
    form_then_service(ReadingForm(reading), lambda cleaned: plans.target_measure(target=target, **cleaned))
    form_then_service(TargetForm(target_data), lambda cleaned: plans.target_update(target=target, data=cleaned))


@pytest.mark.django_db
@FUZZ
@given(
    goal=st.fixed_dictionaries({}, optional=dict.fromkeys(["title", "description", "priority", "due_date"], posted)),
    plan=st.fixed_dictionaries(
        {}, optional=dict.fromkeys(["title", "success_definition", "start_date", "target_date", "owner"], posted)
    ),
    initiative=st.fixed_dictionaries({}, optional=dict.fromkeys(["title", "owner", "due_date"], posted)),
)
def test_the_plan_goal_and_initiative_forms_take_any_input(target, goal, plan, initiative):
    form_then_service(GoalForm(goal), lambda cleaned: plans.goal_update(goal=target.goal, data=cleaned))
    form_then_service(PlanEditForm(plan), lambda cleaned: plans.plan_update(plan=target.goal.plan, data=cleaned))
    form_then_service(InitiativeForm(initiative), lambda cleaned: plans.initiative_add(goal=target.goal, **cleaned))
