"""The actor on history rows written by saves, and on the work of Celery tasks."""

from celery.signals import task_postrun, task_prerun
from django.dispatch import receiver
from simple_history.signals import pre_create_historical_record

from .context import Actor, ActorKind, enter, leave
from .models import AuditFields

# task id -> the token putting back the actor that was current before the task (eager tasks run inside
# a request or another task: their actor must not outlive them).
_task_tokens: dict[str, object] = {}


@receiver(pre_create_historical_record)
def stamp_actor(sender, history_instance, **kwargs) -> None:
    if not isinstance(history_instance, AuditFields):
        return
    for name, value in AuditFields.audit_stamp().items():
        if name == "history_user_id" and value is None:
            continue  # keep the request's user simple-history found, if any
        if name != "history_change_reason":
            setattr(history_instance, name, value)


@task_prerun.connect(weak=False)
def task_actor_start(task_id=None, task=None, **kwargs) -> None:
    _task_tokens[task_id] = enter(Actor(ActorKind.TASK, f"task {task.name}"[:200]))


@task_postrun.connect(weak=False)
def task_actor_end(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        leave(token)
