"""BPMN timer events under opsflow's control: the SpiffWorkflow side of timers.

SpiffWorkflow's own timer definitions parse ISO 8601 by hand and fire when ``datetime.now()`` passes the
due time, whenever the workflow happens to be refreshed. Ours split the work three ways:

* the event definition evaluates its expression (in the workflow's script engine) when the task starts
  waiting and validates it with :mod:`engine.timeexpr`, keeping the result in the task's internal data;
* :func:`waiting_timers` gives every waiting timer with its due time, computed once from the caller's
  clock (the timer hook writes these as ``timer`` rows);
* a timer fires only when :func:`fire` is called by the timer worker, inside the transaction that
  deletes its row, so it fires exactly once.

A bad expression does not raise inside SpiffWorkflow (which would leave a half-updated tree): the task
keeps waiting with the error recorded, :func:`waiting_timers` reports it, and the hook turns it into an
incident. A retry re-evaluates the expression.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.default.event_definition import TimerConditionalEventDefinitionConverter
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent as BoundaryEventMixin
from SpiffWorkflow.bpmn.util import PendingBpmnEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from engine.errors import EngineError, ValidationError
from engine.timeexpr import first_due, next_due, parse_date, parse_duration, parse_timer

STATE_KEY = "opsflow_timers"
DATE, DURATION, CYCLE = "date", "duration", "cycle"
_ISO_LOOKING = re.compile(r"^(R\d*/)?-?P[0-9T]|^\d{4}-\d{2}-\d{2}")


# -- expressions ----------------------------------------------------------------------------------


def literal_text(kind: str, expression: str) -> str | None:
    """The timer value when ``expression`` is a constant, else None (it must be evaluated per case).

    A constant is either a Python string literal (``"PT72H"``, the SpiffWorkflow convention) or bare ISO
    8601 text (``PT72H``, as other modelers write it). Raises ValidationError when the constant is not a
    valid timer of ``kind``, or when the text is neither ISO 8601 nor a Python expression.
    """
    text = expression.strip()
    if not text:
        raise ValidationError("the timer has no expression", errors={"$.timer": ["must not be empty"]})
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if isinstance(value, str):
        parse_timer(kind, value)
        return value.strip()
    if value is not None:
        raise ValidationError(
            f"timer expression {text!r} is a {type(value).__name__}, not ISO 8601 text",
            errors={"$.timer": ["must be ISO 8601 text"]},
        )
    try:
        parse_timer(kind, text)
    except ValidationError:
        if _ISO_LOOKING.match(text):
            raise
    else:
        return text
    try:
        ast.parse(text, mode="eval")
    except SyntaxError as exc:
        message = f"timer expression {text!r} is neither ISO 8601 nor a valid expression: {exc.msg}"
        raise ValidationError(message, errors={"$.timer": [message]}) from None
    return None


def _canonical(kind: str, value: Any) -> str:
    """Validate an evaluated timer value and return the text that is stored and parsed again later."""
    if kind == DATE and isinstance(value, datetime):
        return parse_date(value).isoformat()
    if kind == DURATION and isinstance(value, timedelta):
        return parse_duration(value).text
    if not isinstance(value, str):
        parse_timer(kind, value)  # raises the ValidationError that names the wrong type
        raise ValidationError(f"timer value {value!r} is not ISO 8601 text")
    parse_timer(kind, value)
    return value.strip()


# -- event definitions ----------------------------------------------------------------------------


class _Timer:
    """Behaviour shared by the three kinds; mixed in before SpiffWorkflow's class of the same kind."""

    kind: ClassVar[str]
    name: str
    expression: str
    element_id: str | None

    def _key(self) -> str:
        return self.element_id or self.name

    def record(self, my_task: Any, *, reevaluate: bool = False) -> dict[str, Any]:
        """This timer's state on ``my_task``, evaluating the expression when it first starts waiting.

        A failed evaluation is kept (so that the hook raises one incident for it) until SpiffWorkflow
        refreshes the task again with ``reevaluate``, which happens when the instance is retried.
        """
        timers: dict[str, dict[str, Any]] = my_task.internal_data.setdefault(STATE_KEY, {})
        rec = timers.get(self._key())
        if rec is None or (reevaluate and rec.get("error")):
            rec = self._evaluate(my_task)
            timers[self._key()] = rec
        return rec

    def _evaluate(self, my_task: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {"kind": self.kind, "value": None, "due": None, "fired": 0, "done": False}
        try:
            literal = literal_text(self.kind, self.expression)
            if literal is None:
                value = my_task.workflow.script_engine.evaluate(my_task, self.expression)
                literal = _canonical(self.kind, value)
        except (EngineError, SpiffWorkflowException) as exc:
            rec["error"] = str(getattr(exc, "detail", None) or exc).split("\n")[0][:2000]
            rec["error_type"] = getattr(exc, "code", None) or type(exc).__name__
            return rec
        rec["value"] = literal
        return rec

    def has_fired(self, my_task: Any) -> bool:
        return bool(self.record(my_task, reevaluate=True)["done"])

    def reset(self, my_task: Any) -> None:
        my_task.internal_data.get(STATE_KEY, {}).pop(self._key(), None)
        my_task._set_internal_data(event_fired=False)

    def details(self, my_task: Any) -> Any:
        rec = my_task.internal_data.get(STATE_KEY, {}).get(self._key()) or {}
        return PendingBpmnEvent(self.name, type(self).__name__, rec.get("due"))

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self.name == getattr(other, "name", None)
            and self.element_id == getattr(other, "element_id", None)
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name, self.element_id))


class DateTimerDefinition(_Timer, TimeDateEventDefinition):  # type: ignore[misc]  # SpiffWorkflow is untyped
    """A ``timeDate``: fires once at an instant."""

    kind = DATE

    def __init__(self, name: str, expression: str, *, element_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, expression, **kwargs)
        self.element_id = element_id


class DurationTimerDefinition(_Timer, DurationTimerEventDefinition):  # type: ignore[misc]  # untyped base
    """A ``timeDuration``: fires once, a duration after the task starts waiting."""

    kind = DURATION

    def __init__(self, name: str, expression: str, *, element_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, expression, **kwargs)
        self.element_id = element_id


class CycleTimerDefinition(_Timer, CycleTimerEventDefinition):  # type: ignore[misc]  # untyped base
    """A ``timeCycle``: each firing sends a token down the outgoing flow while the event keeps waiting.

    When the repetitions are used up the event itself completes. SpiffWorkflow calls
    :meth:`cycle_complete` on every refresh; it answers True exactly once per firing ordered by
    :func:`fire`.
    """

    kind = CYCLE

    def __init__(self, name: str, expression: str, *, element_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, expression, **kwargs)
        self.element_id = element_id

    def cycle_complete(self, my_task: Any) -> bool:
        rec = self.record(my_task, reevaluate=True)
        if rec.get("pending"):
            rec["pending"] = False
            return True
        return False


TIMER_DEFINITIONS: tuple[type[_Timer], ...] = (
    DateTimerDefinition,
    DurationTimerDefinition,
    CycleTimerDefinition,
)


class TimerDefinitionConverter(TimerConditionalEventDefinitionConverter):  # type: ignore[misc]  # untyped base
    """Serializes our timer definitions (only needed when a spec is serialized, e.g. for migrations)."""

    def to_dict(self, event_definition: Any) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(event_definition)
        dct["element_id"] = event_definition.element_id
        return dct


SERIALIZER_CONFIG: dict[type, type] = dict.fromkeys(TIMER_DEFINITIONS, TimerDefinitionConverter)


# -- the workflow side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingTimer:
    """A timer a waiting task is waiting for, as the ``timer`` table stores it."""

    task_id: str
    element_id: str
    kind: str
    value: str | None
    due_at: datetime | None
    interrupting: bool
    attached_to_task_id: str | None
    error: str | None = None
    error_type: str | None = None
    error_reported: bool = False


def _definitions(task: Any) -> Iterator[_Timer]:
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, _Timer):
        yield definition
    elif isinstance(definition, MultipleEventDefinition):
        for inner in definition.event_definitions:
            if isinstance(inner, _Timer):
                yield inner


def _attached_to(task: Any) -> str | None:
    if not isinstance(task.task_spec, BoundaryEventMixin) or task.parent is None:
        return None
    for sibling in task.parent.children:
        if not isinstance(sibling.task_spec, BoundaryEventMixin):
            return str(sibling.id)
    return None


def _waiting_tasks(workflow: Any) -> list[Any]:
    tasks = [t for t in workflow.event_manager.tasks.values() if t.state == TaskState.WAITING]
    return sorted(tasks, key=lambda t: str(t.id))


def waiting_timers(workflow: Any, *, now: datetime) -> list[WaitingTimer]:
    """Every timer the workflow waits for; a timer that has just started waiting gets its due time now.

    An event-based gateway waiting on several timers is reported once, with its earliest timer.
    """
    found: dict[str, WaitingTimer] = {}
    for task in _waiting_tasks(workflow):
        for definition in _definitions(task):
            rec = definition.record(task)
            if rec["value"] is not None and rec["due"] is None and not rec["done"]:
                try:
                    rec["due"] = first_due(definition.kind, rec["value"], now=now).isoformat()
                except ValidationError as exc:
                    rec["error"], rec["error_type"] = exc.detail, exc.code
            timer = WaitingTimer(
                task_id=str(task.id),
                element_id=definition._key(),
                kind=definition.kind,
                value=rec["value"],
                due_at=datetime.fromisoformat(rec["due"]) if rec["due"] and not rec.get("error") else None,
                interrupting=bool(getattr(task.task_spec, "cancel_activity", False)),
                attached_to_task_id=_attached_to(task),
                error=rec.get("error"),
                error_type=rec.get("error_type"),
                error_reported=bool(rec.get("error_reported")),
            )
            current = found.get(timer.task_id)
            if current is None or (
                timer.due_at and (current.due_at is None or timer.due_at < current.due_at)
            ):
                found[timer.task_id] = timer
    return list(found.values())


def mark_error_reported(workflow: Any, task_id: str, element_id: str) -> None:
    """Remember that an incident was raised for this timer's error, so that it is raised once."""
    task = workflow.get_task_from_id(UUID(task_id))
    rec = task.internal_data.get(STATE_KEY, {}).get(element_id)
    if rec is not None:
        rec["error_reported"] = True


def boundary_due(workflow: Any, task_id: str, *, now: datetime) -> datetime | None:
    """The earliest due time of the interrupting boundary timers attached to the task ``task_id``."""
    dues = [
        t.due_at
        for t in waiting_timers(workflow, now=now)
        if t.attached_to_task_id == task_id and t.interrupting and t.due_at is not None
    ]
    return min(dues) if dues else None


def has_timer_events(spec: Any, subprocess_specs: dict[str, Any]) -> bool:
    """Whether any process in the bundle has a timer event (else its instances never have timers)."""
    for process in [spec, *subprocess_specs.values()]:
        for task_spec in process.task_specs.values():
            definition = getattr(task_spec, "event_definition", None)
            if isinstance(definition, _Timer):
                return True
            if isinstance(definition, MultipleEventDefinition) and any(
                isinstance(d, _Timer) for d in definition.event_definitions
            ):
                return True
    return False


@dataclass(frozen=True)
class Firing:
    """What :func:`fire` did: the due time it fired for, which occurrence, and the next due time."""

    due_at: datetime
    occurrence: int
    next_due_at: datetime | None


class TimerNotWaitingError(LookupError):
    """The timer's task is no longer waiting (the row is stale)."""


def is_waiting(workflow: Any, task_id: str, element_id: str) -> datetime | None:
    """The due time of the timer ``element_id`` on task ``task_id`` if it is waiting, else None."""
    for timer in _timers_of(workflow, task_id):
        if timer[0]._key() == element_id:
            rec = timer[1]
            return datetime.fromisoformat(rec["due"]) if rec.get("due") and not rec.get("error") else None
    return None


def _timers_of(workflow: Any, task_id: str) -> list[tuple[_Timer, dict[str, Any]]]:
    try:
        task = workflow.get_task_from_id(UUID(task_id))
    except (SpiffWorkflowException, KeyError, ValueError):
        return []
    if task is None or task.state != TaskState.WAITING:
        return []
    return [(d, d.record(task)) for d in _definitions(task)]


def fire(workflow: Any, task_id: str, element_id: str) -> Firing:
    """Fire one occurrence of a waiting timer; the caller then runs the workflow's engine steps.

    A date or duration (or any timer on an interrupting boundary event) fires once and its task becomes
    ready. A cycle sends a token down its outgoing flow and computes its next due time; after its last
    repetition the event itself completes.
    """
    try:
        task = workflow.get_task_from_id(UUID(task_id))
    except (SpiffWorkflowException, KeyError, ValueError) as exc:
        raise TimerNotWaitingError(task_id) from exc
    if task is None or task.state != TaskState.WAITING:
        raise TimerNotWaitingError(task_id)
    definition = next((d for d in _definitions(task) if d._key() == element_id), None)
    if definition is None:
        raise TimerNotWaitingError(task_id)
    rec = definition.record(task)
    if not rec.get("due") or rec.get("error"):
        raise TimerNotWaitingError(task_id)
    due = datetime.fromisoformat(rec["due"])
    occurrence = rec["fired"] + 1
    once = definition.kind != CYCLE or bool(getattr(task.task_spec, "cancel_activity", False))
    # Computed before anything changes: a due time out of range fails the step with the timer untouched.
    following = None if once else next_due(CYCLE, rec["value"], previous_due=due, fired_count=occurrence)
    rec["fired"] = occurrence
    if definition.kind == CYCLE:
        # A cycle event never predicts its outgoing flow; each firing adds it (the last one too).
        rec["pending"] = True
        task.task_spec._update(task)
    rec["due"] = following.isoformat() if following else None
    if following is None:
        rec["done"] = True
        task.task_spec._update(task)
    return Firing(due_at=due, occurrence=rec["fired"], next_due_at=following)
