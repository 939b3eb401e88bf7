"""The ``timer`` table kept in step with the workflow: the timer hook, incidents for bad timers, wake-ups.

Every step of an instance ends with :meth:`TimerHook.after_step`, in the step's transaction: each timer
the workflow waits for (including inside subprocesses) has exactly one row with its due time, and a
timer whose task stopped waiting (the task was completed, the boundary event's activity finished, the
instance ended) loses its row in the same commit. The worker (:mod:`engine.worker`) reads only the table.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from engine.audit import AuditLog
from engine.clock import Clock
from engine.instances import FAILED, RUNNING, SUSPENDED, InstanceService
from engine.models import Incident, MessageSubscription, ProcessInstance, Timer
from engine.runtime import Workflow
from engine.timer_events import (
    WaitingTimer,
    boundary_due,
    has_timer_events,
    mark_error_reported,
    waiting_timers,
)

log = logging.getLogger("opsflow.timers")

NOTIFY_CHANNEL = "opsflow_timers"
_LIVE = (RUNNING, SUSPENDED, FAILED)
SYSTEM_SUBJECT = "system:timers"
_WAKEUPS = "opsflow_timer_wakeups"


def raise_incident(
    session: Session,
    clock: Clock,
    instance: ProcessInstance,
    *,
    task_id: str | None,
    element_id: str | None,
    error_type: str,
    message: str,
) -> Incident:
    """Stop ``instance`` with an incident, as a failing script does; a retry re-runs the failed part."""
    instance.status = FAILED
    incident = Incident(
        instance_id=instance.id,
        task_id=task_id,
        element_id=element_id,
        error_type=error_type[:100],
        message=message[:4000],
        line=None,
        created_at=clock.now(),
    )
    session.add(incident)
    session.flush()
    AuditLog(session, clock).record(
        actor=SYSTEM_SUBJECT,
        kind="engine",
        action="incident.raised",
        record_type="incident",
        record_id=str(incident.id),
        instance_id=instance.id,
        detail={"element_id": element_id, "error_type": incident.error_type},
    )
    log.warning(
        "timer.incident instance_id=%s element_id=%s error_type=%s", instance.id, element_id, error_type
    )
    return incident


@dataclass
class TimerHook:
    """Implements the instance hook protocol for timers.

    ``wake_within`` bounds which new timers are announced: a worker wakes at least that often anyway,
    so only a timer due sooner than that needs a notification (in-process listeners and, on
    PostgreSQL, ``NOTIFY opsflow_timers`` delivered when the transaction commits).
    """

    clock: Clock
    wake_within: timedelta = timedelta(seconds=5)
    listeners: list[Callable[[datetime], None]] = field(default_factory=list)
    _spec_has_timers: weakref.WeakKeyDictionary[Any, bool] = field(default_factory=weakref.WeakKeyDictionary)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the hook protocol ---------------------------------------------------------------------------

    def after_step(
        self, session: Session, instance: ProcessInstance, workflow: Workflow, service: InstanceService
    ) -> None:
        if not self._may_have_timers(workflow):
            return
        now = self.clock.now()
        waiting = waiting_timers(workflow, now=now) if instance.status in _LIVE else []
        for timer in waiting:
            if timer.error and not timer.error_reported:
                raise_incident(
                    session,
                    self.clock,
                    instance,
                    task_id=timer.task_id,
                    element_id=timer.element_id,
                    error_type=timer.error_type or "validation-failed",
                    message=f"timer {timer.element_id}: {timer.error}",
                )
                mark_error_reported(workflow, timer.task_id, timer.element_id)
        self.sync(session, instance, [t for t in waiting if t.due_at is not None], now=now)

    def due_for_task(self, session: Session, workflow: Workflow, task_id: str) -> datetime | None:
        if not self._may_have_timers(workflow):
            return None
        return boundary_due(workflow, task_id, now=self.clock.now())

    def instance_ended(self, session: Session, instance: ProcessInstance) -> None:
        session.execute(sa.delete(Timer).where(Timer.instance_id == instance.id))
        session.execute(sa.delete(MessageSubscription).where(MessageSubscription.instance_id == instance.id))

    # -- rows ----------------------------------------------------------------------------------------

    def sync(
        self, session: Session, instance: ProcessInstance, waiting: list[WaitingTimer], *, now: datetime
    ) -> None:
        """Insert, re-arm and delete ``timer`` rows so that they match ``waiting`` exactly."""
        if not waiting:
            session.execute(sa.delete(Timer).where(Timer.instance_id == instance.id))
            return
        rows = {
            row.task_id: row
            for row in session.scalars(
                sa.select(Timer)
                .where(Timer.instance_id == instance.id)
                .execution_options(populate_existing=True)
            )
        }
        wanted = {t.task_id: t for t in waiting}
        for task_id, row in rows.items():
            if task_id not in wanted:
                session.delete(row)
        for task_id, timer in wanted.items():
            assert timer.due_at is not None  # noqa: S101  (filtered by the caller)
            existing = rows.get(task_id)
            if existing is None:
                session.add(
                    Timer(
                        instance_id=instance.id,
                        task_id=task_id,
                        element_id=timer.element_id,
                        kind=timer.kind,
                        expression=timer.value or "",
                        due_at=timer.due_at,
                        interrupting=timer.interrupting,
                        attached_to_task_id=timer.attached_to_task_id,
                        attempts=0,
                        created_at=now,
                    )
                )
                self._announce(session, timer.due_at, now=now)
            elif existing.due_at != timer.due_at or existing.element_id != timer.element_id:
                # A cycle fired and waits for its next occurrence: a fresh row in all but its id.
                existing.due_at = timer.due_at
                existing.element_id = timer.element_id
                existing.kind = timer.kind
                existing.expression = timer.value or ""
                existing.lease_owner = None
                existing.lease_until = None
                existing.attempts = 0
                existing.last_error = None
                self._announce(session, timer.due_at, now=now)
        session.flush()

    def _may_have_timers(self, workflow: Workflow) -> bool:
        spec = workflow.spec
        known = self._spec_has_timers.get(spec)
        if known is None:
            known = has_timer_events(spec, workflow.subprocess_specs)
            with self._lock:
                self._spec_has_timers[spec] = known
        return known

    # -- wake-ups ------------------------------------------------------------------------------------

    def _announce(self, session: Session, due_at: datetime, *, now: datetime) -> None:
        if due_at - now > self.wake_within:
            return
        if session.get_bind().dialect.name == "postgresql":
            session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, due_at.isoformat())))
        if not self.listeners:
            return
        pending: list[datetime] | None = session.info.get(_WAKEUPS)
        if pending is None:
            pending = session.info[_WAKEUPS] = []
            event.listen(session, "after_commit", self._after_commit, once=True)
            event.listen(session, "after_rollback", _forget_wakeups, once=True)
        pending.append(due_at)

    def _after_commit(self, session: Session) -> None:
        pending: list[datetime] = session.info.pop(_WAKEUPS, [])
        if not pending:
            return
        soonest = min(pending)
        for listener in list(self.listeners):
            try:
                listener(soonest)
            except Exception:  # a wake-up is an optimisation; it must not fail a commit
                log.exception("timer.wakeup_failed")


def _forget_wakeups(session: Session) -> None:
    session.info.pop(_WAKEUPS, None)


def find_hook(hooks: list[Any]) -> TimerHook | None:
    return next((h for h in hooks if isinstance(h, TimerHook)), None)
