"""Usage ingest: values are kept to 4 decimal places and must fit the column on every database."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from csm.exceptions import DomainError
from metrics.models import UsageRecord
from metrics.services.usage import usage_records_upsert
from tests import factories

pytestmark = pytest.mark.django_db

DAY = datetime.date(2026, 3, 1)


def record(account, value, day=DAY) -> dict:
    return {"account_id": account.pk, "metric": "api_calls", "date": day, "value": value}


# What each database gives back: PostgreSQL keeps all 18 digits, SQLite 15 significant ones.
ACCEPTED = [
    ("99999999999999.9", "99999999999999.9", "99999999999999.9"),  # the largest magnitude
    ("-99999999999999.9", "-99999999999999.9", "-99999999999999.9"),
    ("99999999999999.90004", "99999999999999.9", "99999999999999.9"),  # rounds down to 4 places
    ("99999999999999.8999", "99999999999999.8999", "99999999999999.9"),
    ("1.23455", "1.2346", "1.2346"),  # half away from zero, as PostgreSQL rounds
    ("-1.23455", "-1.2346", "-1.2346"),
    ("1.23445", "1.2345", "1.2345"),  # not to even: SQLite alone would have kept 1.2344
    ("0.00004", "0", "0"),
    ("12345678901234.5678", "12345678901234.5678", "12345678901234.6"),
]


@pytest.mark.parametrize(("sent", "postgresql", "sqlite"), ACCEPTED)
def test_values_that_fit_are_stored_rounded_to_4_places(sent, postgresql, sqlite):
    account = factories.AccountFactory()
    assert usage_records_upsert(records=[record(account, sent)]) == 1
    expected = Decimal(postgresql if connection.vendor == "postgresql" else sqlite)
    assert UsageRecord.objects.get().value == expected


REFUSED = [
    "99999999999999.90005",  # rounds up to .9001
    "-99999999999999.90005",
    "99999999999999.9499",  # fits PostgreSQL's column, but SQLite would read it back as 10^14
    "99999999999999.9999",
    "99999999999999.99999",  # rounds to 10^14: 15 digits before the point
    "100000000000000",
    "-100000000000000",
    "1E+30",
]


@pytest.mark.parametrize("sent", REFUSED)
def test_values_that_do_not_fit_are_refused_per_record(sent):
    account = factories.AccountFactory()
    with pytest.raises(DomainError) as error:
        usage_records_upsert(records=[record(account, "5"), record(account, sent, DAY + datetime.timedelta(days=1))])
    assert error.value.message_dict == {
        "1": [
            f"value: {sent} is out of range; rounded to 4 places, it must lie between "
            "-99999999999999.9 and 99999999999999.9."
        ]
    }
    assert not UsageRecord.objects.exists()


def test_the_largest_values_show_in_the_usage_changelist(admin_client):
    account = factories.AccountFactory()
    usage_records_upsert(
        records=[
            record(account, "99999999999999.9"),
            record(account, "-99999999999999.9", DAY + datetime.timedelta(days=1)),
        ]
    )
    url = reverse("admin:metrics_usagerecord_changelist") + f"?account__id__exact={account.pk}"
    response = admin_client.get(url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2


def test_other_bad_values_are_named_per_record():
    account = factories.AccountFactory()
    with pytest.raises(DomainError) as error:
        usage_records_upsert(records=[record(account, "NaN"), record(account, "lots"), {"metric": "x y"}])
    errors = error.value.message_dict
    assert errors["0"] == errors["1"] == ["value: a finite number is required."]
    assert set(errors["2"]) == {
        "metric: a slug (letters, digits, - and _) is required.",
        "date: a date is required.",
        "value: a finite number is required.",
        "account: required.",
    }
