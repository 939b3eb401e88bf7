"""The timer worker: claims due ``timer`` rows, fires each in its own transaction, and wakes on time.

Exactly once, across any number of worker processes:

* **Claim** (one short transaction): due rows of running instances whose lease is free or expired are
  leased to this worker (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers never wait for
  each other; on SQLite the database's single writer and a process-local lock serialise claims).
* **Fire** (one transaction per timer): lock the instance, re-read the row under lock and check the lease
  is still ours and the due time unchanged, load the workflow, fire, run the engine steps, write the
  history and the ``timer.fired`` audit event. The timer hook deletes the row (or re-arms a cycle) in the
  same transaction, so the effect and the row's removal commit together. A worker killed before the
  commit leaves the row leased; once the lease expires another worker claims and fires it.
* **Failure**: the attempt is counted and the row backs off (2^n seconds); after
  ``timer_max_attempts`` the instance gets an incident and waits for a retry.

:class:`TimerScheduler` drives a worker from an APScheduler ``BackgroundScheduler``: after each batch it
schedules the next wake-up for the nearest due time (at most ``max_idle`` away), and :meth:`notify`
brings it forward when a timer due sooner is created (in this process through the timer hook, in
others through PostgreSQL ``LISTEN opsflow_timers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session

from engine.container import Services, build_services
from engine.db import transaction
from engine.instances import RUNNING, Actor, InstanceService
from engine.models import IdempotencyRecord, ProcessInstance, Timer, WorkerHeartbeat
from engine.settings import Settings
from engine.timer_events import Firing, fire, is_waiting
from engine.timers import NOTIFY_CHANNEL, SYSTEM_SUBJECT, TimerHook, find_hook, raise_incident

log = logging.getLogger("opsflow.worker")

TIMER_ACTOR = Actor(SYSTEM_SUBJECT, "opsflow timer worker")
MAX_BACKOFF_SECONDS = 300
_SQLITE_CLAIM_LOCK = threading.Lock()

FIRED, SKIPPED, PAUSED, STALE, FAILED = "fired", "skipped", "paused", "stale", "failed"


@dataclass(frozen=True)
class ClaimedTimer:
    """A timer row leased to this worker."""

    id: int
    instance_id: str
    task_id: str
    element_id: str
    due_at: datetime


class TimerWorker:
    """Fires due timers; any number may run against one database."""

    def __init__(
        self,
        services: Services,
        *,
        worker_id: str | None = None,
        lease_seconds: int | None = None,
        max_attempts: int | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> None:
        settings = services.settings
        self.services = services
        self.clock = services.clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=lease_seconds or settings.timer_lease_seconds)
        self.max_attempts = max_attempts or settings.timer_max_attempts
        self.batch_size = batch_size or settings.timer_batch_size
        self.started_at = self.clock.now()
        self._postgres = services.db.dialect.name == "postgresql"
        # Firing waits mostly on the database, so a few threads per worker fire different instances at
        # once; SQLite has a single writer, where threads would only queue.
        self.threads = max(1, threads or (4 if self._postgres else 1))
        self._pool: ThreadPoolExecutor | None = None

    # -- claiming --------------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> list[ClaimedTimer]:
        """Lease up to ``limit`` due timers to this worker, earliest first, in a short transaction."""
        if self._postgres:
            return self._claim(limit or self.batch_size)
        with _SQLITE_CLAIM_LOCK:
            return self._claim(limit or self.batch_size)

    def _claim(self, limit: int) -> list[ClaimedTimer]:
        now = self.clock.now()
        query = (
            sa.select(Timer.id, Timer.instance_id, Timer.task_id, Timer.element_id, Timer.due_at)
            .join(ProcessInstance, ProcessInstance.id == Timer.instance_id)
            .where(
                Timer.due_at <= now,
                sa.or_(Timer.lease_until.is_(None), Timer.lease_until <= now),
                ProcessInstance.status == RUNNING,
            )
            .order_by(Timer.due_at, Timer.id)
            .limit(limit)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=Timer)
        with transaction(self.services.sessions) as session:
            claimed = [ClaimedTimer(*row) for row in session.execute(query)]
            if claimed:
                session.execute(
                    sa.update(Timer)
                    .where(Timer.id.in_([c.id for c in claimed]))
                    .values(lease_owner=self.worker_id, lease_until=now + self.lease)
                )
        return claimed

    # -- firing ----------------------------------------------------------------------------------

    def fire_due(self, limit: int | None = None) -> int:
        """Claim one batch of due timers and fire each; returns how many fired."""
        return self._fire_all(self.claim(limit), stop=None)

    def drain(self, *, stop: threading.Event | None = None) -> int:
        """Fire batches until no due timer is left (or ``stop`` is set); returns how many fired."""
        total = 0
        while stop is None or not stop.is_set():
            claimed = self.claim()
            total += self._fire_all(claimed, stop=stop)
            if len(claimed) < self.batch_size:
                break
        return total

    def close(self) -> None:
        """Release the firing threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _fire_all(self, claimed: list[ClaimedTimer], *, stop: threading.Event | None) -> int:
        def one(timer: ClaimedTimer) -> bool:
            # A stopping worker leaves the rest of its batch leased; the leases expire and others fire them.
            return (stop is None or not stop.is_set()) and self.fire(timer) == FIRED

        if self.threads == 1 or len(claimed) < 2:
            return sum(one(timer) for timer in claimed)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="opsflow-timer")
        return sum(self._pool.map(one, claimed))

    def fire(self, claimed: ClaimedTimer) -> str:
        """Fire one claimed timer in its own transaction; returns the outcome."""
        try:
            with transaction(self.services.sessions) as session:
                return self._fire(session, claimed)
        except Exception as exc:  # noqa: BLE001  (any failure is counted, backed off and, in the end, an incident)
            log.warning(
                "timer.fire_failed timer_id=%s instance_id=%s error=%s",
                claimed.id,
                claimed.instance_id,
                f"{type(exc).__name__}: {exc}",
            )
            self._record_failure(claimed, exc)
            return FAILED

    def _fire(self, session: Session, claimed: ClaimedTimer) -> str:
        service = InstanceService(session, self.services.context)
        instance = service.lock_instance(claimed.instance_id)
        row = session.scalars(
            sa.select(Timer)
            .where(Timer.id == claimed.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        if row is None or row.lease_owner != self.worker_id or row.due_at != claimed.due_at:
            return SKIPPED  # fired by someone else after our lease expired, or re-armed
        if instance.status != RUNNING:
            # Suspended or failed meanwhile: the timer waits and fires after a resume or a retry.
            row.lease_owner, row.lease_until = None, None
            return PAUSED
        workflow = service.load_workflow(instance)
        if is_waiting(workflow, row.task_id, row.element_id) is None:
            log.warning("timer.stale timer_id=%s instance_id=%s", row.id, instance.id)
            session.delete(row)
            return STALE
        now = self.clock.now()
        task_id, element_id, kind = row.task_id, row.element_id, row.kind
        firings: list[Firing] = []

        def step(on_step: Any) -> None:
            firings.append(fire(workflow, task_id, element_id))
            service.runtime.advance(workflow, on_step=on_step)

        service.advance_loaded(instance, workflow, actor=TIMER_ACTOR, step=step)
        if not firings:
            # Firing itself failed inside the process (the instance now has an incident): free the row,
            # which fires after a retry.
            session.execute(
                sa.update(Timer)
                .where(Timer.id == claimed.id, Timer.lease_owner == self.worker_id)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )
            return FAILED
        firing = firings[0]
        lateness = (now - claimed.due_at).total_seconds()
        service.audit.record(
            actor=TIMER_ACTOR.subject,
            kind="engine",
            action="timer.fired",
            record_type="timer",
            record_id=task_id,
            instance_id=instance.id,
            detail={
                "element_id": element_id,
                "kind": kind,
                "due_at": claimed.due_at.isoformat(),
                "fired_at": now.isoformat(),
                "lateness_seconds": round(lateness, 3),
                "occurrence": firing.occurrence,
                "next_due_at": firing.next_due_at.isoformat() if firing.next_due_at else None,
                "worker_id": self.worker_id,
            },
        )
        log.info(
            "timer.fired instance_id=%s element_id=%s due_at=%s lateness_seconds=%.3f",
            instance.id,
            element_id,
            claimed.due_at.isoformat(),
            lateness,
        )
        return FIRED

    def _record_failure(self, claimed: ClaimedTimer, exc: Exception) -> None:
        try:
            with transaction(self.services.sessions) as session:
                service = InstanceService(session, self.services.context)
                instance = service.lock_instance(claimed.instance_id)
                row = session.scalars(
                    sa.select(Timer)
                    .where(Timer.id == claimed.id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).one_or_none()
                if row is None or row.lease_owner != self.worker_id:
                    return
                now = self.clock.now()
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:4000]
                if row.attempts < self.max_attempts:
                    row.lease_owner = None
                    row.lease_until = now + timedelta(seconds=min(2**row.attempts, MAX_BACKOFF_SECONDS))
                    return
                if instance.status == RUNNING:
                    raise_incident(
                        session,
                        self.clock,
                        instance,
                        task_id=row.task_id,
                        element_id=row.element_id,
                        error_type="timer-failed",
                        message=f"timer {row.element_id} failed {row.attempts} times; last: {row.last_error}",
                    )
                row.attempts = 0
                row.lease_owner, row.lease_until = None, None
        except Exception:  # the failure stays visible through the lease, which expires on its own
            log.exception("timer.failure_not_recorded timer_id=%s", claimed.id)

    # -- queries and heartbeat -------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When the next timer becomes claimable: its due time, or the end of its lease or back-off."""
        ready_at = sa.case(
            (sa.and_(Timer.lease_until.is_not(None), Timer.lease_until > Timer.due_at), Timer.lease_until),
            else_=Timer.due_at,
        )
        with self.services.sessions() as session:
            soonest = session.scalar(
                sa.select(sa.func.min(ready_at))
                .join(ProcessInstance, ProcessInstance.id == Timer.instance_id)
                .where(ProcessInstance.status == RUNNING)
            )
        return None if soonest is None else _aware(soonest)

    def heartbeat(self) -> None:
        """Record that this worker is alive (the readiness probe reads the newest)."""
        now = self.clock.now()
        with transaction(self.services.sessions) as session:
            row = session.get(WorkerHeartbeat, self.worker_id)
            if row is None:
                session.add(
                    WorkerHeartbeat(
                        worker_id=self.worker_id,
                        hostname=socket.gethostname()[:200],
                        pid=os.getpid(),
                        started_at=self.started_at,
                        seen_at=now,
                    )
                )
            else:
                row.seen_at = now
            session.execute(
                sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < now - timedelta(days=1))
            )
            # Housekeeping rides on the beat: Idempotency-Key records past their lifetime.
            key_cutoff = now - timedelta(hours=self.services.settings.idempotency_key_hours)
            session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.created_at < key_cutoff))

    def retire(self) -> None:
        """Remove this worker's heartbeat on a clean shutdown."""
        with transaction(self.services.sessions) as session:
            session.execute(sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker_id))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _wall_now() -> datetime:
    # APScheduler runs on the wall clock, so wake-ups are planned on it too (the engine's clock may be
    # a test's frozen one; due times in the table are instants either way).
    return datetime.now(UTC)


# -- scheduling -----------------------------------------------------------------------------------


class TimerScheduler:
    """Runs a :class:`TimerWorker` on an APScheduler ``BackgroundScheduler``, waking for the next due time."""

    FIRE_JOB = "opsflow.timers.fire"
    HEARTBEAT_JOB = "opsflow.timers.heartbeat"

    def __init__(
        self,
        services: Services,
        *,
        worker: TimerWorker | None = None,
        max_idle: float | None = None,
        heartbeat_seconds: float = 5.0,
        listen: bool = True,
    ) -> None:
        self.services = services
        self.worker = worker or TimerWorker(services)
        postgres = services.db.dialect.name == "postgresql"
        # Without LISTEN/NOTIFY another process's new timer is only seen by polling, so poll faster.
        self.max_idle = timedelta(seconds=max_idle if max_idle is not None else (5.0 if postgres else 1.0))
        self.heartbeat_seconds = heartbeat_seconds
        self._listen = listen and postgres
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next_wake: datetime | None = None
        self._pending: datetime | None = None
        self._running = False
        self._listener: threading.Thread | None = None
        self._hook: TimerHook | None = find_hook(services.context.hooks)

    def start(self) -> TimerScheduler:
        self._scheduler.start()
        self._scheduler.add_job(
            self._beat,
            "interval",
            seconds=self.heartbeat_seconds,
            id=self.HEARTBEAT_JOB,
            next_run_time=_wall_now(),
            max_instances=1,
            coalesce=True,
        )
        with self._lock:
            self._schedule(_wall_now())
        if self._hook is not None:
            self._hook.listeners.append(self.notify)
        if self._listen:
            self._listener = threading.Thread(
                target=self._listen_loop, name="opsflow-timer-listen", daemon=True
            )
            self._listener.start()
        log.info(
            "worker.started worker_id=%s max_idle=%s", self.worker.worker_id, self.max_idle.total_seconds()
        )
        return self

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop waking; a batch in progress finishes its current timer."""
        self._stop.set()
        if self._hook is not None and self.notify in self._hook.listeners:
            self._hook.listeners.remove(self.notify)
        self._scheduler.shutdown(wait=True)
        if self._listener is not None:
            self._listener.join(timeout)
        self.worker.close()
        try:
            self.worker.retire()
        except Exception:  # shutting down; the stale heartbeat ages out
            log.exception("worker.retire_failed")
        log.info("worker.stopped worker_id=%s", self.worker.worker_id)

    def notify(self, due_at: datetime | None = None) -> None:
        """A timer due at ``due_at`` (None: now) was created; wake for it if that is sooner than planned."""
        wake = max(due_at or _wall_now(), _wall_now())
        with self._lock:
            if self._running:
                # The batch in progress schedules its successor when it ends, taking this into account.
                self._pending = wake if self._pending is None else min(self._pending, wake)
                return
            if self._next_wake is not None and self._next_wake <= wake:
                return
            self._schedule(wake)

    def _run(self) -> None:
        with self._lock:
            if self._running:  # never two batches at once; the one running reschedules when it ends
                self._pending = _wall_now()
                return
            self._running, self._pending, self._next_wake = True, None, None
        wake = _wall_now() + timedelta(seconds=1)
        try:
            self.worker.drain(stop=self._stop)
            upcoming = self.worker.next_due()
            wake = _wall_now() + self.max_idle
            if upcoming is not None:
                wake = min(wake, upcoming)
        except Exception:  # the database may be away for a moment; try again shortly
            log.exception("worker.batch_failed worker_id=%s", self.worker.worker_id)
        finally:
            with self._lock:
                self._running = False
                if self._pending is not None:
                    wake = min(wake, self._pending)
                self._pending = None
                self._schedule(max(wake, _wall_now()))

    def _schedule(self, wake: datetime) -> None:
        """Replace the planned wake-up with ``wake``; the caller holds ``_lock``."""
        if self._stop.is_set():
            return
        self._next_wake = wake
        # Two instances: a run schedules its successor just before it returns, and APScheduler would
        # drop (not delay) a successor due while the run still counts as running. ``_running`` keeps
        # batches from overlapping otherwise.
        self._scheduler.add_job(
            self._run,
            "date",
            run_date=wake,
            id=self.FIRE_JOB,
            replace_existing=True,
            max_instances=2,
            misfire_grace_time=None,
        )

    def _beat(self) -> None:
        try:
            self.worker.heartbeat()
        except Exception:  # a missed heartbeat shows in the readiness probe
            log.exception("worker.heartbeat_failed worker_id=%s", self.worker.worker_id)

    def _listen_loop(self) -> None:
        import psycopg

        url = self.services.db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.notify(_parse_due(note.payload))
            except Exception:  # reconnect; polling covers the gap
                log.exception("worker.listen_failed worker_id=%s", self.worker.worker_id)
                self._stop.wait(5.0)


def _parse_due(payload: str) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(payload))
    except ValueError:
        return None


# -- entry points -----------------------------------------------------------------------------------


def start_embedded_worker(services: Services) -> TimerScheduler | None:
    """Start a worker inside this process (``opsflow serve``); None when ``OPSFLOW_EMBEDDED_WORKER`` is off.

    The handle's ``stop()`` shuts it down.
    """
    if not services.settings.embedded_worker:
        return None
    return TimerScheduler(services).start()


def run_worker(
    services: Services,
    *,
    stop_event: threading.Event | None = None,
    worker: TimerWorker | None = None,
    max_idle: float | None = None,
) -> None:
    """Run a worker until ``stop_event`` is set (``opsflow worker``); without one, until SIGTERM or SIGINT."""
    if stop_event is None:
        stop_event = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop_event.set())
    scheduler = TimerScheduler(services, worker=worker, max_idle=max_idle).start()
    try:
        stop_event.wait()
    finally:
        scheduler.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m engine.worker``: a worker process for one database."""
    parser = argparse.ArgumentParser(prog="python -m engine.worker", description=main.__doc__)
    parser.add_argument("--database-url", help="defaults to OPSFLOW_DATABASE_URL")
    parser.add_argument("--worker-id")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lease-seconds", type=int)
    parser.add_argument("--max-idle", type=float)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("opsflow").setLevel(logging.INFO)
    settings = Settings.from_env()
    if args.database_url:
        settings = dataclasses.replace(settings, database_url=args.database_url)
    services = build_services(settings)
    worker = TimerWorker(
        services,
        worker_id=args.worker_id,
        batch_size=args.batch_size,
        lease_seconds=args.lease_seconds,
        threads=args.threads,
    )
    try:
        run_worker(services, worker=worker, max_idle=args.max_idle)
    finally:
        services.db.dispose()


if __name__ == "__main__":
    main()
