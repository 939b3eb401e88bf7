"""Working calendar, bank-holiday data and the legal due-time helpers, with concrete instants."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from dateutil.easter import easter

from engine.calendars import (
    LONDON,
    BankHoliday,
    CalendarCoverageError,
    WorkingCalendar,
    calendar_months_end,
    days_after,
    expression_helpers,
    hours_after,
    london_day,
    minutes_after,
    now_iso,
    parse_instant,
    start_of_london_day,
    working_days_end,
)
from engine.clock import FrozenClock
from engine.errors import DefinitionError, ValidationError

EW = WorkingCalendar.england_and_wales()


# --- the packaged England and Wales data -----------------------------------------------------------


def test_packaged_file_describes_itself() -> None:
    assert EW.division == "england-and-wales"
    assert "gov.uk/bank-holidays" in EW.source
    assert (EW.first_year, EW.last_year) == (2018, 2030)


def test_every_covered_year_has_the_usual_eight_days_plus_the_special_ones() -> None:
    per_year = dict.fromkeys(range(2018, 2031), 0)
    for holiday in EW.holidays:
        per_year[holiday.day.year] += 1
    extra = {2022: 2, 2023: 1}  # platinum jubilee + state funeral; coronation
    assert per_year == {year: 8 + extra.get(year, 0) for year in per_year}


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2022, ["01-03", "04-15", "04-18", "05-02", "06-02", "06-03", "08-29", "09-19", "12-26", "12-27"]),
        (2026, ["01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28"]),
        (2027, ["01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28"]),
        (2030, ["01-01", "04-19", "04-22", "05-06", "05-27", "08-26", "12-25", "12-26"]),
    ],
)
def test_whole_years(year: int, expected: list[str]) -> None:
    assert [h.day.isoformat()[5:] for h in EW.holidays if h.day.year == year] == expected


@pytest.mark.parametrize("year", range(2018, 2031))
def test_easter_holidays_follow_easter_sunday(year: int) -> None:
    sunday = easter(year)
    assert EW.bank_holiday(sunday - timedelta(days=2)) == "Good Friday"
    assert EW.bank_holiday(sunday + timedelta(days=1)) == "Easter Monday"


def test_no_bank_holiday_falls_at_a_weekend() -> None:
    assert [h.day for h in EW.holidays if h.day.weekday() >= 5] == []


@pytest.mark.parametrize(
    ("day", "title"),
    [
        (date(2020, 5, 8), "Early May bank holiday (VE day)"),
        (date(2022, 6, 2), "Spring bank holiday"),
        (date(2022, 6, 3), "Platinum Jubilee bank holiday"),
        (date(2022, 9, 19), "Bank holiday for the State Funeral of Queen Elizabeth II"),
        (date(2023, 5, 1), "Early May bank holiday"),
        (date(2023, 5, 8), "Bank holiday for the coronation of King Charles III"),
        (date(2022, 1, 3), "New Year's Day"),  # 1 January 2022 was a Saturday
        (date(2028, 1, 3), "New Year's Day"),  # 1 January 2028 is a Saturday
        (date(2020, 12, 28), "Boxing Day"),  # Boxing Day 2020 was a Saturday
        (date(2021, 12, 27), "Christmas Day"),  # Christmas 2021 was a Saturday
        (date(2021, 12, 28), "Boxing Day"),
        (date(2022, 12, 27), "Christmas Day"),  # Christmas 2022 was a Sunday
        (date(2026, 12, 28), "Boxing Day"),
    ],
)
def test_special_and_substitute_days(day: date, title: str) -> None:
    assert EW.bank_holiday(day) == title
    assert not EW.is_working_day(day)


@pytest.mark.parametrize(
    "day",
    [date(2020, 5, 4), date(2022, 5, 30), date(2022, 12, 28), date(2026, 12, 29), date(2026, 1, 2)],
)
def test_days_the_usual_pattern_would_wrongly_make_holidays_are_working_days(day: date) -> None:
    assert EW.bank_holiday(day) is None
    assert EW.is_working_day(day)


def test_weekends_are_not_working_days() -> None:
    assert not EW.is_working_day(date(2026, 1, 10))
    assert not EW.is_working_day(date(2026, 1, 11))
    assert EW.is_working_day(date(2026, 1, 12))


# --- add_working_days -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 1, 9), 3, date(2026, 1, 14)),  # Friday: Mon, Tue, Wed
        (date(2026, 1, 10), 1, date(2026, 1, 12)),  # Saturday: the count starts the next day
        (date(2026, 4, 2), 1, date(2026, 4, 7)),  # Good Friday, weekend, Easter Monday
        (date(2026, 12, 24), 3, date(2026, 12, 31)),  # Christmas Friday, Boxing Day substitute Monday
        (date(2027, 12, 24), 2, date(2027, 12, 30)),  # both Christmas days substituted (27, 28)
        (date(2027, 12, 30), 3, date(2028, 1, 5)),  # across the year into a New Year substitute
        (date(2026, 1, 14), -3, date(2026, 1, 9)),  # backwards
        (date(2026, 1, 10), 0, date(2026, 1, 10)),
    ],
)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert EW.add_working_days(start, n) == expected


@pytest.mark.parametrize(
    ("start", "n"), [(date(2030, 12, 30), 3), (date(2017, 12, 29), 1), (date(2018, 1, 2), -2)]
)
def test_counting_outside_the_covered_years_is_refused(start: date, n: int) -> None:
    with pytest.raises(CalendarCoverageError, match=r"2018-2030 only") as caught:
        EW.add_working_days(start, n)
    assert caught.value.code == "calendar-not-covered"
    assert isinstance(caught.value, ValidationError)


def test_an_uncovered_year_is_never_treated_as_holiday_free() -> None:
    assert not EW.covers(date(2031, 12, 25))
    with pytest.raises(CalendarCoverageError, match=r"2031-12-25"):
        EW.is_working_day(date(2031, 12, 25))


def test_a_datetime_is_refused_where_a_calendar_date_is_meant() -> None:
    with pytest.raises(TypeError, match="london_day"):
        EW.is_working_day(datetime(2026, 1, 1, tzinfo=UTC))


def test_a_fractional_count_is_refused() -> None:
    with pytest.raises(TypeError, match="int"):
        EW.add_working_days(date(2026, 1, 1), 1.5)  # type: ignore[arg-type]


# --- other calendar files --------------------------------------------------------------------------


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "holidays.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_from_file_loads_another_division(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "division": "scotland",
            "source": "test data",
            "first_year": 2026,
            "last_year": 2026,
            "events": [
                {"date": "2026-01-02", "title": "2nd January"},
                {"date": "2026-08-03", "title": "Summer"},
            ],
        },
    )
    calendar = WorkingCalendar.from_file(path)
    assert calendar.division == "scotland"
    assert calendar.holidays == (
        BankHoliday(date(2026, 1, 2), "2nd January"),
        BankHoliday(date(2026, 8, 3), "Summer"),
    )
    assert calendar.add_working_days(date(2026, 1, 1), 1) == date(2026, 1, 5)
    assert working_days_end("2026-07-31T12:00:00+01:00", 1, calendar=calendar) == "2026-08-04T23:00:00+00:00"


def test_a_broken_file_names_every_problem(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "division": "",
            "first_year": 2026,
            "last_year": 2025,
            "events": [{"date": "2026-02-30", "title": "x"}, {"date": "2026-01-01"}, "2026-12-25"],
        },
    )
    with pytest.raises(DefinitionError, match=r"holidays\.json is not valid \(7 problems\)") as caught:
        WorkingCalendar.from_file(path)
    assert set(caught.value.errors) == {
        "$.division",
        "$.source",
        "$.last_year",
        "$.events[0].date",
        "$.events[1].title",
        "$.events[1].date",
        "$.events[2]",
    }
    assert caught.value.errors["$.events[0].date"] == ["'2026-02-30' is not an ISO 8601 date (YYYY-MM-DD)"]


def test_a_file_with_duplicates_or_dates_outside_its_years_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "division": "x",
            "source": "y",
            "first_year": 2026,
            "last_year": 2026,
            "events": [
                {"date": "2026-01-01", "title": "a"},
                {"date": "2026-01-01", "title": "b"},
                {"date": "2027-01-01", "title": "c"},
            ],
        },
    )
    with pytest.raises(DefinitionError) as caught:
        WorkingCalendar.from_file(path)
    assert caught.value.errors == {
        "$.events[1].date": ["2026-01-01 is listed twice"],
        "$.events[2].date": ["2027-01-01 is outside first_year-last_year (2026-2026)"],
    }


def test_missing_and_non_json_files_are_definition_errors(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot be read"):
        WorkingCalendar.from_file(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(DefinitionError, match="is not JSON"):
        WorkingCalendar.from_file(bad)


# --- parse_instant and london_day -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-15T14:30:00Z", datetime(2026, 1, 15, 14, 30, tzinfo=UTC)),
        ("2026-07-01T00:30:00+01:00", datetime(2026, 6, 30, 23, 30, tzinfo=UTC)),
        (datetime(2026, 7, 1, 0, 30, tzinfo=LONDON), datetime(2026, 6, 30, 23, 30, tzinfo=UTC)),
        (datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))), datetime(2026, 1, 1, 5, tzinfo=UTC)),
    ],
)
def test_parse_instant_returns_utc(value: datetime | str, expected: datetime) -> None:
    parsed = parse_instant(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", ["2026-01-15T14:30:00", "2026-01-15", datetime(2026, 1, 15, 14, 30)])  # noqa: DTZ001
def test_parse_instant_refuses_naive_values(value: datetime | str) -> None:
    with pytest.raises(ValidationError, match="has no UTC offset") as caught:
        parse_instant(value, path="$.granted_at")
    assert list(caught.value.errors) == ["$.granted_at"]


def test_parse_instant_refuses_text_that_is_not_iso_8601() -> None:
    with pytest.raises(ValidationError, match=r"instant '15/01/2026' is not an ISO 8601 date and time"):
        parse_instant("15/01/2026")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-06-30T23:30:00Z", date(2026, 7, 1)),  # 00:30 BST
        ("2026-01-31T23:30:00Z", date(2026, 1, 31)),  # GMT
        ("2026-03-05", date(2026, 3, 5)),
        (date(2026, 3, 5), date(2026, 3, 5)),
    ],
)
def test_london_day(value: date | str, expected: date) -> None:
    assert london_day(value) == expected


def test_start_of_london_day_in_winter_and_summer() -> None:
    assert start_of_london_day(date(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert start_of_london_day(date(2026, 7, 1)) == datetime(2026, 6, 30, 23, tzinfo=UTC)


# --- calendar_months_end (RIPA s.43(3)) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        # the brief's example: granted 15 January 14:30 GMT, ends at the end of 14 April (BST)
        ("2026-01-15T14:30:00+00:00", 3, "2026-04-14T23:00:00+00:00"),
        # the hour of grant does not matter, only the day
        ("2026-01-15T00:00:00Z", 3, "2026-04-14T23:00:00+00:00"),
        ("2026-01-15T23:59:00Z", 3, "2026-04-14T23:00:00+00:00"),
        # 23:30 UTC on 30 June is 1 July in London: the period begins with 1 July
        ("2026-06-30T23:30:00Z", 1, "2026-07-31T23:00:00+00:00"),
        # ends on the day the clocks go forward: midnight is still GMT
        ("2025-12-29T10:00:00Z", 3, "2026-03-29T00:00:00+00:00"),
        # ends on the day the clocks go back: midnight is still BST
        ("2026-07-25T10:00:00+01:00", 3, "2026-10-24T23:00:00+00:00"),
        # the day after they went back: GMT again
        ("2026-07-26T10:00:00+01:00", 3, "2026-10-26T00:00:00+00:00"),
        # no 31 February: ends at the end of 28 February
        ("2026-01-31T12:00:00Z", 1, "2026-03-01T00:00:00+00:00"),
        ("2026-01-29T12:00:00Z", 1, "2026-03-01T00:00:00+00:00"),
        ("2026-01-28T12:00:00Z", 1, "2026-02-28T00:00:00+00:00"),
        # leap year: 29 February exists in 2028
        ("2028-01-31T12:00:00Z", 1, "2028-03-01T00:00:00+00:00"),
        ("2028-01-29T12:00:00Z", 1, "2028-02-29T00:00:00+00:00"),
        # CHIS, 12 months from a leap day: no 29 February 2029
        ("2028-02-29T09:00:00Z", 12, "2029-03-01T00:00:00+00:00"),
        ("2026-02-28T09:00:00Z", 12, "2027-02-28T00:00:00+00:00"),
        # juvenile CHIS, 4 months, ending in BST
        ("2026-11-30T09:00:00Z", 4, "2027-03-29T23:00:00+00:00"),
        # across a year end with no corresponding date
        ("2026-11-30T09:00:00Z", 3, "2027-03-01T00:00:00+00:00"),
        # a bare date is the London calendar day
        ("2026-01-15", 3, "2026-04-14T23:00:00+00:00"),
    ],
)
def test_calendar_months_end(start: str, months: int, expected: str) -> None:
    assert calendar_months_end(start, months) == expected


def test_calendar_months_end_accepts_aware_datetimes() -> None:
    granted = datetime(2026, 1, 15, 14, 30, tzinfo=LONDON)
    assert calendar_months_end(granted, 3) == "2026-04-14T23:00:00+00:00"


def test_a_renewal_runs_on_from_the_previous_end() -> None:
    first = calendar_months_end("2026-01-15T14:30:00Z", 3)
    assert calendar_months_end(first, 3) == "2026-07-14T23:00:00+00:00"  # 15 April to 14 July


@pytest.mark.parametrize("months", [0, -1, 1.5, True])
def test_calendar_months_end_refuses_bad_counts(months: int) -> None:
    with pytest.raises(ValidationError, match="months must be"):
        calendar_months_end("2026-01-15T14:30:00Z", months)


def test_calendar_months_end_past_the_end_of_time_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="beyond the supported range"):
        calendar_months_end("9999-06-01", 12)


def test_calendar_months_end_refuses_naive_instants() -> None:
    with pytest.raises(ValidationError, match="has no UTC offset"):
        calendar_months_end("2026-01-15T14:30:00", 3)


# --- working_days_end (IPA s.109, Victims' Code) ----------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        # warrant issued Thursday before Easter 2026: Tue 7, Wed 8, Thu 9 April; ends 00:00 BST on the 10th
        ("2026-04-02T16:00:00+01:00", 3, "2026-04-09T23:00:00+00:00"),
        # issued at 00:30 BST on 2 April, which is 23:30 UTC on 1 April: still the 2nd in London
        ("2026-04-01T23:30:00Z", 3, "2026-04-09T23:00:00+00:00"),
        # issued 23:30 BST on Wednesday 1 April: Thu 2, Tue 7, Wed 8
        ("2026-04-01T22:30:00Z", 3, "2026-04-08T23:00:00+00:00"),
        # issued Friday: Mon, Tue, Wed (winter)
        ("2026-01-09T11:00:00Z", 3, "2026-01-15T00:00:00+00:00"),
        # issued on a Saturday: the same
        ("2026-01-10T11:00:00Z", 3, "2026-01-15T00:00:00+00:00"),
        # Christmas 2026: Friday 25, Boxing Day substitute Monday 28
        ("2026-12-24T11:00:00Z", 3, "2027-01-01T00:00:00+00:00"),
        # Victims' Code: within 1 working day of a Christmas Eve decision
        ("2026-12-24T11:00:00Z", 1, "2026-12-30T00:00:00+00:00"),
        # across the substitute New Year's Day 2028 (Monday 3 January)
        ("2027-12-30T11:00:00Z", 3, "2028-01-06T00:00:00+00:00"),
        # the early May bank holiday 2020 moved to Friday 8 May
        ("2020-05-07T11:00:00+01:00", 1, "2020-05-11T23:00:00+00:00"),
        # the count crosses the spring clock change: Thu 26, Fri 27, Mon 30 March; ends 00:00 BST on the 31st
        ("2026-03-25T11:00:00Z", 3, "2026-03-30T23:00:00+00:00"),
    ],
)
def test_working_days_end(start: str, days: int, expected: str) -> None:
    assert working_days_end(start, days) == expected


def test_working_days_end_outside_the_calendar_is_refused() -> None:
    with pytest.raises(CalendarCoverageError):
        working_days_end("2030-12-30T11:00:00Z", 3)


@pytest.mark.parametrize("days", [0, -1, 2.0])
def test_working_days_end_refuses_bad_counts(days: int) -> None:
    with pytest.raises(ValidationError, match="working days must be"):
        working_days_end("2026-01-09T11:00:00Z", days)


# --- exact durations ------------------------------------------------------------------------------


def test_hours_after_counts_elapsed_time_across_the_spring_clock_change() -> None:
    # urgent grant at 10:15 GMT on Saturday 28 March 2026 lapses 72 hours later, at 11:15 BST
    assert hours_after("2026-03-28T10:15:00Z", 72) == "2026-03-31T10:15:00+00:00"


def test_pace_24_hours_from_the_relevant_time() -> None:
    relevant_time = datetime(2026, 10, 24, 22, 40, tzinfo=LONDON)  # BST; clocks go back that night
    assert hours_after(relevant_time, 24) == "2026-10-25T21:40:00+00:00"  # 21:40 GMT on the 25th
    assert hours_after(relevant_time, 36) == "2026-10-26T09:40:00+00:00"


def test_minutes_after_and_days_after() -> None:
    assert minutes_after("2026-01-15T23:45:00Z", 30) == "2026-01-16T00:15:00+00:00"
    assert minutes_after("2026-01-15T23:45:00Z", 1.5) == "2026-01-15T23:46:30+00:00"
    assert days_after("2026-03-28T12:00:00Z", 3) == "2026-03-31T12:00:00+00:00"
    assert days_after("2026-01-15T14:30:00Z", 0) == "2026-01-15T14:30:00+00:00"


@pytest.mark.parametrize("amount", [-1, float("nan"), float("inf"), "3", True])
def test_exact_durations_refuse_bad_amounts(amount: float) -> None:
    with pytest.raises(ValidationError, match="hours must"):
        hours_after("2026-01-15T14:30:00Z", amount)


def test_a_duration_past_the_end_of_time_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="beyond the supported range"):
        days_after("9999-12-30T00:00:00Z", 5)


# --- the clock and the expression bindings ---------------------------------------------------------


def test_now_iso_uses_the_injected_clock() -> None:
    clock = FrozenClock(datetime(2026, 7, 1, 9, 0, tzinfo=LONDON))
    assert now_iso(clock) == "2026-07-01T08:00:00+00:00"


def test_expression_helpers_bind_the_clock() -> None:
    clock = FrozenClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    helpers = expression_helpers(clock)
    assert set(helpers) == {
        "calendar_months_end",
        "working_days_end",
        "hours_after",
        "minutes_after",
        "days_after",
        "now_iso",
    }
    assert helpers["now_iso"]() == "2026-01-05T09:00:00+00:00"
    clock.advance(timedelta(hours=1))
    assert helpers["hours_after"](helpers["now_iso"](), 72) == "2026-01-08T10:00:00+00:00"
