"""Erasure of a finished case's data once its records need no longer be kept.

The Data Protection Act 2018 s.62 counts erasure among the operations that must be logged, and an
erasure must be real: the case's data is removed from every table that holds it, not hidden. What
stays is what the law asks to keep: that the case existed, its process, unit, marking and dates, and
the audit trail (append-only and hash-chained; its events name fields, not their values).

Records may not be erased before their retention period ends: ``records.retention_years.<process key>``
in ``processes/settings.json`` (else ``records.retention_years.default``), counted from the day after
the case ended, so a three-year period keeps the records for at least three whole years.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.audit import AuditLog
from engine.calendars import calendar_months_end, parse_instant
from engine.clock import Clock
from engine.errors import InstanceStateError, NotFoundError, RetentionError, ScriptError, ValidationError
from engine.models import HumanTask, Incident, MessageSubscription, ProcessInstance, TaskHistory, Timer
from engine.process_settings import ProcessSettings

ENDED = ("completed", "cancelled")
DEFAULT_KEY = "records.retention_years.default"
ERASED_STATE: dict[str, object] = {"erased": True}


@dataclass(frozen=True)
class ErasureResult:
    instance_id: str
    erased_at: datetime
    retain_until: datetime
    tasks: int
    history_rows: int


def retention_years(settings: ProcessSettings, process_key: str) -> int:
    """Years a finished case of ``process_key`` is kept; a missing setting keeps it for ever."""
    for name in (f"records.retention_years.{process_key}", DEFAULT_KEY):
        try:
            value = settings.get(name)
        except ScriptError:
            continue
        return int(value)
    raise RetentionError(
        f"no retention period is set for {process_key!r} ({DEFAULT_KEY} is missing), so its records are kept"
    )


def retain_until(instance: ProcessInstance, years: int) -> datetime:
    """The end of a period of ``years`` beginning with the day after the case ended."""
    assert instance.ended_at is not None  # noqa: S101  (only ended cases are asked)
    return parse_instant(calendar_months_end(instance.ended_at + timedelta(days=1), 12 * years))


def _rows(session: Session, statement: sa.Update) -> int:
    result = cast("sa.CursorResult[Any]", session.execute(statement))
    return int(result.rowcount)


def erase_instance(
    session: Session,
    instance_id: str,
    *,
    actor: str,
    reason: str,
    settings: ProcessSettings,
    clock: Clock,
) -> ErasureResult:
    """Remove a finished case's data for good, in the caller's transaction, and log the erasure."""
    if len(reason.strip()) < 10:
        raise ValidationError(
            "an erasure needs a reason of at least 10 characters", errors={"$.reason": ["too short"]}
        )
    instance = session.scalars(
        sa.select(ProcessInstance).where(ProcessInstance.id == instance_id).with_for_update()
    ).one_or_none()
    if instance is None:
        raise NotFoundError(f"process instance {instance_id} does not exist")
    if instance.erased_at is not None:
        raise InstanceStateError(
            f"the data of process instance {instance_id} was erased on {instance.erased_at.isoformat()}"
        )
    if instance.status not in ENDED or instance.ended_at is None:
        raise InstanceStateError(
            f"process instance {instance_id} is {instance.status}; only a finished case can be erased",
            status=instance.status,
        )
    keep_until = retain_until(instance, retention_years(settings, instance.process_key))
    now = clock.now()
    if now < keep_until:
        raise RetentionError(
            f"the records of this case must be kept until {keep_until.isoformat()}",
            retain_until=keep_until.isoformat(),
        )
    tasks = _rows(
        session,
        sa.update(HumanTask)
        .where(HumanTask.instance_id == instance.id)
        .values(submitted_data=None, summary=None, business_key=None),
    )
    history_rows = _rows(
        session, sa.update(TaskHistory).where(TaskHistory.instance_id == instance.id).values(data_changes={})
    )
    session.execute(sa.update(Incident).where(Incident.instance_id == instance.id).values(message="(erased)"))
    session.execute(sa.delete(Timer).where(Timer.instance_id == instance.id))
    session.execute(sa.delete(MessageSubscription).where(MessageSubscription.instance_id == instance.id))
    instance.state = dict(ERASED_STATE)
    instance.business_key = None
    instance.end_reason = None
    instance.erased_at = now
    instance.erased_by = actor
    instance.updated_at = now
    AuditLog(session, clock).record(
        actor=actor,
        kind="erasure",
        action="instance.erased",
        record_type="process_instance",
        record_id=instance.id,
        instance_id=instance.id,
        detail={
            "reason": reason.strip(),
            "retained_until": keep_until.isoformat(),
            "tasks": tasks,
            "history_rows": history_rows,
        },
    )
    session.flush()
    return ErasureResult(instance.id, now, keep_until, tasks, history_rows)
