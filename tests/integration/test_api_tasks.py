"""The task inbox over HTTP: visibility, reading with a consultation record, claim, assign, complete."""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa
from api_support import (
    APPLICANT,
    AUTHORISER,
    FIXTURES,
    LOW_CLEARANCE,
    OUTSIDER,
    SUPERVISOR,
    Api,
    Person,
    assert_problem,
    deploy,
    open_tasks,
    start_case,
)

from engine.container import Services
from engine.db import transaction
from engine.models import AuditEvent, HumanTask, ProcessInstance

COLLEAGUE = Person("dc.shah", roles=("applicant",), name="DC Shah")


@pytest.fixture
def submit_task(services: Services) -> dict[str, str]:
    """A review_loop case in MIT-North marked SECRET, waiting at its first task (role applicant)."""
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    instance_id = start_case(services, "review_loop", case_ref="C-1")
    with transaction(services.sessions) as session:
        task_id = session.scalar(sa.select(HumanTask.id).where(HumanTask.instance_id == instance_id))
    assert task_id is not None
    return {"instance_id": instance_id, "task_id": task_id}


def test_inbox_shows_a_task_to_those_who_may_take_it_and_nobody_else(
    api: Api, submit_task: dict[str, str]
) -> None:
    [task] = open_tasks(api, APPLICANT)
    assert task["id"] == submit_task["task_id"]
    assert (task["role"], task["unit"], task["classification"], task["priority"]) == (
        "applicant",
        "MIT-North",
        "SECRET",
        70,
    )
    assert task["assignee"] is None
    assert task["form"] == "test_application"
    assert open_tasks(api, COLLEAGUE) != []
    assert open_tasks(api, OUTSIDER) == []  # another unit
    assert open_tasks(api, LOW_CLEARANCE) == []  # cleared only to OFFICIAL
    assert open_tasks(api, AUTHORISER) == []  # not an applicant
    count = api.get("/api/v1/tasks/count", APPLICANT)
    assert count.status_code == 200
    assert count.get_json() == {"count": 1}


def test_inbox_needs_a_token_and_the_read_scope(api: Api, submit_task: dict[str, str]) -> None:
    problem = assert_problem(api.get("/api/v1/tasks", None), 401, "token-missing")
    assert "Bearer" in api.get("/api/v1/tasks", None).headers["WWW-Authenticate"]
    assert problem["instance"] == "/api/v1/tasks"
    bad = api.client.get("/api/v1/tasks", headers={"Authorization": "Bearer not-a-jwt"})
    assert_problem(bad, 401, "token-malformed")
    no_scope = APPLICANT.but(scopes=("tasks:write",))
    response = api.get("/api/v1/tasks", no_scope)
    assert_problem(response, 403, "scope-missing")
    assert 'scope="tasks:read"' in response.headers["WWW-Authenticate"]
    assert_problem(api.get(f"/api/v1/tasks/{submit_task['task_id']}", no_scope), 403, "scope-missing")
    assert_problem(api.get("/api/v1/tasks/count", no_scope), 403, "scope-missing")


def test_reading_a_task_returns_its_form_and_data_and_is_recorded(
    api: Api, services: Services, submit_task: dict[str, str]
) -> None:
    task_id = submit_task["task_id"]
    response = api.get(
        f"/api/v1/tasks/{task_id}", APPLICANT, headers={"X-Purpose": "prepare the application"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["id"] == task_id
    assert body["name"] == "Submit application"
    assert body["form_schema"]["name"] == "test_application"
    assert body["form_schema"]["schema"]["properties"]["subject"] == {"type": "string", "minLength": 3}
    assert body["data"]["case_ref"] == "C-1"
    assert body["data"]["initiator"] == "dc.jones"

    second = api.get(f"/api/v1/tasks/{task_id}?purpose=check%20the%20reference", COLLEAGUE)
    assert second.status_code == 200
    with transaction(services.sessions) as session:
        reads = list(
            session.scalars(
                sa.select(AuditEvent).where(AuditEvent.kind == "consultation").order_by(AuditEvent.id)
            )
        )
    assert [(e.actor, e.purpose, e.record_id, e.instance_id) for e in reads] == [
        ("dc.jones", "prepare the application", task_id, submit_task["instance_id"]),
        ("dc.shah", "check the reference", task_id, submit_task["instance_id"]),
    ]
    assert "case_ref" in reads[0].detail["fields"]


def test_reading_a_task_refuses_with_the_policy_reason(api: Api, submit_task: dict[str, str]) -> None:
    path = f"/api/v1/tasks/{submit_task['task_id']}"
    assert_problem(api.get(path, LOW_CLEARANCE), 404, "not-found")  # above clearance: not even told
    assert_problem(api.get(path, OUTSIDER), 403, "unit-mismatch")
    assert_problem(api.get(path, AUTHORISER), 403, "role-missing")
    assert_problem(api.get(f"/api/v1/tasks/{uuid.uuid4()}", APPLICANT), 404, "not-found")
    assert_problem(api.get("/api/v1/tasks/not-a-uuid", APPLICANT), 404)


def test_claim_release_and_assign(api: Api, submit_task: dict[str, str]) -> None:
    task_id = submit_task["task_id"]
    base = f"/api/v1/tasks/{task_id}"
    claimed = api.post(f"{base}/claim", APPLICANT)
    assert claimed.status_code == 200
    assert claimed.get_json()["assignee"] == "dc.jones"
    assert api.post(f"{base}/claim", APPLICANT).status_code == 200  # claiming again is harmless
    assert_problem(api.post(f"{base}/claim", COLLEAGUE), 409, "task-not-ready")

    # A held task leaves the colleague's inbox but a colleague can still look for it by holder.
    assert open_tasks(api, COLLEAGUE) == []
    assert [t["id"] for t in open_tasks(api, COLLEAGUE, assignee="dc.jones")] == [task_id]
    assert [t["id"] for t in open_tasks(api, APPLICANT, assignee="me")] == [task_id]
    assert open_tasks(api, APPLICANT, unassigned="true") == []

    assert_problem(api.post(f"{base}/unclaim", COLLEAGUE), 409, "task-not-ready")
    assert_problem(api.post(f"{base}/unclaim", COLLEAGUE, json={"force": True}), 403, "role-missing")
    admin_without_role = Person("ops.admin", roles=(), units=(), scopes=("tasks:write", "admin"))
    assert api.post(f"{base}/unclaim", admin_without_role, json={"force": True}).status_code == 200
    assert api.post(f"{base}/claim", APPLICANT).status_code == 200
    released = api.post(f"{base}/unclaim", SUPERVISOR, json={"force": True})
    assert released.status_code == 200
    assert released.get_json()["assignee"] is None

    assert_problem(api.post(f"{base}/assign", APPLICANT, json={"assignee": "dc.shah"}), 403, "role-missing")
    south_supervisor = SUPERVISOR.but(subject="ds.south", units=("MIT-South",))
    assert_problem(
        api.post(f"{base}/assign", south_supervisor, json={"assignee": "dc.shah"}), 403, "unit-mismatch"
    )
    assert_problem(api.post(f"{base}/assign", SUPERVISOR, json={}), 422, "validation-failed")
    assigned = api.post(f"{base}/assign", SUPERVISOR, json={"assignee": "dc.shah"})
    assert assigned.status_code == 200
    assert assigned.get_json()["assignee"] == "dc.shah"
    admin = Person("ops.admin", roles=(), units=(), scopes=("tasks:write", "admin"))
    again = api.post(f"{base}/assign", admin, json={"assignee": "dc.jones"})
    assert again.status_code == 200
    assert again.get_json()["assignee"] == "dc.jones"
    secret_admin = admin.but(subject="ops.low", clearance="OFFICIAL")
    assert_problem(api.post(f"{base}/assign", secret_admin, json={"assignee": "x"}), 404, "not-found")
    assert_problem(api.post(f"/api/v1/tasks/{uuid.uuid4()}/claim", APPLICANT), 404, "not-found")
    assert_problem(api.post(f"{base}/claim", APPLICANT.but(scopes=("tasks:read",))), 403, "scope-missing")


def test_complete_validates_the_form_then_moves_the_case_on(
    api: Api, services: Services, submit_task: dict[str, str]
) -> None:
    base = f"/api/v1/tasks/{submit_task['task_id']}"
    problem = assert_problem(
        api.post(f"{base}/complete", APPLICANT, json={"data": {"subject": "ab", "a": "x"}}),
        422,
        "form-data-invalid",
    )
    assert set(problem["errors"]) == {"$.subject", "$.a"}
    assert any("too short" in m for m in problem["errors"]["$.subject"])
    missing = assert_problem(api.post(f"{base}/complete", APPLICANT, json={}), 422, "validation-failed")
    assert "$.data" in missing["errors"]
    assert_problem(api.post(f"{base}/complete", AUTHORISER, json={"data": {}}), 403, "role-missing")

    done = api.post(f"{base}/complete", APPLICANT, json={"data": {"subject": "Operation Kestrel"}})
    assert done.status_code == 200, done.get_data(as_text=True)
    body = done.get_json()
    assert (body["status"], body["assignee"], body["completed_by"]) == ("completed", "dc.jones", "dc.jones")
    assert_problem(
        api.post(f"{base}/complete", APPLICANT, json={"data": {"subject": "Again"}}), 409, "task-not-ready"
    )
    [review] = open_tasks(api, AUTHORISER)
    assert (review["name"], review["summary"]) == ("Review", "Review 1")
    # Reading a completed task shows what was submitted.
    read = api.get(base, APPLICANT)
    assert read.status_code == 200
    assert read.get_json()["data"]["subject"] == "Operation Kestrel"


def test_complete_refuses_a_task_held_by_someone_else_or_of_a_suspended_case(
    api: Api, services: Services, submit_task: dict[str, str]
) -> None:
    base = f"/api/v1/tasks/{submit_task['task_id']}"
    assert api.post(f"{base}/claim", COLLEAGUE).status_code == 200
    assert_problem(
        api.post(f"{base}/complete", APPLICANT, json={"data": {"subject": "Kestrel"}}), 409, "task-not-ready"
    )
    with transaction(services.sessions) as session:
        session.get(ProcessInstance, submit_task["instance_id"]).status = "suspended"  # type: ignore[union-attr]
    assert_problem(
        api.post(f"{base}/complete", COLLEAGUE, json={"data": {"subject": "Kestrel"}}), 409, "instance-state"
    )


def test_eight_clients_completing_one_task_one_wins(api: Api, submit_task: dict[str, str]) -> None:
    path = f"/api/v1/tasks/{submit_task['task_id']}/complete"
    people = [APPLICANT.but(subject=f"dc.{n}") for n in range(8)]
    headers = [api.headers(p) for p in people]
    barrier = threading.Barrier(len(people))
    statuses: list[int] = []
    bodies: list[dict[str, object]] = []
    lock = threading.Lock()

    def complete(index: int) -> None:
        client = api.app.test_client()
        barrier.wait()
        response = client.post(path, headers=headers[index], json={"data": {"subject": f"Subject {index}"}})
        with lock:
            statuses.append(response.status_code)
            bodies.append(response.get_json(force=True))

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(len(people))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] + [409] * 7, bodies
    assert all(b["code"] == "task-not-ready" for b in bodies if b.get("status") == 409)


def test_a_person_excluded_from_an_ordinary_task_may_neither_take_nor_complete_it(
    api: Api, submit_task: dict[str, str]
) -> None:
    """Separation of duties holds for every task with ``exclude_subjects``, not only for approvals."""
    both = Person("dc.jones", roles=("applicant", "authorising_officer"), name="DC Jones")
    submit = f"/api/v1/tasks/{submit_task['task_id']}/complete"
    assert api.post(submit, both, json={"data": {"subject": "Kestrel"}}).status_code == 200
    [review] = open_tasks(api, AUTHORISER)
    assert review["is_approval"] is False
    base = f"/api/v1/tasks/{review['id']}"
    for action, body in (("claim", None), ("complete", {"data": {"continue_review": False}})):
        problem = assert_problem(api.post(f"{base}/{action}", both, json=body), 403, "separation-of-duties")
        assert "separation of duties" in problem["detail"]
    done = api.post(f"{base}/complete", AUTHORISER, json={"data": {"continue_review": False}})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["completed_by"] == "supt.khan"
