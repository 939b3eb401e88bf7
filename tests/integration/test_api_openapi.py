"""The OpenAPI document, the local docs page and the Prometheus metrics."""

from __future__ import annotations

import re
from datetime import timedelta

from api_support import APPLICANT, FIXTURES, Api, Person, assert_problem, deploy, open_tasks, start_case

from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.models import WorkerHeartbeat

PROBLEM = "application/problem+json"
OPERATOR = Person("client:prometheus", roles=(), units=(), scopes=("admin",))
PUBLIC = {"/api/v1/health/live", "/api/v1/health/ready"}


def test_every_protected_operation_declares_its_scopes_and_problems(api: Api) -> None:
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"] == "3.1.0"
    scheme = spec["components"]["securitySchemes"]["oauth2"]
    declared = set(scheme["flows"]["clientCredentials"]["scopes"])
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 25
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        for status, answer in op["responses"].items():
            if int(status) >= 400:
                assert list(answer["content"]) == [PROBLEM], where
                assert answer["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/ProblemOut"}, (
                    where
                )
        if path in PUBLIC:
            assert "security" not in op, where
            continue
        [requirement] = op["security"]
        assert set(requirement) == {"oauth2"}, where
        assert set(requirement["oauth2"]) <= declared, where
        assert {"401", "403"} <= set(op["responses"]), where
        if "{" in path:
            assert "404" in op["responses"], where
    for name, answer in spec["components"].get("responses", {}).items():
        assert list(answer.get("content", {PROBLEM: None})) == [PROBLEM], name
    start = spec["paths"]["/api/v1/process-instances"]["post"]
    assert {"200", "201", "409", "422"} <= set(start["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in start["parameters"])
    deploy_op = spec["paths"]["/api/v1/deployments"]["post"]
    assert "multipart/form-data" in deploy_op["requestBody"]["content"]
    assert "413" in deploy_op["responses"]


def test_the_docs_page_needs_nothing_from_elsewhere(api: Api) -> None:
    page = api.client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert set(assets) == {"docs/assets/docs.css", "docs/assets/docs.js", "openapi.json"}
    for asset in ("docs.css", "docs.js"):
        body = api.client.get(f"/api/v1/docs/assets/{asset}")
        assert body.status_code == 200
        assert "://" not in body.get_data(as_text=True)  # no CDN, no external fonts
        body.close()
    assert "://" not in html


def test_metrics_count_cases_and_tasks_from_the_database(api: Api, services: Services) -> None:
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    start_case(services, "review_loop")
    start_case(services, "review_loop")
    assert len(open_tasks(api, APPLICANT)) == 2
    assert_problem(api.get("/api/v1/metrics", None), 401, "token-missing")
    assert_problem(api.get("/api/v1/metrics", APPLICANT), 403, "scope-missing")
    response = api.get("/api/v1/metrics", OPERATOR)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'opsflow_instances_started_total{process_key="review_loop"} 2.0' in text
    assert "opsflow_instances_completed_total" in text
    assert 'opsflow_open_tasks{role="applicant"} 2.0' in text
    assert "opsflow_metrics_database_up 1.0" in text
    timed = (
        'opsflow_http_request_duration_seconds_count{endpoint="/api/v1/tasks",method="GET",status="200"} 1.0'
    )
    assert timed in text


def _example_path(path: str) -> str:
    """The documented path with each parameter filled in with a well-formed value."""
    for name, value in (
        ("{task_id}", "6a9c3f8e-1111-4111-8111-111111111111"),
        ("{instance_id}", "6a9c3f8e-2222-4222-8222-222222222222"),
        ("{key}", "review_loop"),
        ("{version}", "1"),
    ):
        path = path.replace(name, value)
    assert "{" not in path, path
    return path


def test_every_protected_operation_refuses_no_token_and_a_token_without_its_scope(api: Api) -> None:
    spec = api.client.get("/api/v1/openapi.json").get_json()
    nobody = Person("dc.noscope", roles=("applicant",), scopes=())
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post"} or "security" not in op:
                continue
            url = _example_path(path)
            call = api.client.get if method == "get" else api.client.post
            missing = call(url)
            assert_problem(missing, 401, "token-missing")
            assert missing.headers["WWW-Authenticate"] == 'Bearer realm="opsflow"'
            [requirement] = op["security"]
            if requirement["oauth2"]:
                refused = assert_problem(call(url, headers=api.headers(nobody)), 403, "scope-missing")
                assert all(scope in refused["detail"] for scope in requirement["oauth2"])
            checked += 1
    assert checked >= 25


def test_probes_report_the_database_and_the_timer_workers(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    assert api.client.get("/api/v1/health/live").get_json() == {"status": "ok"}
    not_ready = api.client.get("/api/v1/health/ready")
    problem = assert_problem(not_ready, 503, "not-ready")
    assert problem["checks"] == {"database": "ok", "worker": "no recent heartbeat"}
    assert "worker: no recent heartbeat" in problem["detail"]

    worker = WorkerHeartbeat(
        worker_id="w-1", hostname="node-1", pid=42, started_at=clock.now(), seen_at=clock.now()
    )
    with transaction(services.sessions) as session:
        session.add(worker)
    ready = api.client.get("/api/v1/health/ready")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ok", "checks": {"database": "ok", "worker": "ok"}}

    clock.advance(timedelta(seconds=31))  # the worker stopped beating
    assert_problem(api.client.get("/api/v1/health/ready"), 503, "not-ready")
