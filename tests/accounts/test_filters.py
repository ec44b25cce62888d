"""AccountFilterSet: each filter and some combinations against accounts picked by hand, search, sorting."""

import datetime
from decimal import Decimal

import pytest
from django.http import QueryDict
from django.utils import timezone

from accounts.filters import AccountFilterSet
from accounts.models import Account
from accounts.selectors import account_list
from csm.exceptions import DomainError
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(csm_user, other_csm):
    """Four live accounts and a deleted one, with the values each filter looks at chosen by hand."""
    today = timezone.localdate()
    now = timezone.now()
    acme = factories.AccountFactory(
        name="Acme Analytics",
        domain="acme.io",
        external_id="EXT-1",
        tier=factories.default_tier("high-touch"),
        health_band="red",
        health_score=Decimal("30.0"),
        owner=csm_user,
        lifecycle_stage="adoption",
        industry="Software",
        region="EMEA",
        renewal_date=today + datetime.timedelta(days=20),
        mrr=Decimal("1000.00"),
        last_touch_at=now - datetime.timedelta(days=5),
    )
    birch = factories.AccountFactory(
        name="Birch Bank",
        domain="birch.example",
        external_id="EXT-2",
        tier=factories.default_tier("low-touch"),
        health_band="green",
        health_score=Decimal("85.0"),
        owner=other_csm,
        lifecycle_stage="renewal",
        industry="Finance",
        region="North America",
        renewal_date=today + datetime.timedelta(days=75),
        mrr=Decimal("5000.00"),
        last_touch_at=now - datetime.timedelta(days=1),
    )
    cedar = factories.AccountFactory(
        name="Cedar Clinic",
        domain="cedar-health.org",
        external_id="EXT-3",
        tier=factories.default_tier("tech-touch"),
        health_band="yellow",
        health_score=Decimal("55.0"),
        owner=None,
        lifecycle_stage="onboarding",
        industry="Healthcare",
        region="EMEA",
        renewal_date=today + datetime.timedelta(days=150),
        mrr=Decimal("200.00"),
        last_touch_at=None,
    )
    delta = factories.AccountFactory(
        name="Delta Devices",
        domain="delta.io",
        external_id="acme-legacy",
        tier=None,
        health_band="",
        health_score=None,
        owner=csm_user,
        lifecycle_stage="expansion",
        industry="Software",
        region="APAC",
        renewal_date=None,
        mrr=Decimal("0.00"),
        last_touch_at=now - datetime.timedelta(days=10),
    )
    factories.AccountFactory(
        name="Acme Old",
        domain="acme-old.io",
        tier=factories.default_tier("high-touch"),
        health_band="red",
        health_score=Decimal("10.0"),
        owner=csm_user,
        industry="Software",
        region="EMEA",
        renewal_date=today + datetime.timedelta(days=10),
        deleted_at=now,
    )
    return {"acme": acme, "birch": birch, "cedar": cedar, "delta": delta}


def names(filters: dict, user=None) -> list[str]:
    return list(account_list(filters=filters, user=user).values_list("name", flat=True))


def test_no_filter_lists_live_accounts_by_name(book, csm_user):
    assert names({}, csm_user) == ["Acme Analytics", "Birch Bank", "Cedar Clinic", "Delta Devices"]


def test_a_filterset_given_every_account_still_lists_only_live_ones(book):
    filterset = AccountFilterSet(QueryDict(""), Account.objects.all())
    assert list(filterset.qs.values_list("name", flat=True)) == [
        "Acme Analytics",
        "Birch Bank",
        "Cedar Clinic",
        "Delta Devices",
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"tier": "high-touch"}, ["Acme Analytics"]),
        ({"tier": "tech-touch"}, ["Cedar Clinic"]),
        ({"tier": "none"}, ["Delta Devices"]),
        ({"health_band": "red"}, ["Acme Analytics"]),
        ({"health_band": "green"}, ["Birch Bank"]),
        ({"health_band": "none"}, ["Delta Devices"]),
        ({"owner": "none"}, ["Cedar Clinic"]),
        ({"lifecycle_stage": "renewal"}, ["Birch Bank"]),
        ({"industry": "Software"}, ["Acme Analytics", "Delta Devices"]),
        ({"region": "EMEA"}, ["Acme Analytics", "Cedar Clinic"]),
        ({"renewal_within": "30"}, ["Acme Analytics"]),
        ({"renewal_within": "60"}, ["Acme Analytics"]),
        ({"renewal_within": "90"}, ["Acme Analytics", "Birch Bank"]),
        ({"renewal_within": "180"}, ["Acme Analytics", "Birch Bank", "Cedar Clinic"]),
        ({"renewal_after": "+30", "renewal_before": "+160"}, ["Birch Bank", "Cedar Clinic"]),
        ({"renewal_after": "+75"}, ["Birch Bank", "Cedar Clinic"]),
        ({"renewal_before": "+75"}, ["Acme Analytics", "Birch Bank"]),
        ({"industry": "Software", "health_band": "red"}, ["Acme Analytics"]),
        ({"region": "EMEA", "owner": "none"}, ["Cedar Clinic"]),
        ({"region": "EMEA", "renewal_within": "180", "tier": "tech-touch"}, ["Cedar Clinic"]),
        ({"industry": "Finance", "region": "EMEA"}, []),
    ],
)
def test_filters(book, csm_user, filters, expected):
    today = timezone.localdate()
    for key in ("renewal_after", "renewal_before"):
        if key in filters:  # "+N": N days from today
            filters[key] = (today + datetime.timedelta(days=int(filters[key]))).isoformat()
    assert names(filters, csm_user) == expected


def test_owner_mine_and_by_id(book, csm_user, other_csm):
    assert names({"owner": "mine"}, csm_user) == ["Acme Analytics", "Delta Devices"]
    assert names({"owner": "mine"}, other_csm) == ["Birch Bank"]
    assert names({"owner": str(other_csm.pk)}, csm_user) == ["Birch Bank"]
    assert names({"owner": "mine", "region": "EMEA"}, csm_user) == ["Acme Analytics"]
    assert names({"owner": "mine", "renewal_within": "90"}, csm_user) == ["Acme Analytics"]
    assert names({"owner": "mine"}, None) == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("acme", ["Acme Analytics"]),  # name; the deleted "Acme Old" stays out
        ("ACME ANALYTICS", ["Acme Analytics"]),
        ("cedar-health", ["Cedar Clinic"]),  # domain
        (".io", ["Acme Analytics", "Delta Devices"]),
        ("EXT-2", ["Birch Bank"]),  # the exact external id
        ("acme-legacy", ["Delta Devices"]),
        ("EXT", []),  # external ids match exactly, not in part
        ("  birch  ", ["Birch Bank"]),
    ],
)
def test_search_by_name_domain_or_external_id(book, q, expected):
    assert names({"q": q}) == expected


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("name", ["acme", "birch", "cedar", "delta"]),
        ("-name", ["delta", "cedar", "birch", "acme"]),
        ("tier", ["acme", "birch", "cedar", "delta"]),  # ranks 1, 2, 3, then no tier
        ("-tier", ["cedar", "birch", "acme", "delta"]),
        ("owner", ["acme", "delta", "birch", "cedar"]),  # Priya, Priya, Sam, then unowned
        ("-owner", ["birch", "acme", "delta", "cedar"]),
        ("health", ["acme", "cedar", "birch", "delta"]),  # 30, 55, 85, then no score
        ("-health", ["birch", "cedar", "acme", "delta"]),
        ("arr", ["delta", "cedar", "acme", "birch"]),  # 0, 200, 1000, 5000 a month
        ("-arr", ["birch", "acme", "cedar", "delta"]),
        ("last_touch", ["delta", "acme", "birch", "cedar"]),  # 10, 5, 1 days ago, then never
        ("-last_touch", ["birch", "acme", "delta", "cedar"]),
        ("renewal", ["acme", "birch", "cedar", "delta"]),  # in 20, 75, 150 days, then none
        ("-renewal", ["cedar", "birch", "acme", "delta"]),
    ],
)
def test_sorting_both_ways_with_empty_values_last(book, ordering, expected):
    ids = list(account_list(filters={"ordering": ordering}).values_list("pk", flat=True))
    assert ids == [book[key].pk for key in expected]


def test_bad_values_are_form_errors(book):
    filters = {
        "tier": "platinum",
        "health_band": "purple",
        "owner": "somebody",
        "lifecycle_stage": "asleep",
        "renewal_within": "7",
        "renewal_after": "2026-13-01",
        "ordering": "password",
        "industry": "Mining",
    }
    filterset = AccountFilterSet(filters)
    assert not filterset.is_valid()
    assert set(filterset.errors) == set(filters)
    with pytest.raises(DomainError) as refused:
        account_list(filters=filters)
    assert set(refused.value.message_dict) == set(filters)


def test_an_unknown_user_id_is_valid_and_lists_nothing(book):
    assert names({"owner": "999999"}) == []


def test_choices_come_from_the_data(book, csm_user, other_csm, outsider):
    form = AccountFilterSet(QueryDict(""), user=csm_user).form
    assert [value for value, _label in form.fields["industry"].choices] == ["", "Finance", "Healthcare", "Software"]
    assert [value for value, _label in form.fields["region"].choices] == ["", "APAC", "EMEA", "North America"]
    assert not hasattr(form.fields["owner"], "choices")  # people are suggested as one types, never all listed
    assert [value for value, _label in form.fields["tier"].choices] == [
        "",
        "none",
        "high-touch",
        "low-touch",
        "tech-touch",
    ]


# --- the owner typed by name ----------------------------------------------------------------------


def test_owner_typed_as_a_user_name_or_full_name_any_case(book, csm_user, other_csm):
    for typed in ("sam", "SAM", " Sam Ito ", "sam ito", str(other_csm.pk)):
        assert names({"owner": typed}, csm_user) == ["Birch Bank"], typed
    assert names({"owner": "Priya Khan", "region": "EMEA"}, other_csm) == ["Acme Analytics"]


def test_owner_matching_nobody_or_several_people_is_a_form_error_naming_it(book, csm_user, outsider):
    factories.csm_user(username="sam2", first_name="Sam", last_name="Ito")
    for typed, message in (
        ("somebody", "No one in the workspace is called “somebody”."),
        ("olga", "No one in the workspace is called “olga”."),  # no workspace role and no account
        ("Sam Ito", "Several people are called “Sam Ito”: type a user name."),
    ):
        filterset = AccountFilterSet({"owner": typed}, user=csm_user)
        assert not filterset.is_valid()
        assert filterset.errors["owner"] == [message]
    # The user name still tells the two apart.
    assert names({"owner": "sam2"}, csm_user) == []


def test_an_owner_without_a_role_is_found_while_they_own_a_live_account(book, outsider):
    factories.AccountFactory(name="Olga's", owner=outsider)
    assert names({"owner": "olga"}) == ["Olga's"]


def test_owner_suggestions_start_with_the_typed_text_by_name_and_are_few(book, csm_user, other_csm, outsider):
    from accounts.selectors import owner_suggestions

    for number in range(12):
        factories.csm_user(username=f"pat{number:02d}", first_name="Pat", last_name=f"Lee {number:02d}")
    factories.UserFactory(username="patrick", first_name="Patrick")  # no role, no account: never offered

    def offered(text: str, **options) -> list[str]:
        return [user.username for user in owner_suggestions(text=text, **options)]

    # First name, last name, user name or full name, case ignored; ordered by name; ten at most.
    assert offered("pat") == [f"pat{number:02d}" for number in range(10)]
    assert offered("PAT LEE 1", limit=20) == ["pat10", "pat11"]
    assert offered("ito") == ["sam"]
    assert offered("pri") == ["priya"]
    assert offered("ol") == []  # olga has neither a role nor an account
    assert offered("") == offered("   ") == offered("x" * 151) == []
