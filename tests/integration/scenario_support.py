"""Helpers for the process scenario tests: the real processes and forms, driven over HTTP.

A scenario deploys everything in ``processes/`` and ``forms/``, starts a case through
``POST /api/v1/process-instances`` as a person with a real signed token, and works the case's tasks
through the inbox, the task API and the approvals API, moving the injected clock to fire timers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from api_support import Api, Person

from engine.bpmn import SourceFile
from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.registry import Deployer
from engine.worker import TimerWorker

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
FORMS = ROOT / "forms"


def project_files() -> list[SourceFile]:
    """Every process, decision table and form the project ships."""
    files: list[SourceFile] = []
    for directory, patterns in ((PROCESSES, ("*.bpmn", "*.dmn")), (FORMS, ("*.json",))):
        for pattern in patterns:
            files.extend(SourceFile(p.name, p.read_text()) for p in sorted(directory.glob(pattern)))
    return files


def deploy_project(services: Services, *, only: tuple[str, ...] = ()) -> None:
    """Deploy the shipped processes as the server does at boot.

    ``only`` names BPMN and DMN files (``"custody_detention.bpmn"``) to deploy alone with the forms
    they name, which keeps a scenario's setup short; by default everything is deployed.
    """
    files = project_files()
    if only:
        chosen = [f for f in files if f.name in only]
        assert len(chosen) == len(only), f"no such process files: {set(only) - {f.name for f in chosen}}"
        text = "".join(f.text for f in chosen)
        forms = [f for f in files if f.name.endswith(".json") and f'"{f.name.split(".")[0]}"' in text]
        files = chosen + forms
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(files, by="tests")


def person(
    subject: str,
    *roles: str,
    rank: str | None = "constable",
    units: tuple[str, ...] = ("MIT-North",),
    clearance: str = "SECRET",
) -> Person:
    """Someone with a real token carrying these roles, rank, units and clearance."""
    return Person(subject, roles=roles, units=units, rank=rank, clearance=clearance, name=subject)


@dataclass
class Case:
    """One running case, worked over the HTTP API."""

    api: Api
    services: Services
    clock: FrozenClock
    id: str
    business_key: str
    unit: str
    fired: list[int] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        api: Api,
        services: Services,
        clock: FrozenClock,
        process_key: str,
        by: Person,
        *,
        business_key: str,
        unit: str = "MIT-North",
        classification: str = "SECRET",
        **variables: Any,
    ) -> Case:
        response = api.post(
            "/api/v1/process-instances",
            by,
            json={
                "process_key": process_key,
                "business_key": business_key,
                "unit": unit,
                "classification": classification,
                "variables": variables,
            },
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return cls(api, services, clock, response.get_json()["id"], business_key, unit)

    # -- reading ---------------------------------------------------------------------------------

    def state(self, who: Person) -> dict[str, Any]:
        """``GET /process-instances/{id}``: status, open tasks, waiting timers, incidents."""
        response = self.api.get(f"/api/v1/process-instances/{self.id}", who)
        assert response.status_code == 200, response.get_data(as_text=True)
        return dict(response.get_json())

    def status(self, who: Person) -> str:
        return str(self.state(who)["status"])

    def variables(self, who: Person) -> dict[str, Any]:
        response = self.api.get(
            f"/api/v1/process-instances/{self.id}/variables",
            who,
            headers={"X-Purpose": "scenario test"},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return dict(response.get_json()["variables"])

    def open_elements(self, who: Person) -> list[str]:
        """Element ids of the case's open tasks, as the instance view shows them."""
        return sorted(t["element_id"] for t in self.state(who)["open_tasks"])

    def timers(self, who: Person) -> dict[str, str]:
        """Waiting timers of the case: element id -> due time."""
        return {t["element_id"]: t["due_at"] for t in self.state(who)["timers"]}

    def inbox(self, who: Person, **filters: Any) -> list[dict[str, Any]]:
        """What ``who`` sees of this case in ``GET /tasks``."""
        response = self.api.get(
            "/api/v1/tasks", who, query_string={"business_key": self.business_key, "limit": 200, **filters}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return [t for t in response.get_json()["items"] if t["instance_id"] == self.id]

    def task(self, who: Person, element_id: str) -> dict[str, Any]:
        """The open task ``element_id`` as ``who`` finds it in their inbox (fails if they cannot see it)."""
        inbox = self.inbox(who)
        matches = [t for t in inbox if t["element_id"] == element_id]
        seen = sorted(t["element_id"] for t in inbox)
        assert matches, f"{who.subject} has no open {element_id!r} task; their inbox holds {seen}"
        return matches[0]

    # -- acting ----------------------------------------------------------------------------------

    def complete(self, who: Person, element_id: str, data: dict[str, Any], *, status: int = 200) -> Any:
        """Complete the open task ``element_id`` as ``who`` through ``POST /tasks/{id}/complete``."""
        task = self.task(who, element_id)
        response = self.api.post(f"/api/v1/tasks/{task['id']}/complete", who, json={"data": data})
        assert response.status_code == status, response.get_data(as_text=True)
        return response.get_json()

    def decide(
        self,
        who: Person,
        element_id: str,
        decision: str,
        rationale: str,
        *,
        status: int = 200,
        **extra: Any,
    ) -> Any:
        """Decide the approval ``element_id`` through ``POST /approvals/{task_id}/decision``."""
        task = self.task(who, element_id)
        body = {"decision": decision, "rationale": rationale, **extra}
        response = self.api.post(f"/api/v1/approvals/{task['id']}/decision", who, json=body)
        assert response.status_code == status, response.get_data(as_text=True)
        return response.get_json()

    def history(self, who: Person) -> list[dict[str, Any]]:
        """The case's whole audit trail, oldest first, read page by page through the API."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            query: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            response = self.api.get(
                f"/api/v1/process-instances/{self.id}/history",
                who,
                query_string=query,
                headers={"X-Purpose": "scenario test"},
            )
            assert response.status_code == 200, response.get_data(as_text=True)
            body = response.get_json()
            events.extend(body["items"])
            cursor = body["next_cursor"]
            if not cursor:
                return events

    def message(
        self, who: Person, name: str, correlation: Any, variables: dict[str, Any] | None = None
    ) -> Any:
        response = self.api.post(
            "/api/v1/messages",
            who,
            json={"name": name, "correlation": correlation, "variables": variables or {}},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    # -- time --------------------------------------------------------------------------------------

    def advance(self, delta: timedelta) -> int:
        """Move the clock on by ``delta`` and fire every timer now due; returns how many fired."""
        return advance(self.services, self.clock, delta)


def advance(
    services: Services, clock: FrozenClock, delta: timedelta, *, step: timedelta | None = None
) -> int:
    """Move the clock forward, firing due timers as it goes (``step`` bounds each jump).

    Timers that a fired timer arms (a repeating welfare visit, a review cycle) fire in turn when
    they fall inside the window, as they would on a live system.
    """
    worker = TimerWorker(services, worker_id="scenario-tests", threads=1)
    fired = 0
    remaining = delta
    jump = step or delta
    try:
        while remaining > timedelta(0):
            move = min(jump, remaining)
            clock.advance(move)
            remaining -= move
            while True:
                count = worker.fire_due()
                fired += count
                if count == 0:
                    break
    finally:
        worker.close()
    return fired
