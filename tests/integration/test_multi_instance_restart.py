"""A multi-instance task keeps every instance's output when its case is loaded by a fresh process."""

from __future__ import annotations

from pathlib import Path

from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.registry import Deployer, SpecRegistry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "loops"
OFFICER = Actor("dc.jones", "DC Jones")


def test_instances_completed_after_a_restart_are_all_merged(services: Services) -> None:
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile("exhibit_receipts.bpmn", (FIXTURES / "exhibit_receipts.bpmn").read_text())],
            by="tests",
        )
        instance_id = (
            InstanceService(session, services.context)
            .start(
                "exhibit_receipts",
                variables={"exhibits": ["EX-1", "EX-2"]},
                unit="MIT-North",
                classification="SECRET",
                started_by=OFFICER,
            )
            .id
        )
    # A restarted server parses the definition again: its specs have never created an instance.
    services.context.registry = SpecRegistry(services.context.registry.forms)
    with services.sessions() as session:
        receipts = InstanceService(session, services.context).open_tasks(instance_id)
    assert [t.element_id for t in receipts] == ["receive", "receive"]
    for task in receipts:
        with transaction(services.sessions) as session:
            service = InstanceService(session, services.context)
            exhibit = service.task_data(service.get_task(task.id))["exhibit"]
            service.complete_task(task.id, {"receipt": f"received {exhibit}"}, actor=OFFICER)
    with services.sessions() as session:
        service = InstanceService(session, services.context)
        assert [t.element_id for t in service.open_tasks(instance_id)] == ["check"]
        assert sorted(service.variables(instance_id)["receipts"]) == ["received EX-1", "received EX-2"]
