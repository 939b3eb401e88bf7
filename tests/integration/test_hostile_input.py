"""Hostile input over HTTP: XML attacks, oversized uploads, oversized case data, and a crowd on one task.

Each refusal is a problem document that says what and where, and nothing already stored changes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import APPLICANT, FIXTURES, Api, Person, assert_problem, deploy, start_case
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from api.app import create_app
from auth.settings import AuthSettings
from engine.audit import verify
from engine.container import Services
from engine.db import transaction
from engine.models import AuditEvent, HumanTask, ProcessDefinition, ProcessInstance, TaskHistory
from engine.settings import Settings

DESIGNER = Person("pd.owen", roles=("process_designer",), units=(), scopes=("definitions:deploy",))

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <bpmn:process id="leak" isExecutable="true"><bpmn:documentation>&secret;</bpmn:documentation>
  <bpmn:startEvent id="s"/></bpmn:process>
</bpmn:definitions>"""

PARAMETER_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"/>"""

LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b']>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
    + b'<bpmn:process id="bomb" isExecutable="true"><bpmn:documentation>&lol9;</bpmn:documentation>'
    + b"</bpmn:process></bpmn:definitions>"
)

DMN_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="&secret;"/>"""


def upload(api: Api, files: dict[str, bytes], path: str = "/api/v1/deployments") -> Any:
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return api.post(path, DESIGNER, data=data, content_type="multipart/form-data")


def definitions(services: Services) -> int:
    with transaction(services.sessions) as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(ProcessDefinition)) or 0)


def good_bpmn() -> bytes:
    return (FIXTURES / "review_loop.bpmn").read_bytes()


@pytest.mark.parametrize(
    ("name", "content"),
    [("leak.bpmn", XXE), ("remote.bpmn", PARAMETER_XXE), ("bomb.bpmn", LAUGHS), ("table.dmn", DMN_XXE)],
    ids=["xxe", "parameter-entity", "entity-expansion", "dmn-xxe"],
)
def test_xml_attacks_are_refused_and_nothing_is_deployed(
    api: Api, services: Services, name: str, content: bytes
) -> None:
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    assert definitions(services) == 1
    # The hostile file travels with a good one: the whole deployment is refused, not just the bad file.
    for path in ("/api/v1/deployments", "/api/v1/deployments/validate"):
        response = upload(
            api, {"review_loop.bpmn": good_bpmn().replace(b"Review", b"Second review"), name: content}, path
        )
        problem = assert_problem(response, 422, "unsafe-xml")
        assert name in json.dumps(problem)
        assert "root:" not in response.get_data(as_text=True)  # no file content leaks into the reply
    assert definitions(services) == 1


def test_an_upload_over_the_default_five_megabytes_is_413_and_nothing_is_deployed(
    api: Api, services: Services
) -> None:
    assert Settings(database_url="sqlite://").max_upload_bytes == 5 * 1024 * 1024
    padded = good_bpmn().replace(
        b"</bpmn:definitions>", b"<!--" + b"x" * (5 * 1024 * 1024) + b"--></bpmn:definitions>"
    )
    # Encoded here: Werkzeug's test client would spool a body this large to a file it never closes.
    boundary = "opsflow-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="review_loop.bpmn"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + padded
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = api.post(
        "/api/v1/deployments", DESIGNER, data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    problem = assert_problem(response, 413, "limit-exceeded")
    assert problem["detail"] == "the request body is larger than the 5242880-byte limit"
    assert problem["limit"] == 5 * 1024 * 1024
    assert definitions(services) == 0


def test_case_data_over_the_limit_is_refused_at_start_and_completion_and_nothing_changes(
    settings: Settings, services: Services, auth_settings: AuthSettings
) -> None:
    limited = dataclasses.replace(settings, max_instance_data_bytes=4096)
    services.context = dataclasses.replace(services.context, max_instance_data_bytes=4096)
    api = Api(
        create_app(limited, services=services, auth_settings=auth_settings, TESTING=True), auth_settings
    )
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    big = {"notes": "x" * 5000}

    start = api.post(
        "/api/v1/process-instances",
        APPLICANT,
        json={
            "process_key": "review_loop",
            "unit": "MIT-North",
            "classification": "SECRET",
            "variables": big,
        },
    )
    problem = assert_problem(start, 422, "limit-exceeded")
    assert "4096" in problem["detail"]
    assert list(problem["errors"]) == ["$.variables"]
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessInstance)) == 0

    instance_id = start_case(services, "review_loop", case_ref="C-1")
    with transaction(services.sessions) as session:
        task = session.scalars(sa.select(HumanTask).where(HumanTask.instance_id == instance_id)).one()
        version = session.get(ProcessInstance, instance_id).lock_version  # type: ignore[union-attr]
    complete = api.post(
        f"/api/v1/tasks/{task.id}/complete", APPLICANT, json={"data": {"subject": "Kestrel", **big}}
    )
    assert assert_problem(complete, 422, "limit-exceeded")["errors"]
    with transaction(services.sessions) as session:
        assert session.get(HumanTask, task.id).status == "ready"  # type: ignore[union-attr]
        assert session.get(ProcessInstance, instance_id).lock_version == version  # type: ignore[union-attr]
        assert session.scalar(sa.select(sa.func.count()).select_from(TaskHistory)) == 1  # the start event


# -- many clients on one task, over real HTTP on PostgreSQL -----------------------------------------


POSTGRES_ONLY = pytest.param(
    "postgresql",
    id="postgresql",
    marks=pytest.mark.skipif(
        not os.environ.get("OPSFLOW_TEST_DATABASE_URL"), reason="row locks are a PostgreSQL behaviour"
    ),
)


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The app behind a real threaded HTTP server on a free local port."""
    httpd: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=10)


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    request = urllib.request.Request(  # noqa: S310  (a local test server over http)
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  (a local test server)
            return response.status, json.loads(response.read()), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get_content_type()


def _crowd(url: str, tokens: list[str], body: dict[str, Any]) -> list[tuple[int, dict[str, Any], str]]:
    barrier = threading.Barrier(len(tokens))
    results: list[tuple[int, dict[str, Any], str]] = []
    lock = threading.Lock()

    def one(token: str) -> None:
        barrier.wait()
        result = _post(url, token, body)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return results


@pytest.mark.parametrize("backend", [POSTGRES_ONLY], indirect=True)
@pytest.mark.parametrize("action", ["claim", "complete"])
def test_eight_http_clients_on_one_task_exactly_one_wins(
    api: Api, services: Services, server: str, action: str
) -> None:
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    instance_id = start_case(services, "review_loop", case_ref="C-8")
    with transaction(services.sessions) as session:
        task_id = session.scalar(sa.select(HumanTask.id).where(HumanTask.instance_id == instance_id))
    people = [APPLICANT.but(subject=f"dc.crowd{n}") for n in range(8)]
    body = {"data": {"subject": "Operation Kestrel"}} if action == "complete" else {}

    results = _crowd(f"{server}/api/v1/tasks/{task_id}/{action}", [api.token(p) for p in people], body)

    statuses = sorted(status for status, _body, _type in results)
    assert statuses == [200] + [409] * 7, results
    for status, problem, content_type in results:
        if status == 409:
            assert content_type == "application/problem+json"
            assert problem["code"] in {"task-not-ready", "task-held", "concurrent-update"}, problem
    [winner] = [body for status, body, _ in results if status == 200]
    with transaction(services.sessions) as session:
        task = session.get(HumanTask, task_id)
        assert task is not None
        events = session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.instance_id == instance_id)
        ).all()
        assert verify(session)[1] is None
    if action == "claim":
        assert (task.status, task.assignee) == ("ready", winner["assignee"])
        assert events.count("task.claimed") == 1
    else:
        assert (task.status, task.completed_by) == ("completed", winner["completed_by"])
        assert events.count("task.completed") == 1
