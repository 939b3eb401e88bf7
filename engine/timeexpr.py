"""Parsing and evaluation of BPMN timer definitions (timeDate, timeDuration, timeCycle) in ISO 8601.

Durations mix two kinds of unit. Years and months are calendar units: they move the Europe/London wall
clock (31 January + P1M is 28 February at the same local time; 15 March 12:00 GMT + P1M is 15 April 12:00
BST). Weeks, days, hours, minutes and seconds are exact elapsed time: P1D is 24 hours, so a daily timer
keeps its UTC time across a clock change. Deadlines that end with a calendar day belong to
:mod:`engine.calendars`, not here.

Every bad expression raises :class:`~engine.errors.ValidationError` with ``errors={"$.timer": [...]}`` and
a message that quotes the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, NamedTuple

import isodate
from dateutil.relativedelta import relativedelta

from engine.calendars import LONDON
from engine.errors import ValidationError

TIMER_PATH: Final = "$.timer"

_KINDS: Final = {
    "date": "date",
    "timeDate": "date",
    "duration": "duration",
    "timeDuration": "duration",
    "cycle": "cycle",
    "timeCycle": "cycle",
}
_REPETITIONS = re.compile(r"R(\d*)")


@dataclass(frozen=True, slots=True)
class IsoDuration:
    """An ISO 8601 duration split into calendar months (years count as 12) and exact elapsed time."""

    months: int
    exact: timedelta
    text: str

    def after(self, instant: datetime, *, times: int = 1) -> datetime:
        """``instant`` plus this duration ``times`` over, in UTC.

        The months are added on the Europe/London wall clock first (day clamped to the end of a shorter
        month), then the exact part. ``times`` multiplies each part rather than repeating the addition,
        so a monthly cycle from 31 January gives 31 March, not 28 March.
        """
        if instant.tzinfo is None:
            raise ValueError(f"timer arithmetic needs an aware datetime, got {instant!r}")
        try:
            moved = (instant.astimezone(LONDON) + relativedelta(months=self.months * times)).astimezone(UTC)
            # In UTC, so that adding the exact part is elapsed time and not a move of the London wall clock.
            return moved + self.exact * times
        except (OverflowError, ValueError) as exc:
            raise _invalid(f"timer duration {self.text!r} takes the due time out of range") from exc

    def __str__(self) -> str:
        return self.text


class DateTimer(NamedTuple):
    """A timeDate: fires once, at ``at``."""

    at: datetime


class DurationTimer(NamedTuple):
    """A timeDuration: fires once, ``duration`` after the timer starts waiting."""

    duration: IsoDuration


class CycleTimer(NamedTuple):
    """A timeCycle ``R[n]/[start/]duration``.

    ``repetitions`` is how many times it fires (None: until the process moves on). Without ``start`` the
    first firing is one ``duration`` after the timer starts waiting and each next one a ``duration`` after
    the previous; with ``start`` the k-th firing (from 0) is at ``start`` plus k durations, so the first
    is at ``start`` itself, even if that is already past.
    """

    repetitions: int | None
    start: datetime | None
    duration: IsoDuration


TimerSpec = DateTimer | DurationTimer | CycleTimer


def parse_duration(text: str | timedelta) -> IsoDuration:
    """A non-negative ISO 8601 duration such as ``P1Y2M3DT4H5M6S``, ``PT72H`` or ``P2W``.

    A :class:`~datetime.timedelta` is taken as exact time. Years and months must be whole numbers,
    because a fraction of a calendar month has no fixed length.
    """
    if isinstance(text, timedelta):
        if text < timedelta(0):
            raise _invalid(f"timer duration {text!r} is negative")
        return IsoDuration(months=0, exact=text, text=str(isodate.duration_isoformat(text)))
    if not isinstance(text, str):
        raise _invalid(f"timer duration {text!r} must be an ISO 8601 string such as 'PT72H'")
    value = text.strip()
    # isodate accepts a bare 'PT' or a dangling 'T' as zero; a timer with no number in it is a typo.
    if not any(char.isdigit() for char in value) or value.endswith("T"):
        raise _invalid(f"timer duration {text!r} is not ISO 8601: it has no number and unit (e.g. 'PT1H')")
    try:
        parsed: object = isodate.parse_duration(value)
    except (ValueError, ArithmeticError) as exc:
        raise _invalid(f"timer duration {text!r} is not ISO 8601: {exc}") from exc
    if isinstance(parsed, timedelta):
        months, exact = 0, parsed
    else:
        months, exact = _calendar_part(parsed, text), _exact_part(parsed)
    if months < 0 or exact < timedelta(0):
        raise _invalid(f"timer duration {text!r} is negative")
    return IsoDuration(months=months, exact=exact, text=value)


def parse_date(text: str | datetime) -> datetime:
    """An instant from an ISO 8601 date and time with an offset or ``Z`` (or an aware datetime), in UTC.

    A value without an offset is refused: a timer must not fire an hour early or late because of the
    season or the server's zone.
    """
    if isinstance(text, datetime):
        parsed = text
    elif isinstance(text, str):
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError as exc:
            raise _invalid(f"timer date {text!r} is not ISO 8601: {exc}") from exc
    else:
        raise _invalid(f"timer date {text!r} must be an ISO 8601 string or a datetime")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        shown = text if isinstance(text, str) else text.isoformat()
        raise _invalid(f"timer date {shown!r} has no UTC offset; add one (for example 'Z' or '+01:00')")
    return parsed.astimezone(UTC)


def parse_cycle(text: str) -> CycleTimer:
    """A cycle ``R/PT9H`` (unbounded), ``R3/PT1H`` (three times) or ``R5/2026-01-01T00:00:00Z/P1D``.

    The duration must be positive, and a bounded cycle must fire at least once.
    """
    if not isinstance(text, str):
        raise _invalid(f"timer cycle {text!r} must be an ISO 8601 string such as 'R3/PT1H'")
    parts = text.strip().split("/")
    head = _REPETITIONS.fullmatch(parts[0])
    if head is None or len(parts) not in (2, 3):
        raise _invalid(
            f"timer cycle {text!r} is not ISO 8601: expected 'R[n]/<duration>' or 'R[n]/<start>/<duration>'"
        )
    if not parts[-1].startswith(("P", "-P")):
        raise _invalid(
            f"timer cycle {text!r} must end with a duration such as 'P1D'; "
            "the start/end and duration/end interval forms are not supported"
        )
    repetitions = int(head.group(1)) if head.group(1) else None
    if repetitions == 0:
        raise _invalid(f"timer cycle {text!r} repeats 0 times, so it would never fire")
    try:
        start = parse_date(parts[1]) if len(parts) == 3 else None
        duration = parse_duration(parts[-1])
    except ValidationError as exc:
        raise _invalid(f"timer cycle {text!r} is not valid: {exc.detail}") from exc
    if not duration.months and not duration.exact:
        raise _invalid(f"timer cycle {text!r} has a zero duration, so it would fire without end")
    return CycleTimer(repetitions=repetitions, start=start, duration=duration)


def parse_timer(kind: str, value: str | datetime | timedelta) -> TimerSpec:
    """Parse a timer of ``kind`` ``date``, ``duration`` or ``cycle`` (or the BPMN element name)."""
    normalised = _KINDS.get(kind)
    if normalised == "date":
        if isinstance(value, timedelta):
            raise _invalid(f"timer date {value!r} is a duration; a timeDate needs an instant")
        return DateTimer(parse_date(value))
    if normalised == "duration":
        if isinstance(value, datetime):
            raise _invalid(f"timer duration {value!r} is an instant; a timeDuration needs a duration")
        return DurationTimer(parse_duration(value))
    if normalised == "cycle":
        if not isinstance(value, str):
            raise _invalid(f"timer cycle {value!r} must be an ISO 8601 string such as 'R3/PT1H'")
        return parse_cycle(value)
    raise _invalid(f"timer kind {kind!r} is not one of 'date', 'duration' or 'cycle'")


def first_due(kind: str, value: str | datetime | timedelta, *, now: datetime) -> datetime:
    """When a timer that starts waiting at ``now`` first fires, in UTC.

    A date fires at its instant (at once if that has passed); a duration at ``now`` plus the duration;
    a cycle at its start, or one duration after ``now`` when it has none.
    """
    _require_aware(now, "now")
    spec = parse_timer(kind, value)
    if isinstance(spec, DateTimer):
        return spec.at
    if isinstance(spec, DurationTimer):
        return spec.duration.after(now)
    if spec.start is not None:
        return spec.start
    return spec.duration.after(now)


def next_due(
    kind: str, value: str | datetime | timedelta, *, previous_due: datetime, fired_count: int
) -> datetime | None:
    """When a timer that has fired ``fired_count`` times, last due at ``previous_due``, fires next.

    Only cycles fire more than once: dates and durations give None, as does a cycle whose repetitions are
    used up. A cycle with a start counts from the start (start plus ``fired_count`` durations), so monthly
    timers do not drift to the shortest month; one without counts from ``previous_due``.
    """
    _require_aware(previous_due, "previous_due")
    if isinstance(fired_count, bool) or not isinstance(fired_count, int) or fired_count < 1:
        raise ValueError(f"fired_count must be a positive int, got {fired_count!r}")
    spec = parse_timer(kind, value)
    if not isinstance(spec, CycleTimer):
        return None
    if spec.repetitions is not None and fired_count >= spec.repetitions:
        return None
    if spec.start is not None:
        return spec.duration.after(spec.start, times=fired_count)
    return spec.duration.after(previous_due)


def _calendar_part(parsed: object, text: str) -> int:
    years: object = getattr(parsed, "years", 0)
    months: object = getattr(parsed, "months", 0)
    total = Decimal(str(years)) * 12 + Decimal(str(months))
    if total != total.to_integral_value():
        raise _invalid(
            f"timer duration {text!r} has a fraction of a year or month, which has no fixed length"
        )
    return int(total)


def _exact_part(parsed: object) -> timedelta:
    exact: object = getattr(parsed, "tdelta", None)
    if not isinstance(exact, timedelta):
        raise TypeError(f"isodate returned {parsed!r} without an exact part")
    return exact


def _require_aware(instant: datetime, name: str) -> None:
    if not isinstance(instant, datetime) or instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {instant!r}")


def _invalid(message: str) -> ValidationError:
    return ValidationError(message, errors={TIMER_PATH: [message]})
