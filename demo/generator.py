"""Deterministic demo data: a customer base with two years of revenue history, touches, usage and plans.

Everything is derived from a seed and a reference date (`today`), never from the clock or the global
random generator: the same (accounts, seed, today) gives the same data set. Each account draws from
its own generators, seeded by (seed, account number, stage), so an account's data does not depend on
the accounts generated before it, on the chunk it is written in, or on the other stages.

Names come from fixed word lists rather than Faker, so the data does not change with library versions.
Accounts are generated and written in chunks, which keeps memory flat however many accounts are asked
for. The raw records (accounts, contacts, revenue lines, touches, usage) are bulk inserts; what the
product derives from them (tier history, churn events, MRR, last touch, plans from the playbooks and
their target readings) goes through the services' bulk paths, a fixed number of queries per chunk.
This app sits above all others: it may import any of them, and none imports it.
"""

import calendar
import contextlib
import datetime
import functools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connections, router, transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import Account, ChurnEvent, Contact, Subscription, Tier, TierAssignment, Touch
from accounts.services import (
    account_last_touch_refresh,
    account_mrr_refresh,
    churn_events_record,
    recompute_batch,
    tier_assignments_open,
    tier_for_arr,
    tier_rule_reason,
)
from csm.db import bulk_upsert
from csm.roles import CSM_GROUP
from metrics.models import Alert, HealthSnapshot, RevenueMonth, UsageRecord
from metrics.services.targets import targets_follow_usage
from success_plans.models import Goal, Initiative, PlanTemplate, SuccessPlan, Target, TargetMeasurement
from success_plans.services import Measurement, plans_apply_template, targets_measure_bulk

# --- knobs --------------------------------------------------------------------------------------

MAX_ACCOUNTS = 1_000_000
ACCOUNTS_PER_CSM = 40
MIN_CSMS = 3
CHUNK_SIZE = 1_000  # accounts generated and written together; bounds memory
BATCH_SIZE = 2_000  # rows per bulk INSERT (the backend may split further)
HISTORY_MONTHS = 24
TOUCH_DAYS = 365
USAGE_DAYS = 120

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"
CSM_PASSWORD = "demo"
# The e-mail domain marks the CSM users the demo created, so a flush removes them and nobody else.
DEMO_EMAIL_DOMAIN = "csm-demo.example.com"

STAGES = (
    "Users",
    "Accounts",
    "Contacts",
    "Subscriptions",
    "Churn events",
    "Tier assignments",
    "Touches",
    "Usage records",
    "Success plans",
    "MRR",
)
CHUNK_STAGES = STAGES[1:-1]

# --- word lists ---------------------------------------------------------------------------------

INDUSTRIES: dict[str, tuple[str, ...]] = {
    "Software": ("Labs", "Systems", "Software", "Cloud", "Data"),
    "Retail": ("Retail", "Stores", "Outfitters", "Market", "Goods"),
    "Healthcare": ("Health", "Clinics", "Care", "Medical", "Bio"),
    "Finance": ("Capital", "Financial", "Bank", "Partners", "Insurance"),
    "Manufacturing": ("Industries", "Manufacturing", "Works", "Components", "Fabrication"),
    "Education": ("Learning", "Academy", "University", "Education", "Institute"),
    "Media": ("Media", "Studios", "Publishing", "Broadcasting", "Press"),
    "Logistics": ("Logistics", "Freight", "Shipping", "Transport", "Supply"),
}

NAME_STEMS = (
    "Alder", "Atlas", "Aurora", "Beacon", "Birch", "Bluebird", "Brightwater", "Canyon", "Cedar", "Cobalt",
    "Copper", "Delta", "Driftwood", "Ember", "Evergreen", "Falcon", "Fjord", "Garnet", "Glacier", "Granite",
    "Harbor", "Heron", "Highland", "Horizon", "Indigo", "Ironbridge", "Jade", "Juniper", "Kestrel", "Keystone",
    "Kite", "Lakeside", "Larch", "Lighthouse", "Lumen", "Maple", "Meridian", "Mesa", "Mosaic", "Nexus",
    "Nimbus", "Northwind", "Nova", "Oakridge", "Onyx", "Orchid", "Osprey", "Pinnacle", "Pioneer", "Polaris",
    "Prairie", "Quartz", "Quill", "Redwood", "Ridge", "Riverbend", "Sable", "Sapphire", "Sequoia", "Silverline",
    "Solstice", "Starling", "Summit", "Terra", "Tidewater", "Tundra", "Upland", "Vale", "Vantage", "Vertex",
    "Wavecrest", "Willow", "Wren", "Yarrow", "Zephyr", "Bramble", "Crescent", "Foxglove", "Halcyon", "Marigold",
)  # fmt: skip

# (region, weight, ((country, weight, top-level domain, cities), ...))
REGIONS: tuple[tuple[str, int, tuple[tuple[str, int, str, tuple[str, ...]], ...]], ...] = (
    (
        "North America",
        45,
        (
            ("US", 80, "com", ("Austin", "Denver", "Boston", "Chicago", "Seattle", "Atlanta")),
            ("CA", 20, "ca", ("Toronto", "Vancouver", "Montreal", "Calgary")),
        ),
    ),
    (
        "EMEA",
        30,
        (
            ("GB", 30, "co.uk", ("London", "Manchester", "Leeds", "Bristol")),
            ("DE", 22, "de", ("Berlin", "Munich", "Hamburg", "Cologne")),
            ("FR", 15, "fr", ("Paris", "Lyon", "Lille", "Nantes")),
            ("NL", 10, "nl", ("Amsterdam", "Rotterdam", "Utrecht")),
            ("SE", 7, "se", ("Stockholm", "Gothenburg", "Malmo")),
            ("ES", 7, "es", ("Madrid", "Barcelona", "Valencia")),
            ("IE", 5, "ie", ("Dublin", "Cork", "Galway")),
            ("CH", 4, "ch", ("Zurich", "Geneva", "Basel")),
        ),
    ),
    (
        "APAC",
        15,
        (
            ("AU", 35, "com.au", ("Sydney", "Melbourne", "Brisbane", "Perth")),
            ("JP", 25, "co.jp", ("Tokyo", "Osaka", "Nagoya", "Fukuoka")),
            ("SG", 15, "com.sg", ("Singapore",)),
            ("IN", 15, "in", ("Bengaluru", "Mumbai", "Pune", "Hyderabad")),
            ("NZ", 10, "co.nz", ("Auckland", "Wellington", "Christchurch")),
        ),
    ),
    (
        "LATAM",
        10,
        (
            ("BR", 40, "com.br", ("Sao Paulo", "Rio", "Curitiba", "Recife")),
            ("MX", 30, "com.mx", ("Mexico City", "Monterrey", "Guadalajara")),
            ("AR", 10, "com.ar", ("Buenos Aires", "Cordoba", "Rosario")),
            ("CL", 10, "cl", ("Santiago", "Valparaiso")),
            ("CO", 10, "co", ("Bogota", "Medellin", "Cali")),
        ),
    ),
)

FIRST_NAMES = (
    "Ava", "Liam", "Noah", "Emma", "Mia", "Lucas", "Sofia", "Mateo", "Chloe", "Ethan", "Hana", "Kenji",
    "Priya", "Arjun", "Amara", "Kofi", "Ingrid", "Lars", "Elena", "Marco", "Fatima", "Omar", "Yuki", "Ren",
    "Grace", "Owen", "Zoe", "Leo", "Isla", "Hugo", "Nora", "Felix", "Maya", "Diego", "Lina", "Tomas",
    "Aisha", "Daniel", "Clara", "Samuel", "Julia", "Victor", "Rosa", "Jonas", "Mei", "Ravi", "Sara", "Ivan",
)  # fmt: skip
LAST_NAMES = (
    "Ito", "Smith", "Garcia", "Muller", "Rossi", "Tanaka", "Kim", "Nguyen", "Silva", "Johansson", "Novak",
    "Patel", "Okafor", "Dubois", "Jansen", "Lopez", "Brown", "Wilson", "Sato", "Khan", "Ivanova", "Costa",
    "Schmidt", "Andersen", "Moreau", "Bianchi", "Fischer", "Murphy", "Walsh", "Chen", "Singh", "Ahmed",
    "Mendes", "Hansen", "Kowalski", "Reyes", "Park", "Yamamoto", "Larsen", "Moore", "Taylor", "Clark",
)  # fmt: skip

# (role, job titles)
ROLE_TITLES: dict[str, tuple[str, ...]] = {
    Contact.Role.CHAMPION: ("Head of Operations", "Director of Customer Experience", "Operations Manager"),
    Contact.Role.ECONOMIC_BUYER: ("VP Finance", "Chief Financial Officer", "Chief Operating Officer"),
    Contact.Role.EXECUTIVE_SPONSOR: ("Chief Executive Officer", "Chief Technology Officer", "Chief Revenue Officer"),
    Contact.Role.ADMIN: ("IT Administrator", "Systems Manager", "Platform Engineer"),
    Contact.Role.USER: ("Business Analyst", "Operations Specialist", "Team Lead", "Project Manager"),
}

PLATFORM, SEATS = "Platform", "Seats"
ANALYTICS, API_ACCESS, PREMIUM_SUPPORT = "Analytics add-on", "API access", "Premium support"
ADD_ONS = (ANALYTICS, API_ACCESS, PREMIUM_SUPPORT)

CHURN_REASONS = (
    ("Budget cuts", 25),
    ("Moved to competitor", 25),
    ("Poor adoption", 25),
    ("Product fit", 15),
    ("Acquired", 10),
)

# Touch styles by a tier's position: most attention first, least attention last.
TOUCH_KIND_WEIGHTS = {
    "high": (("call", 35), ("meeting", 35), ("email", 20), ("training", 5), ("chat", 5)),
    "low": (("call", 35), ("email", 35), ("meeting", 15), ("chat", 10), ("training", 5)),
    "tech": (("email", 45), ("campaign", 30), ("chat", 15), ("call", 10)),
}
TOUCH_DURATIONS = {
    "call": (15, 45),
    "meeting": (30, 60),
    "qbr": (60, 90),
    "onboarding": (45, 90),
    "training": (45, 60),
    "chat": (5, 20),
}
TOUCH_SUBJECTS = {
    "call": ("Check-in call", "Adoption review", "Usage walkthrough", "Roadmap preview", "Admin office hours"),
    "meeting": ("Workshop: reporting set-up", "Stakeholder alignment", "Success plan review", "Integration planning"),
    "email": ("Monthly usage summary", "Release highlights", "Follow-up on open questions", "Best-practice guide"),
    "qbr": ("Quarterly business review", "QBR: goals and outcomes", "Executive business review"),
    "onboarding": ("Kick-off call", "Onboarding: data import", "Onboarding: admin set-up", "Go-live check"),
    "training": ("Power-user training", "New-hire training", "Admin training"),
    "chat": ("Chat: permissions question", "Chat: export question", "Chat: SSO set-up"),
    "campaign": ("Newsletter: what's new", "Webinar invitation", "Feature adoption campaign", "Customer survey"),
}
NEGATIVE_SUBJECTS = (
    "Escalation: reporting delays",
    "Concerns about adoption",
    "Budget review with finance",
    "Complaint about performance",
    "Renewal concerns",
    "Champion left the company",
)
TOUCH_NOTES = {
    1: (
        "{name} is happy with the progress; the team uses the dashboards every week.",
        "{name} wants to roll the product out to another team.",
        "Good session. {name} asked about the analytics add-on.",
        "Adoption is up since the last training; {name} shared positive feedback.",
    ),
    0: (
        "Walked {name} through the latest release.",
        "Answered questions from {name} about permissions and exports.",
        "{name} confirmed the agreed next steps.",
        "Reviewed the usage numbers with {name}; no blockers.",
    ),
    -1: (
        "{name} says the team hardly uses the product; the budget is under review.",
        "{name} raised concerns about performance and support response times.",
        "{name} mentioned they are evaluating a competitor.",
        "Low attendance. {name} says priorities shifted this quarter.",
    ),
}
CAMPAIGN_NOTE = "Sent to the account's contacts by the lifecycle programme."
NEXT_STEPS = (
    "Send the usage report",
    "Schedule admin training",
    "Share the product roadmap",
    "Book the next QBR",
    "Introduce the solutions engineer",
    "Follow up on the open support ticket",
    "Send the renewal quote",
    "Review the success plan targets",
)


class DemoDataError(ValueError):
    """The demo data cannot be made as asked (bad size, missing configuration)."""


# --- small helpers ------------------------------------------------------------------------------


def _rng(seed: int, number: int, stage: str) -> random.Random:
    """A generator private to one account and stage; string seeds hash the same in every process."""
    return random.Random(f"{seed}:{number}:{stage}")


def _weighted(rng: random.Random, choices):
    """Pick from (value, weight, ...) tuples."""
    return rng.choices(choices, weights=[c[1] for c in choices])[0]


def _add_months(day: datetime.date, months: int) -> datetime.date:
    """The same day `months` later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return datetime.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _next_anniversary(start: datetime.date, after: datetime.date) -> datetime.date:
    """The first contract anniversary of `start` strictly after `after`."""
    years = 1
    while _add_months(start, 12 * years) <= after:
        years += 1
    return _add_months(start, 12 * years)


def _anniversaries(start: datetime.date, lo: datetime.date, hi: datetime.date) -> list[datetime.date]:
    """Contract anniversaries of `start` within [lo, hi]."""
    result, years = [], 1
    while (day := _add_months(start, 12 * years)) <= hi:
        if day >= lo:
            result.append(day)
        years += 1
    return result


def _date_between(rng: random.Random, lo: datetime.date, hi: datetime.date) -> datetime.date:
    """A uniform day in [lo, hi]; `lo` when the range is empty."""
    span = (hi - lo).days
    return lo if span <= 0 else lo + datetime.timedelta(days=rng.randint(0, span))


def _spread_dates(
    rng: random.Random, lo: datetime.date, hi: datetime.date, count: int, gap: int
) -> list[datetime.date]:
    """Up to `count` sorted days in [lo, hi], each at least `gap` days from the others."""
    span = (hi - lo).days
    if span < 0:
        return []
    count = min(count, span // gap + 1)
    for _ in range(50):
        days = sorted(_date_between(rng, lo, hi) for _ in range(count))
        if all((b - a).days >= gap for a, b in zip(days, days[1:], strict=False)):
            return days
    return [_date_between(rng, lo, hi)]


def _money(amount: float, step: int = 1) -> Decimal:
    """Whole currency units rounded to `step`, as a 2-place Decimal."""
    return Decimal(max(step, int(round(amount / step)) * step)).quantize(Decimal("0.01"))


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _business_day(day: datetime.date, lo: datetime.date, hi: datetime.date) -> datetime.date:
    """Move a weekend day to the nearest weekday inside [lo, hi] (touches happen on working days)."""
    if day.weekday() < 5:
        return day
    after = day + datetime.timedelta(days=7 - day.weekday())
    before = day - datetime.timedelta(days=day.weekday() - 4)
    if after <= hi:
        return after
    return before if before >= lo else day


def _at(day: datetime.date, hour: int = 0, minute: int = 0) -> datetime.datetime:
    """An aware datetime on `day` in the current time zone."""
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=timezone.get_current_timezone())


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw for small means (Knuth); tickets per day."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@functools.cache
def _password_hash(raw: str) -> str:
    """Hash once per process: hashing is deliberately slow, and every demo CSM shares the password."""
    return make_password(raw)


def _deck(rng: random.Random, total: int, shares: tuple[tuple[str, float], ...], rest: str) -> list[str]:
    """`total` labels in fixed proportions, shuffled; every share gets at least one when there is room.

    Quotas rather than independent draws keep the mix stable, even in a 30-account test database.
    """
    deck: list[str] = []
    for label, share in shares:
        deck += [label] * max(1, round(share * total))
    deck = deck[:total]
    deck += [rest] * (total - len(deck))
    rng.shuffle(deck)
    return deck


# --- the plan of one account (pure Python, nothing written yet) ---------------------------------

# (segment, target MRR range at start, seat price range, seat share of MRR, employees range, contacts range)
SEGMENTS = {
    "enterprise": ((9_500, 30_000), (18, 30), (0.35, 0.55), (1_000, 50_000), (4, 6)),
    "mid_market": ((1_900, 7_000), (20, 35), (0.40, 0.60), (150, 3_000), (3, 5)),
    "smb": ((120, 1_350), (15, 30), (0.40, 0.65), (10, 400), (2, 3)),
}
# Shares of the enterprise and mid-market segments; the rest is SMB. They line up with the default
# tiers' ARR thresholds (100,000 and 20,000), so about 12 % land in high touch and 36 % in low touch.
SEGMENT_SHARES = (("enterprise", 0.12), ("mid_market", 0.36))
# Account fates over the history. Every fate gets at least one account when there is room, so even a
# small data set has each revenue movement: new, expansion, contraction, churn and reactivation.
FATE_SHARES = (
    ("growing", 0.28),
    ("churned", 0.12),
    ("contracting", 0.10),
    ("reactivated", 0.04),
    ("at_risk", 0.10),
)
FLAG_SHARES = (("overdue", 0.12), ("near_full", 0.10))


@dataclass
class Line:
    """A revenue line being planned: counts on day d when start <= d < end."""

    product: str
    mrr: Decimal
    quantity: int
    start: datetime.date
    end: datetime.date | None = None

    def active_on(self, day: datetime.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass
class AccountPlan:
    """Everything decided about one demo account before anything is written."""

    number: int
    external_id: str
    name: str
    domain: str
    industry: str
    region: str
    country: str
    employees: int
    owner_index: int
    pricing_model: str
    fate: str
    overdue: bool
    near_full: bool
    adoption: float
    lines: list[Line] = field(default_factory=list)
    churn_dates: list[datetime.date] = field(default_factory=list)
    churn_reasons: list[str] = field(default_factory=list)  # one per churn date
    customer_since: datetime.date | None = None
    contract_start: datetime.date | None = None
    churned_at: datetime.date | None = None
    churn_reason: str = ""
    renewal_date: datetime.date | None = None
    lifecycle_stage: str = Account.LifecycleStage.ADOPTION
    reactivated_on: datetime.date | None = None
    # Usage (and mood) decline over [decline_from, decline_to]: before a churn, or towards today when at risk.
    decline_from: datetime.date | None = None
    decline_to: datetime.date | None = None
    expansions: list[datetime.date] = field(default_factory=list)
    contractions: list[datetime.date] = field(default_factory=list)

    def mrr_on(self, day: datetime.date) -> Decimal:
        return sum((line.mrr for line in self.lines if line.active_on(day)), Decimal("0.00"))

    def seats_on(self, day: datetime.date) -> int:
        return sum(line.quantity for line in self.lines if line.product == SEATS and line.active_on(day))

    def has_product_on(self, product: str, day: datetime.date) -> bool:
        return any(line.product == product and line.active_on(day) for line in self.lines)

    def open_lines(self) -> list[Line]:
        return [line for line in self.lines if line.end is None]

    def live_periods(self) -> list[tuple[datetime.date, datetime.date | None]]:
        """[start, end) periods with MRR, end None while live: churn closes one, reactivation opens one."""
        churn = self.churn_dates[0] if self.churn_dates else None
        periods = [(self.customer_since, churn)]
        if self.reactivated_on is not None:
            periods.append((self.reactivated_on, None))
        return periods

    def declining_on(self, day: datetime.date) -> bool:
        return self.decline_from is not None and self.decline_from <= day <= self.decline_to


@dataclass
class SeedContext:
    """Shared inputs of one seeding run."""

    seed: int
    today: datetime.date
    total: int
    tiers: list[Tier]
    csms: list
    segments: list[str]
    fates: list[str]
    flags: list[str]
    templates: list[PlanTemplate] = field(default_factory=list)  # the active playbooks
    used_names: set[str] = field(default_factory=set)

    @property
    def history_start(self) -> datetime.date:
        return _add_months(self.today, -HISTORY_MONTHS)

    def external_id(self, number: int) -> str:
        return f"demo-{number:0{max(5, len(str(self.total)))}d}"


def _account_name(rng: random.Random, industry: str, cities: tuple[str, ...], used: set[str]) -> str:
    """A name not used yet: stem + industry word, then with a city, then numbered."""
    suffixes = INDUSTRIES[industry]
    for _ in range(4):
        name = f"{rng.choice(NAME_STEMS)} {rng.choice(suffixes)}"
        if name not in used:
            break
    else:
        name = f"{name} {rng.choice(cities)}"
        number = 2
        base = name
        while name in used:
            name, number = f"{base} {number}", number + 1
    used.add(name)
    return name


def _plan_account(number: int, ctx: SeedContext) -> AccountPlan:
    """Decide who the account is and how its revenue moved over the history."""
    rng = _rng(ctx.seed, number, "account")
    segment, fate, flag = ctx.segments[number - 1], ctx.fates[number - 1], ctx.flags[number - 1]
    industry = rng.choice(tuple(INDUSTRIES))
    region, _weight, countries = _weighted(rng, REGIONS)
    country, _weight, tld, cities = _weighted(rng, countries)
    name = _account_name(rng, industry, cities, ctx.used_names)
    mrr_range, seat_price_range, seat_share_range, employee_range, _contacts = SEGMENTS[segment]
    adoption = rng.uniform(0.4, 0.85)
    if fate in ("contracting", "at_risk"):
        adoption = rng.uniform(0.3, 0.6)
    if flag == "near_full":
        adoption = rng.uniform(0.92, 1.0)
    plan = AccountPlan(
        number=number,
        external_id=ctx.external_id(number),
        name=name,
        domain=f"{''.join(ch for ch in name.lower() if ch.isalnum())}.{tld}",
        industry=industry,
        region=region,
        country=country,
        employees=int(_log_uniform(rng, *employee_range)),
        owner_index=rng.randrange(len(ctx.csms)),
        pricing_model=_weighted(
            rng,
            (
                (Account.PricingModel.SUBSCRIPTION, 65),
                (Account.PricingModel.HYBRID, 25),
                (Account.PricingModel.USAGE, 10),
            ),
        )[0],
        fate=fate,
        overdue=flag == "overdue",
        near_full=flag == "near_full",
        adoption=adoption,
    )
    today, history_start = ctx.today, ctx.history_start
    days = datetime.timedelta

    # When the account started, and when it churned (and came back).
    churn: datetime.date | None = None
    comeback: datetime.date | None = None
    if fate == "churned":
        start = _date_between(rng, history_start - days(365), today - days(120))
        candidates = _anniversaries(start, max(history_start + days(15), start + days(60)), today - days(3))
        if candidates and rng.random() < 0.65:
            churn = rng.choice(candidates)  # most customers leave when the contract ends
        else:
            churn = _date_between(rng, max(start + days(75), history_start + days(15)), today - days(3))
    elif fate == "reactivated":
        start = _date_between(rng, history_start - days(300), today - days(420))
        churn = _date_between(rng, max(start + days(90), history_start + days(15)), today - days(200))
        comeback = min(churn + days(rng.randint(45, 150)), today - days(40))
    elif fate == "at_risk":
        # Renewal coming up soon: the start is a whole number of years before it.
        renewal = today + days(rng.randint(20, 150))
        start = _add_months(renewal, -12 * rng.choice((1, 1, 2, 3)))
    elif fate in ("growing", "contracting"):
        start = _date_between(rng, history_start - days(400), today - days(200))
    else:
        pick = rng.random()
        if pick < 0.3:
            start = _date_between(rng, today - days(180), today - days(10))
        elif pick < 0.55:
            start = _date_between(rng, history_start - days(540), history_start - days(1))
        else:
            start = _date_between(rng, history_start, today - days(181))

    # The opening deal: platform fee plus seats, sometimes add-ons; growing accounts start smaller.
    target_mrr = _log_uniform(rng, *mrr_range) * (0.8 if fate == "growing" else 1.0)
    seat_price = rng.randint(*seat_price_range)
    seats = max(3, round(target_mrr * rng.uniform(*seat_share_range) / seat_price))
    plan.lines = [
        Line(PLATFORM, _money(max(50.0, target_mrr - seats * seat_price), 10), 1, start),
        Line(SEATS, _money(seats * seat_price), seats, start),
    ]
    if plan.pricing_model != Account.PricingModel.SUBSCRIPTION:
        blocks = max(1, round(target_mrr * 0.2 / 40))
        plan.lines.append(Line(API_ACCESS, _money(blocks * 40), blocks, start))
    add_on_odds = {"enterprise": (0.3, 0.6), "mid_market": (0.25, 0.15), "smb": (0.1, 0.0)}[segment]
    if rng.random() < add_on_odds[0]:
        plan.lines.append(Line(ANALYTICS, _money(target_mrr * 0.15, 10), 1, start))
    if rng.random() < add_on_odds[1]:
        plan.lines.append(Line(PREMIUM_SUPPORT, _money(target_mrr * 0.1, 10), 1, start))

    # Movements between the start and the churn (or today), at least 35 days apart.
    movement_lo = max(start + days(45), history_start + days(10))
    movement_hi = (churn - days(35)) if churn else today - days(1)
    movements: list[tuple[datetime.date, str]] = []
    if fate == "growing":
        for day in _spread_dates(rng, movement_lo, movement_hi, rng.randint(1, 3), 40):
            movements.append((day, rng.choice(("seats_up", "seats_up", "cross_sell"))))
    elif fate == "contracting":
        days_ = _spread_dates(rng, movement_lo, movement_hi, 2 if rng.random() < 0.4 else 1, 40)
        movements += [(day, "seats_up") for day in days_[:-1]] + [(day, "contract") for day in days_[-1:]]
    elif fate == "at_risk" and rng.random() < 0.5:
        movements.append((_date_between(rng, max(movement_lo, today - days(240)), movement_hi), "contract"))
    elif fate in ("churned", "reactivated") and rng.random() < 0.4 and movement_hi > movement_lo:
        movements.append((_date_between(rng, movement_lo, movement_hi), rng.choice(("seats_up", "contract"))))
    uplift_odds = {"growing": 0.7, "steady": 0.5}.get(fate, 0.25)
    for day in _anniversaries(start, movement_lo, movement_hi):
        if rng.random() < uplift_odds and all(abs((day - other).days) >= 35 for other, _kind in movements):
            movements.append((day, "uplift"))
    for day, kind in sorted(movements):
        _apply_movement(plan, rng, kind, day)

    if churn is not None:
        for line in plan.open_lines():
            line.end = churn
        plan.churn_dates.append(churn)
        plan.decline_from, plan.decline_to = churn - days(rng.randint(60, 120)), churn
    if comeback is not None:
        last_seats = next(line for line in reversed(plan.lines) if line.product == SEATS)
        last_platform = next(line for line in reversed(plan.lines) if line.product == PLATFORM)
        seats = max(2, round(last_seats.quantity * rng.uniform(0.6, 0.9)))
        per_seat = last_seats.mrr / last_seats.quantity
        plan.lines += [
            Line(PLATFORM, _money(float(last_platform.mrr) * 0.8, 10), 1, comeback),
            Line(SEATS, _money(float(per_seat) * seats), seats, comeback),
        ]
    if fate == "at_risk":
        plan.decline_from, plan.decline_to = today - days(rng.randint(50, 100)), today

    plan.customer_since = start
    plan.reactivated_on = comeback
    plan.contract_start = comeback or start
    if churn is not None and comeback is None:
        plan.churned_at = churn
        plan.churn_reason = _weighted(rng, CHURN_REASONS)[0]
        plan.churn_reasons.append(plan.churn_reason)
        plan.lifecycle_stage = Account.LifecycleStage.CHURNED
    else:
        if churn is not None:  # the churn the account came back from keeps its own reason
            plan.churn_reasons.append(_weighted(_rng(ctx.seed, number, "churn"), CHURN_REASONS)[0])
        plan.renewal_date = _next_anniversary(plan.contract_start, today)
        plan.lifecycle_stage = _lifecycle_stage(plan, today)
    return plan


def _apply_movement(plan: AccountPlan, rng: random.Random, kind: str, on: datetime.date) -> None:
    """Change the open lines on `on`: a change ends a line and starts its successor the same day."""
    open_lines = plan.open_lines()
    by_product = {line.product: line for line in open_lines}
    seats = by_product[SEATS]
    if kind == "cross_sell":
        missing = [product for product in ADD_ONS if product not in by_product]
        if missing:
            base = float(by_product[PLATFORM].mrr + seats.mrr)
            product = rng.choice(missing)
            quantity = max(1, round(base * 0.2 / 40)) if product == API_ACCESS else 1
            mrr = _money(quantity * 40) if product == API_ACCESS else _money(base * rng.uniform(0.1, 0.2), 10)
            plan.lines.append(Line(product, mrr, quantity, on))
            plan.expansions.append(on)
            return
        kind = "seats_up"
    if kind == "seats_up":
        quantity = seats.quantity + max(1, round(seats.quantity * rng.uniform(0.1, 0.4)))
        _change(plan, seats, on, seats.mrr / seats.quantity * quantity, quantity)
        plan.expansions.append(on)
    elif kind == "uplift":
        platform = by_product[PLATFORM]
        _change(plan, platform, on, Decimal(float(platform.mrr) * rng.uniform(1.03, 1.08)), 1)
        plan.expansions.append(on)
    elif kind == "contract":
        options = ["downgrade"]
        if seats.quantity >= 4:
            options.append("seats_down")
        add_ons = [line for line in open_lines if line.product in ADD_ONS]
        if add_ons:
            options.append("drop_add_on")
        choice = rng.choice(options)
        if choice == "seats_down":
            quantity = max(1, min(seats.quantity - 1, round(seats.quantity * rng.uniform(0.65, 0.9))))
            _change(plan, seats, on, seats.mrr / seats.quantity * quantity, quantity)
        elif choice == "drop_add_on":
            rng.choice(add_ons).end = on
        else:
            platform = by_product[PLATFORM]
            _change(plan, platform, on, Decimal(float(platform.mrr) * rng.uniform(0.6, 0.8)), 1)
        plan.contractions.append(on)


def _change(plan: AccountPlan, line: Line, on: datetime.date, mrr: Decimal, quantity: int) -> None:
    line.end = on
    plan.lines.append(Line(line.product, _money(float(mrr)), quantity, on))


def _lifecycle_stage(plan: AccountPlan, today: datetime.date) -> str:
    if (today - plan.contract_start).days <= 90:
        return Account.LifecycleStage.ONBOARDING
    if plan.renewal_date and (plan.renewal_date - today).days <= 90:
        return Account.LifecycleStage.RENEWAL
    if plan.near_full or any((today - day).days <= 180 for day in plan.expansions):
        return Account.LifecycleStage.EXPANSION
    return Account.LifecycleStage.ADOPTION


def _tier_for(arr: Decimal, tiers: list[Tier]) -> tuple[Tier, str]:
    """The tier the tier rule picks, with its reason; below every minimum, the least attentive tier."""
    tier = tier_for_arr(arr, tiers)
    if tier is None:
        return tiers[-1], f"ARR {arr:,.2f} is below every tier minimum; {tiers[-1].name} is the fallback"
    return tier, tier_rule_reason(arr, tier, tiers)


# --- touches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactRef:
    pk: int
    role: str
    first_name: str


def _touch_style(tier: Tier, tiers: list[Tier]) -> str:
    position = tiers.index(tier)
    if position == 0 and len(tiers) > 1:
        return "high"
    return "tech" if position == len(tiers) - 1 else "low"


def _plan_touches(
    plan: AccountPlan,
    tier: Tier,
    style: str,
    contacts: list[ContactRef],
    ctx: SeedContext,
) -> list[tuple[dict, list[int]]]:
    """Touches of the last year at the tier's cadence, with jitter; overdue accounts stop early."""
    rng = _rng(ctx.seed, plan.number, "touches")
    today, days = ctx.today, datetime.timedelta
    window_lo = today - days(TOUCH_DAYS)
    cadence = tier.touch_cadence_days
    touches: list[tuple[dict, list[int]]] = []
    for period_start, period_end in plan.live_periods():
        lo = max(period_start, window_lo)
        hi = min((period_end - days(1)) if period_end else today, today - days(1))
        if hi < lo:
            continue
        stop = hi
        if period_end is None and plan.overdue:
            stop = today - days(int(cadence * rng.uniform(1.3, 2.2)))
        schedule: list[tuple[datetime.date, str]] = []
        day = lo
        if period_start >= window_lo:
            # Onboarding in the first month of a contract.
            for offset, kind in ((rng.randint(1, 3), "onboarding"), (rng.randint(8, 14), "onboarding")):
                schedule.append((period_start + days(offset), kind))
            if style != "tech":
                schedule.append((period_start + days(rng.randint(20, 30)), "training"))
            day = schedule[-1][0]
        else:
            day = lo + days(rng.randint(0, max(1, cadence // 2)))
        qbr_every = tier.qbr_cadence_days
        next_qbr = (lo + days(int(qbr_every * rng.uniform(0.3, 1.0)))) if qbr_every else None
        while True:
            day += days(max(2, round(cadence * rng.uniform(0.45, 0.95))))
            if day > stop:
                break
            if next_qbr is not None and day >= next_qbr:
                schedule.append((day, "qbr"))
                next_qbr = day + days(int(qbr_every * rng.uniform(0.9, 1.1)))
            else:
                schedule.append((day, _weighted(rng, TOUCH_KIND_WEIGHTS[style])[0]))
        for day, kind in schedule:
            if day > min(stop, hi) and kind != "onboarding":
                continue
            if day > hi:
                continue
            touches.append(_touch(plan, rng, kind, _business_day(day, lo, hi), contacts, tier))
    return touches


def _touch(
    plan: AccountPlan,
    rng: random.Random,
    kind: str,
    day: datetime.date,
    contacts: list[ContactRef],
    tier: Tier,
) -> tuple[dict, list[int]]:
    # The mood sours ahead of a churn, while usage declines, and around a contraction.
    troubled = any(churn - datetime.timedelta(days=120) <= day < churn for churn in plan.churn_dates)
    troubled = troubled or plan.declining_on(day + datetime.timedelta(days=30))
    troubled = troubled or any(abs((day - other).days) <= 45 for other in plan.contractions)
    one_way = kind == "campaign" or (kind == "email" and rng.random() < 0.4)
    if one_way:
        sentiment = None
    elif troubled:
        sentiment = _weighted(rng, ((-1, 50), (0, 35), (1, 15)))[0]
    else:
        sentiment = _weighted(rng, ((-1, 8), (0, 42), (1, 50)))[0]

    primary = contacts[0]
    if kind == "campaign":
        chosen: list[ContactRef] = []
    elif kind in ("qbr", "meeting", "onboarding"):
        wanted = {"qbr": (2, 3), "meeting": (1, 2), "onboarding": (1, 2)}[kind]
        others = contacts[1:]
        if kind == "qbr":  # the people who decide on the renewal
            others = sorted(others, key=lambda c: c.role not in ("economic_buyer", "executive_sponsor"))
        chosen = [primary, *others[: rng.randint(*wanted) - 1]]
    else:
        chosen = [primary if rng.random() < 0.6 else rng.choice(contacts)]

    subject = rng.choice(TOUCH_SUBJECTS[kind])
    if sentiment == -1 and kind not in ("onboarding", "training"):
        subject = rng.choice(NEGATIVE_SUBJECTS)
    elif plan.renewal_date and 0 <= (plan.renewal_date - day).days <= tier.renewal_alert_days and kind == "call":
        subject = "Renewal planning"
    name = (chosen[0] if chosen else primary).first_name
    notes = CAMPAIGN_NOTE if kind == "campaign" else rng.choice(TOUCH_NOTES[sentiment or 0]).format(name=name)
    next_step, next_step_due = "", None
    if not one_way and rng.random() < 0.4:
        next_step = rng.choice(NEXT_STEPS)
        next_step_due = day + datetime.timedelta(days=rng.randint(5, 21))
    duration = TOUCH_DURATIONS.get(kind)
    fields = {
        "kind": kind,
        "occurred_at": _at(day, rng.randint(8, 17), rng.choice((0, 15, 30, 45))),
        "duration_minutes": rng.randint(*duration) if duration else None,
        "subject": subject,
        "notes": notes,
        "sentiment": sentiment,
        "next_step": next_step,
        "next_step_due": next_step_due,
        "source": Touch.Source.API if kind in ("chat", "campaign") else Touch.Source.WORKSPACE,
    }
    return fields, [contact.pk for contact in chosen]


# --- usage --------------------------------------------------------------------------------------


def _plan_usage(plan: AccountPlan, ctx: SeedContext) -> Iterator[tuple[str, datetime.date, int]]:
    """Daily usage over the last USAGE_DAYS days, on days the account pays for the product.

    `active_users` counts users active in the trailing 30 days, so it has no weekly rhythm (a Sunday
    does not look like an adoption collapse); `logins` and `api_calls` are daily and dip at weekends.
    """
    rng = _rng(ctx.seed, plan.number, "usage")
    today = ctx.today
    api_intensity = rng.uniform(20, 200)
    ticket_rate = min(3.0, 0.15 + plan.seats_on(plan.lines[0].start) / 600)
    for offset in range(USAGE_DAYS - 1, -1, -1):
        day = today - datetime.timedelta(days=offset)
        seats = plan.seats_on(day)
        if not seats:
            continue
        ramp = min(1.0, 0.35 + 0.65 * (day - plan.contract_start).days / 60) if day >= plan.contract_start else 1.0
        decline = 1.0
        if plan.declining_on(day):
            span = max(1, (plan.decline_to - plan.decline_from).days)
            decline = 1.0 - 0.6 * (day - plan.decline_from).days / span
        cap = seats * (1.04 if plan.near_full else 1.0)
        active = int(min(cap, round(seats * plan.adoption * ramp * decline * rng.uniform(0.97, 1.03))))
        weekday = day.weekday() < 5
        share_logging_in = rng.uniform(0.55, 0.8) * rng.uniform(1.0, 1.6) if weekday else rng.uniform(0.05, 0.15)
        logins = round(active * share_logging_in)
        yield "seats_licensed", day, seats
        yield "active_users", day, active
        yield "logins", day, logins
        if plan.has_product_on(API_ACCESS, day):
            calls = seats * api_intensity * (1.0 if weekday else 0.5) * decline * rng.uniform(0.8, 1.2)
            yield "api_calls", day, round(calls)
        tickets = _poisson(rng, ticket_rate * (2.5 if decline < 1.0 else 1.0) * (1.0 if weekday else 0.3))
        if tickets:
            yield "support_tickets", day, tickets


# --- success plans ------------------------------------------------------------------------------

# Share of live accounts, by the playbook they qualify for, that have a plan from it.
PLAN_ODDS = {"onboarding": 0.6, "adoption": 0.45, "renewal": 0.35}
ABANDON_REASONS = (
    "The customer's priorities changed this quarter.",
    "The sponsor left; the plan is to be rebuilt with the new one.",
    "Replaced by a plan agreed at the business review.",
)
BLOCKED_REASONS = (
    "Waiting for the customer's IT team.",
    "The customer's admin is on leave.",
    "Needs a budget decision from the sponsor.",
)


@dataclass(frozen=True)
class PlannedPlan:
    """A success plan one demo account gets from a playbook: when it starts and how it is created."""

    number: int
    template: PlanTemplate
    start: datetime.date
    status: str  # draft or active: what the playbook service creates


def _playbook_for(stage: str, tier: Tier, templates: list[PlanTemplate]) -> PlanTemplate | None:
    """The playbook a CSM would pick: one for the account's lifecycle stage (and its tier, or any tier),
    else one for its tier; none for a tier without one (tech touch runs on automated programmes)."""
    for template in templates:
        if template.lifecycle_stage == stage and template.tier_id in (None, tier.pk):
            return template
    return next((template for template in templates if template.tier_id == tier.pk), None)


def _plan_success_plan(plan: AccountPlan, tier: Tier, ctx: SeedContext) -> PlannedPlan | None:
    """Whether a live account has a plan from its playbook, and when it started.

    An onboarding plan starts with the contract (so finished ones record time to value), a renewal plan
    one playbook length before the renewal, any other within the last months.
    """
    template = _playbook_for(plan.lifecycle_stage, tier, ctx.templates)
    rng = _rng(ctx.seed, plan.number, "plans")
    if template is None or plan.churned_at is not None:
        return None
    kind = template.lifecycle_stage or "adoption"
    if rng.random() >= PLAN_ODDS.get(kind, PLAN_ODDS["adoption"]):
        return None
    today, days = ctx.today, datetime.timedelta
    if kind == "onboarding":
        start = plan.contract_start + days(rng.randint(0, 10))
    elif kind == "renewal" and plan.renewal_date is not None:
        start = plan.renewal_date - days(template.duration_days + rng.randint(0, 14))
    else:
        start = today - days(rng.randint(20, 200))
    start = min(max(start, plan.contract_start), today)
    recent = (today - start).days < 30
    status = SuccessPlan.Status.DRAFT if recent and rng.random() < 0.25 else SuccessPlan.Status.ACTIVE
    return PlannedPlan(plan.number, template, start, status)


@dataclass
class PlanProgress:
    """What became of one plan since it started: statuses, dates and target readings."""

    plan_status: str
    plan_reason: str = ""
    closed_at: datetime.datetime | None = None
    goals: dict[int, tuple[str, datetime.date | None, str]] = field(default_factory=dict)  # id: status, on, why
    initiatives: dict[int, tuple[str, datetime.datetime | None, str]] = field(default_factory=dict)
    targets: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)  # id: tailored baseline, target
    readings: list[Measurement] = field(default_factory=list)


def _plan_progress(
    planned: PlannedPlan,
    plan: AccountPlan,
    row: SuccessPlan,
    goals: list[Goal],
    ctx: SeedContext,
) -> PlanProgress:
    """Goals reached or not by their due dates, initiatives done or late, targets measured along the way.

    Targets that follow a usage metric are tailored to the account's seats; while the plan is open their
    readings come from usage (`targets_follow_usage`), so only closed plans get one here.
    """
    rng = _rng(ctx.seed, planned.number, f"plan:{planned.template.name}")
    today, days = ctx.today, datetime.timedelta
    start, onboarding = row.start_date, planned.template.lifecycle_stage == "onboarding"
    progress = PlanProgress(plan_status=row.status)
    statuses: list[tuple[Goal, str, datetime.date | None]] = []
    for goal in goals:
        due = goal.due_date or row.target_date or today
        if row.status == SuccessPlan.Status.DRAFT:
            status, on = Goal.Status.NOT_STARTED, None
        elif onboarding and goal.order == 0:
            # Time to value: days from the start of the contract to the first goal reached.
            reached = start + days(rng.randint(14, 150))
            status, on = (Goal.Status.ACHIEVED, reached) if reached < today else (Goal.Status.IN_PROGRESS, None)
        elif due < today and rng.random() < 0.6 and start < today - days(1):
            status, on = Goal.Status.ACHIEVED, _date_between(rng, start + days(1), min(due, today - days(1)))
        else:
            status = Goal.Status.IN_PROGRESS if start <= today - days(14) else Goal.Status.NOT_STARTED
            on = None
        statuses.append((goal, status, on))

    if statuses and all(status == Goal.Status.ACHIEVED for _goal, status, _on in statuses):
        progress.plan_status = SuccessPlan.Status.ACHIEVED
        progress.plan_reason = "Every goal reached."
        progress.closed_at = _at(max(on for _goal, _status, on in statuses), 17)
    elif row.status == SuccessPlan.Status.ACTIVE and row.target_date < today - days(30) and rng.random() < 0.25:
        progress.plan_status = SuccessPlan.Status.ABANDONED
        progress.plan_reason = rng.choice(ABANDON_REASONS)
        progress.closed_at = _at(_date_between(rng, row.target_date, today - days(1)), 16)
    closed = progress.plan_status in (SuccessPlan.Status.ACHIEVED, SuccessPlan.Status.ABANDONED)

    for goal, status, on in statuses:
        reason = ""
        if progress.plan_status == SuccessPlan.Status.ABANDONED and status != Goal.Status.ACHIEVED:
            status, reason = Goal.Status.ABANDONED, progress.plan_reason
        progress.goals[goal.pk] = (status, on, reason)
        share = {
            Goal.Status.ACHIEVED: 1.0,
            Goal.Status.IN_PROGRESS: rng.uniform(0.2, 0.8),
            Goal.Status.ABANDONED: rng.uniform(0.0, 0.3),
        }.get(status)
        for target in goal.targets.all():
            baseline, goal_value = target.baseline, target.target_value
            if target.usage_metric == "active_users":
                seats = max(2, plan.seats_on(start) or plan.seats_on(today))
                baseline = Decimal(round(seats * rng.uniform(0.2, 0.35)))
                goal_value = Decimal(max(int(baseline) + 1, round(seats * 0.85)))
                progress.targets[target.pk] = (baseline, goal_value)
            if share is None or (target.usage_metric and not closed):
                continue  # not measured yet, or read from usage
            value = Decimal(round(baseline + (goal_value - baseline) * Decimal(share)))
            if status == Goal.Status.ACHIEVED:
                when = _at(on, 9)
            else:
                when = _at(_date_between(rng, max(start, today - days(20)), today - days(1)), 9)
                when = min(when, progress.closed_at or when)
            source = TargetMeasurement.Source.USAGE if target.usage_metric else TargetMeasurement.Source.WORKSPACE
            progress.readings.append(Measurement(target.pk, value, source, when, row.owner_id))
        for initiative in goal.initiatives.all():
            progress.initiatives[initiative.pk] = _initiative_progress(rng, today, status, start, initiative)
    return progress


def _initiative_progress(
    rng: random.Random,
    today: datetime.date,
    goal_status: str,
    start: datetime.date,
    initiative: Initiative,
) -> tuple[str, datetime.datetime | None, str]:
    """(status, completed at, reason): done with a reached goal, mostly done when past due, else under way."""
    due = initiative.due_date or today
    if goal_status == Goal.Status.ACHIEVED:
        status = Initiative.Status.DONE
    elif goal_status == Goal.Status.NOT_STARTED:
        status = Initiative.Status.PLANNED
    elif goal_status == Goal.Status.ABANDONED:
        status = rng.choice((Initiative.Status.BLOCKED, Initiative.Status.PLANNED))
    elif due < today:
        # Past due: mostly done, the rest overdue (what the "overdue initiatives" lists are for).
        status = _weighted(
            rng,
            ((Initiative.Status.DONE, 55), (Initiative.Status.IN_PROGRESS, 25), (Initiative.Status.BLOCKED, 20)),
        )[0]
    else:
        status = rng.choice((Initiative.Status.PLANNED, Initiative.Status.IN_PROGRESS))
    completed_at, reason = None, ""
    if status == Initiative.Status.DONE:
        done_on = min(today - datetime.timedelta(days=1), due - datetime.timedelta(days=rng.randint(0, 7)))
        completed_at = _at(max(done_on, start), rng.randint(9, 17))
    elif status == Initiative.Status.BLOCKED:
        reason = rng.choice(BLOCKED_REASONS)
    return status, completed_at, reason


# --- writing ------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    counts: dict[str, int]
    csm_username: str
    admin_login: bool  # whether "admin" / ADMIN_PASSWORD logs in


@dataclass(frozen=True)
class Progress:
    """One finished step: a stage of a chunk (or the users/MRR stage), for progress bars and logs."""

    stage: str
    rows: int
    accounts_done: int
    accounts_total: int


def seed_step_count(accounts: int) -> int:
    """How many progress steps `demo_seed` reports for `accounts` accounts."""
    return 2 + math.ceil(accounts / CHUNK_SIZE) * len(CHUNK_STAGES)


def demo_data_exists() -> bool:
    return Account.objects.exists()


@transaction.atomic
def demo_flush() -> dict[str, int]:
    """Delete the demo-relevant data: accounts and all hanging off them, metrics, demo CSM users.

    Configuration stays: tiers, health models, alert rules, plan templates and partners. Leaves go
    first, so each DELETE is one statement instead of a collector walking millions of rows.
    """
    through = Touch.contacts.through
    deleted: dict[str, int] = {}
    for label, model in (
        ("Touch contacts", through),
        ("Target readings", TargetMeasurement),
        ("Targets", Target),
        ("Initiatives", Initiative),
        ("Goals", Goal),
        ("Success plans", SuccessPlan),
        ("Usage records", UsageRecord),
        ("Health snapshots", HealthSnapshot),
        ("Alerts", Alert),
        ("Revenue months", RevenueMonth),
        ("Tier assignments", TierAssignment),
        ("Churn events", ChurnEvent),
        ("Touches", Touch),
        ("Subscriptions", Subscription),
        ("Contacts", Contact),
        ("Accounts", Account),
    ):
        deleted[label] = model.objects.all().delete()[1].get(model._meta.label, 0)
    users = get_user_model().objects.filter(is_superuser=False, email__iendswith=f"@{DEMO_EMAIL_DOMAIN}")
    deleted["Demo CSM users"] = users.count()
    users.delete()
    return deleted


@transaction.atomic
def demo_seed(
    *,
    accounts: int,
    seed: int,
    today: datetime.date,
    on_progress: Callable[[Progress], None] | None = None,
) -> SeedResult:
    """Create the demo data set; deterministic for (accounts, seed, today). Call on an empty database."""
    if not 1 <= accounts <= MAX_ACCOUNTS:
        raise DemoDataError(f"accounts must be between 1 and {MAX_ACCOUNTS:,}.")
    if today > timezone.localdate():
        # Touches, readings and achievements are history: the services refuse them in the future.
        raise DemoDataError(f"The history cannot end in the future ({today}); give today or an earlier day.")
    tiers = list(Tier.objects.order_by("rank"))
    if not tiers:
        raise DemoDataError("No tiers are configured; run the migrations (they create the default tiers).")

    def report(stage: str, rows: int, done: int) -> None:
        counts[stage] = counts.get(stage, 0) + rows
        if on_progress is not None:
            on_progress(Progress(stage, rows, done, accounts))

    counts: dict[str, int] = {}
    users_before = get_user_model().objects.count()
    csms, admin_login = _create_users(seed, accounts)
    report("Users", get_user_model().objects.count() - users_before, 0)
    deck_rng = random.Random(f"{seed}:decks")
    ctx = SeedContext(
        seed=seed,
        today=today,
        total=accounts,
        tiers=tiers,
        csms=csms,
        segments=_deck(deck_rng, accounts, SEGMENT_SHARES, "smb"),
        fates=_deck(deck_rng, accounts, FATE_SHARES, "steady"),
        flags=_deck(deck_rng, accounts, FLAG_SHARES, ""),
        templates=list(PlanTemplate.objects.filter(is_active=True).order_by("name")),
    )
    # The services ask for a recompute of the accounts they change, as of the real today; the demo's
    # metrics are recomputed as of its own day by `recompute_metrics` (which `dev.py run` calls next).
    with _large_sqlite_cache(), recompute_batch(queue=False):
        for first in range(1, accounts + 1, CHUNK_SIZE):
            numbers = range(first, min(first + CHUNK_SIZE, accounts + 1))
            _write_chunk([_plan_account(number, ctx) for number in numbers], ctx, report)
    report("MRR", account_mrr_refresh(on=today), accounts)
    return SeedResult(counts=counts, csm_username=csms[0].username, admin_login=admin_login)


@contextlib.contextmanager
def _large_sqlite_cache(kibibytes: int = 256 * 1024) -> Iterator[None]:
    """On SQLite, give the connection a larger page cache while seeding, then restore it.

    The usage table has six indexes; once they outgrow SQLite's default 2 MB cache, each insert
    goes back to the file for index pages. Pages are only allocated as they are used.
    """
    connection = connections[router.db_for_write(UsageRecord)]
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        previous = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = -{int(kibibytes)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(previous)}")


def _create_users(seed: int, accounts: int) -> tuple[list, bool]:
    """The demo admin and one staff CSM per ~40 accounts; returns them and whether admin/admin logs in.

    An existing `admin` user is left as it is (its password may be someone's own).
    """
    User = get_user_model()
    admin = User.objects.filter(username=ADMIN_USERNAME).first()
    if admin is None:
        User.objects.create(
            username=ADMIN_USERNAME,
            email=f"{ADMIN_USERNAME}@{DEMO_EMAIL_DOMAIN}",
            first_name="Demo",
            last_name="Admin",
            is_staff=True,
            is_superuser=True,
            password=_password_hash(ADMIN_PASSWORD),
        )
        admin_login = True
    else:
        admin_login = admin.is_active and admin.is_staff and admin.check_password(ADMIN_PASSWORD)
    rng = random.Random(f"{seed}:users")
    wanted = max(MIN_CSMS, round(accounts / ACCOUNTS_PER_CSM))
    people: list[tuple[str, str, str]] = []
    taken = {ADMIN_USERNAME}
    while len(people) < wanted:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username, number = f"{first}.{last}".lower(), 2
        while username in taken:
            username, number = f"{first}.{last}{number}".lower(), number + 1
        taken.add(username)
        people.append((username, first, last))
    password = _password_hash(CSM_PASSWORD)
    # An existing user with a demo username is reused rather than duplicated.
    User.objects.bulk_create(
        [
            User(
                username=username,
                first_name=first,
                last_name=last,
                email=f"{username}@{DEMO_EMAIL_DOMAIN}",
                is_staff=True,
                password=password,
            )
            for username, first, last in people
        ],
        batch_size=BATCH_SIZE,
        ignore_conflicts=True,
    )
    by_username = User.objects.in_bulk([username for username, _first, _last in people], field_name="username")
    # The demo CSMs work in the workspace with the CSM role.
    csm_group = Group.objects.get(name=CSM_GROUP)
    User.groups.through.objects.bulk_create(
        [User.groups.through(user_id=user.pk, group_id=csm_group.pk) for user in by_username.values()],
        ignore_conflicts=True,
    )
    return [by_username[username] for username, _first, _last in people], admin_login


def _write_chunk(plans: list[AccountPlan], ctx: SeedContext, report: Callable[[str, int, int], None]) -> None:
    """Write one chunk of planned accounts and everything hanging off them, stage by stage."""
    today = ctx.today
    done = plans[-1].number
    now = timezone.now()  # one creation time for the chunk, instead of a clock read per row

    # Tier: from ARR today, or for churned accounts ARR on their last paying day.
    tiers: list[tuple[Tier, str, Decimal]] = []
    for plan in plans:
        on = plan.churned_at - datetime.timedelta(days=1) if plan.churned_at else today
        arr = plan.mrr_on(on) * 12
        tier, reason = _tier_for(arr, ctx.tiers)
        if plan.churned_at:
            reason = f"At churn: {reason}"
        tiers.append((tier, reason, arr))

    accounts = [
        Account(
            name=plan.name,
            external_id=plan.external_id,
            domain=plan.domain,
            industry=plan.industry,
            region=plan.region,
            country=plan.country,
            employees=plan.employees,
            owner=ctx.csms[plan.owner_index],
            lifecycle_stage=plan.lifecycle_stage,
            pricing_model=plan.pricing_model,
            customer_since=plan.customer_since,
            renewal_date=plan.renewal_date,
            churned_at=plan.churned_at,
            churn_reason=plan.churn_reason,
            created_at=now,
        )
        for plan in plans
    ]
    Account.objects.bulk_create(accounts, batch_size=BATCH_SIZE)
    report("Accounts", len(accounts), done)

    contacts: list[Contact] = []
    for plan, account in zip(plans, accounts, strict=True):
        contacts.extend(_contacts(plan, account, ctx, now))
    Contact.objects.bulk_create(contacts, batch_size=BATCH_SIZE)
    by_account: dict[int, list[ContactRef]] = {}
    for contact in contacts:
        by_account.setdefault(contact.account_id, []).append(
            ContactRef(contact.pk, contact.role, contact.name.split()[0])
        )
    contacts_by_account = [by_account[account.pk] for account in accounts]
    report("Contacts", len(contacts), done)

    lines = [
        Subscription(
            account=account,
            product=line.product,
            mrr=line.mrr,
            quantity=line.quantity,
            start_date=line.start,
            end_date=line.end,
            created_at=now,
        )
        for plan, account in zip(plans, accounts, strict=True)
        for line in plan.lines
    ]
    Subscription.objects.bulk_create(lines, batch_size=BATCH_SIZE)
    report("Subscriptions", len(lines), done)

    churns = churn_events_record(
        events=[
            (account.pk, day, reason)
            for plan, account in zip(plans, accounts, strict=True)
            for day, reason in zip(plan.churn_dates, plan.churn_reasons, strict=True)
        ]
    )
    report("Churn events", churns, done)

    opened = tier_assignments_open(
        assignments=[
            (account.pk, tier, _at(plan.contract_start), TierAssignment.Source.RULE, reason)
            for plan, account, (tier, reason, _arr) in zip(plans, accounts, tiers, strict=True)
        ]
    )
    report("Tier assignments", len(opened), done)

    touches: list[Touch] = []
    touch_contacts: list[list[int]] = []
    for plan, account, account_contacts, (tier, _reason, _arr) in zip(
        plans, accounts, contacts_by_account, tiers, strict=True
    ):
        for fields, contact_pks in _plan_touches(plan, tier, _touch_style(tier, ctx.tiers), account_contacts, ctx):
            touches.append(Touch(account=account, csm=account.owner, created_at=now, **fields))
            touch_contacts.append(contact_pks)
    Touch.objects.bulk_create(touches, batch_size=BATCH_SIZE)
    through = Touch.contacts.through
    through.objects.bulk_create(
        [
            through(touch_id=touch.pk, contact_id=contact_pk)
            for touch, contact_pks in zip(touches, touch_contacts, strict=True)
            for contact_pk in contact_pks
        ],
        batch_size=BATCH_SIZE,
    )
    report("Touches", len(touches), done)

    def usage_rows() -> Iterator[tuple]:
        for plan, account in zip(plans, accounts, strict=True):
            for metric, day, value in _plan_usage(plan, ctx):
                yield account.pk, metric, day, Decimal(value), now, now

    # Usage is the one table written directly rather than through `usage_records_upsert`: ~440 rows per
    # account are most of the data set, and the service's model instance and upsert per row would more
    # than double the run (measured: 44,000 rows take 3 s through it). The rows are new, whole numbers
    # in range, so there is nothing to validate or replace; what ingest derives from usage (targets that
    # follow a metric) is derived below through the same service ingest uses.
    columns = ("account", "metric", "date", "value", "created_at", "updated_at")
    usage_count = _insert_rows(UsageRecord, columns, usage_rows())
    report("Usage records", usage_count, done)

    report("Success plans", _write_success_plans(plans, accounts, [tier for tier, _r, _a in tiers], ctx), done)
    account_last_touch_refresh(account_ids=[account.pk for account in accounts])


def _insert_rows(model: type[Model], field_names: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """Insert plain value tuples in bulk: COPY on PostgreSQL, batched executemany elsewhere.

    For the one table that carries most of the volume (usage: ~440 rows per account), bulk_create's
    per-row model instances and per-field preparation would take most of the run. Values still go
    through each field's own database preparation, memoised because the same values recur.
    """
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in field_names]
    caches: list[dict] = [{} for _ in fields]

    def prepared(row: tuple) -> tuple:
        values = []
        for value, field_, cache in zip(row, fields, caches, strict=True):
            try:
                values.append(cache[value])
            except KeyError:
                values.append(cache.setdefault(value, field_.get_db_prep_save(value, connection)))
        return tuple(values)

    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(field_.column) for field_ in fields)
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        if connection.vendor == "postgresql" and hasattr(raw, "copy"):
            with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(prepared(row))
                    count += 1
            return count
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
        batch: list[tuple] = []
        for row in rows:
            batch.append(prepared(row))
            if len(batch) >= BATCH_SIZE:
                cursor.executemany(sql, batch)
                count, batch = count + len(batch), []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def _rewrite(model: type[Model], rows: list[Model], fields: list[str]) -> None:
    """Save `fields` of existing rows in one statement per batch, through the shared upsert (each row
    clashes on its id, so only `fields` change). bulk_update builds a CASE term per row and field in
    Python, which took seconds for a thousand accounts' plans."""
    columns = [(field.name, field.attname) for field in model._meta.concrete_fields]
    bulk_upsert(
        model,
        [{name: getattr(row, attname) for name, attname in columns} for row in rows],
        unique_fields=["id"],
        update_fields=fields,
    )


def _contacts(plan: AccountPlan, account: Account, ctx: SeedContext, now: datetime.datetime) -> list[Contact]:
    """2–6 people; the first is the champion and the primary contact, the second the economic buyer."""
    rng = _rng(ctx.seed, plan.number, "contacts")
    segment = ctx.segments[plan.number - 1]
    count = rng.randint(*SEGMENTS[segment][4])
    roles = [Contact.Role.CHAMPION, Contact.Role.ECONOMIC_BUYER]
    others = [Contact.Role.EXECUTIVE_SPONSOR, Contact.Role.ADMIN, Contact.Role.USER, Contact.Role.USER]
    roles += rng.sample(others, count - 2)
    people, names = [], set()
    for role in roles:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        while f"{first} {last}" in names:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        names.add(f"{first} {last}")
        people.append(
            Contact(
                account=account,
                name=f"{first} {last}",
                email=f"{first}.{last}@{plan.domain}".lower(),
                title=rng.choice(ROLE_TITLES[role]),
                role=role,
                is_primary=role == Contact.Role.CHAMPION,
                created_at=now,
            )
        )
    return people


def _write_success_plans(
    plans: list[AccountPlan],
    accounts: list[Account],
    tiers: list[Tier],
    ctx: SeedContext,
) -> int:
    """Plans from the playbooks through the playbook service, then what became of them since they started.

    Statuses, achievement dates and tailored target values are the CSM's own records and are written in
    bulk; readings go through the measurement service, and targets that follow usage read it as ingest
    does. Returns the number of plans.
    """
    by_number = {plan.number: (plan, account) for plan, account in zip(plans, accounts, strict=True)}
    groups: dict[tuple[str, str], list[PlannedPlan]] = {}
    for plan, tier in zip(plans, tiers, strict=True):
        planned = _plan_success_plan(plan, tier, ctx)
        if planned is not None:
            groups.setdefault((planned.template.name, planned.status), []).append(planned)
    created: dict[int, SuccessPlan] = {}  # account number -> plan
    for (_name, status), group in sorted(groups.items()):
        chosen = [by_number[planned.number][1] for planned in group]
        applied = plans_apply_template(
            template=group[0].template,
            accounts=chosen,
            start_dates={by_number[planned.number][1].pk: planned.start for planned in group},
            status=status,
        )
        numbers = {account.pk: planned.number for account, planned in zip(chosen, group, strict=True)}
        created.update({numbers[row.account_id]: row for row in applied.created})
    if not created:
        return 0

    goals_of: dict[int, list[Goal]] = {}
    for goal in Goal.objects.filter(plan__in=list(created.values())).prefetch_related("targets", "initiatives"):
        goals_of.setdefault(goal.plan_id, []).append(goal)
    now = timezone.now()
    changed_plans: list[SuccessPlan] = []
    changed_goals: list[Goal] = []
    changed_initiatives: list[Initiative] = []
    tailored: list[Target] = []
    readings: list[Measurement] = []
    for group in groups.values():
        for planned in group:
            row = created.get(planned.number)
            if row is None:
                continue
            goals = goals_of.get(row.pk, [])
            progress = _plan_progress(planned, by_number[planned.number][0], row, goals, ctx)
            if progress.plan_status != row.status:
                row.status, row.status_reason, row.closed_at = (
                    progress.plan_status,
                    progress.plan_reason,
                    progress.closed_at,
                )
                changed_plans.append(row)
            for goal in goals:
                goal.status, goal.achieved_at, goal.status_reason = progress.goals[goal.pk]
                changed_goals.append(goal)
                for target in goal.targets.all():
                    if target.pk in progress.targets:
                        target.baseline, target.target_value = progress.targets[target.pk]
                        tailored.append(target)
                for initiative in goal.initiatives.all():
                    initiative.status, initiative.completed_at, initiative.status_reason = progress.initiatives[
                        initiative.pk
                    ]
                    changed_initiatives.append(initiative)
            readings += progress.readings
    for model, rows, fields in (
        (SuccessPlan, changed_plans, ["status", "status_reason", "closed_at"]),
        (Goal, changed_goals, ["status", "achieved_at", "status_reason"]),
        (Initiative, changed_initiatives, ["status", "completed_at", "status_reason"]),
        (Target, tailored, ["baseline", "target_value"]),
    ):
        for row in rows:
            row.updated_at = now
        _rewrite(model, rows, [*fields, "updated_at"])
    targets_measure_bulk(measurements=readings)
    targets_follow_usage(account_ids=[row.account_id for row in created.values()], on=ctx.today)
    return len(created)
