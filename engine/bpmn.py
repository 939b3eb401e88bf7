"""Safe parsing of BPMN and DMN into SpiffWorkflow specs, with errors naming file, line and element."""

from __future__ import annotations

import copy
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.errors import DefinitionError, UnsafeXMLError
from engine.parser import OpsflowBpmnParser

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NSMAP = {"bpmn": BPMN_NS}

_VALIDATOR: BpmnValidator | None = None


def _validator() -> BpmnValidator:
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = BpmnValidator()
    return _VALIDATOR


def _xml_parser() -> etree.XMLParser:
    # Entity resolution, DTD loading and network access are all off: XXE and billion-laughs inputs
    # cannot expand; a DOCTYPE is refused outright below.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def parse_xml(source: str | bytes, *, filename: str) -> etree._Element:
    """Parse XML refusing DTDs and entities; the error names the file and line."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    if re.search(rb"<!DOCTYPE|<!ENTITY", data[:65536], flags=re.IGNORECASE):
        raise UnsafeXMLError(
            f"{filename}: DOCTYPE and ENTITY declarations are not allowed",
            problems=[
                {
                    "file": filename,
                    "line": None,
                    "element_id": None,
                    "message": "DOCTYPE not allowed",
                    "severity": "error",
                    "code": "xml-unsafe",
                }
            ],
        )
    try:
        root = etree.fromstring(data, parser=_xml_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno
        raise DefinitionError(
            f"{filename}, line {line}: not well-formed XML: {exc.msg}",
            problems=[
                {
                    "file": filename,
                    "line": line,
                    "element_id": None,
                    "message": f"not well-formed XML: {exc.msg}",
                    "severity": "error",
                    "code": "xml-invalid",
                }
            ],
        ) from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise UnsafeXMLError(f"{filename}: DOCTYPE declarations are not allowed")
    return root


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition file."""

    file: str
    message: str
    line: int | None = None
    element_id: str | None = None
    severity: str = "error"
    code: str = "bpmn-invalid"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "element_id": self.element_id,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }


def xsd_errors(root: etree._Element, *, filename: str) -> list[tuple[int | None, str]]:
    """(line, message) of every way a BPMN document breaks the BPMN 2.0 XSD."""
    validator = _validator()
    # SpiffWorkflow's own fix-up for what bpmn-js writes in correlation properties, on a copy.
    tree = etree.ElementTree(copy.deepcopy(root))
    validator.preprocess(tree)
    if validator.validator.validate(tree):
        return []
    return [(error.line or None, error.message) for error in validator.validator.error_log]


def problem_from_spiff(exc: SpiffWorkflowException, *, default_file: str) -> Problem:
    file_name = getattr(exc, "file_name", None) or default_file
    line = getattr(exc, "line_number", None) or getattr(exc, "sourceline", None)
    element_id = getattr(exc, "id", None) or getattr(exc, "task_id", None)
    message = str(exc).split("\n")[0]
    return Problem(
        file=str(file_name), line=int(line) if line else None, element_id=element_id, message=message
    )


def definition_error(problems: list[Problem]) -> DefinitionError:
    """The error for a set of problems; warnings ride along, but the count and summary are of errors."""
    errors: dict[str, list[str]] = {}
    for p in problems:
        where = p.file + (f":{p.line}" if p.line else "") + (f"#{p.element_id}" if p.element_id else "")
        errors.setdefault(where, []).append(p.message)
    blocking = [p for p in problems if p.severity == "error"] or problems
    first = blocking[0]
    location = f"{first.file}" + (f", line {first.line}" if first.line else "")
    if first.element_id:
        location += f", element {first.element_id}"
    return DefinitionError(
        f"{len(blocking)} problem(s); first: {location}: {first.message}",
        errors=errors,
        problems=[p.as_dict() for p in problems],
    )


@dataclass(frozen=True)
class SourceFile:
    """A BPMN or DMN document as text, with the name it is reported under."""

    name: str
    text: str

    @property
    def is_dmn(self) -> bool:
        return self.name.endswith(".dmn")


@dataclass
class SpecBundle:
    """A parsed process spec with the subprocess specs its call activities need; shared, read-only."""

    key: str
    name: str
    spec: Any
    subprocess_specs: dict[str, Any]
    lanes: dict[str, str] = field(default_factory=dict)


def process_ids(root: etree._Element) -> list[tuple[str, str, bool]]:
    """(id, name, executable) of every process in a BPMN document."""
    result: list[tuple[str, str, bool]] = []
    for node in root.iter(f"{{{BPMN_NS}}}process"):
        pid = node.get("id") or ""
        result.append((pid, node.get("name") or pid, node.get("isExecutable") == "true"))
    return result


def called_elements(root: etree._Element) -> set[str]:
    return {node.get("calledElement", "") for node in root.iter(f"{{{BPMN_NS}}}callActivity")} - {""}


def called_decisions(root: etree._Element) -> set[str]:
    found = set()
    for node in root.iter():
        if isinstance(node.tag, str) and node.tag.endswith("calledDecisionId") and node.text:
            found.add(node.text.strip())
    return found


def decision_ids(root: etree._Element) -> set[str]:
    return {
        node.get("id", "")
        for node in root.iter()
        if isinstance(node.tag, str) and node.tag.endswith("}decision")
    } - {""}


_BUILT: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], SpecBundle] = OrderedDict()
_BUILT_LOCK = threading.Lock()
_BUILT_MAX = 128


def build_bundle(key: str, files: Iterable[SourceFile]) -> SpecBundle:
    """Parse ``files`` together (XSD-validated) and return the spec of process ``key``.

    Parsed specs are read-only once built, so the same files give the same shared bundle: a
    deployment that repeats unchanged files (a boot, a reload, a second version that only adds a
    form) does not parse them again. Failures are not remembered.
    """
    sources = list(files)
    cache_key = (
        key,
        tuple((f.name, hashlib.sha256(f.text.encode("utf-8")).hexdigest()) for f in sources),
    )
    with _BUILT_LOCK:
        built = _BUILT.get(cache_key)
        if built is not None:
            _BUILT.move_to_end(cache_key)
            return built
    built = _parse_bundle(key, sources)
    with _BUILT_LOCK:
        _BUILT[cache_key] = built
        while len(_BUILT) > _BUILT_MAX:
            _BUILT.popitem(last=False)
    return built


def _parse_bundle(key: str, files: list[SourceFile]) -> SpecBundle:
    parser = OpsflowBpmnParser(validator=_validator())
    problems: list[Problem] = []
    name = key
    for source in files:
        root = parse_xml(source.text, filename=source.name)
        try:
            if source.is_dmn:
                parser.add_dmn_xml(root, filename=source.name)
            else:
                for pid, pname, _exe in process_ids(root):
                    if pid == key:
                        name = pname
                parser.add_bpmn_xml(etree.ElementTree(root), filename=source.name)
        except ValidationException as exc:
            problems.append(problem_from_spiff(exc, default_file=source.name))
        except SpiffWorkflowException as exc:
            problems.append(problem_from_spiff(exc, default_file=source.name))
    if problems:
        raise definition_error(problems)
    try:
        spec = parser.get_spec(key)
        subprocess_specs = parser.get_subprocess_specs(key)
    except (ValidationException, SpiffWorkflowException) as exc:
        raise definition_error([problem_from_spiff(exc, default_file=f"{key}.bpmn")]) from None
    return SpecBundle(key=key, name=name, spec=spec, subprocess_specs=subprocess_specs)


def role_for_lane(lane: str | None) -> str | None:
    """The documented lane rule: lower-case, every run of non-alphanumerics becomes ``_``."""
    if not lane:
        return None
    return re.sub(r"[^a-z0-9]+", "_", lane.strip().lower()).strip("_") or None


def user_task_properties(task_spec: Any) -> Mapping[str, str]:
    extensions = getattr(task_spec, "extensions", None) or {}
    props = extensions.get("properties") or {}
    return dict(props)
