"""The audit trail: hash chains per case, tamper detection, append-only on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.audit import AuditLog, verify
from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.models import AuditEvent
from engine.registry import Deployer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OFFICER = Actor("dc.jones", "DC Jones")


def _case(services: Services) -> str:
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile("review_loop.bpmn", (FIXTURES / "review_loop.bpmn").read_text())], by="designer"
        )
        service = InstanceService(session, services.context)
        instance = service.start("review_loop", unit="MIT-North", classification="SECRET", started_by=OFFICER)
        [task] = service.open_tasks(instance.id)
        AuditLog(session, services.clock).record(
            actor="ds.patel",
            kind="consultation",
            action="task.data.read",
            record_type="human_task",
            record_id=task.id,
            instance_id=instance.id,
            purpose="supervision",
        )
        return instance.id


def test_every_case_has_its_own_intact_chain(services: Services) -> None:
    first, second = _case(services), _case(services)
    with transaction(services.sessions) as session:
        rows = session.execute(sa.select(AuditEvent.chain, sa.func.count()).group_by(AuditEvent.chain)).all()
        assert dict(rows) == {first: 2, second: 2}  # type: ignore[arg-type]
        assert verify(session) == (4, None)
        read = session.scalars(sa.select(AuditEvent).where(AuditEvent.kind == "consultation")).first()
        assert read is not None
        assert (read.actor, read.purpose, read.instance_id) == ("ds.patel", "supervision", first)


def _tamper(services: Services, sql: str, **params: object) -> None:
    with services.db.begin() as conn:
        if services.db.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        conn.execute(sa.text(sql), params)
        if services.db.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")


def test_an_edited_row_is_reported_as_the_first_broken_link(services: Services) -> None:
    instance_id = _case(services)
    _tamper(
        services,
        "UPDATE audit_event SET actor = 'someone.else' WHERE chain = :chain AND seq = 2",
        chain=instance_id,
    )
    with transaction(services.sessions) as session:
        checked, broken = verify(session)
    assert broken is not None
    assert (broken.chain, broken.seq, broken.reason) == (instance_id, 2, "content does not match its hash")
    assert checked == 2


def test_a_deleted_row_is_reported(services: Services) -> None:
    instance_id = _case(services)
    _tamper(services, "DELETE FROM audit_event WHERE chain = :chain AND seq = 1", chain=instance_id)
    with transaction(services.sessions) as session:
        _checked, broken = verify(session)
    assert broken is not None
    assert (broken.chain, broken.seq) == (instance_id, 2)
    assert broken.reason == "event 1 is missing"


def test_cli_verify_exits_non_zero_on_tampering(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.cli import audit_verify

    instance_id = _case(services)
    runner = CliRunner()
    from flask import Flask

    app = Flask("verify-test")
    app.extensions["opsflow"] = services
    with app.app_context():
        ok = runner.invoke(audit_verify, [])
        assert ok.exit_code == 0, ok.output
        assert "intact: 2 event(s)" in ok.output
        _tamper(
            services,
            "UPDATE audit_event SET purpose = 'changed' WHERE chain = :chain AND seq = 2",
            chain=instance_id,
        )
        bad = runner.invoke(audit_verify, [])
    assert bad.exit_code == 1
    assert f"BROKEN at chain {instance_id} seq 2" in bad.output


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not __import__("os").environ.get("OPSFLOW_TEST_DATABASE_URL"),
                reason="the trigger is PostgreSQL's",
            ),
        )
    ],
    indirect=True,
)
def test_postgresql_refuses_update_and_delete(services: Services) -> None:
    _case(services)
    for statement in ("UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), services.db.begin() as conn:
            conn.exec_driver_sql(statement)
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 2
