"""Process instances over HTTP: idempotent start, lists, detail, data, history and state changes."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import (
    APPLICANT,
    FIXTURES,
    LOW_CLEARANCE,
    OUTSIDER,
    Api,
    Person,
    assert_problem,
    deploy,
    open_tasks,
)

from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.models import AuditEvent, HumanTask, IdempotencyRecord, ProcessInstance, Timer
from engine.worker import TimerWorker

STARTER = APPLICANT
REVIEWER = Person("dcs.review", roles=("review_officer",), units=(), clearance="TOP SECRET")
AUDITOR = Person("auditor", roles=("auditor",), units=(), scopes=("audit:read", "instances:read"))
BODY = {
    "process_key": "review_loop",
    "business_key": "OP-KESTREL",
    "unit": "MIT-North",
    "classification": "secret",
    "variables": {"case_ref": "C-9"},
}


@pytest.fixture
def deployed(services: Services) -> None:
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    deploy(services, "failing_step.bpmn")


def start(api: Api, person: Person = STARTER, **changes: Any) -> dict[str, Any]:
    response = api.post("/api/v1/process-instances", person, json={**BODY, **changes})
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


def test_start_opens_a_case_at_its_marking(api: Api, deployed: None) -> None:
    response = api.post("/api/v1/process-instances", STARTER, json=BODY)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/process-instances/{body['id']}"
    assert (body["status"], body["classification"], body["unit"]) == ("running", "SECRET", "MIT-North")
    assert (body["process_key"], body["process_version"], body["business_key"]) == (
        "review_loop",
        1,
        "OP-KESTREL",
    )
    assert body["started_by"] == "dc.jones"
    detail = api.get(f"/api/v1/process-instances/{body['id']}", STARTER).get_json()
    assert [t["name"] for t in detail["open_tasks"]] == ["Submit application"]
    assert (detail["timers"], detail["incidents"]) == ([], [])
    # A cross-unit role may open a case in any unit.
    assert start(api, REVIEWER, unit="Covert")["unit"] == "Covert"


def test_start_refusals(api: Api, deployed: None) -> None:
    path = "/api/v1/process-instances"
    assert_problem(api.post(path, None, json=BODY), 401, "token-missing")
    assert_problem(api.post(path, STARTER.but(scopes=("instances:read",)), json=BODY), 403, "scope-missing")
    assert_problem(api.post(path, OUTSIDER, json=BODY), 403, "unit-mismatch")
    assert_problem(api.post(path, LOW_CLEARANCE, json=BODY), 403, "clearance-too-low")
    bad = assert_problem(api.post(path, STARTER, json={**BODY, "classification": "restricted"}), 422)
    assert "$.classification" in bad["errors"]
    missing = assert_problem(api.post(path, STARTER, json={"unit": "MIT-North"}), 422, "validation-failed")
    assert {"$.process_key", "$.classification"} <= set(missing["errors"])
    unknown = api.post(path, STARTER, json={**BODY, "variables": {"x": 1}, "unknown": True})
    assert "$.unknown" in assert_problem(unknown, 422)["errors"]
    assert_problem(api.post(path, STARTER, json={**BODY, "process_key": "nope"}), 404, "not-found")
    assert_problem(api.post(path, STARTER, json={**BODY, "version": 9}), 404, "not-found")
    assert_problem(api.post(path, STARTER, data="{not json", content_type="application/json"), 400)


def test_idempotency_key_returns_the_same_instance(api: Api, services: Services, deployed: None) -> None:
    path = "/api/v1/process-instances"
    key = {"Idempotency-Key": "start-OP-KESTREL-1"}
    first = api.post(path, STARTER, json=BODY, headers=key)
    again = api.post(path, STARTER, json=BODY, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    changed = api.post(path, STARTER, json={**BODY, "business_key": "OP-OTHER"}, headers=key)
    assert_problem(changed, 409, "idempotency-key-reused")
    colleague = api.post(path, STARTER.but(subject="dc.shah"), json=BODY, headers=key)
    assert colleague.status_code == 201  # keys are per caller
    bad_key = api.post(path, STARTER, json=BODY, headers={"Idempotency-Key": "has space"})
    assert_problem(bad_key, 422, "validation-failed")
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessInstance)) == 2


def test_an_idempotency_key_is_forgotten_after_its_lifetime(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    path = "/api/v1/process-instances"
    key = {"Idempotency-Key": "start-OP-KESTREL-2"}
    first = api.post(path, STARTER, json=BODY, headers=key)
    clock.advance(timedelta(hours=23, minutes=59))
    assert api.post(path, STARTER, json=BODY, headers=key).get_json()["id"] == first.get_json()["id"]
    clock.advance(timedelta(minutes=2))
    later = api.post(path, STARTER, json={**BODY, "business_key": "OP-NEXT"}, headers=key)
    assert later.status_code == 201  # a day on, the key may name a new request
    assert later.get_json()["id"] != first.get_json()["id"]
    other = api.post(path, STARTER.but(subject="dc.shah"), json=BODY, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 201
    with transaction(services.sessions) as session:
        keys = session.execute(sa.select(IdempotencyRecord.key, IdempotencyRecord.principal)).all()
    assert sorted(keys) == [("k-2", "dc.shah"), ("start-OP-KESTREL-2", STARTER.subject)]

    # A day on, the timer worker's heartbeat clears the records nobody will repeat.
    clock.advance(timedelta(hours=24, minutes=1))
    TimerWorker(services, worker_id="housekeeping", threads=1).heartbeat()
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(IdempotencyRecord)) == 0


def test_concurrent_repeats_of_one_idempotent_start_make_one_instance(
    api: Api, services: Services, deployed: None
) -> None:
    headers = api.headers(STARTER, {"Idempotency-Key": "burst-1"})
    barrier = threading.Barrier(6)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post() -> None:
        client = api.app.test_client()
        barrier.wait()
        response = client.post("/api/v1/process-instances", headers=headers, json=BODY)
        with lock:
            results.append((response.status_code, response.get_json(force=True).get("id", "")))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(status for status, _ in results) == [200] * 5 + [201], results
    assert len({instance_id for _, instance_id in results}) == 1
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessInstance)) == 1


def test_list_shows_only_visible_cases_with_filters_and_cursor_pages(
    api: Api, clock: FrozenClock, deployed: None
) -> None:
    started = []
    for n in range(23):
        clock.advance(timedelta(minutes=1))
        started.append(start(api, business_key=f"OP-{n % 3}")["id"])
    start(api, REVIEWER, unit="Covert")
    start(api, REVIEWER, classification="TOP SECRET")

    def pages(person: Person, **params: Any) -> list[str]:
        ids: list[str] = []
        cursor = None
        while True:
            query = {**params, "limit": 5, **({"cursor": cursor} if cursor else {})}
            response = api.get("/api/v1/process-instances", person, query_string=query)
            assert response.status_code == 200, response.get_data(as_text=True)
            ids += [i["id"] for i in response.get_json()["items"]]
            cursor = response.get_json()["next_cursor"]
            if not cursor:
                return ids

    assert pages(STARTER) == list(reversed(started))  # newest first; not the Covert or TOP SECRET cases
    assert pages(STARTER, sort="started_at") == started
    assert pages(STARTER, business_key="OP-1") == [i for n, i in enumerate(started) if n % 3 == 1][::-1]
    assert len(pages(REVIEWER)) == 25
    assert len(pages(REVIEWER, unit="Covert")) == 1
    assert pages(OUTSIDER) == []
    assert pages(STARTER, status="completed") == []
    assert pages(STARTER, process_key="failing_step") == []
    after = (clock.now() - timedelta(minutes=5)).isoformat()
    assert len(pages(STARTER, started_after=after)) == 5
    assert_problem(api.get("/api/v1/process-instances", STARTER, query_string={"status": "x"}), 422)
    assert_problem(api.get("/api/v1/process-instances", STARTER.but(scopes=("tasks:read",))), 403)


def test_detail_lists_timers_and_refuses_those_without_a_need_to_know(
    api: Api, services: Services, deployed: None
) -> None:
    instance = start(api)
    due = services.clock.now() + timedelta(days=3)
    with transaction(services.sessions) as session:
        task_id = session.scalar(sa.select(HumanTask.id).where(HumanTask.instance_id == instance["id"]))
        session.add(
            Timer(
                instance_id=instance["id"],
                task_id=str(uuid.uuid4()),
                element_id="chase",
                kind="duration",
                expression="P3D",
                due_at=due,
                interrupting=False,
                attached_to_task_id=task_id,
                created_at=services.clock.now(),
            )
        )
    detail = api.get(f"/api/v1/process-instances/{instance['id']}", STARTER).get_json()
    assert detail["timers"] == [
        {
            "element_id": "chase",
            "kind": "duration",
            "due_at": due.isoformat(),
            "interrupting": False,
            "attached_to_task_id": task_id,
        }
    ]
    path = f"/api/v1/process-instances/{instance['id']}"
    assert_problem(api.get(path, OUTSIDER), 404, "not-found")
    assert_problem(api.get(path, LOW_CLEARANCE), 404, "not-found")
    assert_problem(api.get(f"/api/v1/process-instances/{uuid.uuid4()}", STARTER), 404, "not-found")
    assert api.get(path, REVIEWER).status_code == 200  # cross-unit role


def test_reading_variables_is_a_recorded_consultation(api: Api, services: Services, deployed: None) -> None:
    instance = start(api)
    path = f"/api/v1/process-instances/{instance['id']}/variables"
    response = api.get(path, STARTER, headers={"X-Purpose": "case review"})
    assert response.status_code == 200
    assert response.get_json()["variables"]["case_ref"] == "C-9"
    assert_problem(api.get(path, OUTSIDER), 404)
    with transaction(services.sessions) as session:
        [read] = session.scalars(sa.select(AuditEvent).where(AuditEvent.kind == "consultation")).all()
    assert (read.actor, read.action, read.purpose) == ("dc.jones", "instance.variables.read", "case review")
    assert "case_ref" in read.detail["fields"]


def test_history_needs_the_audit_scope_and_pages_the_trail(api: Api, deployed: None) -> None:
    instance = start(api)
    path = f"/api/v1/process-instances/{instance['id']}/history"
    assert_problem(api.get(path, STARTER.but(scopes=("instances:read",))), 403, "scope-missing")
    assert_problem(api.get(path, AUDITOR.but(clearance="OFFICIAL")), 404)
    assert api.get(f"/api/v1/process-instances/{instance['id']}/variables", STARTER).status_code == 200
    first = api.get(path, AUDITOR, query_string={"limit": 1}).get_json()
    assert [e["action"] for e in first["items"]] == ["instance.started"]
    assert first["items"][0]["actor"] == "dc.jones"
    rest = api.get(path, AUDITOR, query_string={"cursor": first["next_cursor"]}).get_json()
    assert rest["next_cursor"] is None
    # The first page's read was itself recorded.
    assert [e["action"] for e in rest["items"]] == ["instance.variables.read", "audit.read"]
    assert rest["items"][0]["seq"] == first["items"][0]["seq"] + 1
    assert_problem(api.get(path, AUDITOR, query_string={"cursor": "e30"}), 422)


def test_cancel_suspend_resume(api: Api, deployed: None) -> None:
    instance = start(api)
    base = f"/api/v1/process-instances/{instance['id']}"
    assert_problem(api.post(f"{base}/cancel", STARTER, json={}), 422, "validation-failed")
    assert_problem(api.post(f"{base}/cancel", OUTSIDER, json={"reason": "no longer needed"}), 404)
    assert_problem(api.post(f"{base}/resume", STARTER), 409, "instance-state")
    suspended = api.post(f"{base}/suspend", STARTER, json={"reason": "awaiting legal advice"})
    assert suspended.status_code == 200
    assert suspended.get_json()["status"] == "suspended"
    assert api.post(f"{base}/suspend", STARTER).status_code == 409
    assert api.post(f"{base}/resume", STARTER).get_json()["status"] == "running"
    cancelled = api.post(f"{base}/cancel", STARTER, json={"reason": "operation stood down"})
    assert cancelled.status_code == 200
    assert (cancelled.get_json()["status"], cancelled.get_json()["end_reason"]) == (
        "cancelled",
        "operation stood down",
    )
    assert open_tasks(api, STARTER) == []
    assert_problem(api.post(f"{base}/cancel", STARTER, json={"reason": "again"}), 409, "instance-state")
    assert_problem(api.post(f"{base}/retry", STARTER), 409, "instance-state")
    assert_problem(api.post(f"{base}/retry", STARTER.but(scopes=("instances:read",))), 403, "scope-missing")


def test_a_failed_step_shows_as_an_incident_and_can_be_retried(api: Api, deployed: None) -> None:
    instance = start(api, process_key="failing_step", business_key="OP-DIV")
    investigator = STARTER
    [enter] = open_tasks(api, investigator, process_key="failing_step")
    done = api.post(f"/api/v1/tasks/{enter['id']}/complete", investigator, json={"data": {"divisor": 0}})
    assert done.status_code == 200, done.get_data(as_text=True)
    detail = api.get(f"/api/v1/process-instances/{instance['id']}", STARTER).get_json()
    assert detail["status"] == "failed"
    [incident] = detail["incidents"]
    assert incident["element_id"] == "divide"
    assert incident["resolved_at"] is None
    retried = api.post(f"/api/v1/process-instances/{instance['id']}/retry", STARTER)
    assert retried.status_code == 200
    assert retried.get_json()["status"] == "failed"  # the data still divides by zero
    incidents = api.get(f"/api/v1/process-instances/{instance['id']}", STARTER).get_json()["incidents"]
    assert [i["resolved_by"] for i in incidents] == ["dc.jones", None]
