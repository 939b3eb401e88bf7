"""Helpers for the HTTP API tests: the app on each backend, people with real signed tokens, deployments."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from auth.issuer import Identity, issue_token
from auth.keys import KeyStore
from auth.settings import AuthSettings
from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.registry import Deployer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
API_FIXTURES = FIXTURES / "api"
PROBLEM = "application/problem+json"
ALL_SCOPES = (
    "tasks:read",
    "tasks:write",
    "instances:read",
    "instances:write",
    "approvals:decide",
    "definitions:deploy",
    "audit:read",
    "messages:send",
)


@dataclass(frozen=True)
class Person:
    """Someone calling the API, described by the claims their token will carry."""

    subject: str
    roles: tuple[str, ...] = ()
    units: tuple[str, ...] = ("MIT-North",)
    rank: str | None = "constable"
    clearance: str = "SECRET"
    scopes: tuple[str, ...] = ALL_SCOPES
    name: str = ""

    def but(self, **changes: Any) -> Person:
        values = {**self.__dict__, **changes}
        return Person(**values)


APPLICANT = Person("dc.jones", roles=("applicant", "investigator"), name="DC Jones")
AUTHORISER = Person("supt.khan", roles=("authorising_officer",), rank="superintendent", name="Supt Khan")
INSPECTOR = Person("insp.ward", roles=("authorising_officer",), rank="inspector", name="Insp Ward")
SUPERVISOR = Person("ds.lee", roles=("supervisor", "applicant"), rank="sergeant", name="DS Lee")
OUTSIDER = Person("dc.moss", roles=("applicant",), units=("MIT-South",), name="DC Moss")
LOW_CLEARANCE = Person("pc.low", roles=("applicant",), clearance="OFFICIAL", name="PC Low")


class Api:
    """A test client that signs in as a ``Person`` for each call."""

    def __init__(self, app: Flask, auth_settings: AuthSettings) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.settings = auth_settings
        self.keys = KeyStore(auth_settings.key_dir, token_lifetime=auth_settings.token_lifetime)
        self._tokens: dict[Person, str] = {}

    def token(self, person: Person) -> str:
        if person not in self._tokens:
            identity = Identity(
                person.subject,
                person.name or person.subject,
                person.roles,
                person.units,
                person.rank,
                person.clearance,
            )
            issued = issue_token(
                self.keys, self.settings, identity, client_id="tests", scopes=person.scopes, grant="tests"
            )
            self._tokens[person] = issued.access_token
        return self._tokens[person]

    def headers(self, person: Person | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if person is not None:
            headers["Authorization"] = f"Bearer {self.token(person)}"
        return headers

    def get(self, path: str, person: Person | None, **kwargs: Any) -> TestResponse:
        headers = self.headers(person, kwargs.pop("headers", None))
        return self.client.get(path, headers=headers, **kwargs)

    def post(self, path: str, person: Person | None, json: Any = None, **kwargs: Any) -> TestResponse:
        headers = self.headers(person, kwargs.pop("headers", None))
        if json is None and "data" not in kwargs:
            return self.client.post(path, headers=headers, **kwargs)
        return self.client.post(path, headers=headers, json=json, **kwargs)


def assert_problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` (and ``code``); returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["type"].startswith("https://opsflow.dev/problems/")
    assert body["title"]
    if code is not None:
        assert body["code"] == code, body
    return dict(body)


def read_files(names: Iterable[str], directory: Path = API_FIXTURES) -> list[SourceFile]:
    out: list[SourceFile] = []
    for name in names:
        path = directory / name
        if not path.exists():
            path = directory / "forms" / name
        out.append(SourceFile(path.name, path.read_text()))
    return out


APPROVAL_FILES = (
    "api_approval.bpmn",
    "api_approval_strict.bpmn",
    "api_application.schema.json",
    "api_application.uischema.json",
    "api_decision.schema.json",
)


def deploy(services: Services, *names: str, directory: Path = API_FIXTURES) -> None:
    """Deploy fixture files through the engine (the deployment endpoint has its own tests)."""
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            read_files(names, directory), by="tests"
        )


def start_case(
    services: Services,
    key: str,
    *,
    by: Person = APPLICANT,
    unit: str = "MIT-North",
    classification: str = "SECRET",
    business_key: str | None = "OP-1",
    **variables: Any,
) -> str:
    """Start an instance through the engine; returns its id."""
    with transaction(services.sessions) as session:
        instance = InstanceService(session, services.context).start(
            key,
            business_key=business_key,
            variables=variables,
            unit=unit,
            classification=classification,
            started_by=Actor(by.subject, by.name),
        )
        return instance.id


def open_tasks(api: Api, person: Person, **filters: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/tasks", person, query_string=filters)
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.get_json()["items"])
