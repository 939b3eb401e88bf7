"""Checks of BPMN, DMN and form files beyond the XSD, each finding naming file, line, element id and a code.

:func:`check_files` runs every check on a set of files against a :class:`Catalogue` (what else exists:
deployed processes, decision tables, forms); the deployer runs it before anything is stored, and
:func:`validate_files` adds a trial build of every process for ``opsflow validate``, which needs no
database. Errors block a deployment; warnings are reported and do not. The codes are stable, so tools
may match on them; ``docs/designing-processes.md`` lists them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from lxml import etree

from engine.bpmn import (
    BPMN_NS,
    Problem,
    SourceFile,
    build_bundle,
    decision_ids,
    parse_xml,
    process_ids,
    role_for_lane,
    xsd_errors,
)
from engine.errors import DefinitionError, UnsafeXMLError, ValidationError
from engine.forms import check_schema_text
from engine.sandbox import Sandbox
from engine.timeexpr import parse_date, parse_duration
from engine.timer_events import literal_text

SPIFF_NS: Final = "http://spiffworkflow.org/bpmn/schema/1.0/core"
ERROR, WARNING = "error", "warning"

FLOW_NODES: Final = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "task",
        "userTask",
        "manualTask",
        "scriptTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
SCOPES: Final = frozenset({"process", "subProcess", "transaction", "adHocSubProcess"})
# Properties of a user task that hold an expression evaluated in the sandbox.
EXPRESSION_PROPERTIES: Final = ("priority", "due", "summary")
TIMER_KINDS: Final = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}
_INVERSE_COMPARISONS: Final = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_LINE_PREFIX: Final = re.compile(r"^line (\d+): (.*)$", re.DOTALL)
_MAX_XSD_ERRORS: Final = 20

_SANDBOX: Sandbox | None = None


def _sandbox() -> Sandbox:
    global _SANDBOX
    if _SANDBOX is None:
        _SANDBOX = Sandbox()
    return _SANDBOX


def _never(_name: str) -> bool:
    return False


@dataclass(frozen=True)
class Catalogue:
    """What exists outside the files being checked: each callable answers "is there one called this?"."""

    processes: Callable[[str], bool] = _never
    decisions: Callable[[str], bool] = _never
    forms: Callable[[str], bool] = _never


@dataclass
class _Document:
    source: SourceFile
    root: etree._Element


@dataclass
class _Findings:
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        source: SourceFile | str,
        code: str,
        message: str,
        *,
        node: Any = None,
        line: int | None = None,
        element_id: str | None = None,
        severity: str = ERROR,
    ) -> None:
        name = source.name if isinstance(source, SourceFile) else source
        if node is not None:
            line = line or _line(node)
            element_id = element_id or _owner_id(node)
        self.problems.append(
            Problem(name, message, line=line, element_id=element_id, severity=severity, code=code)
        )


def check_files(files: Sequence[SourceFile], *, catalogue: Catalogue | None = None) -> list[Problem]:
    """Every check on ``files`` (BPMN, DMN, form schemas); references resolve to the files or ``catalogue``.

    Raises UnsafeXMLError for a file with a DOCTYPE or entities; everything else is a Problem.
    """
    catalogue = catalogue or Catalogue()
    found = _Findings()
    documents: list[_Document] = []
    for source in files:
        if source.name.endswith((".bpmn", ".dmn")):
            root = _parse(source, found)
            if root is not None:
                documents.append(_Document(source, root))
    form_names = _check_forms(files, found)
    bpmn = [d for d in documents if not d.source.is_dmn]
    decisions = {decision for d in documents if d.source.is_dmn for decision in decision_ids(d.root)}
    processes = _check_process_ids(bpmn, found)
    known = Catalogue(
        processes=lambda key: key in processes or catalogue.processes(key),
        decisions=lambda key: key in decisions or catalogue.decisions(key),
        forms=lambda name: name in form_names or catalogue.forms(name),
    )
    for document in bpmn:
        _check_document(document, known, found)
    return found.problems


def validate_files(
    files: Sequence[SourceFile],
    *,
    context: Sequence[SourceFile] = (),
    forms: Callable[[str], bool] = _never,
) -> list[Problem]:
    """Check ``files`` and build each of their processes as a deployment would, without a database.

    ``context`` holds other BPMN and DMN files that the checked ones may call (typically the rest of
    ``processes/``); they are not themselves reported on. ``forms`` says whether a form exists elsewhere.
    """
    names = {f.name for f in files}
    extra = [f for f in context if f.name not in names]
    context_processes: dict[str, SourceFile] = {}
    context_decisions: set[str] = set()
    for source in extra:
        try:
            root = parse_xml(source.text, filename=source.name)
        except DefinitionError:
            continue
        if source.is_dmn:
            context_decisions |= decision_ids(root)
        else:
            for pid, _name, _exe in process_ids(root):
                context_processes.setdefault(pid, source)
    catalogue = Catalogue(
        processes=lambda key: key in context_processes,
        decisions=lambda key: key in context_decisions,
        forms=forms,
    )
    problems = check_files(files, catalogue=catalogue)
    failed = {p.file for p in problems if p.severity == ERROR}
    sources = [*files, *extra]
    for source in files:
        if source.is_dmn or not source.name.endswith(".bpmn") or source.name in failed:
            continue
        root = parse_xml(source.text, filename=source.name)
        for pid, _name, executable in process_ids(root):
            if not executable:
                continue
            try:
                build_bundle(pid, _bundle_sources(source, sources))
            except DefinitionError as exc:
                problems.extend(as_problems(exc, default_file=source.name))
    return problems


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]


def warnings_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == WARNING]


# -- files ----------------------------------------------------------------------------------------


def _parse(source: SourceFile, found: _Findings) -> etree._Element | None:
    try:
        return parse_xml(source.text, filename=source.name)
    except UnsafeXMLError:
        raise
    except DefinitionError as exc:
        found.problems.extend(as_problems(exc, default_file=source.name))
        return None


def as_problems(exc: DefinitionError, *, default_file: str) -> list[Problem]:
    if not exc.problems:
        return [Problem(default_file, exc.detail, code=exc.code)]
    return [
        Problem(
            str(p.get("file") or default_file),
            str(p.get("message") or exc.detail),
            line=p.get("line"),
            element_id=p.get("element_id"),
            severity=str(p.get("severity") or ERROR),
            code=str(p.get("code") or "bpmn-invalid"),
        )
        for p in exc.problems
    ]


def _check_forms(files: Sequence[SourceFile], found: _Findings) -> set[str]:
    """Form files that are not valid JSON or not valid JSON Schema 2020-12; returns the forms present."""
    names: set[str] = set()
    for source in files:
        if source.name.endswith(".uischema.json"):
            _load_json(source, found)
        elif source.name.endswith(".schema.json"):
            name = source.name[: -len(".schema.json")]
            names.add(name)
            schema = _load_json(source, found)
            if schema is _INVALID:
                continue
            try:
                check_schema_text(name, source.text)
            except DefinitionError as exc:
                where = next(iter(exc.errors), name)
                found.add(source, "form-invalid", exc.detail, element_id="$" + where[len(name) :])
    return names


_INVALID: Final = object()


def _load_json(source: SourceFile, found: _Findings) -> Any:
    try:
        return json.loads(source.text)
    except json.JSONDecodeError as exc:
        found.add(source, "form-invalid", f"not valid JSON: {exc.msg}", line=exc.lineno)
        return _INVALID


def _check_process_ids(documents: list[_Document], found: _Findings) -> set[str]:
    seen: dict[str, str] = {}
    for document in documents:
        executable = [
            (pid, node) for pid, node in _processes(document.root) if node.get("isExecutable") == "true"
        ]
        if not executable:
            found.add(
                document.source,
                "process-not-executable",
                'no executable process (isExecutable="true")',
                line=1,
            )
        for pid, node in executable:
            if pid in seen:
                found.add(
                    document.source,
                    "process-duplicate",
                    f"process id {pid!r} is also defined in {seen[pid]}",
                    node=node,
                )
            seen.setdefault(pid, document.source.name)
    return set(seen)


def _processes(root: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    for node in root.iter(f"{{{BPMN_NS}}}process"):
        yield node.get("id") or "", node


# -- one BPMN document ----------------------------------------------------------------------------


def _check_document(document: _Document, known: Catalogue, found: _Findings) -> None:
    source, root = document.source, document.root
    for line, message in xsd_errors(root, filename=source.name)[:_MAX_XSD_ERRORS]:
        found.add(source, "xsd-invalid", message, line=line, element_id=_id_at_line(root, line))
    messages = {m.get("id"): m for m in _bpmn(root, "message")}
    lanes = _lanes(root)
    for node in root.iter():
        tag = _local(node)
        if tag is None:
            continue
        if tag == "userTask":
            _check_user_task(source, node, lanes, known, found)
        elif tag == "scriptTask":
            script = _child(node, "script")
            if script is not None and (script.text or "").strip():
                _compile(source, script, script.text or "", "exec", "script-invalid", found, node=node)
        elif tag == "sequenceFlow":
            condition = _child(node, "conditionExpression")
            if condition is not None and (condition.text or "").strip():
                _compile(
                    source, condition, condition.text or "", "eval", "expression-invalid", found, node=node
                )
        elif tag == "timerEventDefinition":
            _check_timer(source, node, found)
        elif tag == "messageEventDefinition":
            _check_message(source, node, messages, found)
        elif tag == "businessRuleTask":
            _check_decision(source, node, known, found)
        elif tag == "callActivity":
            called = (node.get("calledElement") or "").strip()
            if not called:
                found.add(
                    source, "process-unknown", "the call activity names no process (calledElement)", node=node
                )
            elif not known.processes(called):
                found.add(source, "process-unknown", f"called process {called!r} does not exist", node=node)
        elif tag == "exclusiveGateway":
            _check_gateway(source, node, found)
        elif tag in SCOPES and tag != "adHocSubProcess":  # ad hoc activities need no flows
            _check_flow(source, node, found)
        if tag in FLOW_NODES:
            _check_spiff_scripts(source, node, found)
    for lane in _bpmn(root, "lane"):
        _check_lane(source, lane, root, found)


def _check_user_task(
    source: SourceFile, node: etree._Element, lanes: dict[str, str | None], known: Catalogue, found: _Findings
) -> None:
    props = _properties(node)
    form = props.get("form")
    if form is not None:
        name = (form.get("value") or "").strip()
        if not name:
            found.add(source, "form-unknown", "the form property is empty", node=node, line=_line(form))
        elif not known.forms(name):
            found.add(
                source,
                "form-unknown",
                f"form {name!r} does not exist (no {name}.schema.json in forms/ or the deployment)",
                node=node,
                line=_line(form),
            )
    role = props.get("role")
    has_role = role is not None and role_for_lane(role.get("value")) is not None
    if not has_role and _effective_lane(node, lanes) is None and not _in_a_lane(node, lanes):
        found.add(
            source,
            "user-task-outside-lane",
            "the user task is in no lane and has no role property, so nobody could take it",
            node=node,
        )
    due = props.get("due")
    if due is not None:
        _check_constant_due(source, node, due, found)
    for name in EXPRESSION_PROPERTIES:
        prop = props.get(name)
        if prop is not None and (prop.get("value") or "").strip():
            _compile(
                source, prop, prop.get("value") or "", "eval", "expression-invalid", found,
                node=node, what=f"property {name!r}", single_line=True,
            )  # fmt: skip


def _check_constant_due(
    source: SourceFile, node: etree._Element, due: etree._Element, found: _Findings
) -> None:
    """A constant due property must be an ISO 8601 duration or an instant with an offset."""
    try:
        value = ast.literal_eval((due.get("value") or "").strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return  # an expression, evaluated when the task is created
    if not isinstance(value, str):
        return
    try:
        if value.strip().upper().startswith("P"):
            parse_duration(value.strip())
        else:
            parse_date(value.strip())
    except ValidationError as exc:
        found.add(source, "due-invalid", f"property 'due': {exc.detail}", node=node, line=_line(due))


def _check_spiff_scripts(source: SourceFile, node: etree._Element, found: _Findings) -> None:
    extensions = _child(node, "extensionElements")
    if extensions is None:
        return
    for tag in ("preScript", "postScript"):
        for script in extensions.iter(f"{{{SPIFF_NS}}}{tag}"):
            if (script.text or "").strip():
                _compile(
                    source, script, script.text or "", "exec", "script-invalid", found, node=node, what=tag
                )


def _check_timer(source: SourceFile, definition: etree._Element, found: _Findings) -> None:
    event = _parent(definition)
    for tag, kind in TIMER_KINDS.items():
        value = _child(definition, tag)
        if value is None:
            continue
        text = (value.text or "").strip()
        try:
            constant = literal_text(kind, text)
        except ValidationError as exc:
            found.add(source, "timer-invalid", f"{tag}: {exc.detail}", node=event, line=_line(value))
            return
        if constant is None:
            _compile(source, value, value.text or "", "eval", "timer-invalid", found, node=event, what=tag)
        return
    found.add(
        source,
        "timer-invalid",
        "a timer event needs a timeDate, timeDuration or timeCycle",
        node=event,
        line=_line(definition),
    )


def _check_message(
    source: SourceFile,
    definition: etree._Element,
    messages: dict[str | None, etree._Element],
    found: _Findings,
) -> None:
    event = _parent(definition)
    ref = (definition.get("messageRef") or "").strip()
    if not ref:
        found.add(source, "message-unknown", "the message event names no message (messageRef)", node=event)
        return
    if ref not in messages:
        found.add(source, "message-unknown", f"message {ref!r} is not defined in this file", node=event)
        return
    tag = _local(event)
    catching = tag in {"intermediateCatchEvent", "boundaryEvent", "receiveTask"}
    if catching and _properties(event).get("correlation_keys") is None:
        name = messages[ref].get("name") or ref
        found.add(
            source,
            "message-without-correlation",
            f"message {name!r} declares no correlation_keys: a waiting case is found by its business key, "
            "or by the message name alone when it has none",
            node=event,
            severity=WARNING,
        )
    keys = _properties(event).get("correlation_keys")
    if keys is not None and not all(k.strip() for k in (keys.get("value") or "").split(",")):
        found.add(source, "message-without-correlation", "correlation_keys has an empty key", node=event)


def _check_decision(source: SourceFile, node: etree._Element, known: Catalogue, found: _Findings) -> None:
    ids = [n for n in node.iter() if isinstance(n.tag, str) and n.tag.endswith("}calledDecisionId")]
    if not ids or not (ids[0].text or "").strip():
        found.add(source, "decision-unknown", "the business rule task names no decision", node=node)
        return
    decision = (ids[0].text or "").strip()
    if not known.decisions(decision):
        found.add(
            source,
            "decision-unknown",
            f"DMN decision {decision!r} does not exist (in the deployment or deployed)",
            node=node,
            line=_line(ids[0]),
        )


def _check_lane(source: SourceFile, lane: etree._Element, root: etree._Element, found: _Findings) -> None:
    if role_for_lane(lane.get("name")) is not None:
        return
    refs = {(ref.text or "").strip() for ref in _bpmn(lane, "flowNodeRef")}
    user_tasks = [
        node.get("id")
        for node in _bpmn(root, "userTask")
        if node.get("id") in refs and _properties(node).get("role") is None
    ]
    if user_tasks:
        found.add(
            source,
            "lane-without-role",
            "the lane has no name to give a role, yet holds user tasks: "
            + ", ".join(sorted(map(str, user_tasks))),
            node=lane,
        )
    else:
        found.add(
            source,
            "lane-without-role",
            "the lane has no name, so it names no role",
            node=lane,
            severity=WARNING,
        )


# -- flow: reachability, dead ends, gateways ------------------------------------------------------


def _check_flow(source: SourceFile, scope: etree._Element, found: _Findings) -> None:
    """Unreachable elements, dead ends and paths that never end, within one process or subprocess."""
    nodes: dict[str, etree._Element] = {}
    for child in scope:
        key = child.get("id") if _local(child) in FLOW_NODES else None
        if key:
            nodes[key] = child
    if not nodes:
        return
    outgoing: dict[str, list[str]] = {key: [] for key in nodes}
    has_flow_out: set[str] = set()
    for flow in scope:
        src, dst = flow.get("sourceRef") or "", flow.get("targetRef") or ""
        if _local(flow) == "sequenceFlow" and src in nodes and dst in nodes:
            outgoing[src].append(dst)
            has_flow_out.add(src)
    for src, dst in _link_edges(nodes):
        outgoing[src].append(dst)
        has_flow_out.add(src)
    starts: list[str] = []
    for key, node in nodes.items():
        tag = _local(node)
        if tag == "startEvent" or _is_event_subprocess(node):
            starts.append(key)
        attached = node.get("attachedToRef") or ""
        if tag == "boundaryEvent" and attached in nodes:
            outgoing[attached].append(key)
    exempt = {key for key, node in nodes.items() if _exempt(node)}
    if not starts:
        if _local(scope) != "process" or scope.get("isExecutable") == "true":
            found.add(source, "start-event-missing", "there is no start event", node=scope)
        return
    reached = _closure(starts, outgoing)
    problems_before = len(found.problems)
    for key, node in nodes.items():
        if key in exempt:
            continue
        if key not in reached:
            found.add(source, "unreachable", "no path from a start event reaches this element", node=node)
        elif _local(node) != "endEvent" and key not in has_flow_out and not _is_event_subprocess(node):
            found.add(source, "dead-end", "the element has no outgoing sequence flow", node=node)
    if len(found.problems) > problems_before:
        return
    incoming: dict[str, list[str]] = {key: [] for key in nodes}
    for src, targets in outgoing.items():
        for dst in targets:
            incoming[dst].append(src)
    ends = [key for key, node in nodes.items() if _local(node) == "endEvent" or _is_event_subprocess(node)]
    finishing = _closure(ends, incoming)
    for key in sorted(k for k in reached if k not in finishing and k not in exempt):
        found.add(
            source,
            "no-path-to-end",
            "no path leads from this element to an end event, so a case that gets here never finishes",
            node=nodes[key],
            severity=WARNING,
        )


def _link_edges(nodes: dict[str, etree._Element]) -> list[tuple[str, str]]:
    """Link throw events continue at the link catch event of the same name."""
    catches: dict[str, str] = {}
    throws: list[tuple[str, str]] = []
    for key, node in nodes.items():
        link = _child(node, "linkEventDefinition")
        if link is None:
            continue
        name = link.get("name") or node.get("name") or ""
        if _local(node) == "intermediateCatchEvent":
            catches[name] = key
        elif _local(node) == "intermediateThrowEvent":
            throws.append((key, name))
    return [(key, catches[name]) for key, name in throws if name in catches]


def _exempt(node: etree._Element) -> bool:
    """Compensation handlers and compensation boundary events are joined by associations, not flows."""
    if node.get("isForCompensation") == "true":
        return True
    return _local(node) == "boundaryEvent" and _child(node, "compensateEventDefinition") is not None


def _is_event_subprocess(node: etree._Element) -> bool:
    return _local(node) == "subProcess" and node.get("triggeredByEvent") == "true"


def _closure(starts: Iterable[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    pending = list(starts)
    while pending:
        key = pending.pop()
        if key in seen:
            continue
        seen.add(key)
        pending.extend(edges.get(key, ()))
    return seen


def _check_gateway(source: SourceFile, gateway: etree._Element, found: _Findings) -> None:
    """Warn about a diverging exclusive gateway without a default whose conditions might all be false."""
    if gateway.get("default"):
        return
    scope = gateway.getparent()
    key = gateway.get("id")
    flows = (
        [f for f in scope if _local(f) == "sequenceFlow" and f.get("sourceRef") == key]
        if scope is not None
        else []
    )
    if len(flows) < 2:
        return
    conditions: list[ast.expr] = []
    for flow in flows:
        condition = _child(flow, "conditionExpression")
        text = (condition.text or "").strip() if condition is not None else ""
        if not text:
            return  # an unconditional flow is always taken
        try:
            conditions.append(ast.parse(text, mode="eval").body)
        except SyntaxError:
            return  # reported as expression-invalid
    if _covers_every_case(conditions):
        return
    found.add(
        source,
        "gateway-not-covered",
        "the exclusive gateway has no default flow and its conditions may all be false, "
        "which would stop the case with an incident; add a default flow",
        node=gateway,
        severity=WARNING,
    )


def _covers_every_case(conditions: list[ast.expr]) -> bool:
    """True when some condition is the literal True, or two of them are each other's negation."""
    if any(isinstance(c, ast.Constant) and c.value is True for c in conditions):
        return True
    dumped = [ast.dump(c) for c in conditions]
    return any(ast.dump(negation) in dumped for c in conditions for negation in _negations(c))


def _negations(condition: ast.expr) -> list[ast.expr]:
    if isinstance(condition, ast.UnaryOp) and isinstance(condition.op, ast.Not):
        return [condition.operand]
    found: list[ast.expr] = [ast.UnaryOp(op=ast.Not(), operand=condition)]
    if isinstance(condition, ast.Compare) and len(condition.ops) == 1:
        inverse = _INVERSE_COMPARISONS.get(type(condition.ops[0]))
        if inverse is not None:
            found.append(ast.Compare(left=condition.left, ops=[inverse()], comparators=condition.comparators))
    return found


# -- helpers --------------------------------------------------------------------------------------


def _compile(
    source: SourceFile,
    where: etree._Element,
    text: str,
    mode: str,
    code: str,
    found: _Findings,
    *,
    node: etree._Element,
    what: str = "",
    single_line: bool = False,
) -> None:
    """Compile in the sandbox; each problem is reported at its line in the file."""
    start = _line(where) or _line(node)
    label = f"{what}: " if what else ""
    for message in _sandbox().check(text, mode="eval" if mode == "eval" else "exec"):
        matched = _LINE_PREFIX.match(message)
        line = start
        if matched is not None:
            message = matched.group(2)
            if start is not None and not single_line:
                line = start + int(matched.group(1)) - 1
        found.add(source, code, f"{label}{message}", node=node, line=line)


def _bundle_sources(source: SourceFile, sources: Sequence[SourceFile]) -> list[SourceFile]:
    """The file of a process, every DMN file, and the files of the processes it calls, transitively."""
    by_process: dict[str, SourceFile] = {}
    calls: dict[str, set[str]] = {}
    for candidate in sources:
        if candidate.is_dmn or not candidate.name.endswith(".bpmn"):
            continue
        try:
            root = parse_xml(candidate.text, filename=candidate.name)
        except DefinitionError:
            continue
        for pid, _name, _exe in process_ids(root):
            by_process.setdefault(pid, candidate)
        called = {n.get("calledElement", "") for n in root.iter(f"{{{BPMN_NS}}}callActivity")}
        calls[candidate.name] = called - {""}
    out = [source, *(f for f in sources if f.is_dmn)]
    pending = list(calls.get(source.name, ()))
    while pending:
        target = by_process.get(pending.pop())
        if target is None or target in out:
            continue
        out.append(target)
        pending.extend(calls.get(target.name, ()))
    return out


def _parent(node: etree._Element) -> etree._Element:
    parent = node.getparent()
    return node if parent is None else parent


def _bpmn(root: etree._Element, tag: str) -> Iterator[etree._Element]:
    return root.iter(f"{{{BPMN_NS}}}{tag}")


def _child(node: etree._Element, tag: str) -> etree._Element | None:
    return node.find(f"{{{BPMN_NS}}}{tag}")


def _local(node: Any) -> str | None:
    tag = node.tag
    if not isinstance(tag, str) or not tag.startswith(f"{{{BPMN_NS}}}"):
        return None
    return tag[len(BPMN_NS) + 2 :]


def _line(node: Any) -> int | None:
    line = getattr(node, "sourceline", None)
    return line if isinstance(line, int) else None


def _owner_id(node: etree._Element) -> str | None:
    """The id of the element itself or of its nearest BPMN ancestor with one."""
    current: etree._Element | None = node
    while current is not None:
        if _local(current) is not None and current.get("id"):
            return current.get("id")
        current = current.getparent()
    return None


def _id_at_line(root: etree._Element, line: int | None) -> str | None:
    if line is None:
        return None
    for node in root.iter():
        if _line(node) == line and isinstance(node.tag, str) and node.get("id"):
            return node.get("id")
    return None


def _properties(node: etree._Element) -> dict[str, etree._Element]:
    """The ``spiffworkflow:property`` elements directly in this element's extensions, by name."""
    extensions = _child(node, "extensionElements")
    if extensions is None:
        return {}
    return {
        prop.get("name") or "": prop
        for props in extensions.findall(f"{{{SPIFF_NS}}}properties")
        for prop in props.findall(f"{{{SPIFF_NS}}}property")
    }


def _lanes(root: etree._Element) -> dict[str, str | None]:
    """The lane name of each flow node a lane refers to, as SpiffWorkflow reads it."""
    return {
        (ref.text or "").strip(): ref.getparent().get("name")  # type: ignore[union-attr]
        for ref in _bpmn(root, "flowNodeRef")
    }


def _in_a_lane(node: etree._Element, lanes: dict[str, str | None]) -> bool:
    """Whether a lane (named or not: a nameless one is reported on its own) holds it or its subprocess."""
    current: etree._Element | None = node
    while current is not None and _local(current) != "process":
        if (current.get("id") or "") in lanes:
            return True
        current = current.getparent()
    return False


def _effective_lane(node: etree._Element, lanes: dict[str, str | None]) -> str | None:
    """A task inside a subprocess takes the subprocess's lane when it has one, as SpiffWorkflow does."""
    chain: list[etree._Element] = []
    current: etree._Element | None = node
    while current is not None and _local(current) != "process":
        if _local(current) in FLOW_NODES:
            chain.append(current)
        current = current.getparent()
    for element in reversed(chain):
        lane = lanes.get(element.get("id") or "")
        if role_for_lane(lane) is not None:
            return lane
    return None
