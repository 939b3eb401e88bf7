"""Case variables take in what running embedded sub-processes set, but not the data of a called process."""

from __future__ import annotations

from pathlib import Path

from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.registry import Deployer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INVESTIGATOR = Actor("dc.jones", "DC Jones")


def test_a_running_called_process_does_not_overwrite_the_callers_variables(services: Services) -> None:
    files = [
        SourceFile(name, (FIXTURES / name).read_text())
        for name in ("called_data_child.bpmn", "called_data_parent.bpmn")
    ]
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(files, by="designer")
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        instance = service.start(
            "called_data_parent",
            business_key="OP-1",
            variables={"decision": "refused", "case_ref": "C-9"},
            unit="MIT-North",
            classification="SECRET",
            started_by=INVESTIGATOR,
        )
        [task] = service.open_tasks(instance.id)
        assert task.element_id == "work"
        assert service.task_data(task)["decision"] == "granted"
        variables = service.variables(instance.id)
        assert (variables["decision"], variables["case_ref"]) == ("refused", "C-9")
