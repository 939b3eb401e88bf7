"""The task inbox: list, count and read tasks; claim, release, assign and complete them."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask.views import MethodView
from sqlalchemy.orm import Session

from api import inbox
from api.blueprint import ApiBlueprint
from api.context import actor, cross_unit_roles, instance_service, record_consultation, services, transaction
from api.paging import encode_cursor, split_page
from api.schemas import (
    AssignIn,
    CompleteTaskIn,
    CountOut,
    PurposeHeaderIn,
    PurposeQueryIn,
    TaskDetailOut,
    TaskFilterIn,
    TaskOut,
    TaskPageOut,
    TaskQueryIn,
    UnclaimIn,
)
from auth.errors import AuthorizationError
from auth.flask import current_principal
from auth.policy import ApprovalCheck, check_approval, check_task_access
from auth.principal import Principal
from engine.errors import NotFoundError
from engine.models import HumanTask

blp = ApiBlueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="The task inbox")

SUPERVISOR = "supervisor"


def task_fields(task: HumanTask) -> dict[str, Any]:
    """The columns ``TaskOut`` shows, as a dict that detail views can extend."""
    return {name: getattr(task, name) for name in TaskOut().fields}


def visible_task(session: Session, task_id: str, principal: Principal) -> HumanTask:
    """The task, if the caller may work on it: 404 when it does not exist or is above their clearance,
    403 for a role or unit they lack."""
    task = session.get(HumanTask, task_id)
    if task is None:
        raise NotFoundError(f"task {task_id} does not exist")
    check_task_access(
        principal,
        role=task.role,
        unit=task.unit,
        classification=task.classification,
        cross_unit_roles=cross_unit_roles(),
    )
    return task


def is_guarded(task: HumanTask) -> bool:
    """Whether taking the task is limited by rank or separation of duties: every approval, and any task
    whose process names a required rank, excluded subjects or an investigation team."""
    return task.is_approval or bool(task.required_rank or task.excluded_subjects or task.team_subjects)


def approval_check(principal: Principal, task: HumanTask) -> ApprovalCheck:
    """Rank and separation of duties for a guarded task (``rank-too-low``, ``separation-of-duties``)."""
    return check_approval(
        principal,
        required_rank=task.required_rank,
        excluded_subjects=task.excluded_subjects or [],
        team_subjects=task.team_subjects or [],
        team_policy="flag" if task.team_policy == "flag" else "forbid",
    )


def supervised_task(session: Session, task_id: str, principal: Principal) -> HumanTask:
    """The task, if the caller may give it to someone or take it from someone: a supervisor of its unit,
    or the admin scope, cleared for its classification (a task above clearance is a 404)."""
    task = session.get(HumanTask, task_id)
    if task is None or not principal.cleared_for(task.classification):
        raise NotFoundError(f"task {task_id} does not exist")
    if principal.has_scope("admin"):
        return task
    if not principal.has_role(SUPERVISOR):
        raise AuthorizationError("role-missing", "only a supervisor of the task's unit may do this")
    if task.unit not in principal.units:
        raise AuthorizationError("unit-mismatch", f"you do not supervise unit {task.unit!r}")
    return task


@blp.route("")
class Tasks(MethodView):
    @blp.require_scope("tasks:read")
    @blp.problems(422)
    @blp.arguments(TaskQueryIn, location="query")
    @blp.response(200, TaskPageOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The inbox: tasks the caller holds or may take, filtered, sorted and paged by cursor"""
        principal = current_principal()
        sort = inbox.TASK_SORTS[args["sort"]]
        query = inbox.inbox_query(
            principal, args, cross_unit_roles=cross_unit_roles(), now=services().clock.now()
        )
        with services().sessions() as session:
            rows = list(session.scalars(sort.page(query, cursor=args.get("cursor"), limit=args["limit"])))
        items, more = split_page(rows, args["limit"])
        next_cursor = None
        if more:
            last = items[-1]
            next_cursor = encode_cursor(sort.name, getattr(last, sort.column.key), last.id)
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/count")
class TaskCount(MethodView):
    @blp.require_scope("tasks:read")
    @blp.problems(422)
    @blp.arguments(TaskFilterIn, location="query")
    @blp.response(200, CountOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """How many tasks the inbox holds with the same filters"""
        query = inbox.count_query(
            current_principal(), args, cross_unit_roles=cross_unit_roles(), now=services().clock.now()
        )
        with services().sessions() as session:
            return {"count": session.scalar(query) or 0}


@blp.route("/<uuid:task_id>")
class Task(MethodView):
    @blp.require_scope("tasks:read")
    @blp.problems(404, 410, 422)
    @blp.arguments(PurposeQueryIn, location="query")
    @blp.arguments(PurposeHeaderIn, location="headers")
    @blp.response(200, TaskDetailOut)
    def get(self, _query: dict[str, Any], _headers: dict[str, Any], task_id: uuid.UUID) -> dict[str, Any]:
        """A task with its form and current data; reading the data is recorded as a consultation"""
        principal = current_principal()
        with transaction() as session:
            task = visible_task(session, str(task_id), principal)
            service = instance_service(session)
            instance = service.get(task.instance_id)
            form_schema = None
            if task.form:
                form = services().context.registry.form_by_id(session, instance.definition_id, task.form)
                if form is not None:
                    form_schema = {"name": task.form, "schema": form["schema"], "uischema": form["uischema"]}
            data = service.task_data(task)
            record_consultation(
                session,
                action="task.read",
                record_type="human_task",
                record_id=task.id,
                instance_id=task.instance_id,
                fields=data,
            )
            return {**task_fields(task), "form_schema": form_schema, "data": data}


@blp.route("/<uuid:task_id>/claim")
class ClaimTask(MethodView):
    @blp.require_scope("tasks:write")
    @blp.problems(404, 409)
    @blp.response(200, TaskOut)
    def post(self, task_id: uuid.UUID) -> HumanTask:
        """Take a task; nobody else can then complete it. Claiming one's own task again is harmless"""
        principal = current_principal()
        with transaction() as session:
            task = visible_task(session, str(task_id), principal)
            if is_guarded(task):
                approval_check(principal, task)
            return instance_service(session).claim(task.id, actor=actor(principal))


@blp.route("/<uuid:task_id>/unclaim")
class UnclaimTask(MethodView):
    @blp.require_scope("tasks:write")
    @blp.problems(404, 409, 422)
    @blp.arguments(UnclaimIn, required=False)
    @blp.response(200, TaskOut)
    def post(self, body: dict[str, Any], task_id: uuid.UUID) -> HumanTask:
        """Release a task; releasing someone else's (`force`) needs a supervisor of its unit"""
        principal = current_principal()
        force = bool(body.get("force"))
        with transaction() as session:
            held = session.scalar(sa.select(HumanTask.assignee).where(HumanTask.id == str(task_id)))
            # Only a supervisor's release may take the task from someone else, even if it changes hands
            # between this read and the engine's row lock.
            force = force and held not in (None, principal.subject)
            if force:
                task = supervised_task(session, str(task_id), principal)
            else:
                task = visible_task(session, str(task_id), principal)
            return instance_service(session).unclaim(task.id, actor=actor(principal), force=force)


@blp.route("/<uuid:task_id>/assign")
class AssignTask(MethodView):
    @blp.require_scope("tasks:write")
    @blp.problems(404, 409, 422)
    @blp.arguments(AssignIn)
    @blp.response(200, TaskOut)
    def post(self, body: dict[str, Any], task_id: uuid.UUID) -> HumanTask:
        """Give a task to someone: supervisors of the task's unit, or the admin scope"""
        principal = current_principal()
        with transaction() as session:
            task = supervised_task(session, str(task_id), principal)
            return instance_service(session).assign(task.id, body["assignee"], actor=actor(principal))


@blp.route("/<uuid:task_id>/complete")
class CompleteTask(MethodView):
    @blp.require_scope("tasks:write")
    @blp.problems(404, 409, 422)
    @blp.arguments(CompleteTaskIn)
    @blp.response(200, TaskOut)
    def post(self, body: dict[str, Any], task_id: uuid.UUID) -> HumanTask:
        """Complete a task with the data of its form; an unclaimed task is claimed by completing it.

        An approval task also needs the approvals:decide scope. Approvals, and tasks whose process
        sets a required rank, excluded subjects or a team, pass the same rank and separation-of-duties
        checks as `POST /approvals/{task_id}/decision`.
        """
        principal = current_principal()
        with transaction() as session:
            task = visible_task(session, str(task_id), principal)
            flagged = False
            if task.is_approval and not principal.has_scope("approvals:decide"):
                raise AuthorizationError(
                    "scope-missing",
                    "deciding an approval needs the scope approvals:decide",
                    scopes=("approvals:decide",),
                )
            if is_guarded(task):
                flagged = approval_check(principal, task).flagged
            return instance_service(session).complete_task(
                task.id, body["data"], actor=actor(principal), flagged=flagged
            )
