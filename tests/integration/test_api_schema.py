"""Property-based checks of the whole API against its own OpenAPI document (Schemathesis).

Every operation is called with generated inputs and a valid token: no answer may be a 5xx, and every
answer must match the documented status codes, content types, headers and response schemas. The
operations are driven from Hypothesis directly, one property per operation, so that every failing
operation is reported rather than only the first.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from api_support import APPROVAL_FILES, FIXTURES, Api, Person, deploy, start_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.models import HumanTask, ProcessInstance

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a development dependency")

# Imported once schemathesis is known to be installed.
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EVERYONE = Person(
    "ops.everything",
    roles=("applicant", "investigator", "authorising_officer", "supervisor", "review_officer"),
    units=("MIT-North",),
    rank="chief_constable",
    clearance="TOP SECRET",
    scopes=(
        "tasks:read",
        "tasks:write",
        "instances:read",
        "instances:write",
        "instances:migrate",
        "instances:erase",
        "approvals:decide",
        "definitions:deploy",
        "audit:read",
        "messages:send",
        "admin",
    ),
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 30
HEALTH = "/api/v1/health/"  # the probes are public and answer 503 by design while no worker runs


def seed_cases(services: Services) -> dict[str, list[Any]]:
    """Definitions and cases in several states, and the ids path parameters can be drawn from."""
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    deploy(services, *APPROVAL_FILES, "failing_step.bpmn", "api_message.bpmn")
    for key in ("review_loop", "api_approval", "api_approval", "api_message", "failing_step"):
        start_case(services, key)
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        for task in session.scalars(sa.select(HumanTask).where(HumanTask.element_id.in_(("apply", "enter")))):
            data = {"operation": "Kestrel", "team": ["x"]} if task.element_id == "apply" else {"divisor": 0}
            service.complete_task(task.id, data, actor=Actor("dc.jones"))
    with services.sessions() as session:
        return {
            "task_id": list(session.scalars(sa.select(HumanTask.id).order_by(HumanTask.id))),
            "instance_id": list(session.scalars(sa.select(ProcessInstance.id).order_by(ProcessInstance.id))),
            "key": ["review_loop", "api_approval", "failing_step"],
            "version": [1],
        }


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_answers_as_documented(api: Api, services: Services, mode: GenerationMode) -> None:
    """Valid inputs (positive) and inputs that break the schema (negative): no 5xx, all as documented."""
    known = seed_cases(services)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    headers = api.headers(EVERYONE)
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if not op.path.startswith(HEALTH)]
    # Cancelling and suspending the seeded cases last leaves their tasks to the other operations first.
    operations.sort(key=lambda op: op.path.endswith(("/cancel", "/suspend")))
    assert len(operations) >= 25

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode), data=st.data())
        def answers_as_documented(case: Any, data: st.DataObject) -> None:
            for name in list(case.path_parameters or {}):
                # Half the time aim at something that exists, so that more than the 404 path is walked.
                if name in known and data.draw(st.booleans(), label=f"real {name}"):
                    case.path_parameters[name] = data.draw(st.sampled_from(known[name]), label=name)
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            answers_as_documented()
        except Unsatisfiable:
            continue  # nothing about this operation's input can be made invalid (negative mode)
        except (Exception, FailureGroup) as exc:  # noqa: BLE001  (collect every failure, then report them all)
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
