"""Validation of process files: each check with its file, line and element id; the API, the CLI, the
development reload loop, and files saved by other modelers deploying and running unchanged."""

from __future__ import annotations

import io
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import APPLICANT, AUTHORISER, Api, Person, assert_problem, open_tasks
from click.testing import CliRunner

from api.cli import main
from engine.bpmn import Problem, SourceFile
from engine.container import Services
from engine.db import transaction
from engine.models import ProcessDefinition
from engine.reloader import ProcessReloader
from engine.settings import PROJECT_ROOT
from engine.validation import Catalogue, check_files, validate_files

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MODELER = FIXTURES / "modeler"
DESIGNER = Person("pd.owen", roles=("process_designer",), units=(), scopes=("definitions:deploy",))
PROPERTY_OFFICER = Person("pc.hale", roles=("property_officer",), name="PC Hale")
EXHIBITS_OFFICER = Person("dc.exhibits", roles=("exhibits_officer",), name="DC Exhibits")

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="defs" targetNamespace="https://opsflow.dev/test">
"""
FLOW_NODE = re.compile(
    r"<bpmn:(?:userTask|scriptTask|startEvent|endEvent|\w+Gateway|\w+Event|callActivity|"
    r'businessRuleTask|receiveTask|subProcess) id="(\w+)"'
)


def bpmn(body: str, *, key: str = "checked", lane: str = "Officer", extra: str = "") -> str:
    """A process whose flow nodes all sit in one lane named ``lane``; ``extra`` goes after the process."""
    refs = "".join(f"<bpmn:flowNodeRef>{i}</bpmn:flowNodeRef>" for i in FLOW_NODE.findall(body))
    return (
        f'{HEAD}  <bpmn:process id="{key}" isExecutable="true">\n'
        f'    <bpmn:laneSet id="lanes"><bpmn:lane id="lane_main" name="{lane}">{refs}</bpmn:lane>'
        "</bpmn:laneSet>\n"
        f"{body}\n  </bpmn:process>\n{extra}</bpmn:definitions>\n"
    )


def task(element_id: str, *props: tuple[str, str], name: str = "Step") -> str:
    rows = "".join(f'<spiffworkflow:property name="{k}" value="{v}"/>' for k, v in props)
    extensions = (
        f"\n      <bpmn:extensionElements><spiffworkflow:properties>{rows}</spiffworkflow:properties>"
        "</bpmn:extensionElements>"
        if props
        else ""
    )
    return f'    <bpmn:userTask id="{element_id}" name="{name}">{extensions}\n    </bpmn:userTask>'


def line(start: str, end: str, *nodes: str) -> str:
    """``start`` -> nodes... -> ``end`` joined by sequence flows, with a start and an end event."""
    chain = [start, *nodes, end]
    flows = "\n".join(
        f'    <bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}"/>'
        for a, b in itertools.pairwise(chain)
    )
    return f'    <bpmn:startEvent id="{start}"/>\n    <bpmn:endEvent id="{end}"/>\n{flows}'


def line_of(text: str, marker: str) -> int:
    [number] = [n for n, row in enumerate(text.splitlines(), start=1) if marker in row]
    return number


def found(
    problems: list[Problem], *, severity: str | None = None
) -> set[tuple[str, int | None, str | None, str]]:
    return {(p.file, p.line, p.element_id, p.code) for p in problems if severity in (None, p.severity)}


FORMS = Catalogue(forms={"application"}.__contains__)
GOOD = bpmn(task("apply", ("form", "application")) + "\n" + line("start", "end", "apply"))


def check(*files: SourceFile, catalogue: Catalogue = FORMS) -> list[Problem]:
    return check_files(list(files), catalogue=catalogue)


def test_a_well_formed_process_has_no_findings() -> None:
    assert check(SourceFile("good.bpmn", GOOD)) == []
    assert validate_files([SourceFile("good.bpmn", GOOD)], forms={"application"}.__contains__) == []


def test_unknown_form_and_invalid_form_files() -> None:
    text = bpmn(task("apply", ("form", "no_such_form")) + "\n" + line("start", "end", "apply"))
    [problem] = check(SourceFile("apply.bpmn", text))
    assert (problem.file, problem.line, problem.element_id, problem.code, problem.severity) == (
        "apply.bpmn",
        line_of(text, 'value="no_such_form"'),
        "apply",
        "form-unknown",
        "error",
    )
    assert "no_such_form" in problem.message

    not_json = SourceFile("broken.schema.json", '{"type": "object",\n  "properties": {\n    "a": }\n}')
    not_schema = SourceFile("odd.schema.json", '{"type": "objet"}')
    problems = check(SourceFile("good.bpmn", GOOD), not_json, not_schema)
    assert {(p.file, p.line, p.element_id, p.code) for p in problems} == {
        ("broken.schema.json", 3, None, "form-invalid"),
        ("odd.schema.json", None, "$.type", "form-invalid"),
    }


def test_lanes_must_give_every_user_task_a_role() -> None:
    nameless = bpmn(task("apply") + "\n" + line("start", "end", "apply"), lane="")
    [problem] = check(SourceFile("lanes.bpmn", nameless))
    assert found([problem]) == {
        ("lanes.bpmn", line_of(nameless, 'id="lane_main"'), "lane_main", "lane-without-role")
    }
    assert problem.severity == "error"
    assert "apply" in problem.message

    outside = bpmn(task("apply") + "\n" + line("start", "end", "apply")).replace(
        "<bpmn:flowNodeRef>apply</bpmn:flowNodeRef>", ""
    )
    assert found(check(SourceFile("outside.bpmn", outside))) == {
        ("outside.bpmn", line_of(outside, 'id="apply"'), "apply", "user-task-outside-lane")
    }
    # A role property stands in for the lane.
    with_role = outside.replace(
        '<bpmn:userTask id="apply" name="Step">',
        '<bpmn:userTask id="apply" name="Step">'
        "<bpmn:extensionElements><spiffworkflow:properties><spiffworkflow:property "
        'name="role" value="custody_officer"/></spiffworkflow:properties>'
        "</bpmn:extensionElements>",
    )
    assert check(SourceFile("role.bpmn", with_role)) == []


def test_scripts_and_expressions_must_compile_in_the_sandbox() -> None:
    body = (
        '    <bpmn:scriptTask id="calc" name="Calculate">\n'
        "      <bpmn:script>total = 1\n"
        "rate = total /\n"
        "</bpmn:script>\n"
        "    </bpmn:scriptTask>\n"
        '    <bpmn:scriptTask id="sneaky"><bpmn:script>kind = ().__class__</bpmn:script></bpmn:scriptTask>\n'
        + task("apply", ("priority", "50 +"))
        + "\n"
        + line("start", "end", "calc", "sneaky", "apply")
    )
    text = bpmn(body).replace(
        '<bpmn:sequenceFlow id="f_apply_end" sourceRef="apply" targetRef="end"/>',
        '<bpmn:sequenceFlow id="f_apply_end" sourceRef="apply" targetRef="end">'
        "<bpmn:conditionExpression>import os</bpmn:conditionExpression></bpmn:sequenceFlow>",
    )
    problems = check(SourceFile("scripts.bpmn", text))
    assert found(problems) == {
        ("scripts.bpmn", line_of(text, "rate = total /"), "calc", "script-invalid"),
        ("scripts.bpmn", line_of(text, "().__class__"), "sneaky", "script-invalid"),
        ("scripts.bpmn", line_of(text, 'value="50 +"'), "apply", "expression-invalid"),
        ("scripts.bpmn", line_of(text, "import os"), "f_apply_end", "expression-invalid"),
    }
    assert all(p.severity == "error" for p in problems)
    assert any("__class__" in p.message for p in problems)


def test_a_constant_due_property_must_be_iso_8601() -> None:
    body = (
        task("late", ("due", "'P2X'"))
        + "\n"
        + task("local", ("due", "'2026-04-14T23:00:00'"))
        + "\n"
        + task("fine", ("due", "'PT24H'"))
        + "\n"
        + task("computed", ("due", "calendar_months_end(granted_at, 3)"))
        + "\n"
        + line("start", "end", "late", "local", "fine", "computed")
    )
    text = bpmn(body)
    assert found(check(SourceFile("due.bpmn", text))) == {
        ("due.bpmn", line_of(text, "P2X"), "late", "due-invalid"),
        ("due.bpmn", line_of(text, "2026-04-14T23:00:00"), "local", "due-invalid"),
    }


def test_timer_expressions_are_checked() -> None:
    def timer(element_id: str, kind: str, value: str) -> str:
        return (
            f'    <bpmn:intermediateCatchEvent id="{element_id}">\n'
            f"      <bpmn:timerEventDefinition><bpmn:{kind}>{value}</bpmn:{kind}>"
            "</bpmn:timerEventDefinition>\n"
            "    </bpmn:intermediateCatchEvent>"
        )

    body = "\n".join(
        [
            timer("bad_duration", "timeDuration", "P3X"),
            timer("bad_expression", "timeDate", "deadline +"),
            timer("good_literal", "timeDuration", "PT72H"),
            timer("good_expression", "timeDate", "deadline"),
            line("start", "end", "bad_duration", "bad_expression", "good_literal", "good_expression"),
        ]
    )
    text = bpmn(body)
    problems = check(SourceFile("timers.bpmn", text))
    assert found(problems) == {
        ("timers.bpmn", line_of(text, "P3X"), "bad_duration", "timer-invalid"),
        ("timers.bpmn", line_of(text, "deadline +"), "bad_expression", "timer-invalid"),
    }


def test_decisions_and_called_processes_must_exist() -> None:
    body = (
        '    <bpmn:businessRuleTask id="decide"><bpmn:extensionElements>\n'
        "      <spiffworkflow:calledDecisionId>no_such_table</spiffworkflow:calledDecisionId>\n"
        "    </bpmn:extensionElements></bpmn:businessRuleTask>\n"
        '    <bpmn:callActivity id="call" calledElement="no_such_process"/>\n'
        + line("start", "end", "decide", "call")
    )
    text = bpmn(body)
    assert found(check(SourceFile("refs.bpmn", text))) == {
        ("refs.bpmn", line_of(text, "no_such_table"), "decide", "decision-unknown"),
        ("refs.bpmn", line_of(text, 'id="call"'), "call", "process-unknown"),
    }
    known = Catalogue(processes={"no_such_process"}.__contains__, decisions={"no_such_table"}.__contains__)
    assert check(SourceFile("refs.bpmn", text), catalogue=known) == []


def test_messages_need_a_definition_and_should_declare_correlation() -> None:
    body = (
        '    <bpmn:intermediateCatchEvent id="await_result">\n'
        '      <bpmn:messageEventDefinition messageRef="msg_result"/>\n'
        "    </bpmn:intermediateCatchEvent>\n"
        '    <bpmn:intermediateCatchEvent id="await_other">\n'
        '      <bpmn:messageEventDefinition messageRef="msg_missing"/>\n'
        "    </bpmn:intermediateCatchEvent>\n"
        '    <bpmn:intermediateCatchEvent id="await_keyed">\n'
        "      <bpmn:extensionElements><spiffworkflow:properties>"
        '<spiffworkflow:property name="correlation_keys" value="case_ref"/>'
        "</spiffworkflow:properties></bpmn:extensionElements>\n"
        '      <bpmn:messageEventDefinition messageRef="msg_result"/>\n'
        "    </bpmn:intermediateCatchEvent>\n"
        + line("start", "end", "await_result", "await_other", "await_keyed")
    )
    text = bpmn(body, extra='  <bpmn:message id="msg_result" name="lab_result"/>\n')
    problems = check(SourceFile("messages.bpmn", text))
    assert found(problems, severity="error") == {
        ("messages.bpmn", line_of(text, 'id="await_other"'), "await_other", "message-unknown")
    }
    assert found(problems, severity="warning") == {
        ("messages.bpmn", line_of(text, 'id="await_result"'), "await_result", "message-without-correlation")
    }


def test_unreachable_elements_dead_ends_and_endless_paths() -> None:
    body = (
        task("apply")
        + "\n"
        + task("orphan")
        + "\n"
        + task("stuck")
        + "\n"
        + line("start", "end", "apply")
        + '\n    <bpmn:sequenceFlow id="f_orphan" sourceRef="orphan" targetRef="end"/>'
        + '\n    <bpmn:sequenceFlow id="f_stuck" sourceRef="apply" targetRef="stuck"/>'
    )
    text = bpmn(body)
    problems = check(SourceFile("flow.bpmn", text))
    assert found(problems) == {
        ("flow.bpmn", line_of(text, 'id="orphan"'), "orphan", "unreachable"),
        ("flow.bpmn", line_of(text, 'id="stuck"'), "stuck", "dead-end"),
    }
    assert all(p.severity == "error" for p in problems)

    loop = bpmn(
        task("apply")
        + "\n"
        + task("again")
        + "\n"
        + '    <bpmn:startEvent id="start"/>\n'
        + '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="apply"/>\n'
        + '    <bpmn:sequenceFlow id="f2" sourceRef="apply" targetRef="again"/>\n'
        + '    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="apply"/>'
    )
    warnings = check(SourceFile("loop.bpmn", loop))
    assert {(p.element_id, p.code, p.severity) for p in warnings} == {
        ("start", "no-path-to-end", "warning"),
        ("apply", "no-path-to-end", "warning"),
        ("again", "no-path-to-end", "warning"),
    }


def test_a_process_needs_a_start_event_and_a_file_an_executable_process() -> None:
    text = bpmn(
        task("apply")
        + '\n    <bpmn:endEvent id="end"/>\n'
        + '    <bpmn:sequenceFlow id="f" sourceRef="apply" targetRef="end"/>'
    )
    assert found(check(SourceFile("nostart.bpmn", text))) == {
        ("nostart.bpmn", line_of(text, '<bpmn:process id="checked"'), "checked", "start-event-missing")
    }
    sketch = GOOD.replace('isExecutable="true"', 'isExecutable="false"')
    assert found(check(SourceFile("sketch.bpmn", sketch))) == {
        ("sketch.bpmn", 1, None, "process-not-executable")
    }


def gateway_process(*conditions: str, default: bool = False) -> str:
    flows = []
    for index, condition in enumerate(conditions):
        flows.append(
            f'    <bpmn:sequenceFlow id="c{index}" sourceRef="choose" targetRef="end">'
            f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>"
        )
    if default:
        flows.append('    <bpmn:sequenceFlow id="otherwise" sourceRef="choose" targetRef="end"/>')
    attribute = ' default="otherwise"' if default else ""
    return bpmn(
        f'    <bpmn:exclusiveGateway id="choose" name="Which way?"{attribute}/>\n'
        '    <bpmn:startEvent id="start"/>\n    <bpmn:endEvent id="end"/>\n'
        '    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="choose"/>\n' + "\n".join(flows)
    )


def test_an_exclusive_gateway_without_default_whose_conditions_may_all_fail_is_a_warning() -> None:
    text = gateway_process("level == 'high'", "level == 'low'")
    [problem] = check(SourceFile("gateway.bpmn", text))
    assert (problem.line, problem.element_id, problem.code, problem.severity) == (
        line_of(text, 'id="choose"'),
        "choose",
        "gateway-not-covered",
        "warning",
    )
    covered = [
        gateway_process("level == 'high'", "level == 'low'", default=True),
        gateway_process("level == 'high'", "level != 'high'"),
        gateway_process("urgent", "not urgent"),
        gateway_process("days &gt; 3", "days &lt;= 3"),
        gateway_process("a", "True"),
    ]
    for variant in covered:
        assert check(SourceFile("gateway.bpmn", variant)) == [], variant


def test_xml_and_xsd_errors_name_the_line_and_element() -> None:
    text = GOOD.replace('<bpmn:userTask id="apply"', '<bpmn:userTask id="apply" colour="red"')
    [problem] = check(SourceFile("xsd.bpmn", text))
    assert (problem.line, problem.element_id, problem.code) == (
        line_of(text, 'colour="red"'),
        "apply",
        "xsd-invalid",
    )
    [syntax] = check(SourceFile("syntax.bpmn", GOOD.replace("</bpmn:process>", "</bpmn:proces>")))
    assert (syntax.file, syntax.line, syntax.code) == (
        "syntax.bpmn",
        line_of(GOOD, "</bpmn:process>"),
        "xml-invalid",
    )
    twice = [SourceFile("a.bpmn", GOOD), SourceFile("b.bpmn", GOOD)]
    assert found(check(*twice)) == {
        ("b.bpmn", line_of(GOOD, '<bpmn:process id="checked"'), "checked", "process-duplicate")
    }


# -- every shipped file ----------------------------------------------------------------------------


def shipped_files() -> list[SourceFile]:
    paths = [
        *sorted((PROJECT_ROOT / "processes").glob("*.bpmn")),
        *sorted((PROJECT_ROOT / "processes").glob("*.dmn")),
        *sorted((PROJECT_ROOT / "forms").glob("*.json")),
    ]
    return [SourceFile(p.name, p.read_text(encoding="utf-8")) for p in paths]


def test_every_file_in_processes_and_forms_validates_clean() -> None:
    files = shipped_files()
    assert any(f.name.endswith(".bpmn") for f in files)
    problems = validate_files(files)
    assert [p.as_dict() for p in problems] == []


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment whose database file must never appear: validation uses no database."""
    database = tmp_path / "never.sqlite3"
    monkeypatch.setenv("OPSFLOW_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("OPSFLOW_PROCESSES_DIR", str(PROJECT_ROOT / "processes"))
    monkeypatch.setenv("OPSFLOW_FORMS_DIR", str(FIXTURES / "forms"))
    return database


def test_cli_validate_groups_problems_by_file_without_a_database(cli_env: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.bpmn"
    good.write_text(bpmn(task("apply", ("form", "test_application")) + "\n" + line("start", "end", "apply")))
    broken_text = bpmn(
        task("apply", ("form", "no_such_form")) + "\n" + line("start", "end", "apply"), key="broken"
    )
    broken = tmp_path / "broken.bpmn"
    broken.write_text(broken_text)
    warned_text = gateway_process("level == 'high'", "level == 'low'").replace('id="checked"', 'id="warned"')
    warned = tmp_path / "warned.bpmn"
    warned.write_text(warned_text)
    gateway_line = line_of(warned_text, 'id="choose"')

    result = CliRunner().invoke(main, ["validate", str(good), str(broken), str(warned)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines == [
        str(broken),
        f"  line {line_of(broken_text, 'no_such_form')} [apply] error form-unknown: "
        "form 'no_such_form' does not exist (no no_such_form.schema.json in forms/ or the deployment)",
        str(warned),
        f"  line {gateway_line} [choose] warning gateway-not-covered: "
        "the exclusive gateway has no default flow and its conditions may all be false, which would stop "
        "the case with an incident; add a default flow",
        "1 error(s), 1 warning(s) in 3 file(s)",
    ]

    as_json = CliRunner().invoke(main, ["validate", str(broken), str(warned), "--format", "json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert (report["valid"], report["errors"], report["warnings"]) == (False, 1, 1)
    assert [(p["file"], p["element_id"], p["code"], p["severity"]) for p in report["problems"]] == [
        ("broken.bpmn", "apply", "form-unknown", "error"),
        ("warned.bpmn", "choose", "gateway-not-covered", "warning"),
    ]
    assert report["problems"][0]["path"] == str(broken)

    only_warned = CliRunner().invoke(main, ["validate", str(warned)])
    assert only_warned.exit_code == 0
    assert CliRunner().invoke(main, ["validate", "--strict", str(warned)]).exit_code == 1
    assert not cli_env.exists()


def test_cli_validate_defaults_to_the_shipped_processes_and_resolves_siblings(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_FORMS_DIR", str(PROJECT_ROOT / "forms"))
    # One process on its own: the decision table it calls lives next to it in processes/.
    single = CliRunner().invoke(
        main, ["validate", str(PROJECT_ROOT / "processes" / "digital_forensics_request.bpmn")]
    )
    assert single.exit_code == 0, single.output
    assert single.output == "1 file(s) valid\n"
    assert not cli_env.exists()


# -- the API ---------------------------------------------------------------------------------------


def upload(api: Api, files: dict[str, bytes], path: str) -> Any:
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return api.post(path, DESIGNER, data=data, content_type="multipart/form-data")


def test_a_broken_file_is_rejected_with_its_file_line_and_element(api: Api, services: Services) -> None:
    text = bpmn(
        task("apply", ("form", "test_application"), ("due", "deadline +"))
        + "\n"
        + line("start", "end", "apply")
    )
    for path in ("/api/v1/deployments/validate", "/api/v1/deployments"):
        problem = assert_problem(upload(api, {"broken.bpmn": text.encode()}, path), 422, "definition-invalid")
        assert [
            (p["file"], p["line"], p["element_id"], p["code"], p["severity"]) for p in problem["problems"]
        ] == [("broken.bpmn", line_of(text, "deadline +"), "apply", "expression-invalid", "error")]
        assert f"broken.bpmn, line {line_of(text, 'deadline +')}, element apply" in problem["detail"]
    with transaction(services.sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessDefinition)) == 0


def test_warnings_do_not_block_a_deployment_and_are_reported(api: Api, services: Services) -> None:
    text = gateway_process("level == 'high'", "level == 'low'").encode()
    checked = upload(api, {"gateway.bpmn": text}, "/api/v1/deployments/validate")
    assert checked.status_code == 200, checked.get_data(as_text=True)
    warning = {
        "file": "gateway.bpmn",
        "line": line_of(text.decode(), 'id="choose"'),
        "element_id": "choose",
        "code": "gateway-not-covered",
        "severity": "warning",
    }
    [reported] = checked.get_json()["warnings"]
    assert {k: reported[k] for k in warning} == warning
    deployed = upload(api, {"gateway.bpmn": text}, "/api/v1/deployments")
    assert deployed.status_code == 201, deployed.get_data(as_text=True)
    assert [w["code"] for w in deployed.get_json()["warnings"]] == ["gateway-not-covered"]
    with transaction(services.sessions) as session:
        assert session.scalars(sa.select(ProcessDefinition.key)).all() == ["checked"]


# -- files saved by other modelers -----------------------------------------------------------------


def start(api: Api, person: Person, key: str, **variables: Any) -> str:
    body = {"process_key": key, "unit": "MIT-North", "classification": "OFFICIAL", "variables": variables}
    response = api.post("/api/v1/process-instances", person, json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def complete(api: Api, person: Person, task_id: str, data: dict[str, Any]) -> None:
    response = api.post(f"/api/v1/tasks/{task_id}/complete", person, json={"data": data})
    assert response.status_code == 200, response.get_data(as_text=True)


def status(api: Api, instance_id: str) -> str:
    response = api.get(f"/api/v1/process-instances/{instance_id}", APPLICANT.but(scopes=("instances:read",)))
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["status"])


def test_files_saved_by_camunda_modeler_and_bpmn_io_deploy_and_run_unchanged(api: Api) -> None:
    files = {p.name: p.read_bytes() for p in sorted(MODELER.glob("*.bpmn"))}
    assert b'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"' in files["camunda_property_return.bpmn"]
    assert b'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"' in files["bpmnio_exhibit_request.bpmn"]
    deployed = upload(api, files, "/api/v1/deployments")
    assert deployed.status_code == 201, deployed.get_data(as_text=True)
    body = deployed.get_json()
    assert {(d["key"], d["version"]) for d in body["definitions"]} == {
        ("property_return", 1),
        ("exhibit_request", 1),
    }
    assert body["warnings"] == []

    # Camunda Modeler: lanes become roles, the Python script and conditions run, the boundary timer is armed.
    case = start(api, PROPERTY_OFFICER, "property_return")
    [record] = open_tasks(api, PROPERTY_OFFICER)
    assert (record["element_id"], record["role"], record["form"]) == (
        "Activity_0record",
        "property_officer",
        "test_application",
    )
    complete(api, PROPERTY_OFFICER, record["id"], {"subject": "Bicycle"})
    [approve] = open_tasks(api, AUTHORISER)
    assert (approve["element_id"], approve["role"]) == ("Activity_0approve", "authorising_officer")
    assert approve["due_at"] is not None  # the 48-hour boundary timer
    complete(api, AUTHORISER, approve["id"], {"continue_review": False})
    assert status(api, case) == "completed"

    refused = start(api, PROPERTY_OFFICER, "property_return")
    [record] = open_tasks(api, PROPERTY_OFFICER)
    complete(api, PROPERTY_OFFICER, record["id"], {"subject": "Firearm"})
    assert status(api, refused) == "completed"
    assert open_tasks(api, AUTHORISER) == []

    # bpmn.io with Camunda 8 (zeebe) extensions: the conditional branch and the default both run.
    urgent = start(api, EXHIBITS_OFFICER, "exhibit_request")
    [request] = open_tasks(api, EXHIBITS_OFFICER)
    complete(api, EXHIBITS_OFFICER, request["id"], {"subject": "Laptop JD/1", "a": 5})
    [fast] = open_tasks(api, EXHIBITS_OFFICER)
    assert (fast["element_id"], fast["priority"]) == ("Activity_0fasttrack", 90)
    complete(api, EXHIBITS_OFFICER, fast["id"], {})
    assert status(api, urgent) == "completed"


# -- serve --reload-processes ----------------------------------------------------------------------


def test_the_reload_loop_redeploys_changes_and_reports_errors_without_stopping(
    services: Services, tmp_path: Path
) -> None:
    processes, forms = tmp_path / "processes", tmp_path / "forms"
    processes.mkdir()
    forms.mkdir()
    (forms / "application.schema.json").write_text('{"type": "object"}')
    target = processes / "checked.bpmn"
    target.write_text(GOOD)
    reports: list[Any] = []
    reloader = ProcessReloader(services, directories=(processes, forms), report=reports.append)

    first = reloader.poll()
    assert first is not None
    assert first.deployed
    assert [(r.key, r.version, r.created) for r in first.results] == [("checked", 1, True)]
    assert first.changed == []  # the first poll loads what is there
    assert reloader.poll() is None  # nothing changed

    broken = GOOD.replace('value="application"', 'value="missing_form"')
    target.write_text(broken + "\n")
    second = reloader.poll()
    assert second is not None
    assert not second.deployed
    assert second.changed == ["checked.bpmn"]
    assert found(second.problems) == {
        ("checked.bpmn", line_of(broken, "missing_form"), "apply", "form-unknown")
    }

    target.write_text(GOOD.replace('name="Step"', 'name="Apply for authority"'))
    third = reloader.poll()
    assert third is not None
    assert third.deployed
    assert [(r.key, r.version, r.created) for r in third.results] == [("checked", 2, True)]
    assert reports == [first, second, third]
    with transaction(services.sessions) as session:
        rows = session.execute(
            sa.select(ProcessDefinition.key, ProcessDefinition.version, ProcessDefinition.deployed_by)
        ).all()
    assert sorted(rows) == [("checked", 1, "reload"), ("checked", 2, "reload")]
