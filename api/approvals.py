"""Approvals: the decisions waiting for the caller, and recording one under rank and separation checks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask.views import MethodView
from sqlalchemy.orm import Session

from api import inbox
from api.blueprint import ApiBlueprint
from api.context import actor, cross_unit_roles, instance_service, services, transaction
from api.schemas import ApprovalListOut, DecisionIn, DecisionOut
from api.tasks import approval_check, task_fields, visible_task
from auth.errors import AuthorizationError
from auth.flask import current_principal
from engine.errors import NotFoundError
from engine.models import HumanTask, ProcessInstance, Timer

blp = ApiBlueprint(
    "approvals",
    __name__,
    url_prefix="/api/v1/approvals",
    description="Authorisations waiting for a decision, and the decisions",
)

MAX_APPROVALS = 500


@blp.route("")
class Approvals(MethodView):
    @blp.require_scope("approvals:decide")
    @blp.response(200, ApprovalListOut)
    def get(self) -> dict[str, Any]:
        """Approval tasks the caller may decide, soonest due first.

        The candidates come from the indexed task table (role, unit, clearance, open, not held by
        someone else); rank and separation of duties are then applied to each with the same policy
        as the decision itself, so the list never offers a decision that would be refused. At most
        500 are returned.
        """
        principal = current_principal()
        query = (
            sa.select(HumanTask)
            .where(
                *inbox.eligible(principal, cross_unit_roles=cross_unit_roles()),
                HumanTask.is_approval.is_(True),
                sa.or_(HumanTask.assignee.is_(None), HumanTask.assignee == principal.subject),
            )
            .order_by(HumanTask.due_at.asc().nulls_last(), HumanTask.id)
            .limit(MAX_APPROVALS)
        )
        with services().sessions() as session:
            items: list[dict[str, Any]] = []
            for task in session.scalars(query):
                try:
                    check = approval_check(principal, task)
                except AuthorizationError:
                    continue
                items.append(
                    {**task_fields(task), "will_be_flagged": check.flagged, "flag_reasons": check.reasons}
                )
            expiries = _expiries(session, [item["id"] for item in items])
        for item in items:
            item["expires_at"] = expiries.get(item["id"])
        return {"items": items}


def _expiries(session: Session, task_ids: list[str]) -> dict[str, datetime]:
    """The earliest interrupting timer attached to each task: when its approval window closes."""
    if not task_ids:
        return {}
    rows = session.execute(
        sa.select(Timer.attached_to_task_id, sa.func.min(Timer.due_at))
        .where(Timer.attached_to_task_id.in_(task_ids), Timer.interrupting.is_(True))
        .group_by(Timer.attached_to_task_id)
    )
    return {task_id: due for task_id, due in rows if task_id is not None}


@blp.route("/<uuid:task_id>/decision")
class Decision(MethodView):
    @blp.require_scope("approvals:decide")
    @blp.problems(404, 409, 422)
    @blp.arguments(DecisionIn)
    @blp.response(200, DecisionOut)
    def post(self, body: dict[str, Any], task_id: uuid.UUID) -> dict[str, Any]:
        """Grant, refuse or return an application.

        Refused with 403 `rank-too-low` below the required rank and `separation-of-duties` for the
        applicant (and, where the process forbids it, the investigation team). A team member the
        process allows is recorded as flagged. The decision, its rationale and who made it land in
        the case data and the audit trail.
        """
        principal = current_principal()
        with transaction() as session:
            task = visible_task(session, str(task_id), principal)
            if not task.is_approval:
                raise NotFoundError(f"task {task_id} is not an approval")
            check = approval_check(principal, task)
            done = instance_service(session).complete_task(
                task.id, body, actor=actor(principal), flagged=check.flagged
            )
            instance = session.get(ProcessInstance, done.instance_id)
            return {
                "task_id": done.id,
                "instance_id": done.instance_id,
                "decision": body["decision"],
                "flagged": check.flagged,
                "flag_reasons": check.reasons,
                "decided_by": done.completed_by,
                "decided_at": done.completed_at,
                "instance_status": instance.status if instance else "unknown",
            }
