"""Inputs that would otherwise fail deep inside a request: deep nesting and NUL characters."""

from __future__ import annotations

from api_support import APPLICANT, FIXTURES, Api, assert_problem, deploy, open_tasks, start_case

from engine.container import Services


def test_deeply_nested_json_is_refused_before_any_view(api: Api, services: Services) -> None:
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    start_case(services, "review_loop")
    [task] = open_tasks(api, APPLICANT)
    path = f"/api/v1/tasks/{task['id']}/complete"
    nested: object = "x"
    for _ in range(40):
        nested = {"a": nested}
    problem = assert_problem(api.post(path, APPLICANT, json={"data": nested}), 422, "limit-exceeded")
    assert "32" in problem["detail"]
    very_deep = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep = api.post(path, APPLICANT, data=very_deep, content_type="application/json")
    assert_problem(deep, 422, "limit-exceeded")
    assert open_tasks(api, APPLICANT)[0]["status"] == "ready"


def test_nul_characters_are_refused_wherever_they_come(api: Api, services: Services) -> None:
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    start_case(services, "review_loop")
    [task] = open_tasks(api, APPLICANT)
    path = f"/api/v1/tasks/{task['id']}/complete"
    in_value = assert_problem(api.post(path, APPLICANT, json={"data": {"subject": "a\u0000b"}}), 422)
    assert in_value["errors"] == {"$.data.subject": ["NUL characters are not allowed"]}
    in_key = assert_problem(api.post(path, APPLICANT, json={"data": {"k\u0000": 1}}), 422)
    assert list(in_key["errors"]) == ["$.data"]
    assert_problem(api.get("/api/v1/tasks", APPLICANT, query_string={"q": "a\x00b"}), 422)
    assert_problem(api.get("/api/v1/process-definitions/review%00loop", APPLICANT), 404)
    assert open_tasks(api, APPLICANT)[0]["status"] == "ready"
