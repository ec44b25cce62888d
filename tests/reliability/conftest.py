import os

import pytest
from django.conf import settings
from django.db import connection

needs_stack = pytest.mark.skipif(
    (connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")))
    and not os.environ.get("CSM_REQUIRE_WORKER"),
    reason="the production stack needs PostgreSQL (DATABASE_URL) and a Redis broker (CELERY_BROKER_URL); "
    "CI's PostgreSQL run sets both",
)


@pytest.fixture(scope="session")
def stacks(django_db_setup):
    """The production stack's tests and the load test share one stack: its start collects and compresses every
    static file, a minute or more. A test that stops it gets a new one for the tests after it. It depends on
    django_db_setup so that it stops before the test database is dropped."""
    started = []

    def running():
        from csm.celery import app
        from demo.stack import Stack

        assert connection.vendor == "postgresql", "the production stack needs PostgreSQL: set DATABASE_URL"
        assert settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")), "set CELERY_BROKER_URL to a Redis"
        if not started or not started[-1].running:
            app.control.purge()  # tasks left by earlier tests in the broker would run on this database
            started.append(Stack(broker_url=settings.CELERY_BROKER_URL).start())
        return started[-1]

    yield running
    for stack in started:
        stack.close()


@pytest.fixture
def stack(stacks):
    """The running stack; after the test, its worker has finished the recomputes the test's writes queued (the
    transactional test's teardown then empties the tables without racing it)."""
    running = stacks()
    yield running
    if running.running:
        running.wait_idle()
