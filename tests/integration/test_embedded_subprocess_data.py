"""Case variables include what a running embedded sub-process has changed, not only what it started with."""

from __future__ import annotations

from pathlib import Path

from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.registry import Deployer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INVESTIGATOR = Actor("dc.jones", "DC Jones")


def test_variables_show_a_change_made_inside_a_running_sub_process(services: Services) -> None:
    source = SourceFile("embedded_update.bpmn", (FIXTURES / "embedded_update.bpmn").read_text())
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy([source], by="designer")
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        instance = service.start(
            "embedded_update",
            business_key="OP-1",
            variables={"reviews": 4},
            unit="MIT-North",
            classification="SECRET",
            started_by=INVESTIGATOR,
        )
        [task] = service.open_tasks(instance.id)
        assert task.element_id == "work"
        assert service.variables(instance.id)["reviews"] == 5
        service.complete_task(task.id, {"note": "done"}, actor=INVESTIGATOR)
        assert service.variables(instance.id)["reviews"] == 5
        assert service.get(instance.id).status == "completed"
