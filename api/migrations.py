"""Migrating running cases to another version of their process: one instance, or every case of a version."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate

from api.blueprint import ApiBlueprint
from api.context import actor, cross_unit_roles, services, transaction
from api.instances import visible_instance
from api.paging import INT32
from api.schemas import _when
from auth.errors import NotVisibleError
from auth.flask import current_principal
from auth.policy import check_case_access
from engine.errors import NotFoundError
from engine.migration import BulkResult, MigrationReport, MigrationService, migrate_version
from engine.models import ProcessInstance

SCOPE = "instances:migrate"

blp = ApiBlueprint(
    "migrations",
    __name__,
    url_prefix="/api/v1",
    description="Move running cases to another version of their process (scope instances:migrate)",
)


class MigrateIn(ma.Schema):
    to_version = fields.Integer(required=True, validate=validate.Range(min=1, max=INT32))
    mapping = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=200)),
        values=fields.String(validate=validate.Length(min=1, max=200)),
        load_default=dict,
        metadata={"description": "Element ids of the current version -> element ids of the target version"},
    )
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Report only; change nothing"})


class ReasonOut(ma.Schema):
    element_id = fields.String(required=True)
    message = fields.String(required=True)


class ElementMoveOut(ma.Schema):
    task_id = fields.String(required=True)
    element_id = fields.String(required=True)
    to_element_id = fields.String(allow_none=True, required=True)
    element_type = fields.String(required=True)
    state = fields.String(required=True)
    process = fields.String(required=True, metadata={"description": "The (sub)process the element is in"})
    mapped = fields.Boolean(required=True, metadata={"description": "Moved through the given mapping"})
    change = fields.String(
        required=True,
        metadata={
            "description": "moved; dropped or added for a boundary event of an activity the case is at"
        },
    )


class TimerMoveOut(ma.Schema):
    task_id = fields.String(required=True)
    element_id = fields.String(required=True)
    to_element_id = fields.String(required=True)
    kind = fields.String(required=True)
    value = fields.String(allow_none=True, required=True)
    to_value = fields.String(allow_none=True, required=True)
    due_at = _when(allow_none=True, required=True)
    to_due_at = _when(allow_none=True, required=True)
    basis = fields.String(
        required=True,
        metadata={
            "description": "kept, original_start, instant, activity_start or armed_now "
            "(docs/migrating-instances.md)"
        },
    )


class MigrationReportOut(ma.Schema):
    instance_id = fields.String(required=True)
    process_key = fields.String(required=True)
    from_version = fields.Integer(required=True)
    to_version = fields.Integer(required=True)
    mapping = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    dry_run = fields.Boolean(required=True)
    migrated = fields.Boolean(required=True)
    possible = fields.Boolean(required=True, metadata={"description": "False when some element blocks it"})
    elements = fields.List(fields.Nested(ElementMoveOut), required=True)
    timers = fields.List(fields.Nested(TimerMoveOut), required=True)
    reasons = fields.List(fields.Nested(ReasonOut), required=True)


class BulkItemOut(ma.Schema):
    instance_id = fields.String(required=True)
    outcome = fields.String(
        required=True, metadata={"description": "migrated, possible (dry run), refused or failed"}
    )
    detail = fields.String(allow_none=True)
    report = fields.Nested(MigrationReportOut, allow_none=True)


class BulkMigrationOut(ma.Schema):
    process_key = fields.String(required=True)
    from_version = fields.Integer(required=True)
    to_version = fields.Integer(required=True)
    dry_run = fields.Boolean(required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    results = fields.List(fields.Nested(BulkItemOut), required=True)


def _report(report: MigrationReport) -> dict[str, Any]:
    return report.as_dict()


def _item(result: BulkResult) -> dict[str, Any]:
    return {
        "instance_id": result.instance_id,
        "outcome": result.outcome,
        "detail": result.detail,
        "report": _report(result.report) if result.report is not None else None,
    }


@blp.route("/process-instances/<uuid:instance_id>/migrate")
class MigrateInstance(MethodView):
    @blp.require_scope(SCOPE)
    @blp.problems(404, 409, 422)
    @blp.arguments(MigrateIn)
    @blp.response(200, MigrationReportOut)
    def post(self, body: dict[str, Any], instance_id: uuid.UUID) -> dict[str, Any]:
        """Move a running or suspended case to another version of its process.

        Every element the case is at must exist in the target version (by id, or through `mapping`)
        and be of the same kind; otherwise the answer is a 409 `migration-refused` whose `reasons`
        name each element, and nothing changes. With `dry_run` the same report comes back with
        `possible` instead. Data, task ids and assignees are kept; timers are re-armed against the
        target version. The move is recorded in the case's audit trail.
        """
        principal = current_principal()
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            report = MigrationService(session, services().context).migrate(
                instance.id,
                to_version=body["to_version"],
                mapping=body["mapping"],
                dry_run=body["dry_run"],
                actor=actor(principal),
            )
        return _report(report)


@blp.route("/process-definitions/<string:key>/versions/<int:version>/migrate")
class MigrateVersion(MethodView):
    @blp.require_scope(SCOPE)
    @blp.problems(404, 422)
    @blp.arguments(MigrateIn)
    @blp.response(200, BulkMigrationOut)
    def post(self, body: dict[str, Any], key: str, version: int) -> dict[str, Any]:
        """Move every running or suspended case of one version that the caller may see.

        Each case moves in its own transaction: a refused case stays where it is and the rest move.
        The answer lists each case with its outcome (`migrated`, `refused`, `failed`, or `possible`
        in a dry run) and its report.
        """
        if not 1 <= version <= INT32:
            raise NotFoundError(f"version {version} of process {key!r} is not deployed")
        principal = current_principal()
        roles = cross_unit_roles()

        def may_migrate(instance: ProcessInstance) -> bool:
            try:
                check_case_access(
                    principal,
                    unit=instance.unit,
                    classification=instance.classification,
                    cross_unit_roles=roles,
                )
            except NotVisibleError:
                return False
            return True

        svc = services()
        results = migrate_version(
            svc.sessions,
            svc.context,
            key=key,
            from_version=version,
            to_version=body["to_version"],
            mapping=body["mapping"],
            dry_run=body["dry_run"],
            actor=actor(principal),
            may_migrate=may_migrate,
        )
        counts: dict[str, int] = {}
        for result in results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return {
            "process_key": key,
            "from_version": version,
            "to_version": body["to_version"],
            "dry_run": body["dry_run"],
            "counts": counts,
            "results": [_item(r) for r in results],
        }
