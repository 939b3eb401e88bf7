"""Message correlation on SQLite and PostgreSQL: start by message, catch by key, no match, several matches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.bpmn import SourceFile
from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.errors import CorrelationError, ValidationError
from engine.instances import Actor, InstanceService
from engine.messages import correlate, correlation_value
from engine.models import AuditEvent, HumanTask, MessageSubscription, ProcessInstance, Timer
from engine.registry import Deployer
from engine.worker import TimerWorker

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "messages"
OFFICER = Actor("dc.jones", "DC Jones")
LAB = Actor("client:lab-system", "Forensic lab integration")


def deploy(services: Services, *names: str) -> None:
    files = [SourceFile(n, (FIXTURES / n).read_text()) for n in names]
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(files, by="designer")


def start(services: Services, key: str, *, business_key: str | None = "OP-1", **variables: Any) -> str:
    with transaction(services.sessions) as session:
        instance = InstanceService(session, services.context).start(
            key,
            business_key=business_key,
            variables=variables,
            unit="MIT-North",
            classification="SECRET",
            started_by=OFFICER,
        )
        return instance.id


def send(
    services: Services, name: str, keys: dict[str, Any], data: dict[str, Any], **options: Any
) -> list[str]:
    with transaction(services.sessions) as session:
        return correlate(session, services.context, name, keys, data, actor=LAB, **options)


def subscriptions(services: Services) -> list[tuple[str, str, str | None]]:
    with services.sessions() as session:
        return [
            (s.instance_id, s.message_name, s.correlation_value)
            for s in session.scalars(sa.select(MessageSubscription).order_by(MessageSubscription.id))
        ]


def status(services: Services, instance_id: str) -> str:
    with services.sessions() as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        return instance.status


def variables(services: Services, instance_id: str) -> dict[str, Any]:
    with services.sessions() as session:
        return InstanceService(session, services.context).variables(instance_id)


def test_correlation_value_is_canonical() -> None:
    assert correlation_value({}) == ""
    assert correlation_value({"b": 2, "a": "x y"}) == "a=x%20y&b=2"
    assert correlation_value({"case_ref": 5}) == correlation_value({"case_ref": "5"})
    assert correlation_value({"k": "&="}) == "k=%26%3D"
    assert correlation_value({"k": "x" * 600}).startswith("sha256:")
    with pytest.raises(ValidationError):
        correlation_value({"k": None})


def test_a_message_start_event_starts_a_new_instance(services: Services) -> None:
    deploy(services, "msg_start.bpmn")
    [instance_id] = send(
        services,
        "evidence_submitted",
        {"business_key": "EX-1"},
        {"exhibit": "JD/1"},
        unit="DFU",
        classification="OFFICIAL",
    )
    with services.sessions() as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        assert (instance.process_key, instance.business_key, instance.status) == (
            "evidence_intake",
            "EX-1",
            "running",
        )
        assert (instance.unit, instance.classification, instance.started_by) == (
            "DFU",
            "OFFICIAL",
            LAB.subject,
        )
        [task] = session.scalars(sa.select(HumanTask).where(HumanTask.instance_id == instance_id))
        assert (task.element_id, task.status) == ("examine", "ready")
        actions = [
            e.action
            for e in session.scalars(
                sa.select(AuditEvent).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.id)
            )
        ]
    assert actions == ["instance.started", "message.received"]
    assert variables(services, instance_id)["exhibit"] == "JD/1"
    assert subscriptions(services) == []


def test_a_message_start_needs_a_unit(services: Services) -> None:
    deploy(services, "msg_start.bpmn")
    with pytest.raises(ValidationError):
        send(services, "evidence_submitted", {}, {}, classification="OFFICIAL")


def test_catch_by_key_reaches_only_the_matching_instance(services: Services) -> None:
    deploy(services, "msg_catch.bpmn")
    first = start(services, "lab_wait", case_ref="C-1")
    second = start(services, "lab_wait", case_ref="C-2")
    assert subscriptions(services) == [
        (first, "lab_result", "case_ref=C-1"),
        (second, "lab_result", "case_ref=C-2"),
    ]
    assert send(services, "lab_result", {"case_ref": "C-2"}, {"result": "DNA match"}) == [second]
    assert status(services, second) == "completed"
    assert variables(services, second)["recorded"] == "DNA match"
    assert status(services, first) == "running"
    assert subscriptions(services) == [(first, "lab_result", "case_ref=C-1")]


def test_no_match_raises_and_changes_nothing(services: Services) -> None:
    deploy(services, "msg_catch.bpmn")
    instance_id = start(services, "lab_wait", case_ref="C-1")
    with pytest.raises(CorrelationError) as info:
        send(services, "lab_result", {"case_ref": "C-9"}, {"result": "x"})
    assert info.value.matches == 0
    with pytest.raises(CorrelationError) as info:
        send(services, "no_such_message", {"case_ref": "C-1"}, {})
    assert info.value.matches == 0
    assert status(services, instance_id) == "running"
    assert len(subscriptions(services)) == 1


def test_two_matches_need_all(services: Services) -> None:
    deploy(services, "msg_catch.bpmn")
    first = start(services, "lab_wait", case_ref="C-1")
    second = start(services, "lab_wait", case_ref="C-1")
    with pytest.raises(CorrelationError) as info:
        send(services, "lab_result", {"case_ref": "C-1"}, {"result": "x"})
    assert info.value.matches == 2
    assert {status(services, first), status(services, second)} == {"running"}

    delivered = send(services, "lab_result", {"case_ref": "C-1"}, {"result": "x"}, all=True)
    assert sorted(delivered) == sorted([first, second])
    assert {status(services, first), status(services, second)} == {"completed"}
    assert subscriptions(services) == []


def test_a_delivered_message_is_not_delivered_twice(services: Services) -> None:
    deploy(services, "msg_catch.bpmn")
    instance_id = start(services, "lab_wait", case_ref="C-1")
    assert send(services, "lab_result", {"case_ref": "C-1"}, {"result": "x"}) == [instance_id]
    with pytest.raises(CorrelationError):
        send(services, "lab_result", {"case_ref": "C-1"}, {"result": "again"})
    with services.sessions() as session:
        received = session.scalar(
            sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "message.received")
        )
    assert received == 1


def test_a_missing_correlation_variable_is_an_incident(services: Services) -> None:
    deploy(services, "msg_catch.bpmn")
    instance_id = start(services, "lab_wait")
    assert status(services, instance_id) == "failed"
    with services.sessions() as session:
        [incident] = InstanceService(session, services.context).incidents(instance_id)
    assert incident.element_id == "await_result"
    assert "case_ref" in incident.message
    assert subscriptions(services) == []


def test_receive_task_correlates_on_the_business_key(services: Services) -> None:
    deploy(services, "msg_receive.bpmn")
    first = start(services, "disclosure", business_key="OP-7")
    second = start(services, "disclosure", business_key="OP-8")
    assert send(services, "disclosure_acknowledged", {"business_key": "OP-8"}, {"by": "defence"}) == [second]
    assert (status(services, first), status(services, second)) == ("running", "completed")


def test_an_uncorrelated_instance_takes_a_message_without_keys(services: Services) -> None:
    deploy(services, "msg_receive.bpmn")
    instance_id = start(services, "disclosure", business_key=None)
    assert subscriptions(services) == [(instance_id, "disclosure_acknowledged", "")]
    assert send(services, "disclosure_acknowledged", {}, {}) == [instance_id]


def test_boundary_message_interrupts_the_task(services: Services) -> None:
    deploy(services, "msg_boundary.bpmn")
    instance_id = start(services, "negotiation", business_key="KID-3")
    assert send(services, "hostage_released", {"business_key": "KID-3"}, {"released_at": "14:02"}) == [
        instance_id
    ]
    assert status(services, instance_id) == "completed"
    with services.sessions() as session:
        [task] = session.scalars(sa.select(HumanTask).where(HumanTask.instance_id == instance_id))
    assert (task.element_id, task.status) == ("negotiate", "cancelled")


def test_a_suspended_instance_is_not_a_match(services: Services) -> None:
    deploy(services, "msg_receive.bpmn")
    instance_id = start(services, "disclosure", business_key="OP-7")
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).suspend(instance_id, actor=OFFICER)
    with pytest.raises(CorrelationError) as info:
        send(services, "disclosure_acknowledged", {"business_key": "OP-7"}, {})
    assert info.value.matches == 0


def test_event_based_gateway_message_wins_and_its_timer_goes(services: Services, clock: FrozenClock) -> None:
    deploy(services, "msg_gateway.bpmn")
    replied = start(services, "charging_advice", business_key="CH-1")
    chased = start(services, "charging_advice", business_key="CH-2")
    with services.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Timer)) == 2
    assert send(services, "cps_reply", {"business_key": "CH-1"}, {"advice": "charge"}) == [replied]
    assert variables(services, replied)["path"] == "reply"
    with services.sessions() as session:
        assert list(session.scalars(sa.select(Timer.instance_id))) == [chased]

    clock.advance(timedelta(hours=24))
    assert TimerWorker(services).fire_due() == 1
    assert variables(services, chased)["path"] == "chased"
    assert subscriptions(services) == []
    with pytest.raises(CorrelationError):
        send(services, "cps_reply", {"business_key": "CH-2"}, {})
