"""Scenarios for the kidnap and extortion response (processes/kidnap_response.bpmn), driven over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api, assert_problem
from scenario_support import PROCESSES, Case, deploy_project, person

from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.models import HumanTask

KEY = "kidnap_response"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

CALL_HANDLER = person("pc.hale", "force_incident_manager", rank="sergeant")
DUTY_INSPECTOR = person("insp.okoro", "duty_inspector", rank="inspector")
GOLD = person("supt.marsh", "gold", "silver", rank="superintendent")
GOLD_TOO_JUNIOR = person("ci.bray", "gold", rank="chief_inspector")
SILVER = person("dci.patel", "silver", rank="chief_inspector")
SILVER_TOO_JUNIOR = person("ps.ruiz", "silver", rank="sergeant")
COORDINATOR = person("ds.nolan", "negotiator_coordinator", rank="sergeant")
NEGOTIATOR = person("dc.frost", "negotiator")
FAMILY_LIAISON = person("dc.ames", "family_liaison_officer")
INTELLIGENCE = person("di.carr", "intelligence_cell", rank="inspector")
OUTSIDER = person("dc.moss", "negotiator", units=("MIT-South",))

APPLICANT = person("dc.jones", "applicant")
AUTHORISER = person("insp.ward", "authorising_officer", rank="inspector")
RECORD_KEEPER = person("ms.price", "central_record_keeper", rank=None)
ACC = person("acc.rowe", "authorising_officer", rank="assistant_chief_constable")

TEAM = ["dc.jones", "dc.frost", "ds.nolan"]


SETTINGS = json.loads((PROCESSES / "settings.json").read_text())


def setting(name: str) -> int:
    """A force setting the process reads, so the expected due times follow the settings file."""
    return int(SETTINGS[name]["value"])


def iso(moment: datetime) -> str:
    return moment.isoformat()


def due(value: str) -> datetime:
    return datetime.fromisoformat(value)


def history(case: Case, who: Any = GOLD) -> list[dict[str, Any]]:
    """The case's whole audit trail, page by page."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 200}
    while True:
        response = case.api.get(
            f"/api/v1/process-instances/{case.id}/history",
            who,
            query_string=query,
            headers={"X-Purpose": "kidnap scenario review"},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        items.extend(body["items"])
        if not body["next_cursor"]:
            return items
        query["cursor"] = body["next_cursor"]


@pytest.fixture
def deployed(services: Services) -> None:
    deploy_project(services)


def start(api: Api, services: Services, clock: FrozenClock, name: str = "OP-KESTREL") -> Case:
    return Case.start(
        api,
        services,
        clock,
        KEY,
        CALL_HANDLER,
        business_key=name,
        case_reference=f"{name}-001",
        operation_name=name,
        investigation_team=TEAM,
    )


REPORT = {
    "report_type": "kidnap",
    "reported_at": "2026-01-05T08:52:00+00:00",
    "caller_details": "Brother of the victim, by 999 call",
    "victim_name": "Sam Ellis",
    "victim_description": "Male, 34, last seen wearing a grey coat",
    "last_seen": "Leaving work at Deansgate, 18:10 on 4 January",
    "demand_made": True,
    "demand_details": "GBP 200,000 within 48 hours or he will be harmed",
    "initial_risk_summary": (
        "Credible demand with a photograph of the victim restrained; offenders known to use violence."
    ),
}


def assessment(outcome: str = "declare_kidnap", *, risk: bool = True) -> dict[str, Any]:
    return {
        "real_and_immediate_risk": risk,
        "assessment_outcome": outcome,
        "risk_rationale": (
            "A photograph shows the victim restrained and the demand names "
            "a deadline; the risk is real and immediate."
        ),
        "options_considered": ["warning_notice", "disruption_notice"],
        "assessed_at": "2026-01-05T09:05:00+00:00",
    }


NCA = {
    "notified_at": "2026-01-05T09:20:00+00:00",
    "nca_adviser": "AKEU duty adviser Grant",
    "nca_reference": "AKEU/26/0042",
}


def gold_strategy(*, terrorism: bool = False, position: str = "private_payment_lawful") -> dict[str, Any]:
    return {
        "strategic_intent": (
            "Preserve the life of the victim, secure his safe release and arrest the offenders."
        ),
        "policy_file_reference": "PF-KESTREL-1",
        "sensitive_policy_file_reference": "SPF-KESTREL-1",
        "ransom_demanded": True,
        "terrorism_indicators": terrorism,
        "payment_position": position,
    }


SILVER_COMMAND = {
    "silver_name": "DCI Patel",
    "tactical_plan": (
        "Negotiation cell at force HQ, surveillance on the drop site, "
        "firearms on standby, family liaison at the home."
    ),
    "bronze_leads": [
        {"function": "negotiation", "lead_name": "DS Nolan"},
        {"function": "family_liaison", "lead_name": "DC Ames"},
    ],
    "policy_file_reference": "PF-KESTREL-SILVER",
}

STRATEGY = {
    "strategy": (
        "Build rapport, slow the timetable, seek proof of life at every call, never agree a police payment."
    ),
    "negotiator_names": ["DC Frost", "DC Lowe"],
    "communication_channels": ["phone", "text"],
    "proof_of_life_approach": "Ask one prepared question per call; rotate through the family's questions.",
}

QUESTIONS = {
    "questions": [
        {"question": "What was the name of your first dog?", "answer_held_by": "Mother"},
        {"question": "Where did you go on holiday in 2019?", "answer_held_by": "Brother"},
        {"question": "What is your niece's middle name?", "answer_held_by": "Brother"},
    ],
    "family_members_consulted": "Mother and brother of the victim",
    "prepared_at": "2026-01-05T10:30:00+00:00",
}


def contact(n: int, *, result: str = "passed", status: str = "continue") -> dict[str, Any]:
    data: dict[str, Any] = {
        "contact_at": iso(T0 + timedelta(hours=2, minutes=n)),
        "channel": "phone",
        "verbatim_log": f"Contact {n}. Caller: 'You know what we want.' Negotiator: 'Let me speak to Sam.'",
        "proof_of_life_result": result,
        "negotiation_status": status,
        "terrorist_link_indicated": False,
    }
    if result != "not_asked":
        data["proof_of_life_question"] = QUESTIONS["questions"][n % 3]["question"]
        data["proof_of_life_answer"] = f"Answer {n} as spoken by the victim"
    return data


RESOLUTION = {
    "resolution_type": "release",
    "resolved_at": "2026-01-05T14:00:00+00:00",
    "victim_status": "safe",
    "resolution_summary": "Victim released unharmed at a lay-by; two offenders arrested nearby.",
}
HOT_DEBRIEF = {
    "held_at": "2026-01-05T15:30:00+00:00",
    "attendees": ["Gold", "Silver", "Negotiation cell"],
    "immediate_learning": "The family phone line needed recording from the first call.",
}
STRUCTURED_DEBRIEF = {
    "held_at": "2026-01-09T10:00:00+00:00",
    "attendees": ["Gold", "Silver", "NCA adviser"],
    "learning": "Proof-of-life rotation worked; the negotiation cell needed a second loggist by hour three.",
    "recommendations": ["Second loggist from the start"],
}
CONVERSION = {
    "investigation_reference": "MIT-26-0107",
    "sio_name": "DCI Patel",
    "handover_summary": "Two suspects in custody; exhibits from the lay-by with the crime scene manager.",
}
VICTIM_CARE = {
    "care_arrangements": "Medical check at hospital, then home with family; FLO stays with the family.",
    "interview_type": "achieving_best_evidence",
}
CLOSURE = {
    "closure_summary": (
        "Victim safe, offenders charged, debriefs held, policy files lodged with the major crime unit."
    ),
    "covert_authorities_cancelled": True,
    "policy_files_lodged": True,
}


def to_command(case: Case, *, notify: bool = True) -> None:
    """Report, assessment (declare a kidnap), NCA notified, Gold and Silver in command."""
    case.complete(CALL_HANDLER, "record_report", REPORT)
    case.complete(DUTY_INSPECTOR, "assess_threat_to_life", assessment())
    if notify:
        case.complete(CALL_HANDLER, "notify_nca", NCA)
    case.complete(GOLD, "take_gold_command", gold_strategy())
    case.complete(SILVER, "take_silver_command", SILVER_COMMAND)


def to_negotiation(case: Case, *, covert: list[dict[str, Any]] | None = None) -> None:
    to_command(case)
    case.complete(INTELLIGENCE, "identify_covert_needs", {"covert_authorities": covert or []})
    case.complete(COORDINATOR, "prepare_negotiation_strategy", STRATEGY)
    case.decide(
        SILVER,
        "approve_negotiation_strategy",
        "granted",
        "The strategy protects life and keeps control of the timetable with the cell.",
    )
    case.complete(FAMILY_LIAISON, "prepare_proof_of_life", QUESTIONS)


def test_main_path_from_report_to_closure_with_debriefs(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock)
    report = case.task(CALL_HANDLER, "record_report")
    assert report["priority"] == 100
    assert due(report["due_at"]) == T0 + timedelta(minutes=setting("kidnap.report_minutes"))
    assert case.inbox(DUTY_INSPECTOR) == []
    case.complete(CALL_HANDLER, "record_report", REPORT)

    assess = case.task(DUTY_INSPECTOR, "assess_threat_to_life")
    assert due(assess["due_at"]) == T0 + timedelta(minutes=setting("kidnap.threat_assessment_minutes"))
    # The form refuses a declaration when no real and immediate risk is recorded.
    bad = api.post(
        f"/api/v1/tasks/{assess['id']}/complete", DUTY_INSPECTOR, json={"data": assessment(risk=False)}
    )
    assert "assessment_outcome" in str(assert_problem(bad, 422)["errors"])
    case.complete(DUTY_INSPECTOR, "assess_threat_to_life", assessment())

    variables = case.variables(GOLD)
    assert variables["declared_at"] == iso(T0)
    assert variables["nca_notify_by"] == iso(
        T0 + timedelta(minutes=setting("kidnap.nca_notification_minutes"))
    )
    assert case.timers(GOLD) == {
        "nca_not_notified": iso(T0 + timedelta(minutes=setting("kidnap.nca_notification_minutes")))
    }
    assert due(case.task(CALL_HANDLER, "notify_nca")["due_at"]) == T0 + timedelta(
        minutes=setting("kidnap.nca_notification_minutes")
    )
    assert case.open_elements(GOLD) == ["notify_nca", "take_gold_command"]

    case.advance(timedelta(minutes=20))
    case.complete(CALL_HANDLER, "notify_nca", NCA)
    assert case.timers(GOLD) == {}

    # Gold needs a superintendent; Silver may not be Gold.
    gold_task = case.task(GOLD_TOO_JUNIOR, "take_gold_command")
    assert due(gold_task["due_at"]) == T0 + timedelta(minutes=setting("kidnap.command_minutes"))
    low = api.post(
        f"/api/v1/tasks/{gold_task['id']}/complete", GOLD_TOO_JUNIOR, json={"data": gold_strategy()}
    )
    assert "Superintendent" in assert_problem(low, 403, "rank-too-low")["detail"]
    case.complete(GOLD, "take_gold_command", gold_strategy())
    # A criminal kidnap: a private payment is lawful, so no terrorism referral stands in the way.
    assert case.open_elements(GOLD) == ["take_silver_command"]
    variables = case.variables(GOLD)
    assert (variables["gold"], variables["payment_position"]) == (GOLD.subject, "private_payment_lawful")
    silver_task = case.task(GOLD, "take_silver_command")
    own = api.post(f"/api/v1/tasks/{silver_task['id']}/complete", GOLD, json={"data": SILVER_COMMAND})
    assert "separation of duties" in assert_problem(own, 403, "separation-of-duties")["detail"]
    junior = api.post(
        f"/api/v1/tasks/{silver_task['id']}/complete", SILVER_TOO_JUNIOR, json={"data": SILVER_COMMAND}
    )
    assert_problem(junior, 403, "rank-too-low")
    case.complete(SILVER, "take_silver_command", SILVER_COMMAND)
    assert case.variables(GOLD)["silver"] == SILVER.subject

    case.complete(INTELLIGENCE, "identify_covert_needs", {"covert_authorities": []})
    case.complete(COORDINATOR, "prepare_negotiation_strategy", STRATEGY)
    # Returned by Silver: the coordinator rewrites it before any contact.
    case.decide(
        SILVER,
        "approve_negotiation_strategy",
        "returned",
        "Add how the cell will handle a demand to speak to the family directly.",
    )
    assert case.inbox(NEGOTIATOR) == []
    case.complete(COORDINATOR, "prepare_negotiation_strategy", STRATEGY)
    approval = case.task(SILVER, "approve_negotiation_strategy")
    assert approval["summary"] == "Negotiation strategy - OP-KESTREL"
    case.decide(
        SILVER,
        "approve_negotiation_strategy",
        "granted",
        "The strategy protects life and keeps control of the timetable with the cell.",
    )
    case.complete(FAMILY_LIAISON, "prepare_proof_of_life", QUESTIONS)

    first = case.task(NEGOTIATOR, "log_negotiation_contact")
    assert first["summary"] == "Contact 1 - OP-KESTREL"
    assert [t["element_id"] for t in case.inbox(OUTSIDER)] == []
    # A proof-of-life result without the question asked and the answer given is refused.
    missing = dict(contact(1))
    del missing["proof_of_life_answer"]
    refused = api.post(f"/api/v1/tasks/{first['id']}/complete", NEGOTIATOR, json={"data": missing})
    assert "proof_of_life_answer" in str(assert_problem(refused, 422)["errors"])
    case.complete(NEGOTIATOR, "log_negotiation_contact", contact(1))
    case.complete(NEGOTIATOR, "log_negotiation_contact", contact(2, result="not_asked"))
    # Failed proof of life goes to Silver before the next contact.
    case.complete(NEGOTIATOR, "log_negotiation_contact", contact(3, result="failed"))
    assert case.inbox(NEGOTIATOR) == []
    case.complete(
        SILVER,
        "review_after_proof_of_life",
        {"strategy_change": "Insist on hearing the victim's voice before any further talk of money."},
    )
    case.complete(NEGOTIATOR, "log_negotiation_contact", contact(4, status="victim_released"))

    variables = case.variables(GOLD)
    assert variables["contact_count"] == 4
    assert variables["proof_of_life_failures"] == 1
    assert variables["proof_of_life_passes"] == 2
    log = variables["contact_log"]
    assert [c["proof_of_life_result"] for c in log] == ["passed", "not_asked", "failed", "passed"]
    assert log[1]["proof_of_life_question"] is None
    assert log[2]["proof_of_life_question"] == QUESTIONS["questions"][0]["question"]
    assert {c["logged_by"] for c in log} == {NEGOTIATOR.subject}

    clock.advance(timedelta(hours=1))
    resolved_at = clock.now()
    case.complete(SILVER, "record_resolution", RESOLUTION)
    assert case.open_elements(GOLD) == ["arrange_victim_care", "convert_to_investigation", "hot_debrief"]
    assert due(case.task(SILVER, "hot_debrief")["due_at"]) == resolved_at + timedelta(
        hours=setting("kidnap.hot_debrief_hours")
    )
    assert due(case.task(FAMILY_LIAISON, "arrange_victim_care")["due_at"]) == resolved_at + timedelta(
        hours=setting("kidnap.victim_care_hours")
    )
    case.complete(SILVER, "hot_debrief", HOT_DEBRIEF)
    structured_due = resolved_at + timedelta(days=setting("kidnap.structured_debrief_days"))
    assert case.variables(GOLD)["structured_debrief_due"] == iso(structured_due)
    assert case.timers(GOLD) == {"structured_debrief_overdue": iso(structured_due)}
    case.complete(SILVER, "convert_to_investigation", CONVERSION)
    case.complete(FAMILY_LIAISON, "arrange_victim_care", VICTIM_CARE)
    case.complete(GOLD, "structured_debrief", STRUCTURED_DEBRIEF)

    closure = case.task(GOLD, "close_kidnap_response")
    assert closure["required_rank"] == "superintendent"
    case.complete(GOLD, "close_kidnap_response", CLOSURE)
    assert case.status(GOLD) == "completed"
    actions = [(e["action"], e["detail"].get("element_id")) for e in history(case)]
    assert ("task.decided", "approve_negotiation_strategy") in actions
    assert actions.count(("task.completed", "log_negotiation_contact")) == 4
    assert actions[-2:] == [("task.completed", "close_kidnap_response"), ("instance.completed", None)]


def test_threat_to_life_without_kidnap_ends_with_notices(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock, "OP-WREN")
    case.complete(
        CALL_HANDLER, "record_report", {**REPORT, "report_type": "threat_to_life", "demand_made": False}
    )
    case.complete(DUTY_INSPECTOR, "assess_threat_to_life", assessment("threat_to_life"))
    notices = case.task(DUTY_INSPECTOR, "issue_notices")
    empty = api.post(
        f"/api/v1/tasks/{notices['id']}/complete",
        DUTY_INSPECTOR,
        json={"data": {"notices": [], "review_at": iso(T0)}},
    )
    assert "notices" in str(assert_problem(empty, 422)["errors"])
    case.complete(
        DUTY_INSPECTOR,
        "issue_notices",
        {
            "notices": [
                {
                    "notice_type": "warning",
                    "served_on": "Sam Ellis",
                    "served_at": iso(T0 + timedelta(hours=1)),
                },
                {
                    "notice_type": "disruption",
                    "served_on": "Lee Crane",
                    "served_at": iso(T0 + timedelta(hours=2)),
                },
            ],
            "review_at": iso(T0 + timedelta(days=1)),
        },
    )
    assert case.status(GOLD) == "completed"
    assert "declared_at" not in case.variables(GOLD)
    assert case.timers(GOLD) == {}


def test_nca_not_notified_in_minutes_escalates(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock, "OP-HERON")
    case.complete(CALL_HANDLER, "record_report", REPORT)
    clock.advance(timedelta(minutes=4))
    declared = clock.now()
    case.complete(DUTY_INSPECTOR, "assess_threat_to_life", assessment())
    limit = timedelta(minutes=setting("kidnap.nca_notification_minutes"))
    assert case.timers(GOLD) == {"nca_not_notified": iso(declared + limit)}

    assert case.advance(limit - timedelta(seconds=1)) == 0
    assert case.inbox(DUTY_INSPECTOR) == []
    assert case.advance(timedelta(seconds=1)) == 1
    escalation = case.task(DUTY_INSPECTOR, "escalate_nca_notification")
    assert escalation["priority"] == 100
    assert due(escalation["due_at"]) == declared + limit + timedelta(
        minutes=setting("kidnap.nca_escalation_minutes")
    )
    # Non-interrupting: the notification itself is still owed.
    assert case.open_elements(GOLD) == ["escalate_nca_notification", "notify_nca", "take_gold_command"]
    assert case.timers(GOLD) == {}
    fired = [e for e in history(case) if e["action"] == "timer.fired"]
    assert [e["detail"]["element_id"] for e in fired] == ["nca_not_notified"]
    assert fired[0]["detail"]["due_at"] == iso(declared + limit)

    case.complete(
        DUTY_INSPECTOR,
        "escalate_nca_notification",
        {"escalation_notes": "FIM tied up on a firearms call; duty inspector phoned AKEU directly."},
    )
    case.complete(CALL_HANDLER, "notify_nca", {**NCA, "notified_at": iso(clock.now())})
    assert case.open_elements(GOLD) == ["take_gold_command"]
    assert case.variables(GOLD)["nca_reference"] == "AKEU/26/0042"


def test_terrorist_ransom_is_stopped_and_referred(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock, "OP-FALCON")
    case.complete(CALL_HANDLER, "record_report", REPORT)
    case.complete(DUTY_INSPECTOR, "assess_threat_to_life", assessment())
    case.complete(CALL_HANDLER, "notify_nca", NCA)
    gold_task = case.task(GOLD, "take_gold_command")
    # A private payment is lawful for a criminal kidnap, but not when the kidnappers are terrorists.
    lawful = api.post(
        f"/api/v1/tasks/{gold_task['id']}/complete",
        GOLD,
        json={"data": gold_strategy(terrorism=True, position="private_payment_lawful")},
    )
    assert "payment_position" in str(assert_problem(lawful, 422)["errors"])
    # Police never pay: there is no such position to choose.
    police = api.post(
        f"/api/v1/tasks/{gold_task['id']}/complete",
        GOLD,
        json={"data": gold_strategy(position="police_payment")},
    )
    assert "payment_position" in str(assert_problem(police, 422)["errors"])
    case.complete(
        GOLD, "take_gold_command", gold_strategy(terrorism=True, position="payment_would_be_offence")
    )

    # The check stops command going on until the referral is made and payment stopped.
    assert case.open_elements(GOLD) == ["refer_terrorist_ransom"]
    referral = case.task(GOLD, "refer_terrorist_ransom")
    assert referral["summary"] == "Terrorist kidnap: payment is an offence - OP-FALCON"
    assert referral["required_rank"] == "superintendent"
    assert case.inbox(SILVER) == []
    data = {
        "ct_referral_made_at": iso(clock.now()),
        "ct_contact": "CTP North West duty DI",
        "payers_advised": ["family", "insurer"],
        "advice_given": (
            "Family and the employer's insurer told by Gold that any "
            "payment would be an offence under ss.15-17 and 17A."
        ),
        "payment_stopped": False,
    }
    not_stopped = api.post(f"/api/v1/tasks/{referral['id']}/complete", GOLD, json={"data": data})
    assert "payment_stopped" in str(assert_problem(not_stopped, 422)["errors"])
    low = api.post(
        f"/api/v1/tasks/{referral['id']}/complete",
        GOLD_TOO_JUNIOR,
        json={"data": {**data, "payment_stopped": True}},
    )
    assert_problem(low, 403, "rank-too-low")
    case.complete(GOLD, "refer_terrorist_ransom", {**data, "payment_stopped": True})

    assert case.open_elements(GOLD) == ["take_silver_command"]
    variables = case.variables(GOLD)
    assert variables["terrorism_indicators"] is True
    assert variables["payment_position"] == "payment_would_be_offence"
    assert variables["payment_stopped"] is True
    actions = [(e["action"], e["detail"].get("element_id")) for e in history(case)]
    assert ("task.completed", "refer_terrorist_ransom") in actions


def test_a_terrorist_link_at_a_contact_stops_payment_before_the_next_contact(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock, "OP-PLOVER")
    to_negotiation(case)
    case.complete(NEGOTIATOR, "log_negotiation_contact", contact(1))
    assert case.variables(GOLD)["payment_stopped"] is False
    # The caller names a proscribed group, and proof of life fails, at the same contact.
    linked = {**contact(2, result="failed"), "terrorist_link_indicated": True}
    case.complete(NEGOTIATOR, "log_negotiation_contact", linked)
    assert case.open_elements(GOLD) == ["stop_payment_terrorist_link"]
    referral = case.task(GOLD, "stop_payment_terrorist_link")
    assert referral["summary"] == "Terrorist link at contact 2: payment is an offence - OP-PLOVER"
    assert case.inbox(NEGOTIATOR) == []
    data = {
        "ct_referral_made_at": iso(clock.now()),
        "ct_contact": "CTP North West duty DI",
        "payers_advised": ["family"],
        "advice_given": "Gold told the family that paying a group linked to terrorists would be an offence.",
        "payment_stopped": True,
    }
    not_gold = api.post(f"/api/v1/tasks/{referral['id']}/complete", SILVER, json={"data": data})
    assert "'gold'" in assert_problem(not_gold, 403, "role-missing")["detail"]
    case.complete(GOLD, "stop_payment_terrorist_link", data)
    # Then the failed proof of life still goes to Silver before the next contact.
    assert case.open_elements(GOLD) == ["review_after_proof_of_life"]
    case.complete(
        SILVER,
        "review_after_proof_of_life",
        {"strategy_change": "Seek a recorded message before any talk of money."},
    )
    # Once payment is stopped, a later mention of the link does not raise the referral again.
    case.complete(NEGOTIATOR, "log_negotiation_contact", {**contact(3), "terrorist_link_indicated": True})
    assert case.open_elements(GOLD) == ["log_negotiation_contact"]
    variables = case.variables(GOLD)
    assert variables["payment_stopped"] is True
    assert [c["terrorist_link_indicated"] for c in variables["contact_log"]] == [False, True, True]
    actions = [(e["action"], e["detail"].get("element_id")) for e in history(case)]
    assert actions.count(("task.completed", "stop_payment_terrorist_link")) == 1


APPLICATION = {
    "power_type": "directed_surveillance",
    "urgent": True,
    "urgency_reason": (
        "A life is at risk and the drop is tonight; the superintendent cannot be reached in time."
    ),
    "statutory_ground": "preventing_or_detecting_crime",
    "conduct_and_purpose": (
        "Covert observation of the ransom drop site and the people who attend it, to identify the kidnappers."
    ),
    "subjects": ["Unknown male caller"],
    "intelligence_case": (
        "The kidnappers named the lay-by on the A56 as the drop site in the "
        "third call; the caller's phone was cell-sited there."
    ),
    "information_sought": "Identity and vehicles of those collecting the ransom",
    "necessity": (
        "No other means will identify the kidnappers before the "
        "deadline; the victim's life depends on locating them."
    ),
    "collateral_intrusion": "Passing motorists at a public lay-by",
    "collateral_intrusion_justification": (
        "Observation limited to the drop window and those approaching the bag."
    ),
    "confidential_material_likely": False,
    "legally_privileged_material_sought": False,
    "residential_premises_or_private_vehicle": False,
    "proportionality": (
        "Short, targeted observation of a public place for a grave crime "
        "against life; the least intrusive way to act in time."
    ),
    "less_intrusive_means_considered": "Open patrols would alert the kidnappers and endanger the victim.",
}


def test_urgent_covert_authority_lapses_after_72_hours_and_is_cancelled(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock, "OP-ROOK")
    to_command(case)
    needs = case.task(INTELLIGENCE, "identify_covert_needs")
    wrong = api.post(
        f"/api/v1/tasks/{needs['id']}/complete",
        INTELLIGENCE,
        json={
            "data": {
                "covert_authorities": [
                    {"power_type": "phone_tap", "purpose": "Intercept the kidnappers' calls"}
                ]
            }
        },
    )
    assert "power_type" in str(assert_problem(wrong, 422)["errors"])
    case.complete(
        INTELLIGENCE,
        "identify_covert_needs",
        {
            "covert_authorities": [
                {"power_type": "directed_surveillance", "purpose": "Observe the ransom drop site"}
            ]
        },
    )
    # The called process starts with the kidnap's data and the item's power type.
    application = case.task(APPLICANT, "prepare_application")
    assert application["process_key"] == KEY
    handed = api.get(f"/api/v1/tasks/{application['id']}", APPLICANT, headers={"X-Purpose": "scenario test"})
    assert handed.status_code == 200, handed.get_data(as_text=True)
    handed_data = handed.get_json()["data"]
    assert handed_data["power_type"] == "directed_surveillance"
    assert handed_data["operation_name"] == "OP-ROOK"
    assert handed_data["case_reference"] == "OP-ROOK-001"
    assert handed_data["investigation_team"] == TEAM
    assert "decision" not in handed_data
    case.complete(APPLICANT, "prepare_application", APPLICATION)
    decision = case.task(AUTHORISER, "decide_authorisation")
    assert decision["required_rank"] == "inspector"
    assert decision["summary"] == "Directed surveillance (urgent): OP-ROOK (urgent)"
    clock.advance(timedelta(minutes=10))
    granted_at = clock.now()
    case.complete(
        AUTHORISER,
        "decide_authorisation",
        {
            "decision": "granted",
            "rationale": (
                "Necessary to find the kidnappers before the deadline and proportionate for a threat to life."
            ),
            "necessity_reasoning": (
                "I am satisfied no other means will identify those collecting "
                "the ransom in time to protect the victim."
            ),
            "proportionality_reasoning": (
                "The observation is of a public lay-by for a short "
                "window, against the gravest of risks to life."
            ),
            "collateral_intrusion_reasoning": "Passing motorists only; not recorded unless they approach.",
            "review_interval_days": 7,
            "authoriser_involved_in_investigation": False,
        },
    )
    case.complete(
        RECORD_KEEPER, "record_grant", {"central_record_reference": "CR-2026-0099", "entry_verified": True}
    )
    lapse_at = granted_at + timedelta(hours=72)
    timers = case.timers(GOLD)
    assert timers["authorisation_expires"] == iso(lapse_at)
    assert timers["renew_or_cancel_window"] == iso(lapse_at - timedelta(hours=24))
    assert "carry_out_activity" in case.open_elements(GOLD)

    # The kidnap's own work goes on alongside the authority.
    case.complete(COORDINATOR, "prepare_negotiation_strategy", STRATEGY)
    case.decide(
        SILVER,
        "approve_negotiation_strategy",
        "granted",
        "The strategy protects life and keeps control of the timetable with the cell.",
    )
    assert case.variables(GOLD)["decision"] == "granted"

    case.advance(timedelta(hours=48) - (clock.now() - granted_at))
    assert "renew_or_cancel" in case.open_elements(GOLD)
    # Nobody renews or cancels: the authority lapses at exactly 72 hours.
    case.advance(lapse_at - clock.now() - timedelta(seconds=1))
    assert "authorisation_expires" in case.timers(GOLD)
    case.advance(timedelta(seconds=1))
    assert "authorisation_expires" not in case.timers(GOLD)
    opened = case.open_elements(GOLD)
    assert "cancel_authorisation" in opened
    assert "renew_or_cancel" not in opened
    assert "carry_out_activity" not in opened
    fired = [e["detail"] for e in history(case) if e["action"] == "timer.fired"]
    assert {"element_id": "authorisation_expires", "due_at": iso(lapse_at)}.items() <= next(
        d for d in fired if d["element_id"] == "authorisation_expires"
    ).items()

    case.complete(
        AUTHORISER,
        "cancel_authorisation",
        {
            "cease_instruction_given_at": iso(clock.now()),
            "cancellation_reason": "lapsed",
            "cancellation_rationale": "The urgent authority lapsed at 72 hours; recorded and cancelled.",
            "material_obtained": "Observation log of the drop window",
            "product_handling": "Retained as unused material under CPIA",
            "confidential_material_obtained": False,
        },
    )
    case.complete(
        RECORD_KEEPER,
        "record_cancellation",
        {"central_record_reference": "CR-2026-0099", "entry_verified": True},
    )
    records = case.variables(GOLD)["covert_authority_records"]
    assert len(records) == 1
    record = records[0]
    assert record["power_type"] == "directed_surveillance"
    assert record["purpose"] == "Observe the ransom drop site"
    assert record["urgent_route"] is True
    assert record["expires_at"] == iso(lapse_at)
    assert record["lapsed"] is True
    assert record["lapsed_at"] == iso(lapse_at)
    # The kidnap's own decision survives the called process's decisions.
    assert case.variables(GOLD)["decision"] == "granted"
    assert not any(e.startswith(("cancel_", "record_", "carry_")) for e in case.open_elements(GOLD))


def granted(**extra: Any) -> dict[str, Any]:
    return {
        "decision": "granted",
        "rationale": "Necessary and proportionate to find the kidnappers while the victim's life is at risk.",
        "necessity_reasoning": "No other means will find the kidnappers in time to protect the victim.",
        "proportionality_reasoning": "Tightly limited to the kidnappers' devices for the life of the threat.",
        "collateral_intrusion_reasoning": "Other users of the devices are not expected.",
        "review_interval_days": 7,
        "authoriser_involved_in_investigation": False,
        **extra,
    }


CANCELLATION = {
    "cancellation_reason": "lapsed",
    "cancellation_rationale": "The urgent authority reached its limit; recorded and cancelled.",
    "material_obtained": "Data obtained before the limit",
    "product_handling": "Retained for review as unused material",
    "confidential_material_obtained": False,
}


def test_urgent_communications_data_and_equipment_interference_are_watched_to_their_limits(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock, "OP-EGRET")
    to_command(case)
    # Thursday 8 January 2026, 16:00 GMT.
    case.advance(datetime(2026, 1, 8, 16, 0, tzinfo=UTC) - clock.now())
    case.complete(
        INTELLIGENCE,
        "identify_covert_needs",
        {
            "covert_authorities": [
                {
                    "power_type": "communications_data",
                    "purpose": "Subscriber and location data for the demand phone",
                },
                {"power_type": "equipment_interference", "purpose": "Locate the kidnappers' handset"},
            ]
        },
    )
    applications = {}
    for task in case.inbox(APPLICANT):
        read = api.get(f"/api/v1/tasks/{task['id']}", APPLICANT, headers={"X-Purpose": "scenario test"})
        applications[read.get_json()["data"]["power_type"]] = task
    assert sorted(applications) == ["communications_data", "equipment_interference"]
    for power_type, task in applications.items():
        data = {**APPLICATION, "power_type": power_type}
        response = api.post(f"/api/v1/tasks/{task['id']}/complete", APPLICANT, json={"data": data})
        assert response.status_code == 200, response.get_data(as_text=True)
    decisions = {t["summary"]: t for t in case.inbox(AUTHORISER) if t["element_id"] == "decide_authorisation"}
    assert sorted(decisions) == [
        "Communications data (urgent): OP-EGRET (urgent)",
        "Equipment interference (urgent): OP-EGRET (urgent)",
    ]
    ei_decision = decisions["Equipment interference (urgent): OP-EGRET (urgent)"]
    assert ei_decision["required_rank"] == "assistant_chief_constable"
    low = api.post(f"/api/v1/tasks/{ei_decision['id']}/complete", AUTHORISER, json={"data": granted()})
    assert_problem(low, 403, "rank-too-low")
    cd_decision = decisions["Communications data (urgent): OP-EGRET (urgent)"]
    for who, task in ((AUTHORISER, cd_decision), (ACC, ei_decision)):
        response = api.post(f"/api/v1/tasks/{task['id']}/complete", who, json={"data": granted()})
        assert response.status_code == 200, response.get_data(as_text=True)
    for task in case.inbox(RECORD_KEEPER):
        entry = {"central_record_reference": f"CR-{task['id'][:6]}", "entry_verified": True}
        response = api.post(f"/api/v1/tasks/{task['id']}/complete", RECORD_KEEPER, json={"data": entry})
        assert response.status_code == 200, response.get_data(as_text=True)

    # 3 days from the grant (IPA s.65(3A)); the end of the 3rd working day after the day of issue
    # (IPA s.109): Friday 9, Monday 12, Tuesday 13, so midnight at the start of Wednesday 14.
    cd_lapses = "2026-01-11T16:00:00+00:00"
    ei_jc_by = "2026-01-14T00:00:00+00:00"
    timers = [(t["element_id"], t["due_at"]) for t in case.state(GOLD)["timers"]]
    assert ("authorisation_expires", cd_lapses) in timers
    assert ("jc_decision_deadline", ei_jc_by) in timers

    # Nobody renews the communications data: it lapses at exactly 3 days.
    case.advance(due(cd_lapses) - clock.now() - timedelta(seconds=1))
    assert ("authorisation_expires", cd_lapses) in [
        (t["element_id"], t["due_at"]) for t in case.state(GOLD)["timers"]
    ]
    case.advance(timedelta(seconds=1))
    assert [t["element_id"] for t in case.inbox(AUTHORISER)] == ["cancel_authorisation"]
    cancel = case.task(AUTHORISER, "cancel_authorisation")
    done = api.post(
        f"/api/v1/tasks/{cancel['id']}/complete",
        AUTHORISER,
        json={"data": {**CANCELLATION, "cease_instruction_given_at": iso(clock.now())}},
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    # No Judicial Commissioner decision on the equipment interference by the 3rd working day: it ceases.
    case.advance(due(ei_jc_by) - clock.now())
    cancel = case.task(ACC, "cancel_authorisation")
    done = api.post(
        f"/api/v1/tasks/{cancel['id']}/complete",
        ACC,
        json={"data": {**CANCELLATION, "cease_instruction_given_at": iso(clock.now())}},
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    for task in case.inbox(RECORD_KEEPER):
        entry = {"central_record_reference": f"CR-{task['id'][:6]}", "entry_verified": True}
        response = api.post(f"/api/v1/tasks/{task['id']}/complete", RECORD_KEEPER, json={"data": entry})
        assert response.status_code == 200, response.get_data(as_text=True)

    records = {r["power_type"]: r for r in case.variables(GOLD)["covert_authority_records"]}
    cd, ei = records["communications_data"], records["equipment_interference"]
    assert (cd["expires_at"], cd["lapsed"], cd["lapsed_at"]) == (cd_lapses, True, cd_lapses)
    assert (ei["jc_decide_by"], ei["jc_decision"], ei["ceased_at"]) == (
        ei_jc_by,
        "not_decided_in_time",
        ei_jc_by,
    )
    fired = [
        (e["detail"]["element_id"], e["detail"]["due_at"])
        for e in history(case)
        if e["action"] == "timer.fired"
    ]
    assert ("authorisation_expires", cd_lapses) in fired
    assert ("jc_decision_deadline", ei_jc_by) in fired


def test_fifty_negotiation_contacts_are_all_logged(
    api: Api, services: Services, clock: FrozenClock, deployed: None
) -> None:
    case = start(api, services, clock, "OP-SWIFT")
    to_negotiation(case)
    results = ["passed", "not_asked", "passed", "failed"]
    for n in range(1, 51):
        result = results[n % 4] if n < 50 else "passed"
        status = "continue" if n < 50 else "victim_released"
        task = case.task(NEGOTIATOR, "log_negotiation_contact")
        assert task["summary"] == f"Contact {n} - OP-SWIFT"
        clock.advance(timedelta(minutes=20))
        case.complete(NEGOTIATOR, "log_negotiation_contact", contact(n, result=result, status=status))
        if result == "failed":
            case.complete(
                SILVER,
                "review_after_proof_of_life",
                {"strategy_change": f"After contact {n}: ask for a video message next time."},
            )

    assert case.open_elements(GOLD) == ["record_resolution"]
    variables = case.variables(GOLD)
    assert variables["contact_count"] == 50
    failed = [n for n in range(1, 50) if results[n % 4] == "failed"]
    assert variables["proof_of_life_failures"] == len(failed) == 12
    log = variables["contact_log"]
    assert [c["number"] for c in log] == list(range(1, 51))
    for n, entry in enumerate(log, start=1):
        expected = contact(n, result=results[n % 4] if n < 50 else "passed")
        assert entry["contact_at"] == expected["contact_at"]
        assert entry["proof_of_life_result"] == expected["proof_of_life_result"]
        assert entry["proof_of_life_question"] == expected.get("proof_of_life_question")
        assert entry["proof_of_life_answer"] == expected.get("proof_of_life_answer")
    assert log[-1]["negotiation_status"] == "victim_released"

    # Every contact is kept word for word on its task record and in the audit trail.
    with transaction(services.sessions) as session:
        rows = session.scalars(
            sa.select(HumanTask)
            .where(HumanTask.instance_id == case.id, HumanTask.element_id == "log_negotiation_contact")
            .order_by(HumanTask.completed_at)
        ).all()
        verbatim = [r.submitted_data["verbatim_log"] for r in rows]
        assert all(r.completed_by == NEGOTIATOR.subject for r in rows)
    assert verbatim == [contact(n)["verbatim_log"] for n in range(1, 51)]
    events = [e for e in history(case) if e["detail"].get("element_id") == "log_negotiation_contact"]
    assert len(events) == 50
    assert all("verbatim_log" in e["detail"]["fields"] and e["actor"] == NEGOTIATOR.subject for e in events)
    assert (
        len([e for e in history(case) if e["detail"].get("element_id") == "review_after_proof_of_life"]) == 12
    )
