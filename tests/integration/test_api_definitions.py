"""Definitions and deployments over HTTP: multipart uploads, versions, validation problems, size limits."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import sqlalchemy as sa
from api_support import API_FIXTURES, APPROVAL_FILES, Api, Person, assert_problem
from flask import Flask

from api.app import create_app
from auth.settings import AuthSettings
from engine.container import Services
from engine.db import transaction
from engine.models import AuditEvent, ProcessDefinition
from engine.settings import Settings

DESIGNER = Person("pd.owen", roles=("process_designer",), units=(), scopes=("definitions:deploy",))
READER = Person("dc.reader", roles=("applicant",), scopes=("tasks:read",))


def fixture_bytes(name: str) -> bytes:
    path = API_FIXTURES / name
    if not path.exists():
        path = API_FIXTURES / "forms" / name
    return path.read_bytes()


def upload(
    api: Api, person: Person | None, files: dict[str, bytes], path: str = "/api/v1/deployments"
) -> Any:
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return api.post(path, person, data=data, content_type="multipart/form-data")


def approval_files() -> dict[str, bytes]:
    return {name: fixture_bytes(name) for name in APPROVAL_FILES}


def test_deploy_versions_by_content_and_records_who_deployed(api: Api, services: Services) -> None:
    first = upload(api, DESIGNER, approval_files())
    assert first.status_code == 201, first.get_data(as_text=True)
    body = first.get_json()
    assert body["deployed"] is True
    assert body["files"] == list(APPROVAL_FILES)
    assert sorted((d["key"], d["version"], d["created"]) for d in body["definitions"]) == [
        ("api_approval", 1, True),
        ("api_approval_strict", 1, True),
    ]
    same = upload(api, DESIGNER, approval_files())
    assert same.status_code == 200
    assert [d["created"] for d in same.get_json()["definitions"]] == [False, False]

    changed = approval_files()
    changed["api_approval.bpmn"] = changed["api_approval.bpmn"].replace(
        b"Authorise directed", b"Authorise covert"
    )
    second = upload(api, DESIGNER, changed)
    assert second.status_code == 201
    assert sorted((d["key"], d["version"]) for d in second.get_json()["definitions"]) == [
        ("api_approval", 2),
        ("api_approval_strict", 1),
    ]
    with transaction(services.sessions) as session:
        events = session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "definition.deployed").order_by(AuditEvent.id)
        ).all()
    assert [(e.actor, e.record_id, e.chain) for e in events] == [
        ("pd.owen", "api_approval:1", "system"),
        ("pd.owen", "api_approval_strict:1", "system"),
        ("pd.owen", "api_approval:2", "system"),
    ]


def test_read_definitions_versions_and_source(api: Api) -> None:
    original = approval_files()
    assert upload(api, DESIGNER, original).status_code == 201
    changed = {
        **original,
        "api_approval.bpmn": original["api_approval.bpmn"].replace(b"Directed", b"Intrusive"),
    }
    assert upload(api, DESIGNER, changed).status_code == 201

    listing = api.get("/api/v1/process-definitions", READER).get_json()["items"]
    assert [(d["key"], d["name"], d["latest_version"]) for d in listing] == [
        ("api_approval", "Intrusive surveillance", 2),
        ("api_approval_strict", "Source tasking", 1),
    ]
    latest = api.get("/api/v1/process-definitions/api_approval", READER).get_json()
    assert (latest["version"], latest["deployed_by"], latest["source_name"]) == (
        2,
        "pd.owen",
        "api_approval.bpmn",
    )
    assert latest["forms"] == ["api_application", "api_decision"]
    versions = api.get("/api/v1/process-definitions/api_approval/versions", READER).get_json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    source = api.get("/api/v1/process-definitions/api_approval/versions/1/bpmn", READER)
    assert source.status_code == 200
    assert source.mimetype == "application/xml"
    assert source.data == original["api_approval.bpmn"]

    assert_problem(api.get("/api/v1/process-definitions", None), 401, "token-missing")
    assert_problem(api.get("/api/v1/process-definitions/nope", READER), 404, "not-found")
    assert_problem(api.get("/api/v1/process-definitions/nope/versions", READER), 404, "not-found")
    assert_problem(api.get("/api/v1/process-definitions/api_approval/versions/7/bpmn", READER), 404)


def test_validate_runs_every_check_and_deploys_nothing(api: Api, services: Services) -> None:
    response = upload(api, DESIGNER, approval_files(), "/api/v1/deployments/validate")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["valid"], body["deployed"]) == (True, False)
    assert {(d["key"], d["version"]) for d in body["definitions"]} == {
        ("api_approval", 1),
        ("api_approval_strict", 1),
    }
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessDefinition)) == 0


def test_problems_name_the_file_line_and_element(api: Api, services: Services) -> None:
    without_form = {"api_approval.bpmn": fixture_bytes("api_approval.bpmn")}
    for path in ("/api/v1/deployments/validate", "/api/v1/deployments"):
        problem = assert_problem(upload(api, DESIGNER, without_form, path), 422, "definition-invalid")
        found = {(p["file"], p["element_id"]) for p in problem["problems"]}
        assert found == {("api_approval.bpmn", "apply"), ("api_approval.bpmn", "authorise")}
        assert all(isinstance(p["line"], int) and p["line"] > 0 for p in problem["problems"])

    broken = {"broken.bpmn": b'<?xml version="1.0"?>\n<bpmn:definitions>\n  <oops>\n</bpmn:definitions>'}
    [syntax] = assert_problem(upload(api, DESIGNER, broken), 422)["problems"]
    assert (syntax["file"], syntax["line"]) == ("broken.bpmn", 2)
    doctype = {"x.bpmn": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'}
    assert_problem(upload(api, DESIGNER, doctype), 422, "unsafe-xml")
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessDefinition)) == 0


def test_uploads_are_checked_before_deployment(api: Api) -> None:
    wrong = assert_problem(upload(api, DESIGNER, {"notes.txt": b"hello"}), 422, "validation-failed")
    assert list(wrong["errors"]) == ["$.files[0]"]
    not_utf8 = assert_problem(upload(api, DESIGNER, {"x.bpmn": b"\xff\xfe<x/>"}), 422)
    assert "not UTF-8" in not_utf8["errors"]["$.files[0]"][0]
    nothing = api.post("/api/v1/deployments", DESIGNER, data={}, content_type="multipart/form-data")
    assert "$.files" in assert_problem(nothing, 422, "validation-failed")["errors"]
    assert_problem(upload(api, None, approval_files()), 401, "token-missing")
    assert_problem(upload(api, READER, approval_files()), 403, "scope-missing")
    assert_problem(
        upload(api, READER, approval_files(), "/api/v1/deployments/validate"), 403, "scope-missing"
    )


def test_size_limits_are_413_problems(
    settings: Settings, services: Services, auth_settings: AuthSettings
) -> None:
    small = dataclasses.replace(settings, max_upload_bytes=4096, max_body_bytes=2048)
    app: Flask = create_app(small, services=services, auth_settings=auth_settings, TESTING=True)
    api = Api(app, auth_settings)
    big = {"api_approval.bpmn": fixture_bytes("api_approval.bpmn") + b" " * 4096}
    assert_problem(upload(api, DESIGNER, big), 413)
    huge = {"api_approval.bpmn": b" " * 100_000}
    assert_problem(upload(api, DESIGNER, huge), 413)
    payload = {
        "process_key": "x",
        "unit": "MIT-North",
        "classification": "SECRET",
        "variables": {"a": "b" * 3000},
    }
    starter = Person("dc.big", roles=("applicant",), scopes=("instances:write",))
    assert_problem(api.post("/api/v1/process-instances", starter, json=payload), 413)


def test_an_upload_limit_below_the_body_limit_is_enforced_by_the_endpoint(
    settings: Settings, services: Services, auth_settings: AuthSettings
) -> None:
    small = dataclasses.replace(settings, max_upload_bytes=2048, max_body_bytes=1024 * 1024)
    api = Api(create_app(small, services=services, auth_settings=auth_settings, TESTING=True), auth_settings)
    problem = assert_problem(upload(api, DESIGNER, approval_files()), 413, "limit-exceeded")
    assert "2048" in problem["detail"]
