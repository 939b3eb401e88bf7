"""Timer events in memory: expressions, deployment checks, and how each kind fires (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.bpmn import SourceFile, SpecBundle, build_bundle
from engine.errors import DefinitionError, ValidationError
from engine.runtime import Workflow, WorkflowRuntime
from engine.timer_events import TimerNotWaitingError, fire, literal_text, waiting_timers

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "timers"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def bundle(key: str, text: str | None = None) -> SpecBundle:
    return build_bundle(key, [SourceFile(f"{key}.bpmn", text or (FIXTURES / f"{key}.bpmn").read_text())])


class Case:
    """A workflow run in memory, saved and restored between steps as the engine does."""

    def __init__(self, key: str, **data: Any) -> None:
        self.runtime = WorkflowRuntime()
        self.bundle = bundle(key)
        self.steps: list[str] = []
        self.workflow: Workflow = self.runtime.create(self.bundle, data)
        self.runtime.advance(self.workflow, on_step=lambda r: self.steps.append(r.element_id))
        self.reload()

    def reload(self) -> None:
        state = self.runtime.dump(self.workflow)
        self.workflow = self.runtime.load(state, version=self.runtime.serializer_version, bundle=self.bundle)

    def fire_first(self, now: datetime = NOW) -> None:
        [timer, *_] = sorted(
            (t for t in waiting_timers(self.workflow, now=now) if t.due_at), key=lambda t: t.due_at or now
        )
        fire(self.workflow, timer.task_id, timer.element_id)
        self.runtime.advance(self.workflow, on_step=lambda r: self.steps.append(r.element_id))
        self.reload()

    def ready(self) -> list[str]:
        return sorted(t.element_id for t in self.runtime.ready_user_tasks(self.workflow))


@pytest.mark.parametrize(
    ("kind", "expression", "expected"),
    [
        ("duration", '"PT72H"', "PT72H"),
        ("duration", "'P3D'", "P3D"),
        ("duration", "PT72H", "PT72H"),
        ("cycle", "R3/PT1H", "R3/PT1H"),
        ("cycle", '"R/PT9H"', "R/PT9H"),
        ("date", "2026-04-14T23:00:00Z", "2026-04-14T23:00:00Z"),
        ("duration", "review_interval", None),
        ("date", "calendar_months_end(granted_at, 3)", None),
    ],
)
def test_constant_or_expression(kind: str, expression: str, expected: str | None) -> None:
    assert literal_text(kind, expression) == expected


@pytest.mark.parametrize(
    ("kind", "expression", "fragment"),
    [
        ("duration", '"PT1X"', "'PT1X'"),
        ("duration", "PT1X", "'PT1X'"),
        ("date", "2026-04-14T23:00:00", "no UTC offset"),
        ("cycle", '"R0/PT1H"', "repeats 0 times"),
        ("duration", "3600", "not ISO 8601 text"),
        ("duration", "delay +", "neither ISO 8601 nor a valid expression"),
        ("duration", "", "no expression"),
    ],
)
def test_bad_constants_are_refused(kind: str, expression: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        literal_text(kind, expression)
    assert fragment in info.value.detail


def test_deployment_names_the_element_and_line_of_a_bad_timer() -> None:
    text = (FIXTURES / "timer_boundary.bpmn").read_text().replace(">PT72H<", ">72 hours<")
    lines = text.splitlines()
    with pytest.raises(DefinitionError) as info:
        bundle("timer_boundary", text)
    [problem] = info.value.problems
    assert problem["element_id"] == "lapse"
    assert ">72 hours<" in lines[problem["line"] - 1]
    assert "'72 hours'" in problem["message"]


def test_a_timer_without_a_definition_is_refused() -> None:
    text = (
        (FIXTURES / "timer_catch.bpmn")
        .read_text()
        .replace('<bpmn:timeDuration>"PT1H"</bpmn:timeDuration>', "")
    )
    with pytest.raises(DefinitionError) as info:
        bundle("timer_catch", text)
    assert "timeDate, timeDuration or timeCycle" in info.value.problems[0]["message"]


def test_due_time_comes_from_the_given_clock_and_is_kept() -> None:
    case = Case("timer_catch")
    [first] = waiting_timers(case.workflow, now=NOW)
    [again] = waiting_timers(case.workflow, now=NOW + timedelta(days=1))
    assert first.due_at == again.due_at == NOW + timedelta(hours=1)
    case.reload()
    assert waiting_timers(case.workflow, now=NOW + timedelta(days=2))[0].due_at == NOW + timedelta(hours=1)


def test_nothing_fires_without_the_worker_however_late_it_is() -> None:
    case = Case("timer_catch")
    waiting_timers(case.workflow, now=NOW)
    case.runtime.advance(case.workflow, on_step=lambda r: case.steps.append(r.element_id))
    case.reload()
    case.runtime.advance(case.workflow, on_step=lambda r: case.steps.append(r.element_id))
    assert case.steps == ["start"]
    assert not case.runtime.is_completed(case.workflow)


def test_firing_a_timer_that_no_longer_waits_is_refused() -> None:
    case = Case("timer_catch")
    [timer] = waiting_timers(case.workflow, now=NOW)
    case.fire_first()
    with pytest.raises(TimerNotWaitingError):
        fire(case.workflow, timer.task_id, timer.element_id)


def test_interrupting_cycle_fires_once_and_interrupts() -> None:
    case = Case("timer_cycle_interrupting", cycle="R3/PT9H")
    assert case.ready() == ["detain"]
    case.fire_first()
    assert case.ready() == ["review"]
    assert waiting_timers(case.workflow, now=NOW) == []


def test_intermediate_cycle_sends_a_token_per_firing() -> None:
    case = Case("timer_catch_cycle")
    case.fire_first()
    assert case.steps.count("visit") == 1
    [timer] = waiting_timers(case.workflow, now=NOW)
    assert timer.due_at == NOW + timedelta(hours=2)
    case.fire_first()
    assert case.steps.count("visit") == 2
    assert case.runtime.is_completed(case.workflow)


def test_event_based_gateway_waits_for_the_earlier_timer() -> None:
    case = Case("timer_gateway")
    [timer] = waiting_timers(case.workflow, now=NOW)
    assert (timer.element_id, timer.due_at) == ("early", NOW + timedelta(hours=1))
    case.fire_first()
    assert case.runtime.data(case.workflow)["path"] == "early"
    assert "took_late" not in case.steps


def test_duration_from_case_data_as_a_timedelta_or_text() -> None:
    case = Case("timer_variable", delay=timedelta(minutes=90))
    assert waiting_timers(case.workflow, now=NOW)[0].due_at == NOW + timedelta(minutes=90)
    text_case = Case("timer_variable", delay="PT90M")
    assert waiting_timers(text_case.workflow, now=NOW)[0].due_at == NOW + timedelta(minutes=90)


def test_an_out_of_range_due_time_is_an_error_not_a_crash() -> None:
    case = Case("timer_variable", delay="P9000Y")
    [timer] = waiting_timers(case.workflow, now=NOW)
    assert timer.due_at is None
    assert timer.error is not None
    assert "out of range" in timer.error


def test_event_subprocess_starts_when_its_timer_fires() -> None:
    case = Case("timer_event_subprocess")
    [timer] = waiting_timers(case.workflow, now=NOW)
    assert (timer.element_id, timer.due_at) == ("remind_start", NOW + timedelta(hours=1))
    case.fire_first()
    assert case.steps[-4:] == ["remind_start", "note", "remind_end", "reminder"]
    assert case.ready() == ["work"]  # non-interrupting: the main flow carries on


def test_the_serializer_knows_our_timer_definitions() -> None:
    runtime = WorkflowRuntime()
    spec = bundle("timer_boundary").spec
    restored = runtime._registry.restore(runtime._registry.convert(spec))
    for element in ("lapse", "remind"):
        original = spec.task_specs[element].event_definition
        copy = restored.task_specs[element].event_definition
        assert type(copy) is type(original)
        assert (copy.expression, copy.element_id) == (original.expression, original.element_id)
