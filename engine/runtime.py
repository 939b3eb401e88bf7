"""The SpiffWorkflow facade: create, load, advance, compact and dump workflows.

Everything the rest of the engine knows about SpiffWorkflow passes through here. Two design points:

* A stored instance holds the serialized task tree *without* its spec; the spec is parsed once per
  definition version and shared (``SpecBundle``), so a row stays small and loading is cheap.
* After every step the finished part of the tree is compacted away (its history was already written
  as ``TaskHistory`` rows). SpiffWorkflow grows the tree by one level per loop iteration and stops
  looking past depth 1000, so without this a review loop silently stalls after a few hundred rounds;
  with it the tree, the stored state and the cost of a step stay flat however long a case runs.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, TypeAlias
from uuid import UUID, uuid4

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.helpers.encoder import create_encoder
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import CallActivity
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import SpecBundle, user_task_properties
from engine.timer_events import SERIALIZER_CONFIG as TIMER_CONFIG

FINISHED = TaskState.COMPLETED | TaskState.CANCELLED
_FINAL_DATA = "final_case_data"
_LIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR

# SpiffWorkflow ships no type information; the alias documents intent at call sites.
Workflow: TypeAlias = Any


@dataclass(frozen=True)
class StepRecord:
    """A finished BPMN element, to be written to the history table."""

    task_id: str
    element_id: str
    name: str | None
    element_type: str
    state: str
    data_changes: dict[str, Any]


@dataclass(frozen=True)
class ReadyUserTask:
    """A READY user or manual task as the inbox needs it."""

    id: str
    element_id: str
    name: str
    lane: str | None
    properties: Mapping[str, str]
    data: dict[str, Any]


def _registry() -> Any:
    # Our timer definitions replace SpiffWorkflow's, which read the wall clock and parse ISO by hand.
    return BpmnWorkflowSerializer.configure({**SPIFF_CONFIG, **TIMER_CONFIG})


class WorkflowRuntime:
    """Builds, restores and runs workflows against shared, pre-parsed specs."""

    serializer_version = SERIALIZER_VERSION

    def __init__(self, script_engine: PythonScriptEngine | None = None) -> None:
        self._registry = _registry()
        self._serializer = BpmnWorkflowSerializer(self._registry)
        self._converter = BpmnWorkflowConverter(BpmnWorkflow, self._registry)
        self._encoder = create_encoder(self._registry)
        self.script_engine = script_engine or PythonScriptEngine()

    # -- serialization ---------------------------------------------------------------------------

    def json_dumps(self, value: Any) -> str:
        """JSON with SpiffWorkflow's typed values (dates, sets) encoded; used for every JSON column."""
        return json.dumps(value, cls=self._encoder, separators=(",", ":"))

    def dump(self, workflow: Workflow) -> dict[str, Any]:
        """The workflow's state without its spec (the definition row holds the source)."""
        dct: dict[str, Any] = WorkflowConverter.to_dict(self._converter, workflow)
        dct["subprocesses"] = self._converter.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self._registry.convert(workflow.bpmn_events)
        return pack(dct)

    def load(self, state: Mapping[str, Any], *, version: str, bundle: SpecBundle) -> Workflow:
        """Restore a workflow; the stored dict is deep-copied because restoring mutates it."""
        dct = unpack(deepcopy(dict(state)))
        if version != self.serializer_version:
            self._migrate(dct, version, bundle)
        _wire_loops(bundle)
        workflow = BpmnWorkflow(
            bundle.spec, bundle.subprocess_specs, script_engine=self.script_engine, deserializing=True
        )
        workflow.tasks = self._converter.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self._converter.set_default_attributes(workflow, dct)
        self._converter.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self._registry.restore(dct.pop("bpmn_events", []))
        return workflow

    def _migrate(self, dct: dict[str, Any], version: str, bundle: SpecBundle) -> None:
        # The library's migrations expect the spec inside the document; lend it for the duration.
        dct["spec"] = self._registry.convert(bundle.spec)
        dct["subprocess_specs"] = {k: self._registry.convert(v) for k, v in bundle.subprocess_specs.items()}
        migrate = MIGRATIONS.get(version)
        if migrate is not None:
            migrate(dct)
        dct.pop("spec", None)
        dct.pop("subprocess_specs", None)

    # -- running ---------------------------------------------------------------------------------

    def create(self, bundle: SpecBundle, data: Mapping[str, Any]) -> Workflow:
        workflow = BpmnWorkflow(bundle.spec, bundle.subprocess_specs, script_engine=self.script_engine)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(deepcopy(dict(data)))
        return workflow

    def advance(self, workflow: Workflow, *, on_step: Callable[[StepRecord], None]) -> None:
        """Run engine tasks (scripts, gateways, events) until only people or time can move the case."""

        def did_complete(task: Any) -> None:
            record = self._record(task)
            if record is not None:
                on_step(record)

        workflow.do_engine_steps(did_complete_task=did_complete)

    def complete_user_task(
        self,
        workflow: Workflow,
        task_id: str,
        data: Mapping[str, Any],
        *,
        on_step: Callable[[StepRecord], None],
    ) -> None:
        task = workflow.get_task_from_id(UUID(task_id))
        task.data.update(deepcopy(dict(data)))
        task.run()
        record = self._record(task)
        if record is not None:
            on_step(record)
        self.advance(workflow, on_step=on_step)

    @staticmethod
    def failed_task(workflow: Workflow) -> tuple[str, str] | None:
        """(task id, element id) of the step in ERROR, if any."""
        for sub in [workflow, *workflow.subprocesses.values()]:
            for task in sub.get_tasks(state=TaskState.ERROR):
                spec = task.task_spec
                return str(task.id), spec.bpmn_id or spec.name
        return None

    @staticmethod
    def discard_failed_effects(workflow: Workflow) -> None:
        """Give failed steps their inputs back: what a failing script wrote before it failed is dropped."""
        for sub in [workflow, *workflow.subprocesses.values()]:
            for task in sub.get_tasks(state=TaskState.ERROR):
                if task.parent is not None:
                    task.data = deepcopy(task.parent.data)

    @staticmethod
    def reset_failed(workflow: Workflow) -> None:
        """Put failed steps back to READY with their inputs restored, discarding partial effects."""
        for sub in [workflow, *workflow.subprocesses.values()]:
            for task in sub.get_tasks(state=TaskState.ERROR):
                if task.parent is not None:
                    task.data = deepcopy(task.parent.data)
                task._set_state(TaskState.READY)

    def cancel(self, workflow: Workflow) -> None:
        workflow.cancel()

    def evaluate(
        self, workflow: Workflow, task_id: str, expression: str, extra: Mapping[str, Any] | None = None
    ) -> Any:
        """Evaluate ``expression`` against a task's data; names in ``extra`` take precedence."""
        task = workflow.get_task_from_id(UUID(task_id))
        return workflow.script_engine.evaluate(task, expression, external_context=extra)

    @staticmethod
    def is_completed(workflow: Workflow) -> bool:
        return bool(workflow.is_completed())

    @staticmethod
    def data(workflow: Workflow) -> dict[str, Any]:
        """The case data as it stands: merged from the live tasks, else from the last finished one.

        Live tasks inside running embedded subprocesses count too: the subprocess task itself holds only
        the data it was entered with. A called process has its own data and does not count.
        """
        if _FINAL_DATA in workflow.data:
            return dict(workflow.data[_FINAL_DATA])
        tasks = list(_iter_tasks(workflow.task_tree))
        live = [t for t in tasks if t.has_state(_LIVE)]
        for sub in _embedded_subprocesses(workflow):
            live.extend(t for t in _iter_tasks(sub.task_tree) if t.has_state(_LIVE))
        if live:
            # A branch waiting at a join has not handed its data to the join yet: it is on the
            # token's parent, for the waiting token and for those the join cancelled on arrival.
            waiting = {
                t.task_spec for t in tasks if t.has_state(TaskState.WAITING) and isinstance(t.task_spec, Join)
            }
            tokens = [
                t for t in tasks if t.task_spec in waiting and t.has_state(TaskState.WAITING | FINISHED)
            ]
            merged: dict[str, Any] = {}
            for task in sorted({*live, *tokens}, key=lambda t: t.last_state_change):
                if task in tokens and task.parent is not None:
                    merged.update(task.parent.data)
                merged.update(task.data)
            return merged
        finished = [t for t in tasks if t.has_state(TaskState.COMPLETED)]
        pick = max(finished, key=lambda t: t.last_state_change) if finished else workflow.task_tree
        return dict(pick.data)

    @staticmethod
    def ready_user_tasks(workflow: Workflow) -> list[ReadyUserTask]:
        result = []
        for task in workflow.get_tasks(state=TaskState.READY, manual=True):
            spec = task.task_spec
            result.append(
                ReadyUserTask(
                    id=str(task.id),
                    element_id=spec.bpmn_id or spec.name,
                    name=spec.bpmn_name or spec.bpmn_id or spec.name,
                    lane=spec.lane,
                    properties=user_task_properties(spec),
                    data=task.data,
                )
            )
        return result

    @staticmethod
    def task_state(workflow: Workflow, task_id: str) -> str | None:
        task = workflow.get_task_from_id(UUID(task_id)) if UUID(task_id) in _all_ids(workflow) else None
        return None if task is None else TaskState.get_name(task.state)

    @staticmethod
    def _record(task: Any) -> StepRecord | None:
        spec = task.task_spec
        if getattr(spec, "bpmn_id", None) is None:
            return None
        parent = task.parent
        if parent is None:
            changes: dict[str, Any] = {"updated": dict(task.data), "deleted": []}
        else:
            changes = {
                "updated": DeepMerge.get_updated_keys(parent.data, task.data),
                "deleted": sorted(DeepMerge.get_deleted_keys(parent.data, task.data)),
            }
        return StepRecord(
            task_id=str(task.id),
            element_id=spec.bpmn_id,
            name=spec.bpmn_name,
            element_type=type(spec).__name__,
            state=TaskState.get_name(task.state),
            data_changes=changes,
        )

    # -- compaction ------------------------------------------------------------------------------

    def compact(self, workflow: Workflow) -> int:
        """Drop finished tasks that no live task depends on; returns how many were removed.

        A finished task is removed when its parent is finished too and it has no children, or it is
        spliced out (its single child re-parented to its parent) when that child is also finished.
        The parent of every unfinished task therefore survives: joins still see their completed
        inputs, and a waiting task still inherits data from the step that created it.

        A parallel join that is still waiting keeps the join tasks of the branches that already
        arrived, and their parents, even though the engine cancelled them: the join counts its
        arrived inputs through them, so a third branch arriving after a second must still see the
        first.
        """
        if workflow.is_completed() and _FINAL_DATA not in workflow.data:
            # Compaction leaves only the root of a finished case; keep its final data on the workflow.
            workflow.data[_FINAL_DATA] = self.data(workflow)
        removed = 0
        for sub in [workflow, *list(workflow.subprocesses.values())]:
            removed += self._compact_tree(workflow, sub)
        return removed

    @staticmethod
    def _compact_tree(top: Workflow, workflow: Any) -> int:
        root = workflow.task_tree
        removed = 0
        waiting_joins = {
            t.task_spec
            for t in workflow.tasks.values()
            if t.has_state(TaskState.WAITING) and isinstance(t.task_spec, Join)
        }
        for task in _post_order(root):
            if task is root:
                continue
            parent = task.parent
            if parent is None or not (task.has_state(FINISHED) and parent.has_state(FINISHED)):
                continue
            if task.task_spec in waiting_joins:
                continue
            subprocess = top.subprocesses.get(task.id)
            if subprocess is not None and not subprocess.completed:
                continue
            children = task._children
            if len(children) == 1:
                child = workflow.tasks[children[0]]
                if not child.has_state(FINISHED) or child.task_spec in waiting_joins:
                    continue
                parent._children[parent._children.index(task.id)] = child.id
                child._parent = parent.id
            elif len(children) == 0:
                parent._children.remove(task.id)
            else:
                continue
            if subprocess is not None:
                top.delete_subprocess(task)
            del workflow.tasks[task.id]
            removed += 1
        return removed

    @staticmethod
    def tree_depth(workflow: Workflow) -> int:
        best = 0
        stack = [(workflow.task_tree, 0)]
        while stack:
            task, depth = stack.pop()
            best = max(best, depth)
            stack.extend((child, depth + 1) for child in task.children)
        return best


_WIRED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_WIRING = threading.Lock()


def _wire_loops(bundle: SpecBundle) -> None:
    """Connect each loop or multi-instance task to the completions of its instances.

    SpiffWorkflow merges an instance's output into its loop task through an event on the instance's
    spec, connected only when the loop creates an instance. A spec parsed after that (a restarted
    process, another version) would never hear the remaining instances complete, and the case would
    stall; so every parsed spec is connected once, before any case is restored against it.
    """
    if bundle.spec in _WIRED:
        return
    with _WIRING:
        if bundle.spec in _WIRED:
            return
        for process in [bundle.spec, *bundle.subprocess_specs.values()]:
            for task_spec in process.task_specs.values():
                if isinstance(task_spec, LoopTask):
                    child = process.task_specs.get(task_spec.task_spec)
                    if child is not None and not child.completed_event.is_connected(task_spec.merge_child):
                        child.completed_event.connect(task_spec.merge_child)
        _WIRED[bundle.spec] = True


def _post_order(root: Any) -> Iterator[Any]:
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        task, expanded = stack.pop()
        if expanded:
            yield task
            continue
        stack.append((task, True))
        stack.extend((child, False) for child in task.children)


def _iter_tasks(root: Any) -> Iterator[Any]:
    stack = [root]
    while stack:
        task = stack.pop()
        yield task
        stack.extend(task.children)


def _embedded_subprocesses(workflow: Workflow) -> list[Any]:
    """Running sub-workflows of embedded subprocesses of the case itself, not of called processes."""
    found = []
    for sub in workflow.subprocesses.values():
        owner = workflow.get_task_from_id(sub.parent_task_id) if sub.parent_task_id else None
        while owner is not None and not isinstance(owner.task_spec, CallActivity):
            parent = owner.workflow
            if parent is workflow:
                found.append(sub)
                break
            owner = workflow.get_task_from_id(parent.parent_task_id)
    return found


def _all_ids(workflow: Workflow) -> set[UUID]:
    ids = set(workflow.tasks)
    for sub in workflow.subprocesses.values():
        ids.update(sub.tasks)
    return ids


# -- compact storage of the task tree ---------------------------------------------------------------
#
# SpiffWorkflow writes each task as a dict keyed by UUID with every field present. Most tasks of a
# fresh case are predictions (FUTURE, LIKELY, MAYBE) whose identity nobody refers to. ``pack``
# stores the tree as a pre-order list with parent indexes, keeps ids only for tasks that are or
# were live, and omits fields at their default; ``unpack`` restores the library's own format.

_PREDICTED = TaskState.FUTURE | TaskState.LIKELY | TaskState.MAYBE
PACK_FORMAT = 1


def _pack_tasks(dct: dict[str, Any]) -> dict[str, Any]:
    tasks: dict[str, dict[str, Any]] = dct.pop("tasks")
    root = dct.pop("root")
    rows: list[list[Any]] = []
    index: dict[str, int] = {}
    stack: list[tuple[str, int]] = [(root, -1)]
    while stack:
        task_id, parent_index = stack.pop()
        task = tasks[task_id]
        index[task_id] = len(rows)
        extras: dict[str, Any] = {}
        keep_id = not (task["state"] & _PREDICTED) or task_id == dct.get("last_task")
        if keep_id:
            extras["l"] = task["last_state_change"]
        if task["triggered"]:
            extras["g"] = True
        if task["internal_data"]:
            extras["i"] = task["internal_data"]
        if task.get("data"):
            extras["d"] = task["data"]
        delta = task.get("delta") or {}
        if delta.get("updates") or delta.get("deletions"):
            extras["u"] = delta
        rows.append([parent_index, task["task_spec"], task["state"], task_id if keep_id else None, extras])
        stack.extend((child, index[task_id]) for child in reversed(task["children"]))
    typename = next(iter(tasks.values())).get("typename", "Task")
    dct["packed"] = {"format": PACK_FORMAT, "typename": typename, "tasks": rows}
    return dct


def _unpack_tasks(dct: dict[str, Any]) -> dict[str, Any]:
    packed = dct.pop("packed")
    ids: list[str] = []
    tasks: dict[str, dict[str, Any]] = {}
    for parent_index, spec, state, task_id, extras in packed["tasks"]:
        task_id = task_id or str(uuid4())
        parent = ids[parent_index] if parent_index >= 0 else None
        ids.append(task_id)
        tasks[task_id] = {
            "id": task_id,
            "parent": parent,
            "children": [],
            "last_state_change": extras.get("l", 0.0),
            "state": state,
            "task_spec": spec,
            "triggered": extras.get("g", False),
            "internal_data": extras.get("i", {}),
            "data": extras.get("d", {}),
            # An empty delta means "same data as the parent"; the library reads a falsy one as "no delta".
            "delta": extras.get("u") or ({"updates": {}, "deletions": []} if parent is not None else {}),
            "typename": packed["typename"],
        }
        if parent is not None:
            tasks[parent]["children"].append(task_id)
    dct["tasks"] = tasks
    dct["root"] = ids[0]
    return dct


def pack(dct: dict[str, Any]) -> dict[str, Any]:
    _pack_tasks(dct)
    for sub in dct.get("subprocesses", {}).values():
        _pack_tasks(sub)
    return dct


def unpack(dct: dict[str, Any]) -> dict[str, Any]:
    if "packed" not in dct:
        return dct
    _unpack_tasks(dct)
    for sub in dct.get("subprocesses", {}).values():
        if "packed" in sub:
            _unpack_tasks(sub)
    return dct
