"""A real Celery worker on the configured broker, for the tests that need one."""

import contextlib
import os

import pytest
from django.conf import settings

needs_broker = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL and not os.environ.get("CSM_REQUIRE_WORKER"),
    reason="needs CELERY_BROKER_URL (a real Redis); CI's PostgreSQL run sets it and CSM_REQUIRE_WORKER",
)


@contextlib.contextmanager
def real_worker():
    """Tasks sent inside the block go through the broker to a solo worker in this process; eager again after."""
    from celery.contrib.testing.worker import start_worker

    from csm.celery import app

    assert settings.CELERY_BROKER_URL, "CI runs this test with a real broker: set CELERY_BROKER_URL"
    app.conf.task_always_eager = False
    try:
        app.control.purge()
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield app
    finally:
        app.conf.task_always_eager = True
