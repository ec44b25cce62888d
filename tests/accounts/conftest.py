import pytest
from celery.signals import task_prerun


@pytest.fixture
def task_runs():
    """The Celery tasks that ran (eagerly in tests), as (task name, positional args), in order."""
    runs: list[tuple[str, tuple]] = []

    def record(sender=None, args=None, **_kwargs) -> None:
        runs.append((sender.name, tuple(args or ())))

    task_prerun.connect(record, weak=False)
    yield runs
    task_prerun.disconnect(record)


def recomputed(runs: list[tuple[str, tuple]]) -> list[list[int]]:
    """The account ids of each account recompute that ran."""
    return [args[0] for name, args in runs if name == "metrics.tasks.recompute_accounts"]


def revenue_recomputes(runs: list[tuple[str, tuple]]) -> int:
    return sum(name == "metrics.tasks.recompute_revenue" for name, _args in runs)
