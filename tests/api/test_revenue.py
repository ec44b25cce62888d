"""metrics/revenue/: the stored bridge rows, the month range and segment kind, who may read it."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metrics.models import RevenueMonth
from tests import factories

URL = "/api/v1/metrics/revenue/"
FIGURES = {
    "start_mrr",
    "new_mrr",
    "reactivation_mrr",
    "expansion_mrr",
    "upsell_mrr",
    "cross_sell_mrr",
    "contraction_mrr",
    "churned_mrr",
    "end_mrr",
    "start_accounts",
    "new_accounts",
    "reactivated_accounts",
    "expanding_accounts",
    "contracting_accounts",
    "churned_accounts",
    "end_accounts",
    "grr",
    "nrr",
    "logo_churn_rate",
    "gross_revenue_churn_rate",
    "net_revenue_churn_rate",
    "quick_ratio",
    "arpa",
    "trailing_nrr",
    "trailing_grr",
}


def month(number: int) -> datetime.date:
    return datetime.date(2026, number, 1)


@pytest.fixture
def bridge(db):
    """Tier rows for January to April 2026 (two tiers) and one row over all accounts."""
    factories.RevenueMonthFactory(
        month=month(1),
        segment_kind=RevenueMonth.SegmentKind.ALL,
        start_mrr=Decimal("3000.00"),
        end_mrr=Decimal("3100.00"),
    )
    for number in range(1, 5):
        for tier in ("High touch", "Tech touch"):
            factories.RevenueMonthFactory(
                month=month(number),
                segment_kind=RevenueMonth.SegmentKind.TIER,
                segment=tier,
                start_mrr=Decimal(1000 * number),
                new_mrr=Decimal("50.00"),
                expansion_mrr=Decimal("100.00"),
                contraction_mrr=Decimal("20.00"),
                churned_mrr=Decimal("30.00"),
                end_mrr=Decimal(1000 * number + 100),
                start_accounts=4,
                new_accounts=1,
                churned_accounts=1,
                end_accounts=4,
                grr=Decimal("0.95") if tier == "High touch" else None,
                nrr=Decimal("1.05") if tier == "High touch" else None,
            )


def test_rows_of_a_segment_kind_within_the_months(client_all, bridge):
    response = client_all.get(URL, {"from": "2026-02", "to": "2026-03", "segment_kind": "tier"})
    assert response.status_code == 200, response.content
    rows = response.json()
    assert [(row["segment"], row["month"]) for row in rows] == [
        ("High touch", "2026-02"),
        ("High touch", "2026-03"),
        ("Tech touch", "2026-02"),
        ("Tech touch", "2026-03"),
    ]
    first = rows[0]
    assert set(first) == {"month", "segment_kind", "segment", *FIGURES}
    assert first["segment_kind"] == "tier"
    # 2000 + 50 + 100 - 20 - 30 = 2100.
    assert first["start_mrr"] == "2000.00"
    assert first["new_mrr"] == "50.00"
    assert first["expansion_mrr"] == "100.00"
    assert first["contraction_mrr"] == "20.00"
    assert first["churned_mrr"] == "30.00"
    assert first["end_mrr"] == "2100.00"
    assert first["reactivation_mrr"] == "0.00"
    assert (first["start_accounts"], first["new_accounts"], first["churned_accounts"]) == (4, 1, 1)
    assert first["grr"] == "0.950000"
    assert first["nrr"] == "1.050000"
    assert first["arpa"] is None
    assert rows[2]["grr"] is None


def test_defaults_all_months_and_segment_kind_all(client_all, bridge):
    rows = client_all.get(URL).json()
    assert [(row["segment_kind"], row["segment"], row["month"], row["end_mrr"]) for row in rows] == [
        ("all", "", "2026-01", "3100.00")
    ]
    assert len(client_all.get(URL, {"segment_kind": "tier", "from": "2026-03"}).json()) == 4
    assert len(client_all.get(URL, {"segment_kind": "tier", "to": "2026-01"}).json()) == 2
    one = client_all.get(URL, {"segment_kind": "tier", "segment": "Tech touch"}).json()
    assert [row["month"] for row in one] == ["2026-01", "2026-02", "2026-03", "2026-04"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13"}, "from"),
        ({"from": "January"}, "from"),
        ({"to": "2026-02-01"}, "to"),
        ({"from": "2026-03", "to": "2026-02"}, "to"),
        ({"segment_kind": "planet"}, "segment_kind"),
        ({"segment": "a\x00b"}, "segment"),
        ({"from": "\x00"}, "from"),
        ({"to": "0000-01"}, "to"),
        ({"from": "9" * 400}, "from"),
        ({"segment_kind": "\x00"}, "segment_kind"),
    ],
)
def test_bad_parameters_are_400(client_all, params, field):
    response = client_all.get(URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]


def test_a_partner_with_scope_own_is_refused(client_a, client_b, bridge):
    for client in (client_a, client_b):
        response = client.get(URL, {"segment_kind": "tier"})
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "permission_denied",
            "message": "The revenue bridge covers every account; it needs a key with scope all.",
        }


def test_signed_in_users_read_it(client, csm_user, leader_api, outsider, bridge):
    assert len(leader_api.get(URL, {"segment_kind": "tier"}).json()) == 8
    client.force_login(csm_user)
    assert len(client.get(URL, {"segment_kind": "tier"}).json()) == 8
    client.force_login(outsider)
    assert client.get(URL).status_code == 403


def test_without_a_key_is_401(client):
    assert client.get(URL).status_code == 401


def test_only_get(client_all):
    assert client_all.post(URL, {}, format="json").status_code == 405


def test_queries_do_not_grow_with_the_rows(client_all, bridge):
    client_all.get(URL)  # the key's last-used time is written once a minute, not counted below
    with CaptureQueriesContext(connection) as small:
        assert len(client_all.get(URL, {"segment_kind": "tier", "to": "2026-01"}).json()) == 2
    with CaptureQueriesContext(connection) as large:
        assert len(client_all.get(URL, {"segment_kind": "tier"}).json()) == 8
    assert len(small) == len(large)
