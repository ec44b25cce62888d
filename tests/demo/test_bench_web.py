"""The workspace group of the benchmark at a tiny size: every page answers and its figure is printed."""

import datetime
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from demo.bench_web import LEADER

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark loads with PostgreSQL COPY"),
]
TODAY = datetime.date(2026, 6, 15)
PAGES = (
    "my day (CSM)",
    "my day (leader, a CSM's)",
    "accounts list",
    "accounts filtered, p1",
    "account 360",
    "portfolio",
    "portfolio drill-down",
    "churn drill-down",
)


def test_workspace_figures_give_each_page_its_median_p95_and_queries():
    out = io.StringIO()
    args = ("--accounts", "30", "--days", "60", "--today", TODAY.isoformat(), "--seed", "3", "--only", "workspace")
    call_command("bench", *args, stdout=out)
    lines = out.getvalue().splitlines()
    for page in PAGES:
        line = next(line for line in lines if line.startswith(page))
        assert "30 accounts" in line and "queries, floor = its SQL" in line and " p95 " in line, line
    assert any(line.startswith("accounts filtered, p") for line in lines if "page=" in line)
    # The leader is made once and kept: a second run on the same data reuses it.
    call_command("bench", *args, "--reuse", stdout=io.StringIO())
    assert get_user_model().objects.filter(username=LEADER).count() == 1
