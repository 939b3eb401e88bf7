"""Process instances: start, complete human tasks, claim, cancel, suspend, resume and retry.

Every public method runs inside the caller's transaction, takes the instance row lock before
changing anything and leaves the ``human_task``, ``task_history``, ``timer`` and ``audit_event``
rows exactly in step with the stored workflow state.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.audit import AuditLog
from engine.bpmn import role_for_lane
from engine.calendars import parse_instant
from engine.clock import Clock
from engine.errors import (
    ConcurrentUpdateError,
    EngineError,
    ErasedError,
    FormDataError,
    InstanceStateError,
    LimitExceededError,
    NotFoundError,
    ScriptError,
    TaskNotReadyError,
    ValidationError,
)
from engine.forms import validate_data
from engine.models import HumanTask, Incident, ProcessInstance, TaskHistory
from engine.process_settings import ProcessSettings
from engine.registry import SpecRegistry, get_definition
from engine.runtime import ReadyUserTask, StepRecord, Workflow, WorkflowRuntime
from engine.sandbox import script_error_in
from engine.timeexpr import parse_duration

RUNNING, SUSPENDED, COMPLETED, CANCELLED, FAILED = "running", "suspended", "completed", "cancelled", "failed"
READY, TASK_COMPLETED, TASK_CANCELLED = "ready", "completed", "cancelled"
CLASSIFICATIONS = ("OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET", "TOP SECRET")
DEFAULT_PRIORITY = 50
DECISIONS = ("granted", "refused", "returned")
# The inbox columns a definition decides (as opposed to the case, the people or the clock).
_DEFINITION_FIELDS = (
    "process_version",
    "element_id",
    "name",
    "lane",
    "role",
    "priority",
    "form",
    "is_approval",
    "required_rank",
    "excluded_subjects",
    "team_subjects",
    "team_policy",
    "summary",
)


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the engine needs to know it (the API maps its principal to this)."""

    subject: str
    name: str | None = None
    purpose: str | None = None


SYSTEM = Actor("system:engine", "opsflow engine")


@dataclass
class EngineContext:
    """The long-lived collaborators every service needs."""

    registry: SpecRegistry
    runtime: WorkflowRuntime
    clock: Clock
    max_instance_data_bytes: int = 512 * 1024
    hooks: list[Any] = field(default_factory=list)
    process_settings: ProcessSettings = field(default_factory=ProcessSettings)


def normalise_classification(value: str) -> str:
    cleaned = value.strip().upper().replace("_", "-").replace("TOP-SECRET", "TOP SECRET")
    if cleaned not in CLASSIFICATIONS:
        raise ValidationError(
            f"classification {value!r} is not one of {', '.join(CLASSIFICATIONS)}",
            errors={"$.classification": [f"must be one of {', '.join(CLASSIFICATIONS)}"]},
        )
    return cleaned


class InstanceService:
    """Changes process instances; the caller owns the transaction."""

    def __init__(self, session: Session, context: EngineContext) -> None:
        self.session = session
        self.ctx = context
        self.runtime = context.runtime
        self.clock = context.clock
        self.audit = AuditLog(session, context.clock)

    # -- queries ---------------------------------------------------------------------------------

    def get(self, instance_id: str) -> ProcessInstance:
        instance = self.session.get(ProcessInstance, instance_id)
        if instance is None:
            raise NotFoundError(f"process instance {instance_id} does not exist")
        return instance

    def get_task(self, task_id: str) -> HumanTask:
        task = self.session.get(HumanTask, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} does not exist")
        return task

    def open_tasks(self, instance_id: str) -> list[HumanTask]:
        return list(
            self.session.scalars(
                sa.select(HumanTask)
                .where(HumanTask.instance_id == instance_id, HumanTask.status == READY)
                .order_by(HumanTask.created_at, HumanTask.id)
            )
        )

    def variables(self, instance_id: str) -> dict[str, Any]:
        instance = self.get(instance_id)
        _check_not_erased(instance)
        workflow = self._load(instance)
        return self.runtime.data(workflow)

    def task_data(self, task: HumanTask) -> dict[str, Any]:
        instance = self.get(task.instance_id)
        _check_not_erased(instance)
        workflow = self._load(instance)
        for ready in self.runtime.ready_user_tasks(workflow):
            if ready.id == task.id:
                return dict(ready.data)
        return dict(task.submitted_data or {})

    def history(self, instance_id: str) -> list[TaskHistory]:
        return list(
            self.session.scalars(
                sa.select(TaskHistory).where(TaskHistory.instance_id == instance_id).order_by(TaskHistory.id)
            )
        )

    def incidents(self, instance_id: str) -> list[Incident]:
        return list(
            self.session.scalars(
                sa.select(Incident).where(Incident.instance_id == instance_id).order_by(Incident.id)
            )
        )

    # -- commands --------------------------------------------------------------------------------

    def start(
        self,
        key: str,
        *,
        version: int | None = None,
        business_key: str | None = None,
        variables: Mapping[str, Any] | None = None,
        unit: str,
        classification: str,
        started_by: Actor,
    ) -> ProcessInstance:
        """Create an instance and run it to its first wait state, all in this transaction."""
        if not unit or not unit.strip():
            raise ValidationError("unit is required", errors={"$.unit": ["must not be empty"]})
        classification = normalise_classification(classification)
        definition = get_definition(self.session, key, version)
        bundle = self.ctx.registry.bundle(self.session, definition)
        now = self.clock.now()
        data = dict(variables or {})
        data.setdefault("initiator", started_by.subject)
        if business_key is not None:
            data.setdefault("business_key", business_key)
        self._check_size(data)
        workflow = self.runtime.create(bundle, data)
        instance = ProcessInstance(
            id=str(uuid.uuid4()),
            definition_id=definition.id,
            process_key=definition.key,
            process_version=definition.version,
            business_key=business_key,
            status=RUNNING,
            unit=unit.strip(),
            classification=classification,
            started_by=started_by.subject,
            started_at=now,
            updated_at=now,
            serializer_version=self.runtime.serializer_version,
            state={},
        )
        self.session.add(instance)
        self.session.flush()
        self.audit.record(
            actor=started_by.subject,
            kind="collection",
            action="instance.started",
            record_type="process_instance",
            record_id=instance.id,
            instance_id=instance.id,
            purpose=started_by.purpose,
            detail={
                "process_key": definition.key,
                "version": definition.version,
                "business_key": business_key,
                "variables": sorted(data),
            },
        )
        self._run(
            instance,
            workflow,
            actor=started_by,
            step=lambda on_step: self.runtime.advance(workflow, on_step=on_step),
        )
        return instance

    def claim(self, task_id: str, *, actor: Actor) -> HumanTask:
        task, _instance = self._lock_task(task_id)
        if task.assignee == actor.subject:
            return task
        if task.assignee is not None:
            raise TaskNotReadyError(f"task {task_id} is held by someone else", assignee=task.assignee)
        task.assignee = actor.subject
        self._touch_task(task)
        self.audit.record(
            actor=actor.subject,
            kind="engine",
            action="task.claimed",
            record_type="human_task",
            record_id=task.id,
            instance_id=task.instance_id,
            purpose=actor.purpose,
        )
        return task

    def unclaim(self, task_id: str, *, actor: Actor, force: bool = False) -> HumanTask:
        task, _instance = self._lock_task(task_id)
        if task.assignee is None:
            return task
        if task.assignee != actor.subject and not force:
            raise TaskNotReadyError(f"task {task_id} is held by someone else", assignee=task.assignee)
        previous = task.assignee
        task.assignee = None
        self._touch_task(task)
        self.audit.record(
            actor=actor.subject,
            kind="engine",
            action="task.unclaimed",
            record_type="human_task",
            record_id=task.id,
            instance_id=task.instance_id,
            detail={"previous_assignee": previous},
        )
        return task

    def assign(self, task_id: str, assignee: str, *, actor: Actor) -> HumanTask:
        task, _instance = self._lock_task(task_id)
        previous = task.assignee
        task.assignee = assignee
        self._touch_task(task)
        self.audit.record(
            actor=actor.subject,
            kind="engine",
            action="task.assigned",
            record_type="human_task",
            record_id=task.id,
            instance_id=task.instance_id,
            detail={"assignee": assignee, "previous_assignee": previous},
        )
        return task

    def complete_task(
        self, task_id: str, data: Mapping[str, Any], *, actor: Actor, flagged: bool = False
    ) -> HumanTask:
        """Validate ``data`` against the task's form, complete it and run on to the next wait state."""
        task, instance = self._lock_task(task_id)
        if task.assignee is not None and task.assignee != actor.subject:
            raise TaskNotReadyError(f"task {task_id} is held by someone else", assignee=task.assignee)
        payload = dict(data)
        if task.form:
            form = self.ctx.registry.form_by_id(self.session, instance.definition_id, task.form)
            if form is not None:
                validate_data(task.form, form["schema"], payload)
        if task.is_approval:
            _check_decision(payload)
        workflow = self._load(instance)
        ready = {t.id: t for t in self.runtime.ready_user_tasks(workflow)}
        if task.id not in ready:
            raise ConcurrentUpdateError(f"task {task_id} is no longer waiting in the workflow")
        record_as = ready[task.id].properties.get("record_actor_as")
        if record_as:
            payload[record_as.strip()] = actor.subject
        if task.is_approval:
            payload.setdefault("decided_by", actor.subject)
            payload.setdefault("decided_at", self.clock.now().isoformat())
            payload["authoriser_flagged"] = flagged
        self._check_size({**ready[task.id].data, **payload})
        recipient = self._disclosure_recipient(workflow, ready[task.id], payload)
        now = self.clock.now()
        task.status = TASK_COMPLETED
        task.assignee = task.assignee or actor.subject
        task.completed_at = now
        task.completed_by = actor.subject
        task.submitted_data = payload
        task.flagged = flagged
        self.audit.record(
            actor=actor.subject,
            kind="disclosure" if recipient else "alteration",
            recipient=recipient,
            action="task.decided" if task.is_approval else "task.completed",
            record_type="human_task",
            record_id=task.id,
            instance_id=instance.id,
            purpose=actor.purpose,
            detail={
                "element_id": task.element_id,
                "fields": sorted(payload),
                **({"decision": payload.get("decision"), "flagged": flagged} if task.is_approval else {}),
            },
        )
        self._run(
            instance,
            workflow,
            actor=actor,
            step=lambda on_step: self.runtime.complete_user_task(workflow, task.id, payload, on_step=on_step),
            completed_task=task.id,
        )
        return task

    def cancel(self, instance_id: str, *, reason: str, actor: Actor) -> ProcessInstance:
        if not reason or len(reason.strip()) < 3:
            raise ValidationError("a cancellation needs a reason", errors={"$.reason": ["must be given"]})
        instance = self._lock_instance(instance_id)
        if instance.status in (COMPLETED, CANCELLED):
            raise InstanceStateError(f"process instance {instance_id} is already {instance.status}")
        workflow = self._load(instance)
        self.runtime.cancel(workflow)
        instance.status = CANCELLED
        instance.ended_at = self.clock.now()
        instance.end_reason = reason.strip()
        self._close_open_tasks(instance.id, keep=set())
        for hook in self.ctx.hooks:
            hook.instance_ended(self.session, instance)
        self._save(instance, workflow)
        self.audit.record(
            actor=actor.subject,
            kind="alteration",
            action="instance.cancelled",
            record_type="process_instance",
            record_id=instance.id,
            instance_id=instance.id,
            purpose=actor.purpose,
            detail={"reason": reason.strip()},
        )
        return instance

    def suspend(self, instance_id: str, *, actor: Actor, reason: str | None = None) -> ProcessInstance:
        return self._transition(
            instance_id,
            actor=actor,
            expect=RUNNING,
            to=SUSPENDED,
            action="instance.suspended",
            detail={"reason": reason},
        )

    def resume(self, instance_id: str, *, actor: Actor) -> ProcessInstance:
        return self._transition(
            instance_id, actor=actor, expect=SUSPENDED, to=RUNNING, action="instance.resumed", detail=None
        )

    def _transition(
        self,
        instance_id: str,
        *,
        actor: Actor,
        expect: str,
        to: str,
        action: str,
        detail: dict[str, Any] | None,
    ) -> ProcessInstance:
        """Move an instance between running and suspended, under its lock, and audit it."""
        instance = self._lock_instance(instance_id)
        if instance.status != expect:
            verb = action.split(".", 1)[1]
            raise InstanceStateError(f"only a {expect} instance can be {verb}; this one is {instance.status}")
        instance.status = to
        instance.updated_at = self.clock.now()
        self.session.flush()
        self.audit.record(
            actor=actor.subject,
            kind="alteration",
            action=action,
            record_type="process_instance",
            record_id=instance.id,
            instance_id=instance.id,
            detail=detail,
        )
        return instance

    def retry(self, instance_id: str, *, actor: Actor) -> ProcessInstance:
        """Re-run the step that failed, from its inputs, after the data or the definition was fixed."""
        instance = self._lock_instance(instance_id)
        if instance.status != FAILED:
            raise InstanceStateError(f"only a failed instance can be retried; this one is {instance.status}")
        workflow = self._load(instance)
        self.runtime.reset_failed(workflow)
        now = self.clock.now()
        for incident in self.session.scalars(
            sa.select(Incident).where(Incident.instance_id == instance.id, Incident.resolved_at.is_(None))
        ):
            incident.resolved_at = now
            incident.resolved_by = actor.subject
        instance.status = RUNNING
        self.audit.record(
            actor=actor.subject,
            kind="alteration",
            action="instance.retried",
            record_type="process_instance",
            record_id=instance.id,
            instance_id=instance.id,
        )
        self._run(
            instance,
            workflow,
            actor=actor,
            step=lambda on_step: self.runtime.advance(workflow, on_step=on_step),
        )
        return instance

    def rebase(self, instance: ProcessInstance, workflow: Workflow, *, actor: Actor) -> None:
        """Used by migrations: save a locked instance whose workflow now follows another definition.

        Open inbox rows keep their id, creation and assignee, and take the element, lane, role, form,
        priority, due time and approval settings of the new definition; an assignee is released when
        the role changes. Timer and message rows follow through the hooks. No step is run.
        """
        ready = {t.id: t for t in self.runtime.ready_user_tasks(workflow)}
        for row in self.open_tasks(instance.id):
            spec = ready.get(row.id)
            if spec is None:
                row.status = TASK_CANCELLED
                row.completed_at = self.clock.now()
                continue
            fresh = self._new_task(instance, workflow, spec, actor=actor)
            if fresh.role != row.role:
                row.assignee = None
            for name in _DEFINITION_FIELDS:
                setattr(row, name, getattr(fresh, name))
            row.due_at = self._due(workflow, spec, row.created_at)  # a relative due counts from creation
        known = {row.id for row in self.open_tasks(instance.id)}
        for spec in ready.values():
            if spec.id not in known:
                self.session.add(self._new_task(instance, workflow, spec, actor=actor))
        self.session.flush()
        for hook in self.ctx.hooks:
            hook.after_step(self.session, instance, workflow, self)
        self._save(instance, workflow)

    def advance_loaded(
        self, instance: ProcessInstance, workflow: Workflow, *, actor: Actor, step: Any
    ) -> None:
        """Used by timers and messages: apply ``step`` to an already locked and loaded instance."""
        self._run(instance, workflow, actor=actor, step=step)

    # -- internals -------------------------------------------------------------------------------

    def _lock_instance(self, instance_id: str) -> ProcessInstance:
        instance = self.session.scalars(
            sa.select(ProcessInstance)
            .where(ProcessInstance.id == instance_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        if instance is None:
            raise NotFoundError(f"process instance {instance_id} does not exist")
        return instance

    def lock_instance(self, instance_id: str) -> ProcessInstance:
        return self._lock_instance(instance_id)

    def _lock_task(self, task_id: str) -> tuple[HumanTask, ProcessInstance]:
        # One statement finds the task's case and locks the case row; the task is then read again, as
        # the first read may predate a writer the lock made us wait for.
        instance = self.session.scalars(
            sa.select(ProcessInstance)
            .join(HumanTask, HumanTask.instance_id == ProcessInstance.id)
            .where(HumanTask.id == task_id)
            .with_for_update(of=ProcessInstance)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if instance is None:
            raise NotFoundError(f"task {task_id} does not exist")
        task = self.session.scalars(
            sa.select(HumanTask).where(HumanTask.id == task_id).execution_options(populate_existing=True)
        ).one()
        if task.status != READY:
            raise TaskNotReadyError(f"task {task_id} is already {task.status}", status=task.status)
        if instance.status != RUNNING:
            raise InstanceStateError(
                f"process instance {instance.id} is {instance.status}", status=instance.status
            )
        return task, instance

    def _touch_task(self, task: HumanTask) -> None:
        try:
            self.session.flush()
        except StaleDataError:
            raise ConcurrentUpdateError(f"task {task.id} was changed by someone else") from None

    def load_workflow(self, instance: ProcessInstance) -> Workflow:
        return self._load(instance)

    def _load(self, instance: ProcessInstance) -> Workflow:
        bundle = self.ctx.registry.bundle_by_id(self.session, instance.definition_id)
        return self.runtime.load(instance.state, version=instance.serializer_version, bundle=bundle)

    def _check_size(self, data: Mapping[str, Any]) -> None:
        size = len(self.runtime.json_dumps(dict(data)))
        if size > self.ctx.max_instance_data_bytes:
            raise LimitExceededError(
                f"case data would be {size} bytes; the limit is {self.ctx.max_instance_data_bytes}",
                errors={"$.variables": [f"{size} bytes exceeds {self.ctx.max_instance_data_bytes}"]},
            )

    def _run(
        self,
        instance: ProcessInstance,
        workflow: Workflow,
        *,
        actor: Actor,
        step: Any,
        completed_task: str | None = None,
    ) -> None:
        records: list[StepRecord] = []
        try:
            step(records.append)
        except (ScriptError, EngineError) as exc:
            self._fail(instance, workflow, exc)
        except Exception as exc:
            if not _is_spiff_error(exc):
                raise
            self._fail(instance, workflow, exc)
        now = self.clock.now()
        for record in records:
            self.session.add(
                TaskHistory(
                    instance_id=instance.id,
                    task_id=record.task_id,
                    element_id=record.element_id,
                    name=record.name,
                    element_type=record.element_type,
                    state=record.state.lower(),
                    finished_at=now,
                    finished_by=actor.subject if record.task_id == completed_task else None,
                    data_changes=record.data_changes,
                )
            )
        if instance.status == RUNNING and self.runtime.is_completed(workflow):
            instance.status = COMPLETED
            instance.ended_at = now
            self.audit.record(
                actor=actor.subject,
                kind="engine",
                action="instance.completed",
                record_type="process_instance",
                record_id=instance.id,
                instance_id=instance.id,
            )
        self._sync_tasks(instance, workflow, actor=actor, completed_task=completed_task)
        for hook in self.ctx.hooks:
            hook.after_step(self.session, instance, workflow, self)
        self._save(instance, workflow)

    def _fail(self, instance: ProcessInstance, workflow: Workflow, exc: Exception) -> None:
        cause: Exception = script_error_in(exc) or exc
        self.runtime.discard_failed_effects(workflow)
        failed = self.runtime.failed_task(workflow)
        element_id = cause.extra.get("element_id") if isinstance(cause, EngineError) else None
        line = getattr(cause, "line", None) or getattr(exc, "line_number", None)
        instance.status = FAILED
        incident = Incident(
            instance_id=instance.id,
            task_id=failed[0] if failed else None,
            element_id=element_id or (failed[1] if failed else None),
            error_type=getattr(cause, "code", None) or type(cause).__name__,
            message=str(cause)[:4000],
            line=int(line) if line else None,
            created_at=self.clock.now(),
        )
        self.session.add(incident)
        self.session.flush()
        self.audit.record(
            actor=SYSTEM.subject,
            kind="engine",
            action="incident.raised",
            record_type="incident",
            record_id=str(incident.id),
            instance_id=instance.id,
            detail={"element_id": incident.element_id, "error_type": incident.error_type},
        )

    def _save(self, instance: ProcessInstance, workflow: Workflow) -> None:
        self.runtime.compact(workflow)
        instance.state = self.runtime.dump(workflow)
        instance.serializer_version = self.runtime.serializer_version
        instance.updated_at = self.clock.now()
        try:
            self.session.flush()
        except StaleDataError:
            raise ConcurrentUpdateError(
                f"process instance {instance.id} was changed by someone else"
            ) from None

    def _close_open_tasks(self, instance_id: str, *, keep: set[str]) -> None:
        for task in self.open_tasks(instance_id):
            if task.id not in keep:
                task.status = TASK_CANCELLED
                task.completed_at = self.clock.now()

    def _sync_tasks(
        self, instance: ProcessInstance, workflow: Workflow, *, actor: Actor, completed_task: str | None
    ) -> None:
        ready = self.runtime.ready_user_tasks(workflow) if instance.status in (RUNNING, FAILED) else []
        existing = {t.id: t for t in self.open_tasks(instance.id)}
        ready_ids = {t.id for t in ready}
        for task_id, row in existing.items():
            if task_id not in ready_ids and task_id != completed_task:
                row.status = TASK_CANCELLED
                row.completed_at = self.clock.now()
        for spec in ready:
            if spec.id not in existing:
                self.session.add(self._new_task(instance, workflow, spec, actor=actor))
        self.session.flush()

    def _new_task(
        self, instance: ProcessInstance, workflow: Workflow, spec: ReadyUserTask, *, actor: Actor
    ) -> HumanTask:
        props = spec.properties
        now = self.clock.now()
        role = (props.get("role") or "").strip() or role_for_lane(spec.lane) or "unassigned"
        required_rank = (props.get("required_rank") or "").strip() or None
        if required_rank and required_rank.startswith("var:"):
            value = spec.data.get(required_rank[4:].strip())
            required_rank = str(value) if value else None
        team_variable = (props.get("team_variable") or "").strip()
        return HumanTask(
            id=spec.id,
            instance_id=instance.id,
            process_key=instance.process_key,
            process_version=instance.process_version,
            business_key=instance.business_key,
            element_id=spec.element_id,
            name=spec.name,
            lane=spec.lane,
            role=role,
            status=READY,
            assignee=None,
            unit=instance.unit,
            classification=instance.classification,
            priority=self._priority(workflow, spec),
            due_at=self._due(workflow, spec, now),
            form=(props.get("form") or "").strip() or None,
            is_approval=(props.get("approval") or "").strip().lower() == "true",
            required_rank=required_rank,
            excluded_subjects=_subjects(spec.data, props.get("exclude_subjects")),
            team_subjects=_subjects(spec.data, team_variable) if team_variable else [],
            team_policy=(props.get("team_policy") or "forbid").strip().lower(),
            summary=self._evaluate_text(workflow, spec, props.get("summary")),
            created_at=now,
            created_by=actor.subject,
        )

    def _priority(self, workflow: Workflow, spec: ReadyUserTask) -> int:
        expression = spec.properties.get("priority")
        if not expression:
            return DEFAULT_PRIORITY
        value = self._evaluate(workflow, spec, expression)
        try:
            return max(0, min(100, int(value)))
        except (TypeError, ValueError):
            return DEFAULT_PRIORITY

    def _due(self, workflow: Workflow, spec: ReadyUserTask, now: datetime) -> datetime | None:
        for hook in self.ctx.hooks:
            due: datetime | None = hook.due_for_task(self.session, workflow, spec.id)
            if due is not None:
                return due
        expression = spec.properties.get("due")
        if not expression:
            return None
        return due_from_value(self._evaluate(workflow, spec, expression), now)

    def _disclosure_recipient(
        self, workflow: Workflow, spec: ReadyUserTask, payload: Mapping[str, Any]
    ) -> str | None:
        """Whom completing this task discloses case data to (the ``disclosure_to`` property).

        The expression sees the submitted form data, so a form can name the recipient. A task that
        discloses must name one: an expression that fails or gives nothing refuses the completion.
        """
        expression = (spec.properties.get("disclosure_to") or "").strip()
        if not expression:
            return None
        try:
            value = self.runtime.evaluate(workflow, spec.id, expression, extra=payload)
        except Exception as exc:  # noqa: BLE001  (any failure is the same refusal to the user)
            raise FormDataError(
                f"the recipient of this disclosure could not be worked out: {exc}",
                errors={"$": [f"disclosure_to {expression!r} failed: {exc}"]},
            ) from None
        text = "" if value is None else str(value).strip()
        if not text:
            raise FormDataError(
                "this task discloses case data and needs a recipient",
                errors={"$": [f"disclosure_to {expression!r} gave no recipient"]},
            )
        return text[:200]

    def _evaluate(self, workflow: Workflow, spec: ReadyUserTask, expression: str) -> Any:
        try:
            return self.runtime.evaluate(workflow, spec.id, expression)
        except Exception:  # noqa: BLE001  (a display property that fails to evaluate falls back to its default)
            return None

    def _evaluate_text(self, workflow: Workflow, spec: ReadyUserTask, expression: str | None) -> str | None:
        if not expression:
            return None
        value = self._evaluate(workflow, spec, expression)
        return None if value is None else str(value)[:2000]


def _check_not_erased(instance: ProcessInstance) -> None:
    if instance.erased_at is not None:
        raise ErasedError(
            f"the data of process instance {instance.id} was erased on {instance.erased_at.isoformat()}",
            erased_at=instance.erased_at.isoformat(),
        )


def due_from_value(value: Any, now: datetime) -> datetime | None:
    """A due property evaluates to an ISO 8601 instant, an ISO 8601 duration from now, or a datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        return now + value
    try:
        if isinstance(value, str) and value.strip().upper().startswith("P"):
            return parse_duration(value.strip()).after(now)
        return parse_instant(value)
    except ValidationError:
        return None


def _subjects(data: Mapping[str, Any], names: str | None) -> list[str]:
    out: list[str] = []
    for name in (names or "").split(","):
        value = data.get(name.strip()) if name.strip() else None
        if isinstance(value, str) and value:
            out.append(value)
        elif isinstance(value, list | tuple):
            out.extend(str(v) for v in value if v)
    return sorted(set(out))


def _check_decision(payload: Mapping[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    if payload.get("decision") not in DECISIONS:
        errors["$.decision"] = [f"must be one of {', '.join(DECISIONS)}"]
    rationale = payload.get("rationale")
    if (
        not isinstance(rationale, str)
        or len(rationale.strip()) < 20
        or len(set(rationale.lower().split())) < 4
    ):
        errors["$.rationale"] = [
            "a substantive rationale in your own words is required (at least 20 characters)"
        ]
    if errors:
        raise ValidationError("the decision is incomplete", errors=errors)


def _is_spiff_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith("SpiffWorkflow")
