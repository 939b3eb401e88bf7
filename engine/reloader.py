"""Redeploys process and form files when they change on disk: the loop behind ``serve --reload-processes``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.bpmn import Problem, SourceFile
from engine.container import Services
from engine.db import transaction
from engine.errors import DefinitionError
from engine.registry import Deployer, DeployResult
from engine.validation import as_problems

log = logging.getLogger("opsflow.reload")

PATTERNS = ("*.bpmn", "*.dmn", "*.schema.json", "*.uischema.json")


@dataclass(frozen=True)
class ReloadReport:
    """What one redeployment did: the files that changed, the versions made, and what was wrong."""

    changed: list[str]
    results: list[DeployResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def deployed(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


class ProcessReloader:
    """Watches ``processes/`` and ``forms/`` by polling modification times, and redeploys on a change.

    Every file of both directories goes to the deployer together, so a changed form or decision table
    reaches the processes that use it, and unchanged processes keep their version. A file that fails
    validation is reported (to ``report`` when given, else to the log) and the previous version stays
    deployed; the server carries on. Polling needs no platform support and costs one ``stat`` per file
    per interval.
    """

    def __init__(
        self,
        services: Services,
        *,
        directories: tuple[Path, ...] | None = None,
        interval: float = 1.0,
        report: Callable[[ReloadReport], None] | None = None,
    ) -> None:
        self.services = services
        self.directories = directories or (services.settings.processes_dir, services.settings.forms_dir)
        self.interval = interval
        self.report = report
        self._seen: dict[Path, tuple[int, int]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def files(self) -> list[Path]:
        found: set[Path] = set()
        for directory in self.directories:
            for pattern in PATTERNS:
                found.update(directory.glob(pattern))
        return sorted(found)

    def poll(self) -> ReloadReport | None:
        """Redeploy if any file was added, changed or removed since the last poll; None when nothing was."""
        paths = self.files()
        current: dict[Path, tuple[int, int]] = {}
        for path in paths:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            current[path] = (stat.st_mtime_ns, stat.st_size)
        previous = self._seen
        if previous is not None and current == previous:
            return None
        self._seen = current
        # The first poll deploys what is there; later ones name the files added, changed or removed.
        changed = (
            []
            if previous is None
            else sorted(p.name for p in current.keys() | previous.keys() if previous.get(p) != current.get(p))
        )
        outcome = self._deploy(sorted(current), changed)
        if self.report is None:
            self._log(outcome)
        else:
            self.report(outcome)
        return outcome

    def _deploy(self, paths: list[Path], changed: list[str]) -> ReloadReport:
        files: list[SourceFile] = []
        for path in paths:
            try:
                files.append(SourceFile(path.name, path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                return ReloadReport(
                    changed, problems=[Problem(path.name, f"cannot be read: {exc}", code="unreadable")]
                )
        if not any(f.name.endswith(".bpmn") for f in files):
            return ReloadReport(changed)
        svc = self.services
        try:
            with transaction(svc.sessions) as session:
                deployer = Deployer(session, svc.context.registry, svc.clock)
                results = deployer.deploy(files, by="reload")
                warnings = list(deployer.warnings)
        except DefinitionError as exc:
            return ReloadReport(changed, problems=as_problems(exc, default_file="(deployment)"))
        return ReloadReport(changed, results=results, problems=warnings)

    def _log(self, outcome: ReloadReport) -> None:
        for result in outcome.results:
            if result.created:
                log.info("process_redeployed key=%s version=%s", result.key, result.version)
        for p in outcome.problems:
            log.warning(
                "process_file_invalid file=%s line=%s element=%s code=%s severity=%s message=%s",
                p.file,
                p.line,
                p.element_id,
                p.code,
                p.severity,
                p.message,
            )

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opsflow-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a failed reload must not stop the server; log.exception records it
                log.exception("process_reload_failed")
