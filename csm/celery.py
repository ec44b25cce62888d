"""The Celery application; configured from Django settings (CELERY_* names)."""

import functools
import logging
import os

from celery import Celery
from celery.contrib.django.task import DjangoTask
from django.db import transaction
from kombu.exceptions import OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csm.settings")

logger = logging.getLogger(__name__)


class Task(DjangoTask):
    """Tasks queued when a transaction commits (`delay_on_commit`) never fail the caller: its write has
    committed, so a broker that cannot take the task (Redis down) is logged, not raised. Such a task is
    lost; the nightly run recomputes every account and repairs what it would have done (see README)."""

    def delay_on_commit(self, *args, **kwargs) -> None:
        transaction.on_commit(functools.partial(self._queue_after_commit, args, kwargs))

    def apply_async_on_commit(self, args=None, kwargs=None, **options) -> None:
        transaction.on_commit(functools.partial(self._queue_after_commit, args, kwargs, **options))

    def _queue_after_commit(self, args, kwargs, **options) -> None:
        try:
            self.apply_async(args, kwargs, **options)
        except OperationalError:  # what Celery raises when the broker cannot be reached
            logger.exception("Could not queue %s%s after commit; the nightly run will catch it up", self.name, args)


app = Celery("csm", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
