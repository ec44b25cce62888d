"""`manage.py seed_demo`: deterministic, internally consistent demo data, and safe on a used database."""

import datetime
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Sum
from django.utils import timezone

from accounts.models import Account, ChurnEvent, Contact, Subscription, Tier, TierAssignment, Touch
from demo.generator import CHURN_REASONS, CSM_PASSWORD, USAGE_DAYS, demo_flush
from metrics.models import AlertRule, HealthModel, RevenueMonth, UsageRecord
from metrics.selectors.revenue import drilldown
from metrics.services.revenue import revenue_recompute
from success_plans.models import Goal, Initiative, SuccessPlan, Target, TargetMeasurement

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 11, 15)
ACCOUNTS = 30


def seed(*args: str, accounts: int = ACCOUNTS, seed: int = 42) -> str:
    out = StringIO()
    call_command(
        "seed_demo",
        "--accounts",
        str(accounts),
        "--seed",
        str(seed),
        "--today",
        TODAY.isoformat(),
        *args,
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


def snapshot() -> dict[str, list]:
    """The data set in a canonical form: natural keys instead of primary keys, sorted."""
    ext = "account__external_id"
    touch_contacts = defaultdict(list)
    for touch_id, name in Touch.contacts.through.objects.values_list("touch_id", "contact__name"):
        touch_contacts[touch_id].append(name)
    touches = [
        (*row, tuple(sorted(touch_contacts[pk])))
        for pk, *row in Touch.objects.values_list(
            "pk",
            ext,
            "occurred_at",
            "kind",
            "sentiment",
            "subject",
            "notes",
            "duration_minutes",
            "csm__username",
            "next_step",
            "next_step_due",
            "source",
        )
    ]
    return {
        "users": sorted(
            get_user_model().objects.values_list(
                "username", "first_name", "last_name", "email", "is_staff", "is_superuser"
            )
        ),
        "accounts": sorted(
            Account.objects.values_list(
                "external_id",
                "name",
                "domain",
                "industry",
                "region",
                "country",
                "employees",
                "owner__username",
                "tier__slug",
                "lifecycle_stage",
                "pricing_model",
                "customer_since",
                "renewal_date",
                "churned_at",
                "churn_reason",
                "mrr",
                "last_touch_at",
            )
        ),
        "contacts": sorted(Contact.objects.values_list(ext, "name", "email", "title", "role", "is_primary")),
        "subscriptions": sorted(
            Subscription.objects.values_list(ext, "product", "mrr", "quantity", "start_date", "end_date"),
            key=str,
        ),
        "tier_assignments": sorted(
            TierAssignment.objects.values_list(ext, "tier__slug", "started_at", "ended_at", "source", "reason"),
            key=str,
        ),
        "touches": sorted(touches, key=str),
        "usage": sorted(
            UsageRecord.objects.values(ext, "metric")
            .annotate(total=Sum("value"), days=Count("id"))
            .values_list(ext, "metric", "total", "days")
        ),
        "plans": sorted(
            SuccessPlan.objects.values_list(ext, "title", "status", "owner__username", "start_date", "target_date"),
            key=str,
        ),
        "goals": sorted(
            Goal.objects.values_list(f"plan__{ext}", "plan__title", "title", "status", "due_date", "achieved_at"),
            key=str,
        ),
        "targets": sorted(
            Target.objects.values_list(
                f"goal__plan__{ext}", "goal__title", "name", "baseline", "target_value", "current_value", "usage_metric"
            ),
            key=str,
        ),
        "initiatives": sorted(
            Initiative.objects.values_list(f"goal__plan__{ext}", "goal__title", "title", "status", "due_date"),
            key=str,
        ),
    }


def month_ends(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    """Last days of the months from `first`'s month to `last`'s month."""
    ends, day = [], first.replace(day=1)
    while day <= last:
        following = (day + datetime.timedelta(days=32)).replace(day=1)
        ends.append(following - datetime.timedelta(days=1))
        day = following
    return ends


Line = tuple[Decimal, datetime.date, datetime.date | None]  # mrr, start, exclusive end


def revenue_lines() -> dict[int, list[Line]]:
    """Every account's live revenue lines, read as plain rows."""
    lines: dict[int, list[Line]] = {pk: [] for pk in Account.objects.values_list("pk", flat=True)}
    for account_id, mrr, start, end in Subscription.objects.filter(deleted_at__isnull=True).values_list(
        "account", "mrr", "start_date", "end_date"
    ):
        lines[account_id].append((mrr, start, end))
    return lines


def mrr_on(lines: list[Line], day: datetime.date) -> Decimal:
    """SPEC 3, worked out in plain Python: the sum of mrr over the lines with start <= day < end."""
    return sum((mrr for mrr, start, end in lines if start <= day and (end is None or day < end)), Decimal("0.00"))


def month_end_mrr(lines: dict[int, list[Line]], last: datetime.date) -> tuple[list[datetime.date], dict]:
    """Month ends from the month before the first line up to `last`'s month, and each account's MRR on them."""
    first_start = min(start for account_lines in lines.values() for _mrr, start, _end in account_lines)
    ends = month_ends(first_start - datetime.timedelta(days=31), last)
    return ends, {pk: [mrr_on(account_lines, end) for end in ends] for pk, account_lines in lines.items()}


def movement(series: list[Decimal], k: int) -> tuple[str, Decimal] | None:
    """What an account did between month ends k - 1 and k (SPEC 4), and the amount; None when nothing."""
    start, end = series[k - 1], series[k]
    if start > 0 and end == 0:
        return "churned", start
    if 0 < end < start:
        return "contraction", start - end
    if end > start > 0:
        return "expansion", end - start
    if start == 0 and end > 0:
        return ("reactivation" if any(value > 0 for value in series[: k - 1]) else "new"), end
    return None


def revenue_movements() -> Counter:
    """Month-over-month MRR movements of every account (section 4 of the spec), from the revenue lines."""
    ends, mrr = month_end_mrr(revenue_lines(), TODAY)
    movements: Counter = Counter()
    for series in mrr.values():
        for k in range(1, len(ends)):
            found = movement(series, k)
            if found is not None:
                movements[found[0]] += 1
    return movements


# --- determinism --------------------------------------------------------------------------------


def test_the_same_seed_and_day_give_the_same_data():
    seed()
    first = snapshot()
    seed("--flush", "--yes")
    second = snapshot()

    assert len(first["accounts"]) == ACCOUNTS
    assert first["touches"] and first["usage"] and first["plans"]
    for name, rows in first.items():
        assert rows == second[name], name


def test_another_seed_gives_other_data():
    seed()
    first = snapshot()
    seed("--flush", "--yes", seed=7)
    second = snapshot()

    assert len(second["accounts"]) == ACCOUNTS
    assert first["accounts"] != second["accounts"]
    assert first["subscriptions"] != second["subscriptions"]
    assert first["touches"] != second["touches"]


# --- what the data looks like -------------------------------------------------------------------


@pytest.fixture(scope="class")
def seeded(django_db_setup, django_db_blocker) -> Iterator[str]:
    """One seeded database shared by the read-only checks below; seeding is most of each test's time.

    It is committed (outside the tests' transactions), so teardown removes it again.
    """
    with django_db_blocker.unblock():
        output = seed()
    yield output
    with django_db_blocker.unblock():
        demo_flush()
        get_user_model().objects.filter(username="admin").delete()


class TestSeededData:
    def test_users_can_log_in(self, seeded):
        User = get_user_model()
        admin = User.objects.get(username="admin")
        csms = User.objects.exclude(username="admin")

        assert admin.is_superuser and admin.is_staff
        assert csms.count() == 3  # one per 40 accounts, at least three
        assert all(user.is_staff and not user.is_superuser for user in csms)
        assert csms.first().check_password(CSM_PASSWORD)
        assert set(Account.objects.values_list("owner__username", flat=True)) <= set(
            csms.values_list("username", flat=True)
        )
        assert "http://127.0.0.1:8000/" in seeded
        assert "admin / admin" in seeded
        assert f"{csms.order_by('pk').first().username} / {CSM_PASSWORD}" in seeded

    def test_denormalised_fields_match_the_raw_data(self, seeded):
        lines = revenue_lines()
        latest_touch: dict[int, datetime.datetime] = {}
        for account_id, occurred_at in Touch.objects.filter(deleted_at__isnull=True).values_list(
            "account", "occurred_at"
        ):
            latest_touch[account_id] = max(occurred_at, latest_touch.get(account_id, occurred_at))

        accounts = list(Account.objects.all())
        assert any(account.mrr > 0 for account in accounts) and any(account.mrr == 0 for account in accounts)
        for account in accounts:
            assert account.mrr == mrr_on(lines[account.pk], TODAY), account.external_id
            assert account.last_touch_at == latest_touch.get(account.pk), account.external_id

    def test_each_account_has_one_open_tier_assignment_following_the_tier_rule(self, seeded):
        tiers = list(Tier.objects.order_by("rank"))
        open_assignments = Counter(
            TierAssignment.objects.filter(ended_at__isnull=True).values_list("account", flat=True)
        )

        for account in Account.objects.select_related("tier"):
            assert open_assignments[account.pk] == 1, account.external_id
            assignment = account.tier_assignments.get()
            assert assignment.tier_id == account.tier_id
            assert assignment.source == TierAssignment.Source.RULE
            assert "ARR" in assignment.reason
            if account.churned_at is None:
                arr = account.mrr * 12
                expected = next(tier for tier in tiers if tier.min_arr is None or arr >= tier.min_arr)
                assert account.tier == expected, account.external_id
        # The segments line up with the default thresholds, so every tier has accounts.
        assert set(Account.objects.values_list("tier__slug", flat=True)) == {"high-touch", "low-touch", "tech-touch"}

    def test_revenue_lines_and_churn_are_consistent(self, seeded):
        assert not Subscription.objects.filter(end_date__lte=F("start_date")).exists()
        reasons = {reason for reason, _weight in CHURN_REASONS}
        churned = Account.objects.filter(churned_at__isnull=False)
        assert churned.exists()
        for account in Account.objects.all():
            if account.churned_at is not None:
                assert account.mrr == 0
                assert account.lifecycle_stage == Account.LifecycleStage.CHURNED
                assert account.churn_reason in reasons
                assert account.churned_at <= TODAY
                assert account.renewal_date is None
                assert not account.subscriptions.filter(end_date__isnull=True).exists()
            else:
                assert account.mrr > 0, account.external_id
                assert account.renewal_date > TODAY
                assert account.customer_since < TODAY
                assert account.churn_reason == ""

    def test_every_churn_has_its_event_with_a_reason(self, seeded):
        reasons = {reason for reason, _weight in CHURN_REASONS}
        lines = revenue_lines()
        # The days an account's MRR fell to zero, from its lines: only a line's end can do that.
        churn_days = {
            pk: {
                end
                for _mrr, _start, end in account_lines
                if end is not None
                and mrr_on(account_lines, end - datetime.timedelta(days=1)) > 0
                and mrr_on(account_lines, end) == 0
            }
            for pk, account_lines in lines.items()
        }
        events = defaultdict(dict)
        for account_id, churned_on, reason in ChurnEvent.objects.values_list("account", "churned_on", "reason"):
            events[account_id][churned_on] = reason

        for account in Account.objects.all():
            assert set(events[account.pk]) == churn_days[account.pk], account.external_id
            assert set(events[account.pk].values()) <= reasons, account.external_id
            if account.churned_at is not None:
                assert events[account.pk][account.churned_at] == account.churn_reason
        # Accounts that came back keep the churn they came back from.
        assert any(
            days and account.churned_at is None for account in Account.objects.all() if (days := events[account.pk])
        )

    def test_the_history_has_every_kind_of_revenue_movement(self, seeded):
        movements = revenue_movements()

        for kind in ("new", "expansion", "contraction", "churned", "reactivation"):
            assert movements[kind] > 0, kind
        # A price change ends one line and starts its successor the same day.
        successors = Subscription.objects.filter(
            account=OuterRef("account"), product=OuterRef("product"), start_date=OuterRef("end_date")
        )
        assert Subscription.objects.filter(Exists(successors)).exists()

    def test_contacts_and_touches(self, seeded):
        for account in Account.objects.annotate(people=Count("contacts")):
            assert 2 <= account.people <= 6
            assert account.contacts.filter(is_primary=True).count() == 1

        touches = Touch.objects.select_related("account")
        assert touches.count() > ACCOUNTS
        assert Counter(touches.values_list("kind", flat=True)).keys() >= {"call", "email", "qbr", "onboarding"}
        assert set(touches.values_list("sentiment", flat=True)) >= {-1, 0, 1}
        for touch in touches:
            assert touch.occurred_at.date() < TODAY
            assert touch.occurred_at.date() >= TODAY - datetime.timedelta(days=366)
            assert touch.csm_id == touch.account.owner_id
        strangers = Touch.contacts.through.objects.exclude(contact__account=F("touch__account"))
        assert not strangers.exists()

    def test_usage_covers_exactly_the_paid_days_of_the_last_120(self, seeded):
        window = [TODAY - datetime.timedelta(days=offset) for offset in range(USAGE_DAYS)]
        lines = defaultdict(list)
        for account_id, start, end in Subscription.objects.values_list("account", "start_date", "end_date"):
            lines[account_id].append((start, end))
        usage_days = defaultdict(set)
        for account_id, day in UsageRecord.objects.filter(metric="active_users").values_list("account", "date"):
            usage_days[account_id].add(day)

        for account in Account.objects.all():
            paid = {day for day in window if any(s <= day and (e is None or day < e) for s, e in lines[account.pk])}
            assert usage_days[account.pk] == paid, account.external_id
        assert any(len(days) == USAGE_DAYS for days in usage_days.values())
        assert UsageRecord.objects.aggregate(first=Min("date"), last=Max("date")) == {
            "first": window[-1],
            "last": TODAY,
        }
        assert set(UsageRecord.objects.values_list("metric", flat=True)) >= {
            "active_users",
            "seats_licensed",
            "logins",
            "api_calls",
        }
        # Active users stay within the licensed seats (near-full accounts may run a little over).
        seats = {
            (account_id, day): value
            for account_id, day, value in UsageRecord.objects.filter(metric="seats_licensed").values_list(
                "account", "date", "value"
            )
        }
        for account_id, day, value in UsageRecord.objects.filter(metric="active_users").values_list(
            "account", "date", "value"
        ):
            assert value <= seats[account_id, day] * Decimal("1.05")

    def test_usage_declines_before_a_churn(self, seeded):
        window_start = TODAY - datetime.timedelta(days=USAGE_DAYS - 1)
        for account in Account.objects.filter(churned_at__gte=window_start + datetime.timedelta(days=60)):
            usage = account.usage_records.filter(metric="active_users")
            last_30 = usage.filter(date__gte=account.churned_at - datetime.timedelta(days=30))
            prior_30 = usage.filter(
                date__lt=account.churned_at - datetime.timedelta(days=30),
                date__gte=account.churned_at - datetime.timedelta(days=60),
            )
            assert last_30.aggregate(total=Sum("value"))["total"] < prior_30.aggregate(total=Sum("value"))["total"]

    def test_each_plan_comes_from_the_playbook_for_the_accounts_tier_or_stage(self, seeded):
        by_tier = {"High touch": "Onboarding (High touch)", "Low touch": "Adoption (Low touch)"}
        plans = list(SuccessPlan.objects.select_related("account__tier", "template"))

        assert {plan.title for plan in plans} == {"Renewal readiness", *by_tier.values()}
        for plan in plans:
            account = plan.account
            assert account.churned_at is None, account.external_id
            wanted = "Renewal readiness" if account.lifecycle_stage == "renewal" else by_tier[account.tier.name]
            assert plan.template.name == plan.title == wanted, account.external_id
            template_goals = list(plan.template.goals.order_by("order").values_list("title", "due_in_days"))
            goals = [(goal.title, (goal.due_date - plan.start_date).days) for goal in plan.goals.order_by("order")]
            assert goals == template_goals, account.external_id
            assert plan.start_date <= TODAY
        # Tech-touch accounts run on automated programmes: a plan only when their renewal is near.
        assert (
            not SuccessPlan.objects.filter(account__tier__slug="tech-touch")
            .exclude(account__lifecycle_stage="renewal")
            .exists()
        )

    def test_plans_have_moved_on_since_they_started(self, seeded):
        goals = list(Goal.objects.select_related("plan"))
        assert {goal.status for goal in goals} >= {Goal.Status.ACHIEVED, Goal.Status.IN_PROGRESS}
        for goal in goals:
            if goal.status == Goal.Status.ACHIEVED:
                assert goal.plan.start_date <= goal.achieved_at < TODAY, goal
            else:
                assert goal.achieved_at is None, goal
            if goal.status == Goal.Status.ABANDONED:
                assert goal.status_reason, goal
        for plan in SuccessPlan.objects.prefetch_related("goals"):
            statuses = {goal.status for goal in plan.goals.all()}
            if plan.status == SuccessPlan.Status.ACHIEVED:
                assert statuses == {Goal.Status.ACHIEVED} and plan.closed_at is not None
            elif plan.status == SuccessPlan.Status.ABANDONED:
                assert plan.status_reason and plan.closed_at is not None
                assert statuses <= {Goal.Status.ACHIEVED, Goal.Status.ABANDONED}
            elif plan.status == SuccessPlan.Status.DRAFT:
                assert statuses == {Goal.Status.NOT_STARTED}
        # Time to value: some onboarding plans reached their first goal.
        assert Goal.objects.filter(plan__title="Onboarding (High touch)", order=0, status=Goal.Status.ACHIEVED).exists()
        for initiative in Initiative.objects.all():
            assert (initiative.status == Initiative.Status.DONE) == (initiative.completed_at is not None), initiative
            assert (initiative.status == Initiative.Status.BLOCKED) == bool(initiative.status_reason), initiative

    def test_targets_show_their_latest_reading_and_usage_targets_follow_usage(self, seeded):
        readings = defaultdict(list)
        for target_id, value, measured_at, source, pk in TargetMeasurement.objects.values_list(
            "target", "value", "measured_at", "source", "pk"
        ):
            readings[target_id].append((measured_at, pk, value, source))
        active_today = dict(
            UsageRecord.objects.filter(metric="active_users", date=TODAY).values_list("account", "value")
        )
        targets = list(Target.objects.select_related("goal__plan"))
        assert readings
        open_statuses = (SuccessPlan.Status.DRAFT, SuccessPlan.Status.ACTIVE)
        followed = 0

        for target in targets:
            assert target.target_value != target.baseline, target
            history = sorted(readings[target.pk])
            if not history:
                assert (target.current_value, target.measured_at) == (None, None), target
                continue
            measured_at, _pk, value, source = history[-1]
            assert (target.current_value, target.measured_at) == (value, measured_at), target
            assert measured_at.date() <= TODAY
            if target.usage_metric == "active_users" and target.goal.plan.status in open_statuses:
                assert source == TargetMeasurement.Source.USAGE
                assert value == active_today[target.goal.plan.account_id], target
                followed += 1
        assert followed


# --- the revenue bridge over the demo data -----------------------------------------------------

MOVEMENT_FIGURES = {
    "new": ("new_mrr", "new_accounts"),
    "reactivation": ("reactivation_mrr", "reactivated_accounts"),
    "expansion": ("expansion_mrr", "expanding_accounts"),
    "contraction": ("contraction_mrr", "contracting_accounts"),
    "churned": ("churned_mrr", "churned_accounts"),
}


def expected_bridge(lines: dict[int, list[Line]], segment_of: dict[int, str]) -> tuple[dict, dict]:
    """Bridge figures and drill-downs per (month, segment kind, segment), from the revenue lines alone.

    Figures: {name: total}; drill-downs: {figure: {account id: amount}}. Segments: all, and tier.
    """
    ends, mrr = month_end_mrr(lines, TODAY)
    figures: dict = defaultdict(Counter)
    drilldowns: dict = defaultdict(lambda: defaultdict(dict))
    for account_id, series in mrr.items():
        for k in range(1, len(ends)):
            month = ends[k].replace(day=1)
            start, end = series[k - 1], series[k]
            found = movement(series, k)
            for key in ((month, "all", ""), (month, "tier", segment_of[account_id])):
                totals, accounts = figures[key], drilldowns[key]
                if start > 0:
                    totals["start_mrr"] += start
                    totals["start_accounts"] += 1
                    accounts["start_mrr"][account_id] = start
                if end > 0:
                    totals["end_mrr"] += end
                    totals["end_accounts"] += 1
                    accounts["end_mrr"][account_id] = end
                if found is not None:
                    money, count = MOVEMENT_FIGURES[found[0]]
                    totals[money] += found[1]
                    totals[count] += 1
                    accounts[money][account_id] = found[1]
    return figures, drilldowns


def test_the_demo_data_bridge_balances():
    """The stored bridge and its drill-downs match month-end MRR worked out from the subscription rows."""
    seed(accounts=40, seed=7)
    revenue_recompute(last=TODAY)
    lines = revenue_lines()
    tiers = dict(Account.objects.values_list("pk", "tier__name"))
    figures, drilldowns = expected_bridge(lines, tiers)
    stored = {
        (row.month, row.segment_kind, row.segment): row
        for row in RevenueMonth.objects.filter(segment_kind__in=["all", "tier"])
    }

    months = sorted({month for month, _kind, _segment in stored})
    assert len(months) >= 24 and months[-1] == TODAY.replace(day=1)
    names = [name for pair in MOVEMENT_FIGURES.values() for name in pair]
    names += ["start_mrr", "end_mrr", "start_accounts", "end_accounts"]
    for key, row in stored.items():
        for name in names:
            assert getattr(row, name) == figures[key][name], (key, name)
        assert row.upsell_mrr + row.cross_sell_mrr == row.expansion_mrr, key
        assert (
            row.start_mrr
            + row.new_mrr
            + row.reactivation_mrr
            + row.expansion_mrr
            - row.contraction_mrr
            - (row.churned_mrr)
            == row.end_mrr
        ), key
    assert {key for key, totals in figures.items() if key[0] in months and any(totals.values())} <= set(stored)
    # Every kind of movement shows up in the bridge, so the checks above are not vacuous.
    totals = Counter()
    for key, row in stored.items():
        if key[1] == "all":
            totals.update({name: getattr(row, name) for name in names})
    assert all(totals[money] > 0 for money, _count in MOVEMENT_FIGURES.values()), totals

    # The drill-downs list the accounts behind each figure, with their amounts.
    for (month, kind, segment), expected in drilldowns.items():
        if month not in months or (kind == "tier" and month != months[-1]):
            continue
        for figure in (*(money for money, _count in MOVEMENT_FIGURES.values()), "start_mrr", "end_mrr"):
            found = drilldown(month=month, figure=figure, segment_kind=kind, segment=segment)
            assert {row["account_id"]: row["amount"] for row in found} == expected[figure], (month, segment, figure)


# --- a database that already has data -----------------------------------------------------------


def test_refuses_a_database_with_accounts_and_writes_nothing():
    Account.objects.create(name="Acme")
    users = get_user_model().objects.count()

    with pytest.raises(CommandError, match="not empty.*--flush"):
        seed()

    assert Account.objects.count() == 1
    assert get_user_model().objects.count() == users
    assert not Subscription.objects.exists() and not UsageRecord.objects.exists()


def test_if_empty_skips_a_database_with_accounts_and_seeds_an_empty_one():
    assert "Accounts: 30" in seed("--if-empty")

    output = seed("--if-empty", seed=7)

    assert "Skipped" in output
    assert Account.objects.count() == ACCOUNTS


def test_flush_replaces_the_data_and_keeps_configuration_and_other_users():
    User = get_user_model()
    colleague = User.objects.create_user(username="casey")
    seed()
    RevenueMonth.objects.create(month=datetime.date(2026, 10, 1), segment_kind=RevenueMonth.SegmentKind.ALL)
    configuration = (Tier.objects.count(), HealthModel.objects.count(), AlertRule.objects.count())

    output = seed("--flush", "--yes", accounts=5)

    assert "Flushed:" in output
    assert "admin / admin" in output  # the demo admin survives the flush, with its demo password
    assert Account.objects.count() == 5
    assert not RevenueMonth.objects.exists()
    assert (Tier.objects.count(), HealthModel.objects.count(), AlertRule.objects.count()) == configuration
    assert User.objects.filter(pk=colleague.pk).exists()
    assert User.objects.filter(username="admin", is_superuser=True).count() == 1
    assert User.objects.exclude(username__in=["admin", "casey"]).count() == 3


def test_an_existing_admin_keeps_its_own_password():
    User = get_user_model()
    User.objects.create_superuser(username="admin", password="my-own-secret")

    output = seed(accounts=5)

    assert User.objects.get(username="admin").check_password("my-own-secret")
    assert "admin / admin" not in output
    assert "left as it is" in output


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accounts", "0"], "--accounts"),
        (["--accounts", "1000001"], "--accounts"),
        (["--accounts", "many"], "accounts"),
        (["--accounts", "5", "--today", "2026-13-01"], "--today"),
        (["--accounts", "5", "--today", "15/11/2026"], "--today"),
        (["--accounts", "5", "--today", "20261115"], "--today"),
        (["--accounts", "5", "--flush", "--if-empty"], "contradict"),
    ],
)
def test_bad_options_are_refused(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", *args, stdout=StringIO(), stderr=StringIO())
    assert not Account.objects.exists()


def test_bad_options_are_refused_when_passed_as_keywords():
    with pytest.raises(CommandError, match="--accounts"):
        call_command("seed_demo", accounts=0, stdout=StringIO())


def test_no_tiers_is_a_clear_error_and_writes_nothing():
    Tier.objects.all().delete()

    with pytest.raises(CommandError, match="No tiers"):
        seed(accounts=5)

    assert not get_user_model().objects.exists()


def test_a_day_in_the_future_is_refused_and_nothing_is_written():
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)

    with pytest.raises(CommandError, match="future"):
        call_command("seed_demo", "--accounts", "3", "--today", tomorrow.isoformat(), stdout=StringIO())

    assert not Account.objects.exists() and not get_user_model().objects.exists()


def test_today_defaults_to_the_local_date():
    call_command("seed_demo", "--accounts", "3", stdout=StringIO(), stderr=StringIO())

    assert UsageRecord.objects.aggregate(last=Max("date"))["last"] == timezone.localdate()
