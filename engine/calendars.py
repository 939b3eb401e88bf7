"""Calendar arithmetic for legal time limits: working days, calendar-month periods and exact durations.

Three kinds of due time, because the law words them differently:

* exact durations ("72 hours" from the minute of grant, PACE "24 hours after the relevant time"):
  :func:`hours_after`, :func:`minutes_after`, :func:`days_after`;
* calendar-day ends ("3 months beginning with the day"): :func:`calendar_months_end`;
* working days ("the end of the 3rd working day after the day"): :func:`working_days_end` on a
  :class:`WorkingCalendar`.

Calendar days are days in Europe/London; every instant handed back is an ISO 8601 string in UTC, because
process data is JSON and storage is UTC.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from engine.clock import Clock
from engine.errors import DefinitionError, ValidationError

LONDON: Final = ZoneInfo("Europe/London")
"""The zone whose calendar days the law of England and Wales counts."""

ENGLAND_AND_WALES_FILE: Final = "bank-holidays-england-and-wales.json"
"""Name of the packaged bank-holiday file, under ``engine/data``."""


class CalendarCoverageError(ValidationError):
    """A date falls outside the years a working calendar has bank-holiday data for."""

    code = "calendar-not-covered"
    title = "The date is outside the years the working calendar covers"


@dataclass(frozen=True, slots=True)
class BankHoliday:
    """One day on which the working calendar does not count, with its official name."""

    day: date
    title: str


class WorkingCalendar:
    """Working days of one division: Monday to Friday, except its bank holidays.

    Working days are counted only inside the years the bank-holiday data covers; any question about a
    date outside them raises :class:`CalendarCoverageError`, because a year without data is not a year
    without bank holidays, and a deadline computed on that assumption would be early.
    """

    def __init__(
        self,
        holidays: Iterable[BankHoliday],
        *,
        first_year: int,
        last_year: int,
        division: str,
        source: str,
    ) -> None:
        if first_year > last_year:
            raise ValueError(f"first_year {first_year} is after last_year {last_year}")
        by_day: dict[date, str] = {}
        for holiday in holidays:
            if not first_year <= holiday.day.year <= last_year:
                raise ValueError(f"bank holiday {holiday.day} is outside {first_year}-{last_year}")
            if holiday.day in by_day:
                raise ValueError(f"bank holiday {holiday.day} is listed twice")
            by_day[holiday.day] = holiday.title
        self._holidays = by_day
        self.first_year = first_year
        self.last_year = last_year
        self.division = division
        self.source = source

    @classmethod
    def england_and_wales(cls) -> WorkingCalendar:
        """The packaged England and Wales calendar (loaded once, shared: it is immutable)."""
        return _packaged_england_and_wales()

    @classmethod
    def from_file(cls, path: str | Path) -> WorkingCalendar:
        """Load a bank-holiday file in the format of ``engine/data/bank-holidays-england-and-wales.json``.

        A malformed file raises :class:`~engine.errors.DefinitionError` naming every problem, so that a
        bad configuration fails at boot rather than when a deadline is computed.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise DefinitionError(
                f"bank-holiday file {file} cannot be read: {exc.strerror}", file=str(file)
            ) from exc
        return cls.from_json(text, origin=str(file))

    @classmethod
    def from_json(cls, text: str, *, origin: str) -> WorkingCalendar:
        """Build a calendar from the text of a bank-holiday file; ``origin`` names it in errors."""
        try:
            document: object = json.loads(text)
        except ValueError as exc:
            raise DefinitionError(f"bank-holiday file {origin} is not JSON: {exc}", file=origin) from exc
        return _calendar_from_document(document, origin=origin)

    @property
    def holidays(self) -> tuple[BankHoliday, ...]:
        """Every bank holiday in the covered years, in date order."""
        return tuple(BankHoliday(day, title) for day, title in sorted(self._holidays.items()))

    def covers(self, day: date) -> bool:
        """Whether the calendar has bank-holiday data for the year of ``day``."""
        return self.first_year <= _plain_date(day).year <= self.last_year

    def bank_holiday(self, day: date) -> str | None:
        """The name of the bank holiday on ``day``, or None if it is not one."""
        return self._holidays.get(self._require_covered(day))

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day: Monday to Friday and not a bank holiday.

        The "working day" of IPA 2016 s.109 and of the Victims' Code excludes Saturdays, Sundays,
        Christmas Day, Good Friday and the bank holidays of the Banking and Financial Dealings Act 1971 in
        the relevant part of the United Kingdom.
        """
        checked = self._require_covered(day)
        return checked.weekday() < 5 and checked not in self._holidays

    def add_working_days(self, day: date, n: int) -> date:
        """The ``n``-th working day after ``day`` (before it if ``n`` is negative; ``day`` itself if 0).

        ``day`` need not be a working day: the count starts on the day after it, so the 1st working day
        after a Saturday is the Monday (or the Tuesday, on a bank-holiday Monday). Every date examined must
        be covered by the calendar.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"a number of working days must be an int, not {n!r}")
        current = self._require_covered(day)
        step = timedelta(days=1 if n >= 0 else -1)
        remaining = abs(n)
        while remaining:
            current += step
            if self.is_working_day(current):
                remaining -= 1
        return current

    def _require_covered(self, day: date) -> date:
        plain = _plain_date(day)
        if not self.covers(plain):
            raise CalendarCoverageError(
                f"the {self.division} working calendar has bank holidays for {self.first_year}-"
                f"{self.last_year} only, so it cannot count working days on {plain.isoformat()}; "
                "add that year's bank holidays to the calendar file",
                year=plain.year,
                division=self.division,
            )
        return plain

    def __repr__(self) -> str:
        return f"WorkingCalendar(division={self.division!r}, years={self.first_year}-{self.last_year})"


def _plain_date(day: date) -> date:
    # A datetime is a date subclass but never equals one, so it would silently miss every holiday.
    if isinstance(day, datetime):
        raise TypeError(f"pass a calendar date, not the datetime {day!r}; see london_day()")
    return day


@functools.cache
def _packaged_england_and_wales() -> WorkingCalendar:
    resource = resources.files("engine").joinpath("data", ENGLAND_AND_WALES_FILE)
    return WorkingCalendar.from_json(
        resource.read_text(encoding="utf-8"), origin=f"engine/data/{ENGLAND_AND_WALES_FILE}"
    )


def _calendar_from_document(document: object, *, origin: str) -> WorkingCalendar:
    problems: dict[str, list[str]] = {}

    def problem(path: str, message: str) -> None:
        problems.setdefault(path, []).append(message)

    if not isinstance(document, Mapping):
        raise DefinitionError(
            f"bank-holiday file {origin} must hold a JSON object",
            errors={"$": ["not an object"]},
            file=origin,
        )
    division, source = document.get("division"), document.get("source")
    if not isinstance(division, str) or not division:
        problem("$.division", "must be a non-empty string such as 'england-and-wales'")
    if not isinstance(source, str) or not source:
        problem("$.source", "must say where the dates come from")
    years: list[int] = []
    for key in ("first_year", "last_year"):
        value = document.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            problem(f"$.{key}", "must be a year, as an integer")
        else:
            years.append(value)
    if len(years) == 2 and years[0] > years[1]:
        problem("$.last_year", "must not be before first_year")
    holidays: list[BankHoliday] = []
    events = document.get("events")
    if not isinstance(events, list):
        problem("$.events", "must be a list of {date, title} objects")
        events = []
    seen: set[date] = set()
    for index, event in enumerate(events):
        path = f"$.events[{index}]"
        if not isinstance(event, Mapping):
            problem(path, "must be an object with 'date' and 'title'")
            continue
        raw_day, title = event.get("date"), event.get("title")
        if not isinstance(title, str) or not title:
            problem(f"{path}.title", "must be a non-empty string")
        try:
            day = date.fromisoformat(raw_day) if isinstance(raw_day, str) else None
        except ValueError:
            day = None
        if day is None:
            problem(f"{path}.date", f"{raw_day!r} is not an ISO 8601 date (YYYY-MM-DD)")
            continue
        if len(years) == 2 and not years[0] <= day.year <= years[1]:
            problem(f"{path}.date", f"{day} is outside first_year-last_year ({years[0]}-{years[1]})")
        if day in seen:
            problem(f"{path}.date", f"{day} is listed twice")
        seen.add(day)
        holidays.append(BankHoliday(day, title if isinstance(title, str) else ""))
    if problems:
        count = sum(len(messages) for messages in problems.values())
        raise DefinitionError(
            f"bank-holiday file {origin} is not valid ({count} problem{'s' if count > 1 else ''})",
            errors=problems,
            file=origin,
        )
    return WorkingCalendar(
        holidays,
        first_year=years[0],
        last_year=years[1],
        division=str(division),
        source=str(source),
    )


def parse_instant(value: datetime | str, *, path: str = "$") -> datetime:
    """An aware datetime, in UTC, from an aware datetime or an ISO 8601 string with an offset or ``Z``.

    A naive value is refused rather than guessed: "14:30" means a different instant in winter and in
    summer, and a legal deadline must not depend on the server's zone. ``path`` names the value in the
    :class:`~engine.errors.ValidationError` raised for bad input.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            message = f"instant {value!r} is not an ISO 8601 date and time: {exc}"
            raise ValidationError(message, errors={path: [message]}) from exc
    else:
        message = f"instant {value!r} must be an ISO 8601 string or a datetime"
        raise ValidationError(message, errors={path: [message]})
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        message = (
            f"instant {value if isinstance(value, str) else value.isoformat()!r} has no UTC offset; "
            "add one (for example 'Z' or '+01:00')"
        )
        raise ValidationError(message, errors={path: [message]})
    return parsed.astimezone(UTC)


def london_day(value: date | datetime | str) -> date:
    """The Europe/London calendar day of an instant, or the date itself for a date or 'YYYY-MM-DD'.

    Legal periods counted in days start from the day in England and Wales, so 23:30 UTC on 30 June is
    1 July (BST) here.
    """
    if isinstance(value, datetime):
        return parse_instant(value).astimezone(LONDON).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass  # not a bare date: it must then be a full instant
    return parse_instant(value).astimezone(LONDON).date()


def start_of_london_day(day: date) -> datetime:
    """Midnight (00:00 Europe/London) at the start of ``day``, in UTC; it is also the end of the day before.

    Midnight always exists and is never ambiguous in Europe/London: the clocks change at 01:00 UTC.
    """
    plain = _plain_date(day)
    return datetime(plain.year, plain.month, plain.day, tzinfo=LONDON).astimezone(UTC)


def to_iso(instant: datetime) -> str:
    """The ISO 8601 form in UTC that process data stores, e.g. ``"2026-04-14T23:00:00+00:00"``."""
    return parse_instant(instant).isoformat()


def calendar_months_end(start: date | datetime | str, months: int) -> str:
    """End of a period of ``months`` calendar months beginning with the day of ``start``.

    RIPA 2000 s.43(3): an authorisation lasts "3 months beginning with the day on which it took effect"
    (12 months for a CHIS). The day of grant counts as the first day, so the period ends at the end of the
    day before the corresponding date ``months`` later; that instant is returned: midnight, 00:00
    Europe/London, at the start of the corresponding date. Where the later month has no corresponding date
    (31 January + 1 month), the period ends at the end of that month's last day (the corresponding-date
    rule, Dodds v Walker (House of Lords, 1981)), so midnight at the start of the following month is returned.

    Granted 2026-01-15 14:30 London, 3 months: ends 2026-04-15 00:00 BST, returned as
    ``"2026-04-14T23:00:00+00:00"``. The returned instant is itself the start of the day a renewal's period
    begins with (s.43(4)), so ``calendar_months_end(calendar_months_end(grant, 3), 3)`` chains correctly.
    """
    count = _whole_number(months, what="months", minimum=1)
    day = london_day(start)
    try:
        corresponding = day + relativedelta(months=count)
    except ValueError as exc:
        message = f"{count} months after {day.isoformat()} is beyond the supported range of dates"
        raise ValidationError(message, errors={"$": [message]}) from exc
    # relativedelta clamps to the last day of a shorter month; that is the "no corresponding date" case.
    end_day = corresponding if corresponding.day == day.day else corresponding + timedelta(days=1)
    return start_of_london_day(end_day).isoformat()


def working_days_end(
    start: date | datetime | str, days: int, *, calendar: WorkingCalendar | None = None
) -> str:
    """End of the ``days``-th working day after the day of ``start``: midnight Europe/London closing it.

    IPA 2016 s.109: a Judicial Commissioner must decide on an urgent warrant within a period that ends with
    the third working day after the day on which the warrant was issued, i.e. by the end of that day. The
    Victims' Code's "within 1 working day" is ``days=1``. The day of ``start`` is taken in
    Europe/London and never counts itself. Issued Thursday 2026-04-02 (Good Friday and Easter Monday
    follow), 3 working days: Tuesday 7, Wednesday 8, Thursday 9 April; the period ends at 00:00 BST on
    10 April, returned as ``"2026-04-09T23:00:00+00:00"``.

    ``calendar`` defaults to the packaged England and Wales calendar.
    """
    count = _whole_number(days, what="working days", minimum=1)
    working = WorkingCalendar.england_and_wales() if calendar is None else calendar
    last_day = working.add_working_days(london_day(start), count)
    return start_of_london_day(last_day + timedelta(days=1)).isoformat()


def hours_after(start: datetime | str, hours: float) -> str:
    """``start`` plus exactly ``hours`` hours of elapsed time, whatever the wall clock does.

    An urgent RIPA authorisation lapses 72 hours after the minute of grant (s.43(3)(a)); PACE s.41 allows
    24 hours' detention from the relevant time. Granted 2026-03-28 10:15 GMT, 72 hours: 2026-03-31 11:15
    BST (the clocks went forward in between), returned as ``"2026-03-31T10:15:00+00:00"``.
    """
    return _after(start, timedelta(hours=_amount(hours, what="hours")))


def minutes_after(start: datetime | str, minutes: float) -> str:
    """``start`` plus exactly ``minutes`` minutes: PACE Code C 9.3 rousing every 30 minutes, escalations."""
    return _after(start, timedelta(minutes=_amount(minutes, what="minutes")))


def days_after(start: datetime | str, days: float) -> str:
    """``start`` plus exactly ``days`` times 24 hours of elapsed time, not calendar days.

    For "3 days" running from the time of grant (IPA 2016 s.65(3A), an urgent communications data
    authorisation). Across a clock change the London wall-clock time moves by an hour; a period that must
    end with a calendar day is :func:`calendar_months_end` or :func:`working_days_end`.
    """
    return _after(start, timedelta(days=_amount(days, what="days")))


def now_iso(clock: Clock) -> str:
    """The clock's current instant as process data stores it; the engine binds the clock."""
    return to_iso(clock.now())


def expression_helpers(clock: Clock) -> dict[str, Callable[..., str]]:
    """The helpers by the names BPMN expressions call them, with ``now_iso`` bound to ``clock``."""
    return {
        "calendar_months_end": calendar_months_end,
        "working_days_end": working_days_end,
        "hours_after": hours_after,
        "minutes_after": minutes_after,
        "days_after": days_after,
        "now_iso": functools.partial(now_iso, clock),
    }


def _after(start: datetime | str, delta: timedelta) -> str:
    instant = parse_instant(start)
    try:
        return (instant + delta).isoformat()
    except OverflowError as exc:
        message = f"{instant.isoformat()} + {delta} is beyond the supported range of dates"
        raise ValidationError(message, errors={"$": [message]}) from exc


def _amount(value: float, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        message = f"{what} must be a finite number, not {value!r}"
        raise ValidationError(message, errors={"$": [message]})
    if value < 0:
        message = f"{what} must not be negative, got {value!r}"
        raise ValidationError(message, errors={"$": [message]})
    return float(value)


def _whole_number(value: int, *, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        message = f"{what} must be a whole number, not {value!r}"
        raise ValidationError(message, errors={"$": [message]})
    if value < minimum:
        message = f"{what} must be at least {minimum}, got {value}"
        raise ValidationError(message, errors={"$": [message]})
    return value
