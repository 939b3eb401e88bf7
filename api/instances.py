"""Process instances: start (idempotently), list, inspect, read data and history, and change their state."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import url_for
from flask.views import MethodView
from sqlalchemy.orm import Session

from api.blueprint import ApiBlueprint
from api.context import (
    actor,
    audit_log,
    cross_unit_roles,
    instance_service,
    purpose,
    record_consultation,
    services,
    settings,
    transaction,
)
from api.paging import INT64, Sort, decode_cursor, encode_cursor, split_page
from api.schemas import (
    CancelIn,
    EraseIn,
    ErasureOut,
    HistoryPageOut,
    HistoryQueryIn,
    IdempotencyHeaderIn,
    InstanceDetailOut,
    InstanceOut,
    InstancePageOut,
    InstanceQueryIn,
    PurposeHeaderIn,
    PurposeQueryIn,
    StartInstanceIn,
    SuspendIn,
    VariablesOut,
)
from api.tasks import task_fields
from auth.errors import AuthorizationError
from auth.flask import current_principal
from auth.policy import check_can_mark, check_case_access, visible_classifications, visible_units
from auth.principal import Principal, normalise_classification
from engine.audit import history
from engine.erasure import ErasureResult, erase_instance
from engine.errors import IdempotencyConflictError, NotFoundError, ValidationError
from engine.models import AuditEvent, IdempotencyRecord, ProcessInstance, Timer

blp = ApiBlueprint(
    "instances", __name__, url_prefix="/api/v1/process-instances", description="Process instances (cases)"
)

INSTANCE_SORTS = {
    "started_at": Sort("started_at", ProcessInstance.started_at, ProcessInstance.id),
    "-started_at": Sort("-started_at", ProcessInstance.started_at, ProcessInstance.id, descending=True),
}
HISTORY_SORT = Sort("id", AuditEvent.id, AuditEvent.id, kind=int, id_kind=int, int_bound=INT64)


def visible_instance(session: Session, instance_id: str, principal: Principal) -> ProcessInstance:
    """The instance, if the caller has the clearance and a need to know; otherwise 404 either way."""
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFoundError(f"process instance {instance_id} does not exist")
    check_case_access(
        principal,
        unit=instance.unit,
        classification=instance.classification,
        cross_unit_roles=cross_unit_roles(),
    )
    return instance


def _request_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _key_cutoff() -> datetime:
    """Idempotency keys older than this are forgotten: a repeat after it starts a new instance."""
    return services().clock.now() - timedelta(hours=settings().idempotency_key_hours)


def _replay(session: Session, key: str, principal: Principal, request_hash: str) -> ProcessInstance | None:
    record = session.get(IdempotencyRecord, (key, principal.subject))
    if record is None:
        return None
    if record.created_at < _key_cutoff():
        session.delete(record)
        session.flush()
        return None
    if record.request_hash != request_hash:
        raise IdempotencyConflictError(
            f"the Idempotency-Key {key!r} was used for a different request; use a new key for a new instance"
        )
    return instance_service(session).get(record.instance_id)


def check_may_open(principal: Principal, *, unit: str, classification: str) -> str:
    """The canonical classification, once the caller may open a case in ``unit`` at that marking."""
    try:
        marking = normalise_classification(classification)
    except ValueError:
        raise ValidationError(
            f"classification {classification!r} is not known",
            errors={"$.classification": ["must be OFFICIAL, OFFICIAL-SENSITIVE, SECRET or TOP SECRET"]},
        ) from None
    units = visible_units(principal, cross_unit_roles=cross_unit_roles())
    if units is not None and unit not in units:
        raise AuthorizationError(
            "unit-mismatch", f"you may open cases only in {', '.join(sorted(units)) or 'no unit'}"
        )
    check_can_mark(principal, marking)
    return marking


@blp.route("")
class Instances(MethodView):
    @blp.require_scope("instances:write")
    @blp.problems(404, 409, 422)
    @blp.arguments(StartInstanceIn)
    @blp.arguments(IdempotencyHeaderIn, location="headers")
    @blp.alt_response(
        200, schema=InstanceOut, success=True, description="A repeat of an earlier request: its instance"
    )
    @blp.response(201, InstanceOut)
    def post(
        self, body: dict[str, Any], headers: dict[str, Any]
    ) -> tuple[ProcessInstance, int, dict[str, str]]:
        """Start an instance in a unit at a security classification.

        The caller must belong to the unit (unless they hold a cross-unit role) and be cleared for
        the classification. With an `Idempotency-Key`, a retry of the same request by the same
        caller returns the instance the first one started (200); the same key with a different
        body is a 409.
        """
        principal = current_principal()
        classification = check_may_open(principal, unit=body["unit"], classification=body["classification"])
        key: str | None = headers.get("key")
        request_hash = _request_hash(body)
        try:
            instance, status = self._start(principal, body, classification, key, request_hash)
        except sa.exc.IntegrityError:
            if key is None:
                raise
            # A concurrent request with the same key committed first: answer as its repeat.
            with transaction() as session:
                replayed = _replay(session, key, principal, request_hash)
            if replayed is None:
                raise
            instance, status = replayed, 200
        location = url_for("instances.Instance", instance_id=uuid.UUID(instance.id))
        return instance, status, {"Location": location}

    @staticmethod
    def _start(
        principal: Principal, body: dict[str, Any], classification: str, key: str | None, request_hash: str
    ) -> tuple[ProcessInstance, int]:
        with transaction() as session:
            if key is not None:
                replayed = _replay(session, key, principal, request_hash)
                if replayed is not None:
                    return replayed, 200
            instance = instance_service(session).start(
                body["process_key"],
                version=body.get("version"),
                business_key=body.get("business_key"),
                variables=body["variables"],
                unit=body["unit"],
                classification=classification,
                started_by=actor(principal),
            )
            if key is not None:
                session.add(
                    IdempotencyRecord(
                        key=key,
                        principal=principal.subject,
                        request_hash=request_hash,
                        instance_id=instance.id,
                        created_at=services().clock.now(),
                    )
                )
                session.flush()
            return instance, 201

    @blp.require_scope("instances:read")
    @blp.problems(422)
    @blp.arguments(InstanceQueryIn, location="query")
    @blp.response(200, InstancePageOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Instances in the caller's units and within their clearance, newest first by default"""
        principal = current_principal()
        query = sa.select(ProcessInstance).where(
            ProcessInstance.classification.in_(visible_classifications(principal))
        )
        units = visible_units(principal, cross_unit_roles=cross_unit_roles())
        if units is not None:
            query = query.where(ProcessInstance.unit.in_(sorted(units)))
        for name, column in (
            ("process_key", ProcessInstance.process_key),
            ("status", ProcessInstance.status),
            ("business_key", ProcessInstance.business_key),
            ("unit", ProcessInstance.unit),
        ):
            if args.get(name) is not None:
                query = query.where(column == args[name])
        if args.get("started_after") is not None:
            query = query.where(ProcessInstance.started_at > args["started_after"])
        if args.get("started_before") is not None:
            query = query.where(ProcessInstance.started_at < args["started_before"])
        sort = INSTANCE_SORTS[args["sort"]]
        with services().sessions() as session:
            rows = list(session.scalars(sort.page(query, cursor=args.get("cursor"), limit=args["limit"])))
        items, more = split_page(rows, args["limit"])
        next_cursor = encode_cursor(sort.name, items[-1].started_at, items[-1].id) if more else None
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/<uuid:instance_id>")
class Instance(MethodView):
    @blp.require_scope("instances:read")
    @blp.problems(404)
    @blp.response(200, InstanceDetailOut)
    def get(self, instance_id: uuid.UUID) -> dict[str, Any]:
        """An instance with its open tasks, waiting timers and incidents"""
        principal = current_principal()
        with services().sessions() as session:
            instance = visible_instance(session, str(instance_id), principal)
            service = instance_service(session)
            timers = list(
                session.scalars(
                    sa.select(Timer).where(Timer.instance_id == instance.id).order_by(Timer.due_at, Timer.id)
                )
            )
            return {
                **{name: getattr(instance, name) for name in InstanceOut().fields},
                "open_tasks": [task_fields(t) for t in service.open_tasks(instance.id)],
                "timers": timers,
                "incidents": service.incidents(instance.id),
            }


@blp.route("/<uuid:instance_id>/variables")
class Variables(MethodView):
    @blp.require_scope("instances:read")
    @blp.problems(404, 410, 422)
    @blp.arguments(PurposeQueryIn, location="query")
    @blp.arguments(PurposeHeaderIn, location="headers")
    @blp.response(200, VariablesOut)
    def get(self, _query: dict[str, Any], _headers: dict[str, Any], instance_id: uuid.UUID) -> dict[str, Any]:
        """The case data; reading it is recorded as a consultation (give a purpose in `X-Purpose`)"""
        principal = current_principal()
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            variables = instance_service(session).variables(instance.id)
            record_consultation(
                session,
                action="instance.variables.read",
                record_type="process_instance",
                record_id=instance.id,
                instance_id=instance.id,
                fields=variables,
            )
            return {"instance_id": instance.id, "variables": variables}


@blp.route("/<uuid:instance_id>/history")
class History(MethodView):
    @blp.require_scope("audit:read")
    @blp.problems(404, 422)
    @blp.arguments(HistoryQueryIn, location="query")
    @blp.arguments(PurposeHeaderIn, location="headers")
    @blp.response(200, HistoryPageOut)
    def get(self, args: dict[str, Any], _headers: dict[str, Any], instance_id: uuid.UUID) -> dict[str, Any]:
        """The case's audit trail, oldest first.

        This needs the audit:read scope, not instances:read: the trail records who consulted and
        changed the case, and DPA 2018 s.62 limits such logs to checking lawfulness, self-monitoring,
        integrity and criminal proceedings. Reading it is itself recorded as a consultation.
        """
        principal = current_principal()
        after = 0
        if args.get("cursor"):
            after, _ = decode_cursor(args["cursor"], HISTORY_SORT)
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            rows = history(session, instance.id, limit=args["limit"] + 1, after_id=after)
            items, more = split_page(rows, args["limit"])
            audit_log(session).record(
                actor=principal.subject,
                kind="consultation",
                action="audit.read",
                record_type="process_instance",
                record_id=instance.id,
                instance_id=instance.id,
                purpose=purpose(),
                detail={"events": len(items), "after": after},
            )
            next_cursor = encode_cursor(HISTORY_SORT.name, items[-1].id, items[-1].id) if more else None
            return {"items": items, "next_cursor": next_cursor}


@blp.route("/<uuid:instance_id>/cancel")
class Cancel(MethodView):
    @blp.require_scope("instances:write")
    @blp.problems(404, 409, 422)
    @blp.arguments(CancelIn)
    @blp.response(200, InstanceOut)
    def post(self, body: dict[str, Any], instance_id: uuid.UUID) -> ProcessInstance:
        """Cancel a running, suspended or failed instance, giving the reason for the record"""
        principal = current_principal()
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            return instance_service(session).cancel(
                instance.id, reason=body["reason"], actor=actor(principal)
            )


@blp.route("/<uuid:instance_id>/suspend")
class Suspend(MethodView):
    @blp.require_scope("instances:write")
    @blp.problems(404, 409, 422)
    @blp.arguments(SuspendIn, required=False)
    @blp.response(200, InstanceOut)
    def post(self, body: dict[str, Any], instance_id: uuid.UUID) -> ProcessInstance:
        """Suspend a running instance: its tasks cannot be completed until it is resumed"""
        principal = current_principal()
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            return instance_service(session).suspend(
                instance.id, actor=actor(principal), reason=body.get("reason")
            )


@blp.route("/<uuid:instance_id>/resume")
class Resume(MethodView):
    @blp.require_scope("instances:write")
    @blp.problems(404, 409)
    @blp.response(200, InstanceOut)
    def post(self, instance_id: uuid.UUID) -> ProcessInstance:
        """Resume a suspended instance"""
        principal = current_principal()
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            return instance_service(session).resume(instance.id, actor=actor(principal))


@blp.route("/<uuid:instance_id>/retry")
class Retry(MethodView):
    @blp.require_scope("instances:write")
    @blp.problems(404, 409)
    @blp.response(200, InstanceOut)
    def post(self, instance_id: uuid.UUID) -> ProcessInstance:
        """Re-run the step of a failed instance that raised its incident"""
        principal = current_principal()
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            return instance_service(session).retry(instance.id, actor=actor(principal))


@blp.route("/<uuid:instance_id>/erase")
class Erase(MethodView):
    @blp.require_scope("instances:erase")
    @blp.problems(404, 409, 422)
    @blp.arguments(EraseIn)
    @blp.response(200, ErasureOut)
    def post(self, body: dict[str, Any], instance_id: uuid.UUID) -> ErasureResult:
        """Erase the data of a finished case for good, once its retention period is over.

        The case's variables, submitted forms, task summaries and step data are removed from every
        table; what remains is that the case existed (process, unit, marking, dates) and its audit
        trail, which records the erasure. A case still running, or still inside the retention period
        its process sets in `processes/settings.json`, is a 409 that says until when.
        """
        principal = current_principal()
        with transaction() as session:
            instance = visible_instance(session, str(instance_id), principal)
            svc = services()
            return erase_instance(
                session,
                instance.id,
                actor=principal.subject,
                reason=body["reason"],
                settings=svc.context.process_settings,
                clock=svc.clock,
            )
