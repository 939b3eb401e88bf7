"""Moving running cases to another version of their process: the check, the move and its report.

A case keeps the definition version it started on. A migration re-reads the case's stored state
against a later (or earlier) version of the same process key:

* every element the case is at (a ready or waiting task, a running subprocess, a failed step) must
  have a counterpart in the target version, found by its BPMN id or through the caller's mapping
  ``old_id -> new_id``, and of the same kind; otherwise the migration is refused with one reason per
  element and nothing changes;
* the case data, task ids (and so the inbox rows, their assignees and the history) are kept; what the
  engine predicted would come next is predicted again from the target version, so a step added after
  the current one is taken;
* waiting timers are re-armed against the target version's expressions (see :class:`TimerMove` for
  which due times are kept and which are recomputed);
* the inbox rows, ``timer`` and ``message_subscription`` rows are brought into line, the instance
  points at the new definition, and an ``instance.migrated`` audit event records who moved it, from
  which version to which and with what mapping.

A dry run computes the same report and changes nothing. The engine does not run any step during a
migration: the new version takes effect from the next completion, message or timer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent as BoundaryEventMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session, sessionmaker

from engine.bpmn import SpecBundle
from engine.db import transaction
from engine.errors import ConflictError, EngineError, InstanceStateError, ValidationError
from engine.instances import RUNNING, SUSPENDED, Actor, EngineContext, InstanceService
from engine.models import HumanTask, ProcessDefinition, ProcessInstance, Timer
from engine.registry import get_definition
from engine.runtime import Workflow, unpack
from engine.timeexpr import first_due, next_due
from engine.timer_events import CYCLE, DATE, DURATION, STATE_KEY, _attached_to, _definitions

log = logging.getLogger("opsflow.migration")

_LIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
_FINISHED = TaskState.COMPLETED | TaskState.CANCELLED
_PREDICTED = TaskState.FUTURE | TaskState.LIKELY | TaskState.MAYBE
_SUFFIXES = (".BoundaryEventSplit", ".BoundaryEventJoin", " [child]")
_MIGRATABLE = (RUNNING, SUSPENDED)

# How a waiting timer's due time was settled by a migration.
KEPT = "kept"  # same value in the new version: the original due time stands
ORIGINAL_START = "original_start"  # duration or cycle changed: counted again from when it started waiting
INSTANT = "instant"  # date changed: the new instant
ACTIVITY_START = "activity_start"  # a boundary timer new to the task: counted from when the task began
ARMED_NOW = "armed_now"  # no earlier state for this timer: it starts waiting at the migration


class MigrationRefusedError(ConflictError):
    """The case cannot move to the target version; ``reasons`` names each element that blocks it."""

    code = "migration-refused"
    title = "The instance cannot be migrated to that version"

    def __init__(self, detail: str, *, report: MigrationReport) -> None:
        super().__init__(
            detail,
            errors={f"$.elements.{r.element_id}": [r.message] for r in report.reasons},
        )
        self.report = report


@dataclass(frozen=True)
class Reason:
    """Why an element blocks the migration."""

    element_id: str
    message: str


@dataclass(frozen=True)
class ElementMove:
    """An element the case is at, and where it will be in the target version."""

    task_id: str
    element_id: str
    to_element_id: str | None
    element_type: str
    state: str
    process: str
    mapped: bool
    change: str = "moved"  # "moved"; "dropped" or "added" for boundary events of a live activity


@dataclass(frozen=True)
class TimerMove:
    """A waiting timer and its due time before and after.

    ``basis`` says how the new due time was found: ``kept`` (the timer's value is the same in the
    target version, so its due time stands), ``original_start`` (a duration or cycle changed: it is
    counted again from the moment the timer originally started waiting, so a case is not given extra
    time by being migrated), ``instant`` (a date changed: the new instant), ``activity_start`` (a
    boundary timer the new version attaches to an inbox task the case is at: counted from when that
    task was created) or ``armed_now`` (no earlier start is known: it starts waiting at the
    migration). A due time already past fires at the next poll.
    """

    task_id: str
    element_id: str
    to_element_id: str
    kind: str
    value: str | None
    to_value: str | None
    due_at: datetime | None
    to_due_at: datetime | None
    basis: str


@dataclass
class MigrationReport:
    """What a migration did, or in a dry run would do."""

    instance_id: str
    process_key: str
    from_version: int
    to_version: int
    mapping: dict[str, str]
    dry_run: bool
    migrated: bool = False
    elements: list[ElementMove] = field(default_factory=list)
    timers: list[TimerMove] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)

    @property
    def possible(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["possible"] = self.possible
        return out


@dataclass(frozen=True)
class BulkResult:
    """The outcome for one instance of a bulk migration."""

    instance_id: str
    outcome: str  # "migrated", "possible" (dry run), "refused" or "failed"
    report: MigrationReport | None = None
    detail: str | None = None


# -- the service ------------------------------------------------------------------------------------


class MigrationService:
    """Checks and performs migrations of single instances; the caller owns the transaction."""

    def __init__(self, session: Session, context: EngineContext) -> None:
        self.session = session
        self.ctx = context
        self.instances = InstanceService(session, context)

    def migrate(
        self,
        instance_id: str,
        *,
        to_version: int,
        mapping: Mapping[str, str] | None = None,
        dry_run: bool = False,
        actor: Actor,
    ) -> MigrationReport:
        """Move the instance to ``to_version``, or in a dry run report what would happen.

        Raises ``MigrationRefusedError`` (a real run) when an element has no counterpart; a dry run
        returns the report with its ``reasons`` instead.
        """
        instance = self.instances.lock_instance(instance_id)
        if instance.status not in _MIGRATABLE:
            raise InstanceStateError(
                f"only a running or suspended instance can be migrated; this one is {instance.status}",
                status=instance.status,
            )
        source = self.session.get(ProcessDefinition, instance.definition_id)
        assert source is not None  # noqa: S101  (foreign key guarantees it)
        target = get_definition(self.session, instance.process_key, to_version)
        if target.id == source.id:
            raise ValidationError(
                f"the instance already runs version {to_version}",
                errors={"$.to_version": [f"the instance already runs version {to_version}"]},
            )
        old_bundle = self.ctx.registry.bundle(self.session, source)
        new_bundle = self.ctx.registry.bundle(self.session, target)
        clean = check_mapping(mapping or {}, old_bundle, new_bundle)
        report = MigrationReport(
            instance_id=instance.id,
            process_key=instance.process_key,
            from_version=source.version,
            to_version=target.version,
            mapping=clean,
            dry_run=dry_run,
        )
        workflow = self._rebuild(instance, old_bundle, new_bundle, clean, report)
        if workflow is not None:
            self._rearm_timers(instance, workflow, report)
        if dry_run:
            return report
        if workflow is None or report.reasons:
            raise MigrationRefusedError(_refusal(report), report=report)
        instance.definition_id = target.id
        instance.process_version = target.version
        self.instances.rebase(instance, workflow, actor=actor)
        report.migrated = True
        self.instances.audit.record(
            actor=actor.subject,
            kind="alteration",
            action="instance.migrated",
            record_type="process_instance",
            record_id=instance.id,
            instance_id=instance.id,
            purpose=actor.purpose,
            detail={
                "process_key": instance.process_key,
                "from_version": source.version,
                "to_version": target.version,
                "mapping": clean,
                "elements": {e.element_id: e.to_element_id for e in report.elements},
                "timers": [
                    {
                        "element_id": t.to_element_id,
                        "due_at": t.due_at.isoformat() if t.due_at else None,
                        "to_due_at": t.to_due_at.isoformat() if t.to_due_at else None,
                        "basis": t.basis,
                    }
                    for t in report.timers
                ],
            },
        )
        log.info(
            "instance.migrated instance_id=%s key=%s from=%s to=%s",
            instance.id,
            instance.process_key,
            source.version,
            target.version,
        )
        return report

    # -- the task tree ---------------------------------------------------------------------------

    def _rebuild(
        self,
        instance: ProcessInstance,
        old_bundle: SpecBundle,
        new_bundle: SpecBundle,
        mapping: dict[str, str],
        report: MigrationReport,
    ) -> Workflow | None:
        """The case's workflow restored against the new version, or None when it cannot be."""
        runtime = self.ctx.runtime
        current = self.instances.load_workflow(instance)
        dct = unpack(runtime.dump(current))
        replan = _Translator(dct, old_bundle, new_bundle, mapping, report).run()
        if report.reasons:
            return None
        try:
            workflow = runtime.load(dct, version=runtime.serializer_version, bundle=new_bundle)
            for task_id in replan:
                _predict_again(workflow.get_task_from_id(UUID(task_id)))
        except (SpiffWorkflowException, KeyError, AttributeError, TypeError, ValueError) as exc:
            report.reasons.append(
                Reason(instance.process_key, f"the case cannot be laid onto the new version: {exc}")
            )
            return None
        return workflow

    # -- timers ----------------------------------------------------------------------------------

    def _rearm_timers(self, instance: ProcessInstance, workflow: Workflow, report: MigrationReport) -> None:
        now = self.ctx.clock.now()
        started = {
            row.task_id: row.created_at
            for row in self.session.scalars(sa.select(Timer).where(Timer.instance_id == instance.id))
        }
        renamed = {new: old for old, new in report.mapping.items()}
        for task in _waiting(workflow):
            records: dict[str, dict[str, Any]] = task.internal_data.setdefault(STATE_KEY, {})
            wanted = {d._key() for d in _definitions(task)}
            for stale in set(records) - wanted:
                del records[stale]
            for definition in _definitions(task):
                key = definition._key()
                old = records.get(key)
                fresh = definition._evaluate(task)
                if fresh.get("error"):
                    report.reasons.append(
                        Reason(key, f"timer {key} cannot be evaluated in the new version: {fresh['error']}")
                    )
                    continue
                start = started.get(str(task.id)) if old else self._activity_start(task)
                move = self._settle(fresh, old, start=start, now=now, key=key, report=report)
                if move is None:
                    continue
                records[key] = old if move == KEPT and old is not None else fresh
                report.timers.append(
                    TimerMove(
                        task_id=str(task.id),
                        element_id=renamed.get(key, key),
                        to_element_id=key,
                        kind=fresh["kind"],
                        value=old.get("value") if old else None,
                        to_value=fresh["value"],
                        due_at=_parse(old.get("due")) if old else None,
                        to_due_at=_parse(fresh.get("due")),
                        basis=move,
                    )
                )

    def _activity_start(self, task: Any) -> datetime | None:
        """When the inbox task a boundary event is attached to was created (None for other tasks)."""
        attached = _attached_to(task)
        row = self.session.get(HumanTask, attached) if attached else None
        return row.created_at if row is not None else None

    @staticmethod
    def _settle(
        fresh: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        start: datetime | None,
        now: datetime,
        key: str,
        report: MigrationReport,
    ) -> str | None:
        """Give ``fresh`` (the timer evaluated against the new version) its due time; returns the basis."""
        kind, value = fresh["kind"], fresh["value"]
        if old is None or not old.get("due"):
            origin = start if old is None and start is not None else now
            fresh["due"] = first_due(kind, value, now=now if kind == DATE else origin).isoformat()
            return ACTIVITY_START if origin is start else ARMED_NOW
        fired = int(old.get("fired") or 0)
        fresh["fired"] = fired
        if old.get("kind") == fresh["kind"] and old.get("value") == fresh["value"]:
            fresh["due"] = old["due"]
            return KEPT
        origin = start or now
        if kind == DATE:
            fresh["due"] = first_due(DATE, value, now=now).isoformat()
            return INSTANT
        due: datetime | None = first_due(kind, value, now=origin)
        if kind == CYCLE:
            for count in range(1, fired + 1):
                assert due is not None  # noqa: S101  (checked at the end of each round)
                due = next_due(CYCLE, value, previous_due=due, fired_count=count)
                if due is None:
                    report.reasons.append(
                        Reason(key, f"cycle {key} has fired {fired} time(s); the new version allows {count}")
                    )
                    return None
        elif kind != DURATION:
            return None
        assert due is not None  # noqa: S101  (a duration always has a due time)
        fresh["due"] = due.isoformat()
        return ORIGINAL_START


# -- translating the stored tree --------------------------------------------------------------------


class _Translator:
    """Renames every task of the stored tree to the new version's task specs, scope by scope.

    Live tasks must have a counterpart of the same kind. Predictions below a live task are dropped
    (the live task is predicted again from the new version once loaded). Finished tasks the case still
    keeps (the parents of live tasks) whose element is gone are kept as anonymous finished steps:
    their history is already in ``task_history``.
    """

    def __init__(
        self,
        dct: dict[str, Any],
        old: SpecBundle,
        new: SpecBundle,
        mapping: dict[str, str],
        report: MigrationReport,
    ) -> None:
        self.dct = dct
        self.old = old
        self.new = new
        self.mapping = mapping
        self.report = report
        self.replan: list[str] = []

    def run(self) -> list[str]:
        scopes: list[tuple[dict[str, Any], Any, Any]] = [(self.dct, self.old.spec, self.new.spec)]
        pending = dict(self.dct.get("subprocesses", {}))
        new_specs: dict[str, Any] = {}
        while scopes:
            scope, old_spec, new_spec = scopes.pop(0)
            new_specs.update(self._scope(scope, old_spec, new_spec))
            for sp_id in [k for k in pending if k in new_specs]:
                sub = pending.pop(sp_id)
                old_sub = self.old.subprocess_specs.get(sub["spec"])
                parent_new = new_specs[sp_id]
                new_name = getattr(parent_new, "spec", None) if parent_new is not None else None
                new_sub = self.new.subprocess_specs.get(new_name) if new_name else None
                if old_sub is None or new_sub is None:
                    continue  # the parent task's reason already says why
                sub["spec"] = new_sub.name
                scopes.append((sub, old_sub, new_sub))
        return self.replan

    def _scope(self, scope: dict[str, Any], old_spec: Any, new_spec: Any) -> dict[str, Any]:
        """Translate one (sub)process's tasks; returns task id -> new task spec (None when missing)."""
        tasks: dict[str, dict[str, Any]] = scope["tasks"]
        result: dict[str, Any] = {}
        drop: set[str] = set()
        added = self._boundaries(tasks, old_spec, new_spec, drop)
        for task_id, task in tasks.items():
            state = task["state"]
            if task_id in added or task_id in drop:
                continue
            if state & _PREDICTED and self._replanned(tasks, task):
                drop.add(task_id)
                continue
            old_ts = old_spec.task_specs.get(task["task_spec"])
            new_name = self._translate(task["task_spec"], old_spec.name, new_spec.name)
            new_ts = new_spec.task_specs.get(new_name)
            result[task_id] = new_ts
            element = _element(task["task_spec"], old_ts)
            must_match = not (state & _FINISHED)
            if new_ts is not None and must_match and not _same_kind(old_ts, new_ts):
                self._refuse(
                    element,
                    f"{element} is {_kind(old_ts)} ({TaskState.get_name(state).lower()}); its counterpart "
                    f"{_element(new_name, new_ts)} in version {self.report.to_version} is {_kind(new_ts)}",
                )
            elif new_ts is None and must_match:
                self._refuse(
                    element,
                    f"the case is at {element} ({TaskState.get_name(state).lower()}), which version "
                    f"{self.report.to_version} does not have; map it to an element of that version",
                )
            if new_ts is None:
                new_name = "Start"  # a finished step only the tree structure still needs
            task["task_spec"] = new_name
            self._move_timer_state(task)
            if state & _LIVE and old_ts is not None and getattr(old_ts, "bpmn_id", None):
                self.report.elements.append(
                    self._move(task_id, old_ts, new_ts, state, old_spec.name, "moved")
                )
        self._drop(scope, drop)
        return result

    def _boundaries(
        self, tasks: dict[str, dict[str, Any]], old_spec: Any, new_spec: Any, drop: set[str]
    ) -> set[str]:
        """Follow the new version's boundary events on the activities the case is at.

        A waiting boundary event the new version no longer attaches to the activity is dropped (with
        its timer or subscription); one it newly attaches starts waiting (the activity gets the
        split that holds boundary events, if it had none). Returns the ids of the tasks added.
        """
        added: set[str] = set()
        for task in list(tasks.values()):
            old_ts = old_spec.task_specs.get(task["task_spec"])
            if not task["state"] & _LIVE or _is_boundary(old_ts) or not getattr(old_ts, "bpmn_id", None):
                continue
            new_name = self._translate(task["task_spec"], old_spec.name, new_spec.name)
            new_split = new_spec.task_specs.get(f"{new_name}.BoundaryEventSplit")
            outputs = {out.name for out in new_split.outputs} if new_split is not None else set()
            parent = tasks.get(task["parent"] or "")
            in_split = parent is not None and parent["task_spec"].endswith(".BoundaryEventSplit")
            present: set[str] = set()
            for child_id in parent["children"] if parent is not None and in_split else []:
                child = tasks[child_id]
                child_ts = old_spec.task_specs.get(child["task_spec"])
                if not _is_boundary(child_ts):
                    continue
                child_name = self._translate(child["task_spec"], old_spec.name, new_spec.name)
                if child_name in outputs:
                    present.add(child_name)
                elif child["state"] & TaskState.WAITING:
                    drop.update(_subtree(tasks, child_id))
                    self.report.elements.append(
                        self._move(child_id, child_ts, None, child["state"], old_spec.name, "dropped")
                    )
            if new_split is None or parent is None:
                continue
            if not in_split:
                parent = self._insert_split(tasks, task, new_split.name)
                added.add(parent["id"])
            for output in new_split.outputs:
                if _is_boundary(output) and output.name not in present:
                    task_id = str(uuid4())
                    tasks[task_id] = _task(task_id, parent["id"], output.name, TaskState.WAITING, task)
                    parent["children"].append(task_id)
                    added.add(task_id)
                    self.replan.append(task_id)
                    self.report.elements.append(
                        self._move(task_id, output, output, TaskState.WAITING, old_spec.name, "added")
                    )
        return added

    @staticmethod
    def _insert_split(tasks: dict[str, dict[str, Any]], task: dict[str, Any], name: str) -> dict[str, Any]:
        """Put a finished boundary-event split between ``task`` and its parent (its data is the parent's)."""
        parent = tasks[task["parent"]]
        split_id = str(uuid4())
        split = _task(split_id, parent["id"], name, TaskState.COMPLETED, task)
        split["children"] = [task["id"]]
        parent["children"][parent["children"].index(task["id"])] = split_id
        task["parent"] = split_id
        tasks[split_id] = split
        return split

    def _move(
        self, task_id: str, old_ts: Any, new_ts: Any, state: int, process: str, change: str
    ) -> ElementMove:
        return ElementMove(
            task_id=task_id,
            element_id=old_ts.bpmn_id,
            to_element_id=new_ts.bpmn_id if new_ts is not None else None,
            element_type=type(old_ts).__name__,
            state=TaskState.get_name(state).lower(),
            process=process,
            mapped=old_ts.bpmn_id in self.mapping,
            change=change,
        )

    def _replanned(self, tasks: dict[str, dict[str, Any]], task: dict[str, Any]) -> bool:
        """Whether this prediction hangs below a live task that will be predicted again."""
        ancestor = task
        while ancestor["parent"] is not None and ancestor["state"] & _PREDICTED:
            ancestor = tasks[ancestor["parent"]]
        if ancestor is task or not ancestor["state"] & _LIVE:
            return False
        for child_id in ancestor["children"]:
            child = tasks[child_id]
            if child["state"] & (_LIVE | TaskState.COMPLETED) and not child["triggered"]:
                return False  # its children are in play; keep the predictions as they are
        if ancestor["id"] not in self.replan:
            self.replan.append(ancestor["id"])
        return True

    def _drop(self, scope: dict[str, Any], drop: set[str]) -> None:
        tasks: dict[str, dict[str, Any]] = scope["tasks"]
        for task_id in drop:
            parent = tasks[task_id]["parent"]
            if parent is not None and parent not in drop:
                tasks[parent]["children"].remove(task_id)
        for task_id in drop:
            del tasks[task_id]
        if scope.get("last_task") in drop:
            scope["last_task"] = None

    def _translate(self, name: str, old_process: str, new_process: str) -> str:
        if name in ("Start", "End"):
            return name
        if name == f"{old_process}.EndJoin":
            return f"{new_process}.EndJoin"
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                return self.mapping.get(base, base) + suffix
        return self.mapping.get(name, name)

    def _move_timer_state(self, task: dict[str, Any]) -> None:
        records = task.get("internal_data", {}).get(STATE_KEY)
        if records:
            task["internal_data"][STATE_KEY] = {self.mapping.get(k, k): v for k, v in records.items()}

    def _refuse(self, element: str, message: str) -> None:
        if not any(r.element_id == element for r in self.report.reasons):
            self.report.reasons.append(Reason(element, message))


def _is_boundary(spec: Any) -> bool:
    return isinstance(spec, BoundaryEventMixin)


def _subtree(tasks: dict[str, dict[str, Any]], task_id: str) -> list[str]:
    found, stack = [], [task_id]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(tasks[current]["children"])
    return found


def _task(
    task_id: str, parent_id: str, spec_name: str, state: int, sibling: dict[str, Any]
) -> dict[str, Any]:
    """A task in the library's stored form, with the data of its parent."""
    return {
        "id": task_id,
        "parent": parent_id,
        "children": [],
        "last_state_change": sibling["last_state_change"],
        "state": int(state),
        "task_spec": spec_name,
        "triggered": False,
        "internal_data": {},
        "data": {},
        "delta": {"updates": {}, "deletions": []},
        "typename": sibling.get("typename", "Task"),
    }


def _predict_again(task: Any) -> None:
    """Predict what follows a live task from its (new) spec, as SpiffWorkflow does when it starts."""
    task.task_spec._predict_hook(task)
    for child in task.children:
        if child.has_state(_PREDICTED):
            child.task_spec._predict(child, mask=_PREDICTED)


def _waiting(workflow: Workflow) -> list[Any]:
    tasks = [t for t in workflow.event_manager.tasks.values() if t.state == TaskState.WAITING]
    return sorted(tasks, key=lambda t: str(t.id))


def _element(name: str, spec: Any) -> str:
    bpmn_id = getattr(spec, "bpmn_id", None)
    if bpmn_id:
        return str(bpmn_id)
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _kind(spec: Any) -> str:
    if spec is None:
        return "missing"
    definition = getattr(spec, "event_definition", None)
    name = type(spec).__name__
    return f"{name} ({type(definition).__name__})" if definition is not None else name


def _same_kind(old: Any, new: Any) -> bool:
    if old is None:
        return True
    return _kind(old) == _kind(new)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _refusal(report: MigrationReport) -> str:
    named = ", ".join(r.element_id for r in report.reasons)
    return (
        f"instance {report.instance_id} cannot move from version {report.from_version} to "
        f"{report.to_version}: {len(report.reasons)} element(s) block it ({named})"
    )


def _element_ids(bundle: SpecBundle) -> set[str]:
    ids: set[str] = set()
    for process in [bundle.spec, *bundle.subprocess_specs.values()]:
        ids.update(ts.bpmn_id for ts in process.task_specs.values() if getattr(ts, "bpmn_id", None))
    return ids


def check_mapping(mapping: Mapping[str, str], old: SpecBundle, new: SpecBundle) -> dict[str, str]:
    """The mapping, once every key is an element of the old version and every value one of the new."""
    errors: dict[str, list[str]] = {}
    old_ids, new_ids = _element_ids(old), _element_ids(new)
    for source, target in mapping.items():
        if not isinstance(source, str) or not isinstance(target, str):
            errors[f"$.mapping.{source}"] = ["element ids are strings"]
            continue
        if source not in old_ids:
            errors.setdefault(f"$.mapping.{source}", []).append(
                f"{source!r} is not an element of the instance's current version"
            )
        if target not in new_ids:
            errors.setdefault(f"$.mapping.{source}", []).append(
                f"{target!r} is not an element of the target version"
            )
    if errors:
        raise ValidationError(f"the mapping names {len(errors)} unknown element(s)", errors=errors)
    return dict(sorted(mapping.items()))


# -- many instances ---------------------------------------------------------------------------------


def migrate_version(
    sessions: sessionmaker[Session],
    context: EngineContext,
    *,
    key: str,
    from_version: int,
    to_version: int,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    actor: Actor,
    may_migrate: Callable[[ProcessInstance], bool] | None = None,
) -> list[BulkResult]:
    """Migrate every running or suspended instance of ``key`` version ``from_version``.

    Each instance moves in its own transaction, so one refusal leaves the others to move. Instances
    ``may_migrate`` rejects (e.g. outside the caller's need to know) are left alone and not listed.
    """
    if from_version == to_version:
        raise ValidationError(
            "the source and target versions are the same",
            errors={"$.to_version": [f"instances of version {from_version} already run it"]},
        )
    with transaction(sessions) as session:
        get_definition(session, key, from_version)
        get_definition(session, key, to_version)
        ids = list(
            session.scalars(
                sa.select(ProcessInstance.id)
                .where(
                    ProcessInstance.process_key == key,
                    ProcessInstance.process_version == from_version,
                    ProcessInstance.status.in_(_MIGRATABLE),
                )
                .order_by(ProcessInstance.started_at, ProcessInstance.id)
            )
        )
    results: list[BulkResult] = []
    for instance_id in ids:
        try:
            with transaction(sessions) as session:
                instance = session.get(ProcessInstance, instance_id)
                if instance is None or (may_migrate is not None and not may_migrate(instance)):
                    continue
                report = MigrationService(session, context).migrate(
                    instance_id, to_version=to_version, mapping=mapping, dry_run=dry_run, actor=actor
                )
            outcome = ("possible" if report.possible else "refused") if dry_run else "migrated"
            results.append(BulkResult(instance_id, outcome, report=report))
        except MigrationRefusedError as exc:
            results.append(BulkResult(instance_id, "refused", report=exc.report, detail=exc.detail))
        except ValidationError:
            raise  # a bad mapping is wrong for every instance alike
        except EngineError as exc:
            results.append(BulkResult(instance_id, "failed", detail=exc.detail))
    return results
