"""The append-only audit trail (Data Protection Act 2018 s.62), hash-chained per case.

Each case has its own chain, locked through its ``audit_chain`` row, so writers of different cases
never wait for each other; events not tied to a case go to the ``system`` chain. Every event's hash
covers its content and the previous hash of its chain, so editing or deleting a row breaks the chain
at that point, which :func:`verify` reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.models import AuditChain, AuditEvent

KINDS = frozenset(
    {"collection", "alteration", "consultation", "disclosure", "combination", "erasure", "engine", "security"}
)
SYSTEM_CHAIN = "system"
_HELD_CHAINS = "opsflow.audit.held_chains"
GENESIS = "0" * 64


def _digest(prev_hash: str, fields: Mapping[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "chain": event.chain,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "kind": event.kind,
        "action": event.action,
        "record_type": event.record_type,
        "record_id": event.record_id,
        "instance_id": event.instance_id,
        "purpose": event.purpose,
        "recipient": event.recipient,
        "detail": event.detail,
    }


class AuditLog:
    """Appends events in the caller's transaction."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    def record(
        self,
        *,
        actor: str,
        kind: str,
        action: str,
        record_type: str,
        record_id: str,
        instance_id: str | None = None,
        purpose: str | None = None,
        recipient: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}")
        chain_key = instance_id or SYSTEM_CHAIN
        chain = self._locked_chain(chain_key)
        event = AuditEvent(
            chain=chain_key,
            seq=chain.seq + 1,
            at=self.clock.now(),
            actor=actor,
            kind=kind,
            action=action,
            record_type=record_type,
            record_id=record_id,
            instance_id=instance_id,
            purpose=purpose,
            recipient=recipient,
            detail=dict(detail or {}),
            prev_hash=chain.last_hash,
            hash="",
        )
        event.hash = _digest(chain.last_hash, _fields(event))
        chain.seq = event.seq
        chain.last_hash = event.hash
        self.session.add(event)
        return event

    def _locked_chain(self, key: str) -> AuditChain:
        """The chain's row, locked for the rest of the transaction.

        Once locked, the row is remembered for the transaction, so a step that writes several events
        to one case reads its chain once; a new chain is inserted with its first event.
        """
        transaction = self.session.get_transaction()
        held = self.session.info.get(_HELD_CHAINS)
        if held is None or held[0] is not transaction:
            held = (transaction, {})
            self.session.info[_HELD_CHAINS] = held
        chains: dict[str, AuditChain] = held[1]
        chain = chains.get(key)
        if chain is None:
            chain = self.session.scalars(
                sa.select(AuditChain).where(AuditChain.chain == key).with_for_update()
            ).one_or_none()
            if chain is None:
                chain = AuditChain(chain=key, seq=0, last_hash=GENESIS)
                self.session.add(chain)
            chains[key] = chain
        return chain


@dataclass(frozen=True)
class BrokenLink:
    """The first event whose hash or link does not match."""

    chain: str
    seq: int
    event_id: int
    reason: str


def _events(session: Session, chain: str) -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = list(
            session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.chain == chain, AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(1000)
            )
        )
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def verify(session: Session, *, chain: str | None = None) -> tuple[int, BrokenLink | None]:
    """Check every chain (or one); returns the number of events checked and the first broken link."""
    if chain is None:
        chains = list(session.scalars(sa.select(AuditChain.chain).order_by(AuditChain.chain)))
    else:
        chains = [chain]
    checked = 0
    for key in chains:
        prev = GENESIS
        expected_seq = 1
        for event in _events(session, key):
            checked += 1
            if event.seq != expected_seq:
                return checked, BrokenLink(key, event.seq, event.id, f"event {expected_seq} is missing")
            if event.prev_hash != prev:
                return checked, BrokenLink(
                    key, event.seq, event.id, "link to the previous event does not match"
                )
            if _digest(prev, _fields(event)) != event.hash:
                return checked, BrokenLink(key, event.seq, event.id, "content does not match its hash")
            prev = event.hash
            expected_seq += 1
        head = session.get(AuditChain, key)
        if head is not None and head.seq != expected_seq - 1:
            return checked, BrokenLink(key, expected_seq, 0, f"events after {expected_seq - 1} are missing")
    return checked, None


def history(session: Session, instance_id: str, *, limit: int = 500, after_id: int = 0) -> list[AuditEvent]:
    return list(
        session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.instance_id == instance_id, AuditEvent.id > after_id)
            .order_by(AuditEvent.id)
            .limit(limit)
        )
    )


def as_dict(event: AuditEvent) -> dict[str, Any]:
    out = _fields(event)
    out["id"] = event.id
    out["hash"] = event.hash
    return out


def isoformat(moment: datetime) -> str:
    return moment.isoformat()
