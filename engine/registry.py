"""Process definitions: deployment with versioning by content, and the cache of parsed specs."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.bpmn import (
    Problem,
    SourceFile,
    SpecBundle,
    build_bundle,
    called_decisions,
    called_elements,
    decision_ids,
    definition_error,
    parse_xml,
    process_ids,
    user_task_properties,
)
from engine.clock import Clock
from engine.errors import DefinitionError, NotFoundError
from engine.forms import FormRegistry
from engine.models import ProcessDefinition
from engine.validation import Catalogue, check_files, errors_in, warnings_in


@dataclass(frozen=True)
class DeployResult:
    key: str
    name: str
    version: int
    definition_id: int
    created: bool


class SpecRegistry:
    """Parses each deployed definition once and shares the result between requests and threads."""

    def __init__(self, forms: FormRegistry | None = None) -> None:
        self.forms = forms or FormRegistry()
        self._bundles: dict[int, SpecBundle] = {}
        self._forms: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def bundle(self, session: Session, definition: ProcessDefinition) -> SpecBundle:
        cached = self._bundles.get(definition.id)
        if cached is not None:
            return cached
        files = self._sources(session, definition, seen=set())
        bundle = build_bundle(definition.key, files)
        with self._lock:
            self._bundles.setdefault(definition.id, bundle)
        return self._bundles[definition.id]

    def _sources(
        self, session: Session, definition: ProcessDefinition, *, seen: set[int]
    ) -> list[SourceFile]:
        seen.add(definition.id)
        files = [SourceFile(definition.source_name, definition.bpmn_source)]
        for name, text in sorted(definition.resources.get("dmn", {}).items()):
            files.append(SourceFile(name, text))
        for key, version in sorted(definition.resources.get("calls", {}).items()):
            called = get_definition(session, key, version)
            if called.id not in seen:
                files.extend(self._sources(session, called, seen=seen))
        return _unique_sources(files)

    def bundle_by_id(self, session: Session, definition_id: int) -> SpecBundle:
        """The parsed spec of a definition version; a deployed version never changes, so once parsed
        it is served without reading the definition row again."""
        cached = self._bundles.get(definition_id)
        if cached is not None:
            return cached
        definition = session.get(ProcessDefinition, definition_id)
        if definition is None:
            raise NotFoundError(f"process definition {definition_id} does not exist")
        return self.bundle(session, definition)

    def form(self, definition: ProcessDefinition, name: str) -> dict[str, Any] | None:
        form = definition.resources.get("forms", {}).get(name)
        return form if form is not None else self.forms.get(name)

    def form_by_id(self, session: Session, definition_id: int, name: str) -> dict[str, Any] | None:
        """The form ``name`` as pinned in a definition version (cached like the spec)."""
        pinned = self._forms.get(definition_id)
        if pinned is None:
            definition = session.get(ProcessDefinition, definition_id)
            if definition is None:
                raise NotFoundError(f"process definition {definition_id} does not exist")
            pinned = dict(definition.resources.get("forms", {}))
            with self._lock:
                self._forms.setdefault(definition_id, pinned)
        form = pinned.get(name)
        return form if form is not None else self.forms.get(name)

    def forget(self, definition_id: int) -> None:
        with self._lock:
            self._bundles.pop(definition_id, None)
            self._forms.pop(definition_id, None)


def get_definition(session: Session, key: str, version: int | None = None) -> ProcessDefinition:
    query = sa.select(ProcessDefinition).where(ProcessDefinition.key == key)
    if version is None:
        query = query.order_by(ProcessDefinition.version.desc()).limit(1)
    else:
        query = query.where(ProcessDefinition.version == version)
    definition = session.scalars(query).first()
    if definition is None:
        what = f"version {version} of process {key!r}" if version is not None else f"process {key!r}"
        raise NotFoundError(f"{what} is not deployed")
    return definition


def _hash(bpmn: str, resources: dict[str, Any]) -> str:
    digest = hashlib.sha256(bpmn.encode("utf-8"))
    digest.update(json.dumps(resources, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


class Deployer:
    """Turns BPMN, DMN and form files into definition versions; identical content is not re-versioned."""

    def __init__(self, session: Session, registry: SpecRegistry, clock: Clock) -> None:
        self.session = session
        self.registry = registry
        self.clock = clock
        self.warnings: list[Problem] = []

    def deploy(self, files: Sequence[SourceFile], *, by: str, dry_run: bool = False) -> list[DeployResult]:
        """Check ``files`` and store each process whose content changed as its next version.

        Every check of :mod:`engine.validation` runs first, against the files and what is deployed; any
        error raises DefinitionError (with the warnings too) and nothing is stored. Warnings of a
        deployment that goes ahead are left in ``self.warnings``.
        """
        findings = check_files(files, catalogue=self._catalogue())
        self.warnings = warnings_in(findings)
        if errors_in(findings):
            raise definition_error(findings)
        if not any(f.name.endswith(".bpmn") for f in files):
            raise definition_error(
                [Problem("(deployment)", "no BPMN file in the deployment", code="no-bpmn")]
            )
        bpmn_files = [f for f in files if f.name.endswith(".bpmn")]
        dmn_files = [f for f in files if f.is_dmn]
        forms = self._forms(files)
        decisions: dict[str, SourceFile] = {}
        for dmn in dmn_files:
            for decision in decision_ids(parse_xml(dmn.text, filename=dmn.name)):
                decisions[decision] = dmn
        processes: dict[str, tuple[SourceFile, str, set[str], set[str]]] = {}
        for source in bpmn_files:
            root = parse_xml(source.text, filename=source.name)
            for pid, name, executable in process_ids(root):
                if executable:
                    processes[pid] = (source, name, called_elements(root), called_decisions(root))

        results: list[DeployResult] = []
        deployed_versions: dict[str, int] = {}
        bundle_sources: dict[str, list[SourceFile]] = {}
        for key in _call_order(processes):
            source, name, calls, needed_decisions = processes[key]
            resources = self._resources(
                key, source, calls, needed_decisions, decisions, forms, deployed_versions
            )
            bundle_files = [source, *(SourceFile(n, t) for n, t in sorted(resources["dmn"].items()))]
            bundle_files += self._called_sources(resources["calls"], bundle_sources)
            bundle_files = _unique_sources(bundle_files)
            bundle_sources[key] = bundle_files
            bundle = build_bundle(key, bundle_files)
            self._check_forms(key, source, bundle, resources)
            content_hash = _hash(source.text, resources)
            latest = self.session.scalars(
                sa.select(ProcessDefinition)
                .where(ProcessDefinition.key == key)
                .order_by(ProcessDefinition.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.content_hash == content_hash:
                deployed_versions[key] = latest.version
                results.append(DeployResult(key, latest.name, latest.version, latest.id, created=False))
                continue
            version = (latest.version if latest else 0) + 1
            deployed_versions[key] = version
            if dry_run:
                results.append(DeployResult(key, name, version, 0, created=True))
                continue
            definition = ProcessDefinition(
                key=key,
                name=name,
                version=version,
                content_hash=content_hash,
                source_name=source.name,
                bpmn_source=source.text,
                resources=resources,
                deployed_at=self.clock.now(),
                deployed_by=by,
            )
            self.session.add(definition)
            self.session.flush()
            results.append(DeployResult(key, name, version, definition.id, created=True))
        return results

    def _catalogue(self) -> Catalogue:
        """Deployed processes, decision tables and the forms in forms/ count as existing."""

        def deployed(key: str) -> bool:
            found = self.session.scalar(
                sa.select(ProcessDefinition.id).where(ProcessDefinition.key == key).limit(1)
            )
            return found is not None

        return Catalogue(
            processes=deployed,
            decisions=lambda decision: self._stored_decision(decision) is not None,
            forms=lambda name: self.registry.forms.get(name) is not None,
        )

    def _called_sources(
        self, calls: dict[str, int], bundle_sources: dict[str, list[SourceFile]]
    ) -> list[SourceFile]:
        """The files of each called process: its BPMN, its DMN and, in turn, what it calls."""
        out: list[SourceFile] = []
        for key, version in sorted(calls.items()):
            if key in bundle_sources:
                out.extend(bundle_sources[key])
                continue
            called = get_definition(self.session, key, version)
            out.extend(self.registry._sources(self.session, called, seen=set()))
        return out

    def _resources(
        self,
        key: str,
        source: SourceFile,
        calls: set[str],
        needed_decisions: set[str],
        decisions: dict[str, SourceFile],
        forms: dict[str, dict[str, Any]],
        deployed_versions: dict[str, int],
    ) -> dict[str, Any]:
        dmn: dict[str, str] = {}
        problems: list[Problem] = []
        for decision in sorted(needed_decisions):
            found = decisions.get(decision) or self._stored_decision(decision)
            if found is None:
                problems.append(
                    Problem(source.name, f"DMN decision {decision!r} is not deployed", element_id=decision)
                )
            else:
                dmn[found.name] = found.text
        resolved: dict[str, int] = {}
        for called in sorted(calls):
            if called == key:
                continue
            if called in deployed_versions:
                resolved[called] = deployed_versions[called]
                continue
            try:
                resolved[called] = get_definition(self.session, called).version
            except NotFoundError:
                problems.append(
                    Problem(source.name, f"called process {called!r} is not deployed", element_id=called)
                )
        if problems:
            raise definition_error(problems)
        return {"dmn": dmn, "calls": resolved, "forms": forms}

    def _stored_decision(self, decision: str) -> SourceFile | None:
        for definition in self.session.scalars(
            sa.select(ProcessDefinition).order_by(ProcessDefinition.id.desc()).limit(200)
        ):
            for name, text in definition.resources.get("dmn", {}).items():
                if decision in decision_ids(parse_xml(text, filename=name)):
                    return SourceFile(name, text)
        return None

    def _forms(self, files: Iterable[SourceFile]) -> dict[str, dict[str, Any]]:
        from engine.forms import load_form_files

        uis = {f.name[: -len(".uischema.json")]: f.text for f in files if f.name.endswith(".uischema.json")}
        return {
            f.name[: -len(".schema.json")]: load_form_files(
                f.name[: -len(".schema.json")], f.text, uis.get(f.name[: -len(".schema.json")])
            )
            for f in files
            if f.name.endswith(".schema.json")
        }

    def _check_forms(
        self, key: str, source: SourceFile, bundle: SpecBundle, resources: dict[str, Any]
    ) -> None:
        """Pin the forms a process uses into its definition, so running cases keep their form versions."""
        problems: list[Problem] = []
        pinned: dict[str, Any] = {}
        lines = element_lines(parse_xml(source.text, filename=source.name))
        for spec in _user_task_specs(bundle):
            form = user_task_properties(spec).get("form")
            if not form:
                continue
            found = resources["forms"].get(form) or self.registry.forms.get(form)
            if found is None:
                problems.append(
                    Problem(
                        source.name,
                        f"form {form!r} does not exist in forms/",
                        line=lines.get(spec.bpmn_id),
                        element_id=spec.bpmn_id,
                    )
                )
            else:
                pinned[form] = found
        if problems:
            raise definition_error(problems)
        resources["forms"] = pinned


def _unique_sources(files: Iterable[SourceFile]) -> list[SourceFile]:
    """Each DMN file once by name, each BPMN file once by content."""
    unique: dict[str, SourceFile] = {}
    for f in files:
        unique.setdefault(f.name if f.is_dmn else f"{f.name}:{hash(f.text)}", f)
    return list(unique.values())


def element_lines(root: Any) -> dict[str, int]:
    """Source line of every element with an id, for error messages."""
    lines: dict[str, int] = {}
    for node in root.iter():
        element_id = node.get("id") if isinstance(node.tag, str) else None
        line = getattr(node, "sourceline", None)
        if element_id and isinstance(line, int):
            lines[element_id] = line
    return lines


def _user_task_specs(bundle: SpecBundle) -> list[Any]:
    specs = list(bundle.spec.task_specs.values())
    for sub in bundle.subprocess_specs.values():
        specs.extend(sub.task_specs.values())
    return [s for s in specs if getattr(s, "manual", False)]


def _call_order(processes: dict[str, tuple[SourceFile, str, set[str], set[str]]]) -> list[str]:
    """Callees before callers, so a caller pins the version deployed alongside it."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in order or key in visiting:
            return
        visiting.add(key)
        for called in sorted(processes[key][2]):
            if called in processes:
                visit(called)
        visiting.discard(key)
        order.append(key)

    for key in sorted(processes):
        visit(key)
    return order


def read_directory(directory: Path) -> list[SourceFile]:
    files: list[SourceFile] = []
    for pattern in ("*.bpmn", "*.dmn"):
        files.extend(SourceFile(p.name, p.read_text()) for p in sorted(directory.glob(pattern)))
    return files


__all__ = ["DefinitionError", "DeployResult", "Deployer", "SpecRegistry", "get_definition", "read_directory"]
