"""Workspace pages of success plans: create (from a playbook or blank), the plan page, and editing its goals,
targets, readings and initiatives.

Views are thin: they read with `selectors`, write with `services`, and put a service's `DomainError` back
on the form. Anyone with a workspace role reads any plan; only the account's CSM or a CS leader changes it
(`csm.roles.can_edit_account`); a refused change is a 403 page and writes nothing. Deleted plans are 404.
"""

import datetime
from collections import defaultdict

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Account
from csm.exceptions import DomainError
from csm.roles import can_edit_account

from . import selectors, services
from .forms import (
    GoalForm,
    InitiativeForm,
    PlanEditForm,
    PlanNewForm,
    ReadingForm,
    TargetForm,
    add_domain_error,
    goal_status_form,
    initiative_status_form,
    plan_status_form,
)
from .models import Goal, Initiative, PlanTemplate, SuccessPlan, Target, TargetMeasurement

READINGS_SHOWN = 5  # the latest readings of each target on the plan page
PLAYBOOKS_SHOWN = 100  # active playbooks offered when creating a plan
PLANS_PER_PAGE = 20


# --- shared pieces ------------------------------------------------------------------------------


def account_url(account_id: int) -> str | None:
    """The account page (built in metrics) when it exists, else None."""
    for kwargs in ({"args": [account_id]}, {"kwargs": {"pk": account_id}}):
        try:
            return reverse("metrics:account", **kwargs)
        except NoReverseMatch:
            continue
    return None


def _refused(request: HttpRequest, account: Account) -> HttpResponse:
    """The 403 page of a change the user may not make."""
    return render(request, "success_plans/refused.html", {"account": account}, status=403)


def _plan_or_404(pk: int) -> SuccessPlan:
    try:
        return selectors.plan_get(pk=pk)
    except SuccessPlan.DoesNotExist:
        raise Http404(_("No such success plan.")) from None


def _editable_plan(request: HttpRequest, pk: int) -> SuccessPlan | HttpResponse:
    """The live plan `pk` if the user may change it, else the refusal page."""
    plan = get_object_or_404(SuccessPlan.objects.alive().select_related("account"), pk=pk)
    if not can_edit_account(request.user, plan.account.owner_id):
        return _refused(request, plan.account)
    return plan


def _editable_part(request: HttpRequest, model, pk: int, plan_path: str):
    """A goal, target or initiative of a live plan if the user may change it, else the refusal page."""
    part = get_object_or_404(
        model.objects.select_related(f"{plan_path}__account").filter(**{f"{plan_path}__deleted_at__isnull": True}),
        pk=pk,
    )
    plan = part.plan if model is Goal else part.goal.plan
    if not can_edit_account(request.user, plan.account.owner_id):
        return _refused(request, plan.account)
    return part


def _to_plan(plan_id: int, anchor: str = "") -> HttpResponse:
    url = reverse("plans:detail", args=[plan_id])
    return redirect(f"{url}#{anchor}" if anchor else url)


def recent_readings(target_ids: list[int], per_target: int = READINGS_SHOWN) -> dict[int, list[TargetMeasurement]]:
    """The latest `per_target` readings of each target, newest first, in one query (a window function)."""
    if not target_ids:
        return {}
    rows = (
        TargetMeasurement.objects.filter(target_id__in=target_ids)
        .annotate(
            position=Window(
                RowNumber(), partition_by=[F("target_id")], order_by=[F("measured_at").desc(), F("id").desc()]
            )
        )
        .filter(position__lte=per_target)
        .select_related("recorded_by")
        .order_by("target_id", "-measured_at", "-id")
    )
    readings: dict[int, list[TargetMeasurement]] = defaultdict(list)
    for row in rows:
        readings[row.target_id].append(row)
    return readings


def _decorate_initiative(initiative: Initiative, today: datetime.date, form=None) -> Initiative:
    initiative.is_overdue = (
        initiative.due_date is not None and initiative.due_date < today and initiative.status != Initiative.Status.DONE
    )
    initiative.status_form = form or initiative_status_form(prefix=f"initiative-{initiative.pk}")
    return initiative


def _render_plan(request: HttpRequest, plan: SuccessPlan, *, failed: dict | None = None) -> HttpResponse:
    """The plan page; `failed` maps ("reading" | "goal" | "initiative", pk) to a form that was refused, shown
    with its errors in place. A fixed number of queries: the plan with its parts (four), its progress (two),
    the latest readings of every target (one)."""
    failed = failed or {}
    today = timezone.localdate()
    goals = list(plan.goals.all())
    targets = [target for goal in goals for target in goal.targets.all()]
    readings = recent_readings([target.pk for target in targets])
    for goal in goals:
        goal.status_form = failed.get(("goal", goal.pk)) or goal_status_form(prefix=f"goal-{goal.pk}")
        for target in goal.targets.all():
            target.recent_readings = readings.get(target.pk, [])
            target.reading_form = failed.get(("reading", target.pk)) or ReadingForm(prefix=f"target-{target.pk}")
        for initiative in goal.initiatives.all():
            _decorate_initiative(initiative, today, failed.get(("initiative", initiative.pk)))
    context = {
        "plan": plan,
        "goals": goals,
        "progress": selectors.plans_progress(plan_ids=[plan.pk], on=today)[plan.pk],
        "account_url": account_url(plan.account_id),
        "can_edit": can_edit_account(request.user, plan.account.owner_id),
        "status_form": failed.get(("plan", plan.pk)) or plan_status_form(),
    }
    return render(request, "success_plans/plan_detail.html", context)


# --- plans --------------------------------------------------------------------------------------


def _playbook_for(account: Account, templates: list[PlanTemplate]) -> PlanTemplate | None:
    """The playbook to suggest: one for the account's tier and lifecycle stage, else for its tier, else for
    its stage (the first by name among equals); None when none fits."""

    def fit(template: PlanTemplate) -> int:
        tier = template.tier_id is not None and template.tier_id == account.tier_id
        stage = bool(template.lifecycle_stage) and template.lifecycle_stage == account.lifecycle_stage
        return 2 * tier + stage

    best = max(templates, key=fit, default=None)  # max keeps the first of equals
    return best if best is not None and fit(best) else None


def plan_new(request: HttpRequest) -> HttpResponse:
    """Create a plan for `?account=<pk>`, from a playbook or blank, then show it."""
    try:
        account_id = int(request.GET.get("account", ""))
    except ValueError:
        raise Http404(_("Choose the account the plan is for.")) from None
    account = get_object_or_404(Account.objects.alive().select_related("tier"), pk=account_id)
    if not can_edit_account(request.user, account.owner_id):
        return _refused(request, account)
    templates = list(PlanTemplate.objects.filter(is_active=True).order_by("name")[:PLAYBOOKS_SHOWN])
    suggested = _playbook_for(account, templates)
    initial = {"template": suggested.pk if suggested else "", "start_date": timezone.localdate()}
    form = PlanNewForm(request.POST or None, templates=templates, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():  # a playbook plan and the fields given on top of it, or nothing
                if data["template"]:
                    plan = services.plan_create_from_template(
                        account=account, template=data["template"], start_date=data["start_date"], status=data["status"]
                    )
                    extra = {name: data[name] for name in ("title", "success_definition", "target_date") if data[name]}
                    if extra:
                        services.plan_update(plan=plan, data=extra)
                else:
                    plan = services.plan_create(
                        account=account,
                        title=data["title"],
                        success_definition=data["success_definition"],
                        start_date=data["start_date"],
                        target_date=data["target_date"],
                        status=data["status"],
                    )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, _("The success plan “%(title)s” was created.") % {"title": plan.title})
            return _to_plan(plan.pk)
    context = {"account": account, "form": form, "account_url": account_url(account.pk), "suggested": suggested}
    return render(request, "success_plans/plan_new.html", context)


def plan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_plan(request, _plan_or_404(pk))


def plan_edit(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _editable_plan(request, pk)
    if isinstance(plan, HttpResponse):
        return plan
    initial = {name: getattr(plan, name) for name in ("title", "success_definition", "start_date", "target_date")}
    initial["owner"] = plan.owner_id
    form = PlanEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.plan_update(plan=plan, data=form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, _("The plan was saved."))
            return _to_plan(plan.pk)
    return render(request, "success_plans/plan_edit.html", {"plan": plan, "form": form})


@require_POST
def plan_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Activate, achieve, abandon (with a reason) or reopen a plan."""
    plan = _editable_plan(request, pk)
    if isinstance(plan, HttpResponse):
        return plan
    form = plan_status_form(request.POST)
    if form.is_valid():
        try:
            services.plan_set_status(plan=plan, status=form.cleaned_data["status"], reason=form.cleaned_data["reason"])
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, _("The plan is now %(status)s.") % {"status": plan.get_status_display().lower()})
            return _to_plan(plan.pk)
    return _render_plan(request, _plan_or_404(pk), failed={("plan", plan.pk): form})


def plan_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm (GET), then delete (POST) a plan: a soft delete, so partners sync the tombstone. Back to the
    account page afterwards."""
    plan = _editable_plan(request, pk)
    if isinstance(plan, HttpResponse):
        return plan
    if request.method == "POST":
        try:
            services.plan_delete(plan=plan)
        except DomainError as error:
            messages.error(request, " ".join(error.messages))
            return _to_plan(plan.pk)
        messages.success(request, _("The success plan “%(title)s” was deleted.") % {"title": plan.title})
        return redirect(account_url(plan.account_id) or reverse("plans:account_plans", args=[plan.account_id]))
    return render(request, "success_plans/plan_delete.html", {"plan": plan})


def account_plans(request: HttpRequest, pk: int) -> HttpResponse:
    """An account's live plans with their progress, newest first, paginated."""
    account = get_object_or_404(Account.objects.alive(), pk=pk)
    page = Paginator(selectors.plan_list(account=account), PLANS_PER_PAGE).get_page(request.GET.get("page"))
    progress = selectors.plans_progress(plan_ids=[plan.pk for plan in page])
    for plan in page:
        plan.progress = progress[plan.pk]
    context = {
        "account": account,
        "page_obj": page,
        "account_url": account_url(account.pk),
        "can_edit": can_edit_account(request.user, account.owner_id),
    }
    return render(request, "success_plans/account_plans.html", context)


MOVES = {"up": -1, "down": 1}


def _move_part(request: HttpRequest, model, pk: int, parent: str, reorder) -> HttpResponse:
    """Move a goal (within its plan), a target or an initiative (within its goal) one place up or down
    (POST `direction`), through `reorder(parent, ids in the new order)`; at either end nothing moves."""
    plan_path = "plan" if model is Goal else "goal__plan"
    part = _editable_part(request, model, pk, plan_path)
    if isinstance(part, HttpResponse):
        return part
    # The siblings in their current order (the models order by `order`, then id).
    ids = list(model.objects.filter(**{f"{parent}_id": getattr(part, f"{parent}_id")}).values_list("pk", flat=True))
    here = ids.index(part.pk)
    there = here + MOVES.get(request.POST.get("direction", ""), 0)
    if there != here and 0 <= there < len(ids):
        ids[here], ids[there] = ids[there], ids[here]
        try:
            reorder(getattr(part, parent), ids)
        except DomainError as error:  # a sibling added or removed meanwhile
            messages.error(request, " ".join(error.messages))
    plan_id = part.plan_id if model is Goal else part.goal.plan_id
    return _to_plan(plan_id, f"{model._meta.model_name}-{part.pk}")


# --- goals --------------------------------------------------------------------------------------


def _part_form_page(request, *, form, plan, title, part=None, remove_url=None) -> HttpResponse:
    context = {"form": form, "plan": plan, "page_title": title, "part": part, "remove_url": remove_url}
    return render(request, "success_plans/part_form.html", context)


def _edit_part(request: HttpRequest, part, *, form_class, fields, update, plan, title, saved, remove_name):
    """Edit a goal, target or initiative through its `update` service; errors stay on the form."""
    form = form_class(request.POST or None, initial={name: getattr(part, name) for name in fields})
    if request.method == "POST" and form.is_valid():
        try:
            update(part, form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, saved)
            return _to_plan(plan.pk, f"{part._meta.model_name}-{part.pk}")
    return _part_form_page(
        request,
        form=form,
        plan=plan,
        title=title,
        part=part,
        remove_url=reverse(f"plans:{remove_name}", args=[part.pk]),
    )


def _add_part(request: HttpRequest, *, form, add, plan, title, added, anchor) -> HttpResponse:
    """Add a goal, target or initiative through its `add` service; errors stay on the form."""
    if request.method == "POST" and form.is_valid():
        try:
            part = add(form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, added(part))
            return _to_plan(plan.pk, anchor(part))
    return _part_form_page(request, form=form, plan=plan, title=title)


def goal_add(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _editable_plan(request, pk)
    if isinstance(plan, HttpResponse):
        return plan
    return _add_part(
        request,
        form=GoalForm(request.POST or None),
        add=lambda data: services.goal_add(plan=plan, **data),
        plan=plan,
        title=_("Add a goal"),
        added=lambda goal: _("The goal “%(title)s” was added.") % {"title": goal.title},
        anchor=lambda goal: f"goal-{goal.pk}",
    )


def goal_edit(request: HttpRequest, pk: int) -> HttpResponse:
    goal = _editable_part(request, Goal, pk, "plan")
    if isinstance(goal, HttpResponse):
        return goal
    return _edit_part(
        request,
        goal,
        form_class=GoalForm,
        fields=("title", "description", "priority", "due_date"),
        update=lambda goal, data: services.goal_update(goal=goal, data=data),
        plan=goal.plan,
        title=_("Edit the goal"),
        saved=_("The goal was saved."),
        remove_name="goal_remove",
    )


@require_POST
def goal_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Start, achieve, abandon (with a reason) or reopen a goal."""
    goal = _editable_part(request, Goal, pk, "plan")
    if isinstance(goal, HttpResponse):
        return goal
    form = goal_status_form(request.POST, prefix=f"goal-{goal.pk}")
    if form.is_valid():
        try:
            services.goal_set_status(goal=goal, status=form.cleaned_data["status"], reason=form.cleaned_data["reason"])
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(
                request,
                _("The goal “%(title)s” is now %(status)s.")
                % {"title": goal.title, "status": goal.get_status_display().lower()},
            )
            return _to_plan(goal.plan_id, f"goal-{goal.pk}")
    return _render_plan(request, _plan_or_404(goal.plan_id), failed={("goal", goal.pk): form})


@require_POST
def goal_remove(request: HttpRequest, pk: int) -> HttpResponse:
    goal = _editable_part(request, Goal, pk, "plan")
    if isinstance(goal, HttpResponse):
        return goal
    services.goal_remove(goal=goal)
    messages.success(request, _("The goal “%(title)s” was removed.") % {"title": goal.title})
    return _to_plan(goal.plan_id)


@require_POST
def goal_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a goal one place up or down in its plan."""
    return _move_part(request, Goal, pk, "plan", lambda plan, ids: services.goals_reorder(plan=plan, goal_ids=ids))


# --- targets and readings -----------------------------------------------------------------------

TARGET_FIELDS = ("name", "unit", "baseline", "target_value", "due_date", "usage_metric")


def target_add(request: HttpRequest, pk: int) -> HttpResponse:
    goal = _editable_part(request, Goal, pk, "plan")
    if isinstance(goal, HttpResponse):
        return goal
    return _add_part(
        request,
        form=TargetForm(request.POST or None),
        add=lambda data: services.target_add(goal=goal, **data),
        plan=goal.plan,
        title=_("Add a target to “%(goal)s”") % {"goal": goal.title},
        added=lambda target: _("The target “%(name)s” was added.") % {"name": target.name},
        anchor=lambda _target: f"goal-{goal.pk}",
    )


def target_edit(request: HttpRequest, pk: int) -> HttpResponse:
    target = _editable_part(request, Target, pk, "goal__plan")
    if isinstance(target, HttpResponse):
        return target
    return _edit_part(
        request,
        target,
        form_class=TargetForm,
        fields=TARGET_FIELDS,
        update=lambda target, data: services.target_update(target=target, data=data),
        plan=target.goal.plan,
        title=_("Edit the target"),
        saved=_("The target was saved."),
        remove_name="target_remove",
    )


@require_POST
def target_remove(request: HttpRequest, pk: int) -> HttpResponse:
    target = _editable_part(request, Target, pk, "goal__plan")
    if isinstance(target, HttpResponse):
        return target
    services.target_remove(target=target)
    messages.success(request, _("The target “%(name)s” was removed.") % {"name": target.name})
    return _to_plan(target.goal.plan_id, f"goal-{target.goal_id}")


@require_POST
def target_measure(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a reading of a target; it becomes the current value unless dated before the latest one."""
    target = _editable_part(request, Target, pk, "goal__plan")
    if isinstance(target, HttpResponse):
        return target
    form = ReadingForm(request.POST, prefix=f"target-{target.pk}")
    if form.is_valid():
        try:
            services.target_measure(
                target=target,
                value=form.cleaned_data["value"],
                measured_at=form.cleaned_data["measured_at"],
                recorded_by=request.user,
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, _("The reading of “%(name)s” was recorded.") % {"name": target.name})
            return _to_plan(target.goal.plan_id, f"target-{target.pk}")
    return _render_plan(request, _plan_or_404(target.goal.plan_id), failed={("reading", target.pk): form})


@require_POST
def target_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a target one place up or down in its goal."""
    return _move_part(
        request, Target, pk, "goal", lambda goal, ids: services.targets_reorder(goal=goal, target_ids=ids)
    )


# --- initiatives --------------------------------------------------------------------------------


def initiative_add(request: HttpRequest, pk: int) -> HttpResponse:
    goal = _editable_part(request, Goal, pk, "plan")
    if isinstance(goal, HttpResponse):
        return goal
    return _add_part(
        request,
        form=InitiativeForm(request.POST or None, initial={"owner": goal.plan.owner_id}),
        add=lambda data: services.initiative_add(goal=goal, **data),
        plan=goal.plan,
        title=_("Add an initiative to “%(goal)s”") % {"goal": goal.title},
        added=lambda initiative: _("The initiative “%(title)s” was added.") % {"title": initiative.title},
        anchor=lambda _initiative: f"goal-{goal.pk}",
    )


def initiative_edit(request: HttpRequest, pk: int) -> HttpResponse:
    initiative = _editable_part(request, Initiative, pk, "goal__plan")
    if isinstance(initiative, HttpResponse):
        return initiative
    return _edit_part(
        request,
        initiative,
        form_class=InitiativeForm,
        fields=("title", "owner", "due_date"),
        update=lambda initiative, data: services.initiative_update(initiative=initiative, data=data),
        plan=initiative.goal.plan,
        title=_("Edit the initiative"),
        saved=_("The initiative was saved."),
        remove_name="initiative_remove",
    )


@require_POST
def initiative_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark an initiative done, start, block (with a reason) or reopen it. From htmx the answer is the
    updated table row; otherwise back to the plan."""
    initiative = _editable_part(request, Initiative, pk, "goal__plan")
    if isinstance(initiative, HttpResponse):
        return initiative
    form = initiative_status_form(request.POST, prefix=f"initiative-{initiative.pk}")
    changed = False
    if form.is_valid():
        try:
            services.initiative_set_status(
                initiative=initiative, status=form.cleaned_data["status"], reason=form.cleaned_data["reason"]
            )
            changed = True
        except DomainError as error:
            add_domain_error(form, error)
    if request.htmx:
        # The row as it is now (a refused change leaves it unchanged, with the form's errors).
        row = Initiative.objects.select_related("owner").get(pk=initiative.pk)
        _decorate_initiative(row, timezone.localdate(), None if changed else form)
        return render(request, "success_plans/_initiative_row.html", {"initiative": row, "can_edit": True})
    if changed:
        messages.success(
            request,
            _("The initiative “%(title)s” is now %(status)s.")
            % {"title": initiative.title, "status": initiative.get_status_display().lower()},
        )
        return _to_plan(initiative.goal.plan_id, f"initiative-{initiative.pk}")
    return _render_plan(request, _plan_or_404(initiative.goal.plan_id), failed={("initiative", initiative.pk): form})


@require_POST
def initiative_remove(request: HttpRequest, pk: int) -> HttpResponse:
    initiative = _editable_part(request, Initiative, pk, "goal__plan")
    if isinstance(initiative, HttpResponse):
        return initiative
    services.initiative_remove(initiative=initiative)
    messages.success(request, _("The initiative “%(title)s” was removed.") % {"title": initiative.title})
    return _to_plan(initiative.goal.plan_id, f"goal-{initiative.goal_id}")


@require_POST
def initiative_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move an initiative one place up or down in its goal."""
    return _move_part(
        request, Initiative, pk, "goal", lambda goal, ids: services.initiatives_reorder(goal=goal, initiative_ids=ids)
    )
