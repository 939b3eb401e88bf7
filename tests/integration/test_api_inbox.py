"""The inbox against several hundred seeded tasks: visibility, every filter, every sort, cursor pages."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import (
    Api,
    Person,
    assert_problem,
)

from api.paging import encode_cursor
from engine.container import Services
from engine.db import transaction
from engine.models import HumanTask, ProcessDefinition, ProcessInstance

ROLES = ("investigator", "analyst", "review_officer", "authorising_officer")
UNITS = ("MIT-North", "MIT-South", "Covert")
CLASSIFICATIONS = ("OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET", "TOP SECRET")
CROSS_UNIT = frozenset({"review_officer"})  # of ROLES, the one AuthSettings treats as cross-unit
VIEWER = Person(
    "dc.viewer", roles=("investigator", "review_officer"), units=("MIT-North", "Covert"), clearance="SECRET"
)
LEVEL = {c: i for i, c in enumerate(CLASSIFICATIONS)}


def seed(services: Services, count: int, *, rng: random.Random, prefix: str = "T") -> list[dict[str, Any]]:
    """Insert ``count`` open tasks with varied role, unit, marking, holder, priority and due time."""
    now = services.clock.now()
    rows: list[dict[str, Any]] = []
    with transaction(services.sessions) as session:
        definition = _definition(session, now)
        instances = [_instance(session, definition, unit, now) for unit in UNITS]
        for n in range(count):
            instance = rng.choice(instances)
            due = None if rng.random() < 0.25 else now + timedelta(hours=rng.randint(-48, 96))
            row = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "instance_id": instance.id,
                "process_key": rng.choice(("surveillance", "chis")),
                "process_version": 1,
                "business_key": f"OP-{rng.randint(1, 5)}",
                "element_id": "task",
                "name": f"{prefix}{n} " + rng.choice(("Review the log", "Authorise tasking", "File note")),
                "lane": None,
                "role": rng.choice(ROLES),
                "status": "ready" if rng.random() < 0.9 else "completed",
                "assignee": rng.choice((None, None, None, "dc.viewer", "dc.other")),
                "unit": instance.unit,
                "classification": rng.choice(CLASSIFICATIONS),
                "priority": rng.choice((10, 30, 50, 50, 70, 90)),
                "due_at": due,
                "created_at": now - timedelta(minutes=rng.randint(0, 30)),
                "excluded_subjects": [],
                "team_subjects": [],
            }
            rows.append(row)
        session.execute(sa.insert(HumanTask), rows)
    return rows


def _definition(session: Any, now: datetime) -> ProcessDefinition:
    definition = session.get(ProcessDefinition, 1)
    if definition is None:
        definition = ProcessDefinition(
            id=1,
            key="surveillance",
            name="Seeded",
            version=1,
            content_hash="0" * 64,
            source_name="x.bpmn",
            bpmn_source="<x/>",
            resources={},
            deployed_at=now,
            deployed_by="tests",
        )
        session.add(definition)
        session.flush()
    return definition


def _instance(session: Any, definition: ProcessDefinition, unit: str, now: datetime) -> ProcessInstance:
    instance = ProcessInstance(
        id=str(uuid.uuid4()),
        definition_id=definition.id,
        process_key="surveillance",
        process_version=1,
        business_key=None,
        status="running",
        unit=unit,
        classification="SECRET",
        started_by="tests",
        started_at=now,
        updated_at=now,
        serializer_version="1",
        state={},
    )
    session.add(instance)
    session.flush()
    return instance


def visible(row: dict[str, Any], person: Person) -> bool:
    """What the inbox may show, as auth.policy.check_task_access decides it for one task."""
    return (
        row["status"] == "ready"
        and LEVEL[row["classification"]] <= LEVEL[person.clearance]
        and row["role"] in person.roles
        and (row["unit"] in person.units or row["role"] in CROSS_UNIT)
    )


def ordered(rows: list[dict[str, Any]], sort: str) -> list[str]:
    """Expected order: the sort column (missing due dates last either way), then id ascending."""
    column = sort.lstrip("-")
    descending = sort.startswith("-")
    present = [r for r in rows if r[column] is not None]
    missing = sorted((r for r in rows if r[column] is None), key=lambda r: r["id"])
    present.sort(key=lambda r: r["id"])
    present.sort(key=lambda r: r[column], reverse=descending)  # stable: ids stay ascending within ties
    return [r["id"] for r in present + missing]


def all_pages(api: Api, person: Person, limit: int, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/v1/tasks", person, query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert len(body["items"]) <= limit
        ids.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


@pytest.fixture
def seeded(services: Services) -> list[dict[str, Any]]:
    return seed(services, 600, rng=random.Random(20260105))  # noqa: S311  (reproducible test data)


FILTERS: list[tuple[dict[str, Any], Callable[[dict[str, Any], datetime], bool]]] = [
    ({}, lambda r, now: r["assignee"] in (None, "dc.viewer")),
    ({"assignee": "me"}, lambda r, now: r["assignee"] == "dc.viewer"),
    ({"assignee": "dc.other"}, lambda r, now: r["assignee"] == "dc.other"),
    ({"unassigned": "true"}, lambda r, now: r["assignee"] is None),
    (
        {"role": "review_officer"},
        lambda r, now: r["role"] == "review_officer" and r["assignee"] != "dc.other",
    ),
    ({"unit": "Covert"}, lambda r, now: r["unit"] == "Covert" and r["assignee"] != "dc.other"),
    (
        {"role": "investigator", "unit": "MIT-North"},
        lambda r, now: (
            r["role"] == "investigator" and r["unit"] == "MIT-North" and r["assignee"] != "dc.other"
        ),
    ),
    # not the viewer's unit: only the tasks of their cross-unit role
    ({"unit": "MIT-South"}, lambda r, now: r["unit"] == "MIT-South" and r["assignee"] != "dc.other"),
    (
        {"role": "review_officer", "unit": "MIT-South"},
        lambda r, now: (
            r["role"] == "review_officer" and r["unit"] == "MIT-South" and r["assignee"] != "dc.other"
        ),
    ),
    (
        {"process_key": "chis", "unassigned": "true"},
        lambda r, now: r["process_key"] == "chis" and not r["assignee"],
    ),
    ({"business_key": "OP-3"}, lambda r, now: r["business_key"] == "OP-3" and r["assignee"] != "dc.other"),
    (
        {"overdue": "true", "unassigned": "true"},
        lambda r, now: r["due_at"] is not None and r["due_at"] < now and r["assignee"] is None,
    ),
    (
        {"due_before": "2026-01-06T09:00:00Z", "due_after": "2026-01-05T12:00:00+00:00"},
        lambda r, now: (
            r["due_at"] is not None
            and now + timedelta(hours=3) < r["due_at"] < now + timedelta(days=1)
            and r["assignee"] != "dc.other"
        ),
    ),
    ({"min_priority": 70}, lambda r, now: r["priority"] >= 70 and r["assignee"] != "dc.other"),
    ({"q": "AUTHORISE"}, lambda r, now: "Authorise" in r["name"] and r["assignee"] != "dc.other"),
]


@pytest.mark.parametrize(("params", "matches"), FILTERS, ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_each_filter_returns_exactly_the_matching_visible_tasks(
    api: Api, services: Services, seeded: list[dict[str, Any]], params: dict[str, Any], matches: Any
) -> None:
    now = services.clock.now()
    expected = [r for r in seeded if visible(r, VIEWER) and matches(r, now)]
    assert expected, "the seed should give every filter something to find"
    got = all_pages(api, VIEWER, 200, **params)
    assert got == ordered(expected, "due_at")
    count = api.get("/api/v1/tasks/count", VIEWER, query_string=params)
    assert count.get_json() == {"count": len(expected)}


@pytest.mark.parametrize("params", [{"role": "analyst"}, {"role": "analyst", "unit": "MIT-North"}])
def test_a_filter_on_a_role_the_caller_lacks_finds_nothing(
    api: Api, seeded: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    assert any(r["role"] == "analyst" and r["unit"] == "MIT-North" and r["status"] == "ready" for r in seeded)
    response = api.get("/api/v1/tasks", VIEWER, query_string=params)
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "next_cursor": None}
    assert api.get("/api/v1/tasks/count", VIEWER, query_string=params).get_json() == {"count": 0}


@pytest.mark.parametrize("sort", ["due_at", "-due_at", "priority", "-priority", "created_at", "-created_at"])
def test_each_sort_pages_through_every_task_once_in_order(
    api: Api, seeded: list[dict[str, Any]], sort: str
) -> None:
    expected = [r for r in seeded if visible(r, VIEWER) and r["assignee"] in (None, "dc.viewer")]
    assert len(expected) > 90
    assert all_pages(api, VIEWER, 17, sort=sort) == ordered(expected, sort)


@pytest.mark.parametrize("sort", ["due_at", "-priority", "-created_at"])
def test_pages_neither_skip_nor_repeat_while_tasks_arrive(
    api: Api, services: Services, seeded: list[dict[str, Any]], sort: str
) -> None:
    before = {r["id"] for r in seeded if visible(r, VIEWER) and r["assignee"] in (None, "dc.viewer")}
    rng = random.Random(sort)  # noqa: S311  (reproducible test data)
    seen: list[str] = []
    cursor = None
    rounds = 0
    while True:
        query = {"sort": sort, "limit": 25, **({"cursor": cursor} if cursor else {})}
        body = api.get("/api/v1/tasks", VIEWER, query_string=query).get_json()
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        seed(services, 15, rng=rng, prefix=f"New{rounds}-")  # new work lands between two pages
        rounds += 1
    assert rounds >= 5
    assert len(seen) == len(set(seen)), "a task was shown twice"
    assert before <= set(seen), "a task that was there all along was skipped"


def test_a_bad_cursor_or_page_size_is_a_validation_problem(api: Api, seeded: list[dict[str, Any]]) -> None:
    problem = assert_problem(
        api.get("/api/v1/tasks", VIEWER, query_string={"cursor": "garbage!"}), 422, "validation-failed"
    )
    assert "$.cursor" in problem["errors"]
    first = api.get("/api/v1/tasks", VIEWER, query_string={"sort": "priority", "limit": 5}).get_json()
    other_sort = api.get(
        "/api/v1/tasks", VIEWER, query_string={"sort": "due_at", "cursor": first["next_cursor"]}
    )
    [message] = assert_problem(other_sort, 422, "validation-failed")["errors"]["$.cursor"]
    assert message.startswith("issued for the sort 'priority'")
    huge = encode_cursor("priority", 2**80, str(uuid.uuid4()))
    assert_problem(api.get("/api/v1/tasks", VIEWER, query_string={"sort": "priority", "cursor": huge}), 422)
    assert_problem(api.get("/api/v1/tasks", VIEWER, query_string={"limit": 201}), 422, "validation-failed")
    assert_problem(api.get("/api/v1/tasks", VIEWER, query_string={"sort": "name"}), 422, "validation-failed")
    bad_date = api.get("/api/v1/tasks", VIEWER, query_string={"due_before": "tomorrow"})
    assert "$.due_before" in assert_problem(bad_date, 422)["errors"]
