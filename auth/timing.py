"""The time source for token checks, code expiry and key rotation: a callable returning aware UTC times.

Pass ``clock.now`` of any clock object (the engine's ``FrozenClock`` included) wherever ``now`` is taken,
so tests can cross an expiry without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Now = Callable[[], datetime]


def utcnow() -> datetime:
    """The wall clock, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC time; a naive value (as SQLite returns them) is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
