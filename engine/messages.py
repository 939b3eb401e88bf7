"""BPMN messages: subscriptions kept in step with waiting message events, and correlation of a message.

A waiting message start event, intermediate catch event, receive task, boundary message event or
event-based gateway branch has one ``message_subscription`` row: the message name and a correlation
value. :func:`correlate` finds the waiting instances with one indexed lookup on (name, value), never by
loading waiting instances, and delivers the message through SpiffWorkflow under the instance lock.

The correlation value is computed from named keys (see ``docs/bpmn-extensions.md``, "Messages"): the
element's ``correlation_keys`` property names case variables; without it the key is the instance's
``business_key``; an instance with neither waits for the message uncorrelated (key set ``{}``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from uuid import UUID

import sqlalchemy as sa
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session

from engine.bpmn import user_task_properties
from engine.errors import CorrelationError, LimitExceededError, ValidationError
from engine.instances import FAILED, RUNNING, SUSPENDED, Actor, EngineContext, InstanceService
from engine.models import MessageSubscription, ProcessDefinition, ProcessInstance
from engine.runtime import Workflow
from engine.timers import raise_incident

log = logging.getLogger("opsflow.messages")

_LIVE = (RUNNING, SUSPENDED, FAILED)
BUSINESS_KEY = "business_key"
MAX_VALUE_LENGTH = 500


def correlation_value(keys: Mapping[str, Any]) -> str:
    """The stored form of a key set: ``name=value`` pairs sorted by name, URL-quoted, joined by ``&``.

    Values are compared as text (``5`` and ``"5"`` are the same key); ``{}`` is the empty string. A value
    longer than the column is replaced by its SHA-256, which is just as exact.
    """
    parts = []
    for name in sorted(keys):
        value = keys[name]
        if value is None or isinstance(value, dict | list | tuple | set):
            raise ValidationError(
                f"correlation key {name!r} must be a string or a number, not {type(value).__name__}",
                errors={f"$.keys.{name}": ["must be a string or a number"]},
            )
        text = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{quote(str(name), safe='')}={quote(text, safe='')}")
    joined = "&".join(parts)
    if len(joined) > MAX_VALUE_LENGTH:
        return "sha256:" + hashlib.sha256(joined.encode("utf-8")).hexdigest()
    return joined


# -- the workflow side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingMessage:
    """A message a waiting task can catch, and the key names it correlates on (None: business key)."""

    task_id: str
    element_id: str
    message_name: str
    key_names: tuple[str, ...] | None
    data: Mapping[str, Any]


def _message_definitions(task: Any) -> Iterator[tuple[Any, Any]]:
    """(definition, the spec that declares its properties) for each message ``task`` can catch."""
    spec = task.task_spec
    definition = getattr(spec, "event_definition", None)
    if isinstance(definition, MessageEventDefinition):
        yield definition, spec
    elif isinstance(definition, MultipleEventDefinition):
        # An event-based gateway holds its branches' definitions in the order of its outputs.
        outputs = list(getattr(spec, "outputs", []))
        for index, inner in enumerate(definition.event_definitions):
            if isinstance(inner, MessageEventDefinition):
                yield inner, outputs[index] if index < len(outputs) else spec


def _key_names(spec: Any) -> tuple[str, ...] | None:
    raw = user_task_properties(spec).get("correlation_keys")
    if not raw or not raw.strip():
        return None
    return tuple(sorted({name.strip() for name in raw.split(",") if name.strip()}))


def waiting_messages(workflow: Workflow) -> list[WaitingMessage]:
    """Every message the workflow is waiting for, including inside subprocesses."""
    found = []
    tasks = [t for t in workflow.event_manager.tasks.values() if t.state == TaskState.WAITING]
    for task in sorted(tasks, key=lambda t: str(t.id)):
        for definition, spec in _message_definitions(task):
            found.append(
                WaitingMessage(
                    task_id=str(task.id),
                    element_id=spec.bpmn_id or spec.name,
                    message_name=definition.name,
                    key_names=_key_names(spec),
                    data=task.data,
                )
            )
    return found


def deliver(workflow: Workflow, task_id: str, name: str, payload: Mapping[str, Any]) -> bool:
    """Hand message ``name`` to the waiting task ``task_id``; False if it no longer waits for it.

    The payload is merged into the case data, or stored under the message's ``messageVariable`` when
    the model names one. A payload SpiffWorkflow cannot use (for example one that lacks a value a
    correlation property's retrieval expression reads) is refused with a ValidationError.
    """
    try:
        task = workflow.get_task_from_id(UUID(task_id))
    except (SpiffWorkflowException, KeyError, ValueError):
        return False
    if task is None or task.state != TaskState.WAITING:
        return False
    target = next((d for d, _spec in _message_definitions(task) if d.name == name), None)
    if target is None:
        return False
    try:
        task.task_spec.catch(task, BpmnEvent(target, payload=deepcopy(dict(payload))))
        task.task_spec._update(task)
    except SpiffWorkflowException as exc:
        message = f"message {name!r} cannot be delivered: {str(exc).splitlines()[0]}"
        raise ValidationError(message, errors={"$.variables": [message]}) from None
    if task.state == TaskState.READY and getattr(target, "message_var", None) is None:
        task.data.update(deepcopy(dict(payload)))
    return True


def start_messages(spec: Any) -> set[str]:
    """Names of the messages that start a process with this spec."""
    names = set()
    for task_spec in spec.task_specs.values():
        if isinstance(task_spec, StartEvent):
            definition = getattr(task_spec, "event_definition", None)
            if isinstance(definition, MessageEventDefinition):
                names.add(definition.name)
    return names


# -- the hook -------------------------------------------------------------------------------------


@dataclass
class MessageHook:
    """Implements the instance hook protocol for message subscriptions."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _has_messages: weakref.WeakKeyDictionary[Any, bool] = field(default_factory=weakref.WeakKeyDictionary)

    def after_step(
        self, session: Session, instance: ProcessInstance, workflow: Workflow, service: InstanceService
    ) -> None:
        if not self._may_have_messages(workflow):
            return
        now = service.clock.now()
        wanted: dict[tuple[str, str], tuple[WaitingMessage, str]] = {}
        if instance.status in _LIVE:
            for waiting in waiting_messages(workflow):
                value = self._value(session, service, instance, waiting)
                if value is not None:
                    wanted[(waiting.task_id, waiting.message_name)] = (waiting, value)
        rows = session.scalars(
            sa.select(MessageSubscription)
            .where(MessageSubscription.instance_id == instance.id)
            .execution_options(populate_existing=True)
        ).all()
        existing = {(r.task_id, r.message_name): r for r in rows}
        for key, row in existing.items():
            if key not in wanted:
                session.delete(row)
            elif row.correlation_value != wanted[key][1]:
                row.correlation_value = wanted[key][1]
        for key, (waiting, value) in wanted.items():
            if key not in existing:
                session.add(
                    MessageSubscription(
                        instance_id=instance.id,
                        task_id=waiting.task_id,
                        element_id=waiting.element_id,
                        message_name=waiting.message_name,
                        correlation_value=value,
                        created_at=now,
                    )
                )
        session.flush()

    def due_for_task(self, session: Session, workflow: Workflow, task_id: str) -> None:
        return None

    def instance_ended(self, session: Session, instance: ProcessInstance) -> None:
        session.execute(sa.delete(MessageSubscription).where(MessageSubscription.instance_id == instance.id))

    def _value(
        self, session: Session, service: InstanceService, instance: ProcessInstance, waiting: WaitingMessage
    ) -> str | None:
        if waiting.key_names is None:
            keys = {BUSINESS_KEY: instance.business_key} if instance.business_key else {}
            return correlation_value(keys)
        missing = [n for n in waiting.key_names if waiting.data.get(n) is None]
        try:
            if missing:
                raise ValidationError(f"correlation key variable(s) {', '.join(missing)} not set")
            return correlation_value({n: waiting.data[n] for n in waiting.key_names})
        except ValidationError as exc:
            if instance.status != FAILED:
                raise_incident(
                    session,
                    service.clock,
                    instance,
                    task_id=waiting.task_id,
                    element_id=waiting.element_id,
                    error_type=exc.code,
                    message=f"message {waiting.message_name!r} at {waiting.element_id}: {exc.detail}",
                )
            return None

    def _may_have_messages(self, workflow: Workflow) -> bool:
        spec = workflow.spec
        known = self._has_messages.get(spec)
        if known is None:
            known = any(
                isinstance(
                    getattr(ts, "event_definition", None), MessageEventDefinition | MultipleEventDefinition
                )
                for process in [spec, *workflow.subprocess_specs.values()]
                for ts in process.task_specs.values()
            )
            with self._lock:
                self._has_messages[spec] = known
        return known


# -- correlation ----------------------------------------------------------------------------------


_STARTERS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def correlate(
    session: Session,
    context: EngineContext,
    name: str,
    keys: Mapping[str, Any],
    variables: Mapping[str, Any] | None = None,
    *,
    all: bool = False,
    actor: Actor,
    unit: str | None = None,
    classification: str | None = None,
) -> list[str]:
    """Deliver message ``name`` and return the ids of the instances that received it.

    Waiting instances whose subscription has the correlation value of ``keys`` receive it (only running
    instances: a suspended or failed one is not a match). With none, a process whose start event is this
    message is started, with ``keys`` and ``variables`` as its data (``unit`` and ``classification`` as
    for any start). No match raises CorrelationError with ``matches=0``; more than one without
    ``all=True`` raises it with the number of matches and delivers nothing.
    """
    if not name or not name.strip():
        raise ValidationError("a message needs a name", errors={"$.name": ["must not be empty"]})
    payload = {**dict(keys), **dict(variables or {})}
    size = len(context.runtime.json_dumps(payload))
    if size > context.max_instance_data_bytes:
        raise LimitExceededError(
            f"message data is {size} bytes; the limit is {context.max_instance_data_bytes}",
            errors={"$.variables": [f"{size} bytes exceeds {context.max_instance_data_bytes}"]},
        )
    value = correlation_value(keys)
    matches = list(
        session.scalars(
            sa.select(MessageSubscription.instance_id)
            .join(ProcessInstance, ProcessInstance.id == MessageSubscription.instance_id)
            .where(
                MessageSubscription.message_name == name,
                MessageSubscription.correlation_value == value,
                ProcessInstance.status == RUNNING,
            )
            .distinct()
            .order_by(MessageSubscription.instance_id)
        )
    )
    service = InstanceService(session, context)
    if matches:
        if len(matches) > 1 and not all:
            raise CorrelationError(
                f"message {name!r} matches {len(matches)} waiting instances; narrow the keys or send to all",
                matches=len(matches),
            )
        delivered = [iid for iid in matches if _deliver(service, iid, name, value, payload, actor=actor)]
        if not delivered:
            raise CorrelationError(f"no instance is waiting for message {name!r} with these keys", matches=0)
        return delivered
    starters = _starters(session, context, name)
    if not starters:
        raise CorrelationError(f"no instance is waiting for message {name!r} with these keys", matches=0)
    if len(starters) > 1 and not all:
        raise CorrelationError(
            f"message {name!r} starts {len(starters)} processes ({', '.join(starters)}); send it to all",
            matches=len(starters),
        )
    started = []
    for key in starters:
        instance = service.start(
            key,
            business_key=_text_or_none(keys.get(BUSINESS_KEY)),
            variables={k: v for k, v in payload.items() if k != BUSINESS_KEY},
            unit=unit or "",
            classification=classification or "",
            started_by=actor,
        )
        start_value = session.scalar(
            sa.select(MessageSubscription.correlation_value).where(
                MessageSubscription.instance_id == instance.id, MessageSubscription.message_name == name
            )
        )
        if start_value is not None and _deliver(
            service, instance.id, name, start_value, payload, actor=actor
        ):
            started.append(instance.id)
    if not started:
        raise CorrelationError(f"message {name!r} started no instance", matches=0)
    return started


def _deliver(
    service: InstanceService,
    instance_id: str,
    name: str,
    value: str,
    payload: dict[str, Any],
    *,
    actor: Actor,
) -> bool:
    session = service.session
    instance = service.lock_instance(instance_id)
    if instance.status != RUNNING:
        return False
    task_ids = list(
        session.scalars(
            sa.select(MessageSubscription.task_id)
            .where(
                MessageSubscription.instance_id == instance_id,
                MessageSubscription.message_name == name,
                MessageSubscription.correlation_value == value,
            )
            .order_by(MessageSubscription.task_id)
        )
    )
    if not task_ids:
        return False
    workflow = service.load_workflow(instance)
    caught = [task_id for task_id in task_ids if deliver(workflow, task_id, name, payload)]
    if not caught:
        return False
    service.audit.record(
        actor=actor.subject,
        kind="collection",
        action="message.received",
        record_type="message",
        record_id=name,
        instance_id=instance.id,
        purpose=actor.purpose,
        detail={"message_name": name, "tasks": caught, "fields": sorted(payload)},
    )
    service.advance_loaded(
        instance,
        workflow,
        actor=actor,
        step=lambda on_step: service.runtime.advance(workflow, on_step=on_step),
    )
    log.info("message.delivered instance_id=%s message=%s tasks=%d", instance.id, name, len(caught))
    return True


def _starters(session: Session, context: EngineContext, name: str) -> list[str]:
    """Keys of the processes whose latest version starts with message ``name``."""
    latest = (
        sa.select(ProcessDefinition.key, sa.func.max(ProcessDefinition.version).label("version"))
        .group_by(ProcessDefinition.key)
        .subquery()
    )
    definitions = session.scalars(
        sa.select(ProcessDefinition)
        .join(
            latest,
            sa.and_(ProcessDefinition.key == latest.c.key, ProcessDefinition.version == latest.c.version),
        )
        .order_by(ProcessDefinition.key)
    ).all()
    keys = []
    for definition in definitions:
        spec = context.registry.bundle(session, definition).spec
        names = _STARTERS.get(spec)
        if names is None:
            names = _STARTERS[spec] = start_messages(spec)
        if name in names:
            keys.append(definition.key)
    return keys


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
