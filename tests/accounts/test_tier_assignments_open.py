"""`tier_assignments_open`: the bulk path that writes tier history, shared by the tier rules and the demo data."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, TierAssignment
from accounts.services import tier_assignments_open
from csm.exceptions import DomainError
from tests import factories
from tests.factories import default_tier

pytestmark = pytest.mark.django_db

RULE, MANUAL = TierAssignment.Source.RULE, TierAssignment.Source.MANUAL
JAN = datetime.datetime(2026, 1, 1, 9, tzinfo=datetime.UTC)
FEB = datetime.datetime(2026, 2, 1, 9, tzinfo=datetime.UTC)


def bare_account(**fields) -> Account:
    """An account with no tier and no tier history."""
    return factories.AccountFactory(tier=None, **fields)


def history(account: Account) -> list[tuple]:
    return list(
        TierAssignment.objects.filter(account=account)
        .order_by("started_at")
        .values_list("tier__slug", "started_at", "ended_at", "source", "reason")
    )


def test_opens_a_first_assignment_per_account_at_its_own_time_and_sets_the_tier():
    first, second = bare_account(), bare_account()

    opened = tier_assignments_open(
        assignments=[
            (first.pk, default_tier("high-touch"), JAN, RULE, "ARR meets the minimum"),
            (second.pk, default_tier("tech-touch"), FEB, MANUAL, "Set by hand"),
        ]
    )

    assert len(opened) == 2
    assert history(first) == [("high-touch", JAN, None, "rule", "ARR meets the minimum")]
    assert history(second) == [("tech-touch", FEB, None, "manual", "Set by hand")]
    assert Account.objects.get(pk=first.pk).tier.slug == "high-touch"
    assert Account.objects.get(pk=second.pk).tier.slug == "tech-touch"


def test_a_move_closes_the_open_assignment_when_the_new_one_starts():
    moving, staying = bare_account(), bare_account()
    tier_assignments_open(
        assignments=[
            (moving.pk, default_tier("tech-touch"), JAN, RULE, "first"),
            (staying.pk, default_tier("low-touch"), JAN, RULE, "first"),
        ]
    )

    opened = tier_assignments_open(
        assignments=[
            (moving.pk, default_tier("low-touch"), FEB, RULE, "second"),
            (staying.pk, default_tier("low-touch"), FEB, RULE, "second"),  # already there: nothing to record
        ]
    )

    assert [row.account_id for row in opened] == [moving.pk]
    assert history(moving) == [("tech-touch", JAN, FEB, "rule", "first"), ("low-touch", FEB, None, "rule", "second")]
    assert history(staying) == [("low-touch", JAN, None, "rule", "first")]
    assert Account.objects.get(pk=moving.pk).tier.slug == "low-touch"


def test_the_account_tier_follows_an_open_assignment_it_had_drifted_from():
    account = bare_account()
    tier_assignments_open(assignments=[(account.pk, default_tier("low-touch"), JAN, RULE, "first")])
    Account.objects.filter(pk=account.pk).update(tier=default_tier("high-touch"))

    assert tier_assignments_open(assignments=[(account.pk, default_tier("low-touch"), FEB, RULE, "again")]) == []

    assert Account.objects.get(pk=account.pk).tier.slug == "low-touch"
    assert len(history(account)) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"at": JAN - datetime.timedelta(days=1)}, "before the current tier started"),
        ({"source": "guess"}, "source"),
        ({"reason": "x" * 301}, "300"),
        ({"account_id": 0}, "no such account"),
    ],
)
def test_refuses_a_bad_row_and_writes_nothing(change, message):
    account, other = bare_account(), bare_account()
    tier_assignments_open(assignments=[(account.pk, default_tier("tech-touch"), JAN, RULE, "first")])
    row = {"account_id": account.pk, "tier": default_tier("high-touch"), "at": FEB, "source": RULE, "reason": "r"}
    row.update(change)

    with pytest.raises(DomainError, match=message):
        tier_assignments_open(
            assignments=[(other.pk, default_tier("low-touch"), FEB, RULE, "fine"), tuple(row.values())]
        )

    assert history(account) == [("tech-touch", JAN, None, "rule", "first")]
    assert history(other) == []
    assert Account.objects.get(pk=other.pk).tier is None


def test_refuses_an_account_given_twice():
    account = bare_account()

    with pytest.raises(DomainError, match="more than once"):
        tier_assignments_open(
            assignments=[
                (account.pk, default_tier("tech-touch"), JAN, RULE, "one"),
                (account.pk, default_tier("low-touch"), FEB, RULE, "two"),
            ]
        )

    assert history(account) == []


def test_query_count_does_not_grow_with_rows():
    def run(count: int) -> int:
        accounts = [bare_account() for _ in range(count)]
        tier_assignments_open(assignments=[(a.pk, default_tier("tech-touch"), JAN, RULE, "first") for a in accounts])
        moves = [
            (a.pk, default_tier(slug), FEB, RULE, "move")
            for a, slug in zip(accounts, ["low-touch", "high-touch"] * count, strict=False)
        ]
        with CaptureQueriesContext(connection) as queries:
            tier_assignments_open(assignments=moves)
        assert TierAssignment.objects.filter(account__in=accounts, ended_at=FEB).count() == count
        return len(queries)

    # Two tiers in both runs: the account tier is set with one UPDATE per target tier.
    assert run(2) == run(25)


def test_an_empty_list_does_nothing():
    with CaptureQueriesContext(connection) as queries:
        assert tier_assignments_open(assignments=[]) == []
    assert not [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
