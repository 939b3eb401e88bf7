"""BPMN timer definitions: parsing ISO 8601 dates, durations and cycles, and their due instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.calendars import LONDON
from engine.errors import ValidationError
from engine.timeexpr import (
    CycleTimer,
    DateTimer,
    DurationTimer,
    IsoDuration,
    first_due,
    next_due,
    parse_cycle,
    parse_date,
    parse_duration,
    parse_timer,
)

NOW = datetime(2026, 1, 15, 14, 30, tzinfo=UTC)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "months", "exact"),
    [
        ("P1Y2M3DT4H5M6S", 14, timedelta(days=3, hours=4, minutes=5, seconds=6)),
        ("PT72H", 0, timedelta(hours=72)),
        ("P2W", 0, timedelta(weeks=2)),
        ("P3M", 3, timedelta(0)),
        ("P1Y", 12, timedelta(0)),
        ("P0.5Y", 6, timedelta(0)),  # a fraction of a year that is whole months
        ("PT0.5S", 0, timedelta(milliseconds=500)),
        ("PT0S", 0, timedelta(0)),
        ("  PT30M\n", 0, timedelta(minutes=30)),  # whitespace around element text in BPMN XML
    ],
)
def test_parse_duration(text: str, months: int, exact: timedelta) -> None:
    duration = parse_duration(text)
    assert (duration.months, duration.exact) == (months, exact)
    assert str(duration) == text.strip()


def test_parse_duration_accepts_a_timedelta() -> None:
    assert parse_duration(timedelta(hours=6)) == IsoDuration(months=0, exact=timedelta(hours=6), text="PT6H")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("P3X", "timer duration 'P3X' is not ISO 8601: "),
        ("3 days", "timer duration '3 days' is not ISO 8601"),
        ("pt1h", "timer duration 'pt1h' is not ISO 8601"),
        ("P", "timer duration 'P' is not ISO 8601"),
        ("PT", "timer duration 'PT' is not ISO 8601: it has no number and unit"),
        ("P1DT", "timer duration 'P1DT' is not ISO 8601"),
        ("", "timer duration '' is not ISO 8601"),
        ("-P1D", "timer duration '-P1D' is negative"),
        ("P1.5M", "timer duration 'P1.5M' has a fraction of a year or month"),
        ("P0.3Y", "timer duration 'P0.3Y' has a fraction of a year or month"),
    ],
)
def test_bad_durations_say_what_is_wrong_and_quote_the_value(text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_duration(text)
    assert caught.value.detail.startswith(reason)
    assert caught.value.errors == {"$.timer": [caught.value.detail]}
    assert caught.value.code == "validation-failed"


def test_a_negative_timedelta_is_refused() -> None:
    with pytest.raises(ValidationError, match="is negative"):
        parse_duration(timedelta(seconds=-1))


# --- dates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-01T09:00:00+01:00", _utc(2026, 5, 1, 8)),
        ("2026-05-01T09:00:00Z", _utc(2026, 5, 1, 9)),
        ("20260501T090000Z", _utc(2026, 5, 1, 9)),
        (datetime(2026, 5, 1, 9, tzinfo=LONDON), _utc(2026, 5, 1, 8)),
    ],
)
def test_parse_date(value: str | datetime, expected: datetime) -> None:
    parsed = parse_date(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-05-01T09:00:00", "timer date '2026-05-01T09:00:00' has no UTC offset"),
        ("2026-05-01", "timer date '2026-05-01' has no UTC offset"),
        (datetime(2026, 5, 1, 9), "timer date '2026-05-01T09:00:00' has no UTC offset"),  # noqa: DTZ001
        ("next Friday", "timer date 'next Friday' is not ISO 8601"),
        ("2026-02-30T09:00:00Z", "timer date '2026-02-30T09:00:00Z' is not ISO 8601: day is out of range"),
    ],
)
def test_bad_dates_are_refused(value: str | datetime, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_date(value)
    assert caught.value.detail.startswith(reason)
    assert list(caught.value.errors) == ["$.timer"]


# --- cycles ----------------------------------------------------------------------------------------


def test_parse_cycle_forms() -> None:
    assert parse_cycle("R/PT9H") == (None, None, parse_duration("PT9H"))
    assert parse_cycle("R3/PT1H") == (3, None, parse_duration("PT1H"))
    repetitions, start, duration = parse_cycle("R5/2026-01-01T00:00:00Z/P1D")
    assert (repetitions, start, duration.exact) == (5, _utc(2026, 1, 1), timedelta(days=1))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("PT1H", "timer cycle 'PT1H' is not ISO 8601: expected 'R[n]/<duration>'"),
        ("R3", "timer cycle 'R3' is not ISO 8601"),
        ("R-1/PT1H", "timer cycle 'R-1/PT1H' is not ISO 8601"),
        ("RX/PT1H", "timer cycle 'RX/PT1H' is not ISO 8601"),
        ("R3/a/b/c", "timer cycle 'R3/a/b/c' is not ISO 8601"),
        ("R0/PT1H", "timer cycle 'R0/PT1H' repeats 0 times"),
        ("R/PT0S", "timer cycle 'R/PT0S' has a zero duration"),
        ("R3/P3X", "timer cycle 'R3/P3X' is not valid: timer duration 'P3X' is not ISO 8601"),
        (
            "R3/2026-01-01T00:00:00/PT1H",
            "timer cycle 'R3/2026-01-01T00:00:00/PT1H' is not valid: timer date '2026-01-01T00:00:00' has no",
        ),
        (
            "R3/2026-01-01T00:00:00Z/2026-02-01T00:00:00Z",
            "timer cycle 'R3/2026-01-01T00:00:00Z/2026-02-01T00:00:00Z' must end with a duration such as",
        ),
        ("R/PT1H/2026-02-01T00:00:00Z", "timer cycle 'R/PT1H/2026-02-01T00:00:00Z' must end with a duration"),
    ],
)
def test_bad_cycles_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_cycle(text)
    assert caught.value.detail.startswith(reason)
    assert caught.value.errors == {"$.timer": [caught.value.detail]}


# --- parse_timer -----------------------------------------------------------------------------------


def test_parse_timer_kinds_and_bpmn_element_names() -> None:
    assert parse_timer("timeDate", "2026-05-01T09:00:00Z") == DateTimer(_utc(2026, 5, 1, 9))
    assert parse_timer("duration", timedelta(hours=1)) == DurationTimer(parse_duration("PT1H"))
    assert isinstance(parse_timer("timeCycle", "R/PT9H"), CycleTimer)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("date", timedelta(hours=1), "is a duration; a timeDate needs an instant"),
        ("duration", NOW, "is an instant; a timeDuration needs a duration"),
        (
            "cycle",
            timedelta(hours=1),
            "timer cycle datetime.timedelta(seconds=3600) must be an ISO 8601 string",
        ),
        ("timeStart", "PT1H", "timer kind 'timeStart' is not one of 'date', 'duration' or 'cycle'"),
    ],
)
def test_parse_timer_refuses_mismatched_values(
    kind: str, value: datetime | timedelta | str, reason: str
) -> None:
    with pytest.raises(ValidationError, match="timer") as caught:
        parse_timer(kind, value)
    assert reason in caught.value.detail


# --- first_due -------------------------------------------------------------------------------------


def test_a_date_timer_is_due_at_its_instant_whenever_it_starts() -> None:
    assert first_due("date", "2026-05-01T09:00:00+01:00", now=NOW) == _utc(2026, 5, 1, 8)
    assert first_due("date", "2025-05-01T09:00:00+01:00", now=NOW) == _utc(2025, 5, 1, 8)


@pytest.mark.parametrize(
    ("value", "now", "expected"),
    [
        # urgent authorisation: 72 hours from the minute of grant, across the spring clock change
        ("PT72H", _utc(2026, 3, 28, 10, 15), _utc(2026, 3, 31, 10, 15)),
        # PACE first review within 6 hours
        ("PT6H", _utc(2026, 1, 15, 22), _utc(2026, 1, 16, 4)),
        # days are exact: 24 hours, so the London wall clock moves an hour across the clock change
        ("P1D", _utc(2026, 3, 28, 12), _utc(2026, 3, 29, 12)),
        ("P1W", _utc(2026, 10, 20, 9), _utc(2026, 10, 27, 9)),
        # months follow the London calendar: 12:00 GMT + 1 month = 12:00 BST
        ("P1M", _utc(2026, 3, 15, 12), _utc(2026, 4, 15, 11)),
        ("P1M", _utc(2026, 10, 15, 11), _utc(2026, 11, 15, 12)),
        # no 31 February: clamped to the last day of the month
        ("P1M", _utc(2026, 1, 31, 10), _utc(2026, 2, 28, 10)),
        # the London day, not the UTC day: 23:30 UTC on 31 March is 00:30 BST on 1 April
        ("P1M", _utc(2026, 3, 31, 23, 30), _utc(2026, 4, 30, 23, 30)),
        # months first, then exact time
        ("P1MT1H", _utc(2026, 1, 31, 10), _utc(2026, 2, 28, 11)),
        ("P1Y", _utc(2028, 2, 29, 9), _utc(2029, 2, 28, 9)),
        ("PT0S", NOW, NOW),
    ],
)
def test_a_duration_timer_is_due_after_now(value: str, now: datetime, expected: datetime) -> None:
    due = first_due("duration", value, now=now)
    assert due == expected
    assert due.tzinfo is UTC


def test_first_due_of_a_duration_given_as_a_timedelta() -> None:
    assert first_due("timeDuration", timedelta(minutes=30), now=NOW) == _utc(2026, 1, 15, 15)


def test_a_cycle_without_start_is_first_due_one_interval_after_now() -> None:
    assert first_due("cycle", "R/PT9H", now=NOW) == _utc(2026, 1, 15, 23, 30)


def test_a_cycle_with_start_is_first_due_at_its_start() -> None:
    assert first_due("cycle", "R5/2026-01-01T00:00:00Z/P1D", now=_utc(2025, 12, 1)) == _utc(2026, 1, 1)


def test_first_due_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
        first_due("duration", "PT1H", now=datetime(2026, 1, 1))  # noqa: DTZ001


# --- next_due --------------------------------------------------------------------------------------


def test_an_unbounded_cycle_runs_on_from_the_previous_due_time() -> None:
    # PACE reviews every 9 hours after the second
    assert next_due("cycle", "R/PT9H", previous_due=_utc(2026, 1, 16, 6), fired_count=2) == _utc(
        2026, 1, 16, 15
    )
    assert next_due("cycle", "R/PT9H", previous_due=_utc(2026, 1, 16, 6), fired_count=500) == _utc(
        2026, 1, 16, 15
    )


def test_a_bounded_cycle_stops_after_its_repetitions() -> None:
    previous = _utc(2026, 1, 15, 16, 30)
    assert next_due("cycle", "R3/PT1H", previous_due=previous, fired_count=1) == _utc(2026, 1, 15, 17, 30)
    assert next_due("cycle", "R3/PT1H", previous_due=previous, fired_count=2) == _utc(2026, 1, 15, 17, 30)
    assert next_due("cycle", "R3/PT1H", previous_due=previous, fired_count=3) is None
    assert next_due("cycle", "R1/PT1H", previous_due=previous, fired_count=1) is None


def test_a_cycle_with_start_counts_from_its_start() -> None:
    cycle = "R5/2026-01-01T00:00:00Z/P1D"
    schedule = [first_due("cycle", cycle, now=NOW)]
    while (due := next_due("cycle", cycle, previous_due=schedule[-1], fired_count=len(schedule))) is not None:
        schedule.append(due)
    assert schedule == [_utc(2026, 1, day) for day in range(1, 6)]


def test_a_monthly_cycle_does_not_drift_to_the_shortest_month() -> None:
    cycle = "R/2026-01-31T09:00:00Z/P1M"  # 09:00 GMT; later months keep 09:00 London
    schedule = [first_due("cycle", cycle, now=NOW)]
    for fired in range(1, 4):
        due = next_due("cycle", cycle, previous_due=schedule[-1], fired_count=fired)
        assert due is not None
        schedule.append(due)
    assert schedule == [
        _utc(2026, 1, 31, 9),
        _utc(2026, 2, 28, 9),
        _utc(2026, 3, 31, 8),  # BST
        _utc(2026, 4, 30, 8),
    ]


def test_dates_and_durations_fire_once() -> None:
    assert next_due("date", "2026-05-01T09:00:00Z", previous_due=NOW, fired_count=1) is None
    assert next_due("duration", "PT1H", previous_due=NOW, fired_count=1) is None


@pytest.mark.parametrize("fired_count", [0, -1, True])
def test_next_due_needs_a_positive_fired_count(fired_count: int) -> None:
    with pytest.raises(ValueError, match="fired_count must be a positive int"):
        next_due("cycle", "R/PT9H", previous_due=NOW, fired_count=fired_count)


def test_next_due_still_validates_the_expression() -> None:
    with pytest.raises(ValidationError, match="timer duration 'P3X' is not ISO 8601"):
        next_due("duration", "P3X", previous_due=NOW, fired_count=1)


def test_a_due_time_past_the_end_of_time_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="takes the due time out of range"):
        first_due("duration", "P10Y", now=_utc(9995, 1, 1))
    with pytest.raises(ValidationError, match="takes the due time out of range"):
        first_due("duration", "P10D", now=_utc(9999, 12, 25))
