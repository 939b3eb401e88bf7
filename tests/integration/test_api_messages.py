"""Messages and incidents over HTTP: correlation outcomes as statuses, incidents of visible cases only."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import APPLICANT, OUTSIDER, Api, Person, assert_problem, deploy, open_tasks, start_case

from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService

LAB = Person("client:lab", roles=(), units=(), scopes=("messages:send",), name="Forensic lab")


def send(api: Api, person: Person | None = LAB, **body: Any) -> Any:
    payload = {"name": "forensic_report", "correlation": {"business_key": "OP-1"}, **body}
    return api.post("/api/v1/messages", person, json=payload)


@pytest.fixture
def waiting(services: Services) -> dict[str, str]:
    deploy(services, "api_message.bpmn")
    return {
        "one": start_case(services, "api_message", business_key="OP-1"),
        "two_a": start_case(services, "api_message", business_key="OP-2"),
        "two_b": start_case(services, "api_message", business_key="OP-2"),
    }


def test_a_message_reaches_the_one_instance_waiting_for_it(
    api: Api, services: Services, waiting: dict[str, str]
) -> None:
    response = send(api, variables={"report_ref": "FR-77"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"instances": [waiting["one"]], "count": 1}
    [task] = open_tasks(api, APPLICANT, business_key="OP-1")
    assert task["name"] == "Read the forensic report"
    with transaction(services.sessions) as session:
        assert InstanceService(session, services.context).variables(waiting["one"])["report_ref"] == "FR-77"
    assert assert_problem(send(api), 404, "correlation-failed")["matches"] == 0


def test_several_matches_need_all(api: Api, waiting: dict[str, str]) -> None:
    several = assert_problem(send(api, correlation={"business_key": "OP-2"}), 409, "correlation-failed")
    assert several["matches"] == 2
    assert open_tasks(api, APPLICANT, business_key="OP-2") == []  # nothing was delivered
    response = send(api, correlation={"business_key": "OP-2"}, all=True)
    assert response.status_code == 200
    assert sorted(response.get_json()["instances"]) == sorted([waiting["two_a"], waiting["two_b"]])
    assert_problem(send(api, name="no_such_message"), 404, "correlation-failed")


def test_message_refusals(api: Api, waiting: dict[str, str]) -> None:
    assert_problem(send(api, None), 401, "token-missing")
    assert_problem(send(api, APPLICANT.but(scopes=("tasks:write",))), 403, "scope-missing")
    assert "$.name" in assert_problem(send(api, name=""), 422, "validation-failed")["errors"]
    nested = assert_problem(send(api, correlation={"business_key": ["OP-1"]}), 422, "validation-failed")
    assert any(path.startswith("$.correlation") for path in nested["errors"])
    alone = assert_problem(send(api, unit="MIT-North"), 422, "validation-failed")
    assert "$.classification" in alone["errors"]
    assert_problem(send(api, OUTSIDER, unit="MIT-North", classification="SECRET"), 403, "unit-mismatch")


def failed_case(api: Api, services: Services, business_key: str) -> str:
    instance_id = start_case(services, "failing_step", business_key=business_key)
    [enter] = open_tasks(api, APPLICANT, business_key=business_key)
    done = api.post(f"/api/v1/tasks/{enter['id']}/complete", APPLICANT, json={"data": {"divisor": 0}})
    assert done.status_code == 200, done.get_data(as_text=True)
    return instance_id


def test_incidents_of_visible_cases_with_filters_and_pages(api: Api, services: Services) -> None:
    deploy(services, "failing_step.bpmn")
    failed = [failed_case(api, services, f"OP-F{n}") for n in range(3)]
    south = start_case(services, "failing_step", business_key="OP-SOUTH", unit="MIT-South")
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        [enter] = service.open_tasks(south)
        service.complete_task(enter.id, {"divisor": 0}, actor=Actor("dc.moss"))

    first = api.get("/api/v1/incidents", APPLICANT, query_string={"limit": 2}).get_json()
    rest = api.get("/api/v1/incidents", APPLICANT, query_string={"cursor": first["next_cursor"]}).get_json()
    assert rest["next_cursor"] is None
    incidents = first["items"] + rest["items"]
    assert [i["instance_id"] for i in incidents] == failed
    assert {(i["element_id"], i["resolved_at"]) for i in incidents} == {("divide", None)}

    one = api.get("/api/v1/incidents", APPLICANT, query_string={"instance_id": failed[1]}).get_json()
    assert [i["instance_id"] for i in one["items"]] == [failed[1]]
    assert [i["instance_id"] for i in api.get("/api/v1/incidents", OUTSIDER).get_json()["items"]] == [south]
    assert api.get("/api/v1/incidents", APPLICANT.but(clearance="OFFICIAL")).get_json()["items"] == []
    other = api.get("/api/v1/incidents", APPLICANT, query_string={"process_key": "review_loop"})
    assert other.get_json()["items"] == []

    assert api.post(f"/api/v1/process-instances/{failed[0]}/retry", APPLICANT).status_code == 200
    resolved = api.get("/api/v1/incidents", APPLICANT, query_string={"resolved": "true"}).get_json()["items"]
    assert [(i["instance_id"], i["resolved_by"]) for i in resolved] == [(failed[0], "dc.jones")]
    still_open = api.get("/api/v1/incidents", APPLICANT).get_json()["items"]
    assert len(still_open) == 3  # the retry failed again and raised a new incident

    assert_problem(api.get("/api/v1/incidents", None), 401, "token-missing")
    assert_problem(api.get("/api/v1/incidents", APPLICANT.but(scopes=("tasks:read",))), 403, "scope-missing")
    assert_problem(api.get("/api/v1/incidents", APPLICANT, query_string={"cursor": "xx"}), 422)
