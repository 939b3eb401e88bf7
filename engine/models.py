"""The engine's tables, declared in SQLAlchemy 2 style; Alembic migrations are the schema's only source."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime


class ProcessDefinition(Base):
    """One deployed version of a process: its BPMN source and the resources it was parsed with."""

    __tablename__ = "process_definition"
    __table_args__ = (
        sa.UniqueConstraint("key", "version"),
        sa.Index("ix_process_definition_key_content_hash", "key", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200))
    name: Mapped[str] = mapped_column(sa.String(500))
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    source_name: Mapped[str] = mapped_column(sa.String(500))
    bpmn_source: Mapped[str] = mapped_column(sa.Text)
    resources: Mapped[dict[str, Any]] = mapped_column(JSONType)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str] = mapped_column(sa.String(200))


class ProcessInstance(Base):
    """A running or finished case; ``state`` is the serialized workflow without its spec."""

    __tablename__ = "process_instance"
    __table_args__ = (
        sa.Index("ix_process_instance_key_status", "process_key", "status"),
        sa.Index("ix_process_instance_business_key", "business_key"),
        sa.Index("ix_process_instance_unit_started_at", "unit", "started_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    definition_id: Mapped[int] = mapped_column(sa.ForeignKey("process_definition.id"))
    process_key: Mapped[str] = mapped_column(sa.String(200))
    process_version: Mapped[int]
    business_key: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(20))
    unit: Mapped[str] = mapped_column(sa.String(100))
    classification: Mapped[str] = mapped_column(sa.String(40))
    started_by: Mapped[str] = mapped_column(sa.String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(sa.Text)
    serializer_version: Mapped[str] = mapped_column(sa.String(20))
    state: Mapped[dict[str, Any]] = mapped_column(JSONType)
    lock_version: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_by: Mapped[str | None] = mapped_column(sa.String(200))

    __mapper_args__ = {"version_id_col": lock_version}


class HumanTask(Base):
    """The inbox's view of a user task, kept in step with the workflow in the same transaction."""

    __tablename__ = "human_task"
    __table_args__ = (
        # The inbox: open tasks only, covering the visibility filters so that counts never read the table.
        sa.Index(
            "ix_human_task_open_inbox",
            "role",
            "unit",
            "due_at",
            "id",
            postgresql_include=["classification", "assignee"],
            postgresql_where=sa.text("status = 'ready'"),
            sqlite_where=sa.text("status = 'ready'"),
        ),
        sa.Index("ix_human_task_assignee_status", "assignee", "status"),
        sa.Index("ix_human_task_instance_id", "instance_id"),
        sa.Index("ix_human_task_status_due_at", "status", "due_at", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(sa.ForeignKey("process_instance.id"))
    process_key: Mapped[str] = mapped_column(sa.String(200))
    process_version: Mapped[int]
    business_key: Mapped[str | None] = mapped_column(sa.String(200))
    element_id: Mapped[str] = mapped_column(sa.String(200))
    name: Mapped[str] = mapped_column(sa.String(500))
    lane: Mapped[str | None] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(20))
    assignee: Mapped[str | None] = mapped_column(sa.String(200))
    unit: Mapped[str] = mapped_column(sa.String(100))
    classification: Mapped[str] = mapped_column(sa.String(40))
    priority: Mapped[int] = mapped_column(sa.Integer, server_default="50")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    form: Mapped[str | None] = mapped_column(sa.String(200))
    is_approval: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    required_rank: Mapped[str | None] = mapped_column(sa.String(60))
    excluded_subjects: Mapped[list[str]] = mapped_column(JSONType)
    team_subjects: Mapped[list[str]] = mapped_column(JSONType)
    team_policy: Mapped[str] = mapped_column(sa.String(20), server_default="forbid")
    summary: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(sa.String(200))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by: Mapped[str | None] = mapped_column(sa.String(200))
    submitted_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    flagged: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    lock_version: Mapped[int] = mapped_column(sa.Integer, server_default="1")

    __mapper_args__ = {"version_id_col": lock_version}


class TaskHistory(Base):
    """A finished step moved out of the live workflow tree, so state stays small as loops run."""

    __tablename__ = "task_history"
    __table_args__ = (sa.Index("ix_task_history_instance_id_id", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    instance_id: Mapped[str] = mapped_column(sa.ForeignKey("process_instance.id"))
    task_id: Mapped[str] = mapped_column(sa.String(36))
    element_id: Mapped[str] = mapped_column(sa.String(200))
    name: Mapped[str | None] = mapped_column(sa.String(500))
    element_type: Mapped[str] = mapped_column(sa.String(100))
    state: Mapped[str] = mapped_column(sa.String(20))
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_by: Mapped[str | None] = mapped_column(sa.String(200))
    data_changes: Mapped[dict[str, Any]] = mapped_column(JSONType)


class Timer(Base):
    """A waiting timer event; written and removed in the same transaction as the state that owns it."""

    __tablename__ = "timer"
    __table_args__ = (
        sa.UniqueConstraint("instance_id", "task_id"),
        sa.Index("ix_timer_due_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    instance_id: Mapped[str] = mapped_column(sa.ForeignKey("process_instance.id"))
    task_id: Mapped[str] = mapped_column(sa.String(36))
    element_id: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(20))
    expression: Mapped[str] = mapped_column(sa.Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    interrupting: Mapped[bool] = mapped_column(sa.Boolean)
    attached_to_task_id: Mapped[str | None] = mapped_column(sa.String(36))
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageSubscription(Base):
    """An instance waiting for a named message with a correlation value."""

    __tablename__ = "message_subscription"
    __table_args__ = (
        sa.Index("ix_message_subscription_lookup", "message_name", "correlation_value"),
        sa.Index("ix_message_subscription_instance_id", "instance_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    instance_id: Mapped[str] = mapped_column(sa.ForeignKey("process_instance.id"))
    task_id: Mapped[str] = mapped_column(sa.String(36))
    element_id: Mapped[str] = mapped_column(sa.String(200))
    message_name: Mapped[str] = mapped_column(sa.String(200))
    correlation_value: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Incident(Base):
    """A failure inside a process (script, expression, timer) that stopped an instance until retried."""

    __tablename__ = "incident"
    __table_args__ = (sa.Index("ix_incident_instance_id_resolved_at", "instance_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    instance_id: Mapped[str] = mapped_column(sa.ForeignKey("process_instance.id"))
    task_id: Mapped[str | None] = mapped_column(sa.String(36))
    element_id: Mapped[str | None] = mapped_column(sa.String(200))
    error_type: Mapped[str] = mapped_column(sa.String(100))
    message: Mapped[str] = mapped_column(sa.Text)
    line: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(sa.String(200))


class AuditChain(Base):
    """Head of one hash chain; writers lock only the chain they append to."""

    __tablename__ = "audit_chain"

    chain: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    last_hash: Mapped[str] = mapped_column(sa.String(64))


class AuditEvent(Base):
    """Append-only, hash-chained record of who did and who saw what (DPA 2018 s.62)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.UniqueConstraint("chain", "seq"),
        sa.Index("ix_audit_event_instance_id_id", "instance_id", "id"),
        sa.Index("ix_audit_event_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    chain: Mapped[str] = mapped_column(sa.String(64))
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(40))
    action: Mapped[str] = mapped_column(sa.String(60))
    record_type: Mapped[str] = mapped_column(sa.String(60))
    record_id: Mapped[str] = mapped_column(sa.String(200))
    instance_id: Mapped[str | None] = mapped_column(sa.String(36))
    purpose: Mapped[str | None] = mapped_column(sa.Text)
    recipient: Mapped[str | None] = mapped_column(sa.String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class IdempotencyRecord(Base):
    """Remembers a start request by its Idempotency-Key so that a retry returns the same instance."""

    __tablename__ = "idempotency_record"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    principal: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    instance_id: Mapped[str] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """A timer worker's sign of life, used by the readiness probe."""

    __tablename__ = "worker_heartbeat"

    worker_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
