"""Scenarios for ``digital_forensics_request``: the shipped process worked over HTTP with real tokens.

Legal basis before extraction (PACE; PCSC Act 2022 s.37), the RIPA s.49 route (NTAC's prior written
advice and a Circuit judge's permission), priority from ``forensic_priority.dmn``, triage, continuity,
the Forensic Science Regulator's Code and peer review by someone other than the examiner.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from api_support import Api, Person, assert_problem
from scenario_support import Case, deploy_project, person

from engine.clock import FrozenClock
from engine.container import Services

KEY = "digital_forensics_request"
OIC = person("dc.evans", "officer_in_case")
DMI = person("dmi.ahmed", "digital_media_investigator")
GATEKEEPER = person("dfu.gate", "triage_gatekeeper")
EXAMINER = person("ex.jones", "examiner", "peer_reviewer")
SECOND_EXAMINER = person("ex.patel", "examiner", "peer_reviewer")
PEER = person("ex.okafor", "peer_reviewer")
DISCLOSURE = person("do.brown", "disclosure_officer")
EVERYONE = (OIC, DMI, GATEKEEPER, EXAMINER, PEER, DISCLOSURE)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _project(services: Services) -> None:
    deploy_project(services, only=("digital_forensics_request.bpmn", "forensic_priority.dmn"))


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def exhibit(ref: str, **changes: Any) -> dict[str, Any]:
    """A suspect's phone seized under PACE, unless ``changes`` say otherwise."""
    return {
        "exhibit_ref": ref,
        "seal_number": f"SEAL-{ref}",
        "device_type": "phone",
        "device_description": "Black smartphone, cracked screen",
        "owner_category": "suspect",
        "legal_basis": "pace_seizure",
        "passcode_status": "not_locked",
        **changes,
    }


VICTIM_PHONE = exhibit(
    "EX-2",
    owner_category="victim",
    legal_basis="pcsc_s37_agreement",
    s37_written_notice_given=True,
    s37_agreement_recorded=True,
)


def submission(**changes: Any) -> dict[str, Any]:
    """A routine request (P3) for a suspect's phone and a victim's phone given by agreement."""
    return {
        "offence": "Harassment contrary to s.2 Protection from Harassment Act 1997",
        "lines_of_enquiry": "Messages between suspect and victim between March and May.",
        "questions_for_examiner": ["Were messages sent to the victim's number from this phone?"],
        "threat_to_life": False,
        "suspect_in_custody": False,
        "suspect_charged": False,
        "court_date_set": False,
        "vulnerable_victim": False,
        "exhibits": [exhibit("EX-1"), VICTIM_PHONE],
        "scope_date_from": "2026-03-01",
        "scope_date_to": "2026-05-31",
        "seek_s49_notice": False,
        **changes,
    }


DMI_PROCEED = {
    "dmi_outcome": "proceed",
    "strategy_advice": "Logical extraction of both phones, messages in the date range only.",
    "legal_basis_reviewed": True,
}


def continuity(ref: str, **changes: Any) -> dict[str, Any]:
    return {
        "continuity_entry": {
            "exhibit_ref": ref,
            "handed_over_by": "DC Evans",
            "received_by": "Examiner Jones",
            "received_at": "2026-01-06T10:00:00+00:00",
            "location": "Digital forensics unit, North hub",
            "reason": "Examination under request",
            "seal_number": f"SEAL-{ref}",
            "seal_intact": True,
            "storage_location": "Exhibit store locker 14",
            **changes,
        }
    }


def extraction(ref: str) -> dict[str, Any]:
    return {
        "exhibit_ref": ref,
        "tool": "Cellebrite UFED",
        "tool_version": "7.68.0.21",
        "extraction_type": "logical",
        "hash_algorithm": "sha256",
        "hash_value": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "extracted_at": "2026-01-07T14:00:00+00:00",
    }


def examination(**changes: Any) -> dict[str, Any]:
    return {
        "extractions": [extraction("EX-1"), extraction("EX-2")],
        "examination_summary": "Logical extractions of both phones; messages filtered to the date range.",
        "interim_findings": "42 messages from the suspect's phone to the victim's number.",
        "fsr_code_compliant": True,
        **changes,
    }


REPORT = {
    "report_form": "mg22b",
    "report_reference": "DFU-2026-0042",
    "findings_summary": "42 messages sent to the victim's number between March and May.",
    "limitations": "Deleted messages were not recovered by a logical extraction.",
    "report_completed_at": "2026-01-09T16:00:00+00:00",
}


def peer_review(outcome: str = "approved") -> dict[str, Any]:
    return {
        "peer_review_outcome": outcome,
        "peer_review_rationale": "Method appropriate, hashes verified against the extraction records.",
        "checks_made": ["method_appropriate", "hashes_verified", "continuity_complete"],
        "competent_in_method": True,
    }


def start(api: Api, services: Services, clock: FrozenClock, ref: str = "DFR-1") -> Case:
    return Case.start(api, services, clock, KEY, OIC, business_key=ref, case_reference=ref)


def submitted(api: Api, services: Services, clock: FrozenClock, ref: str = "DFR-1", **changes: Any) -> Case:
    """A case whose request has been submitted and advised on: waiting at triage or at the s.49 route."""
    case = start(api, services, clock, ref)
    case.complete(OIC, "submit_request", submission(**changes))
    case.complete(DMI, "dmi_advice", DMI_PROCEED)
    return case


def history(case: Case, who: Person) -> list[dict[str, Any]]:
    return case.history(who)


def completed_by(case: Case, who: Person) -> list[tuple[str, str]]:
    """(element id, actor) of every completed task, in order, from the audit trail."""
    return [
        (e["detail"]["element_id"], e["actor"]) for e in history(case, who) if e["action"] == "task.completed"
    ]


def test_routine_request_runs_from_submission_to_disclosure(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    started = clock.now()
    case = start(api, services, clock)
    assert [t["element_id"] for t in case.inbox(OIC)] == ["submit_request"]
    assert case.inbox(DMI) == []
    case.complete(OIC, "submit_request", submission())

    advice = case.task(DMI, "dmi_advice")
    assert at(advice["due_at"]) == started + 2 * DAY  # forensics.dmi_advice_days
    assert case.inbox(OIC) == []
    case.complete(DMI, "dmi_advice", DMI_PROCEED)

    triage = case.task(GATEKEEPER, "triage_request")
    assert (triage["priority"], triage["summary"]) == (40, "P3 - DFR-1: " + submission()["offence"])
    assert at(triage["due_at"]) == started + 3 * DAY  # forensics.triage_days
    variables = case.variables(GATEKEEPER)
    assert (variables["forensic_priority"], variables["turnaround_hours"]) == ("P3", 2160)
    assert (variables["legal_basis_ok"], variables["exhibits_without_basis"]) == (True, [])
    assert variables["officer_in_case"] == "dc.evans"
    assert at(variables["examination_due_at"]) == started + 2160 * HOUR
    case.complete(
        GATEKEEPER,
        "triage_request",
        {
            "triage_outcome": "accept",
            "examination_level": "level_2_hub",
            "triage_rationale": "Two phones, logical extraction at the hub is enough.",
        },
    )

    # One continuity entry per exhibit, side by side.
    receipts = [t for t in case.inbox(EXAMINER) if t["element_id"] == "record_continuity"]
    assert len(receipts) == 2
    assert case.inbox(PEER) == []
    for ref in ("EX-1", "EX-2"):
        case.complete(EXAMINER, "record_continuity", continuity(ref))
    log = case.variables(EXAMINER)["continuity_log"]
    assert sorted(entry["exhibit_ref"] for entry in log) == ["EX-1", "EX-2"]
    assert all(entry["seal_intact"] and entry["storage_location"] for entry in log)

    exam = case.task(EXAMINER, "examine_exhibits")
    assert at(exam["due_at"]) == started + 2160 * HOUR
    case.complete(EXAMINER, "examine_exhibits", examination())
    case.complete(OIC, "review_interim_results", {"interim_outcome": "proceed_to_report"})
    case.complete(EXAMINER, "write_report", REPORT)
    case.complete(PEER, "peer_review", peer_review())
    assert case.inbox(OIC) == []
    case.complete(
        DISCLOSURE,
        "schedule_disclosure",
        {
            "relevant_material_scheduled": True,
            "schedule_references": "MG6C item 14",
            "sensitive_material_identified": False,
        },
    )
    case.complete(OIC, "receive_results", {"results_received": True})

    state = case.state(OIC)
    assert (state["status"], state["open_tasks"], state["timers"]) == ("completed", [], [])
    variables = case.variables(OIC)
    assert (variables["examiner"], variables["report_author"]) == ("ex.jones", "ex.jones")
    assert variables["extractions"][0]["tool_version"] == "7.68.0.21"
    assert variables["examination_level"] == "level_2_hub"
    assert completed_by(case, OIC) == [
        ("submit_request", "dc.evans"),
        ("dmi_advice", "dmi.ahmed"),
        ("triage_request", "dfu.gate"),
        ("record_continuity", "ex.jones"),
        ("record_continuity", "ex.jones"),
        ("examine_exhibits", "ex.jones"),
        ("review_interim_results", "dc.evans"),
        ("write_report", "ex.jones"),
        ("peer_review", "ex.okafor"),
        ("schedule_disclosure", "do.brown"),
        ("receive_results", "dc.evans"),
    ]


def test_a_submission_without_a_legal_basis_is_refused_or_sent_back(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = start(api, services, clock)
    task = case.task(OIC, "submit_request")
    url = f"/api/v1/tasks/{task['id']}/complete"

    no_basis = exhibit("EX-1")
    del no_basis["legal_basis"]
    problem = assert_problem(
        api.post(url, OIC, json={"data": submission(exhibits=[no_basis])}), 422, "form-data-invalid"
    )
    assert problem["errors"] == {"$.exhibits[0]": ["'legal_basis' is a required property"]}

    # A victim's device by agreement needs the written notice (PCSC Act 2022 s.37).
    no_notice = {k: v for k, v in VICTIM_PHONE.items() if k != "s37_written_notice_given"}
    problem = assert_problem(
        api.post(url, OIC, json={"data": submission(exhibits=[exhibit("EX-1"), no_notice])}),
        422,
        "form-data-invalid",
    )
    assert problem["errors"] == {"$.exhibits[1]": ["'s37_written_notice_given' is a required property"]}
    refused = {**VICTIM_PHONE, "s37_agreement_recorded": False}
    problem = assert_problem(
        api.post(url, OIC, json={"data": submission(exhibits=[refused])}), 422, "form-data-invalid"
    )
    assert list(problem["errors"]) == ["$.exhibits[0].s37_agreement_recorded"]
    assert case.open_elements(OIC) == ["submit_request"]

    # Declared as not established: the gate sends the request back before any triage or extraction.
    unknown = exhibit("EX-3", owner_category="witness", legal_basis="not_established")
    case.complete(OIC, "submit_request", submission(exhibits=[exhibit("EX-1"), unknown]))
    case.complete(DMI, "dmi_advice", DMI_PROCEED)
    assert case.open_elements(OIC) == ["submit_request"]
    assert case.inbox(GATEKEEPER) == []
    variables = case.variables(OIC)
    assert (variables["legal_basis_ok"], variables["exhibits_without_basis"]) == (False, ["EX-3"])

    case.complete(OIC, "submit_request", submission())
    case.complete(DMI, "dmi_advice", DMI_PROCEED)
    assert case.open_elements(OIC) == ["triage_request"]
    assert case.variables(OIC)["exhibits_without_basis"] == []


PRIORITY_RULES = [
    # (rule, submission flags, priority, inbox score, target hours)
    ("threat to life", {"threat_to_life": True}, "P1", 100, 8),
    (
        "live custody clock",
        {"suspect_in_custody": True, "custody_clock_expires_at": "2026-01-06T09:00:00Z"},
        "P1",
        95,
        8,
    ),
    ("charged", {"suspect_charged": True}, "P2", 75, 336),
    ("court date", {"court_date_set": True, "court_date": "2026-03-02"}, "P2", 70, 336),
    ("vulnerable victim", {"vulnerable_victim": True}, "P2", 70, 336),
    ("routine", {}, "P3", 40, 2160),
    # Hit policy FIRST: the earliest matching rule decides.
    ("threat to life and charged", {"threat_to_life": True, "suspect_charged": True}, "P1", 100, 8),
    ("charged and vulnerable victim", {"suspect_charged": True, "vulnerable_victim": True}, "P2", 75, 336),
]


def test_priority_comes_from_the_decision_table(api: Api, services: Services, clock: FrozenClock) -> None:
    """One case per rule of forensic_priority.dmn, first match wins; target times are the settings."""
    started = clock.now()
    for rule, flags, priority, score, hours in PRIORITY_RULES:
        ref = f"DFR-{rule}"
        case = start(api, services, clock, ref)
        case.complete(OIC, "submit_request", submission(**flags))
        advice = case.task(DMI, "dmi_advice")
        urgent = priority == "P1"
        # Threat to life or a live custody clock: forensics.urgent_dmi_advice_hours (2).
        assert at(advice["due_at"]) == started + (2 * HOUR if urgent else 2 * DAY), rule
        assert advice["priority"] == (90 if urgent else 50), rule
        case.complete(DMI, "dmi_advice", DMI_PROCEED)

        triage = case.task(GATEKEEPER, "triage_request")
        assert (triage["priority"], triage["summary"][:2]) == (score, priority), rule
        # P1: forensics.p1_triage_hours (2); otherwise forensics.triage_days (3).
        assert at(triage["due_at"]) == started + (2 * HOUR if urgent else 3 * DAY), rule
        variables = case.variables(GATEKEEPER)
        assert (variables["forensic_priority"], variables["priority_score"]) == (priority, score), rule
        assert variables["turnaround_hours"] == hours, rule
        target = started + hours * HOUR
        if "custody_clock_expires_at" in flags:
            # The custody clock ends after the 8-hour P1 target here, so the target stands.
            assert at(flags["custody_clock_expires_at"]) > target
        assert at(variables["examination_due_at"]) == target, rule


def test_custody_clock_caps_the_examination_target(api: Api, services: Services, clock: FrozenClock) -> None:
    started = clock.now()
    expires = started + 5 * HOUR
    case = submitted(
        api, services, clock, suspect_in_custody=True, custody_clock_expires_at=expires.isoformat()
    )
    case.complete(
        GATEKEEPER,
        "triage_request",
        {
            "triage_outcome": "accept",
            "examination_level": "level_1_kiosk",
            "triage_rationale": "Kiosk extraction of messages while the suspect is in custody.",
        },
    )
    for ref in ("EX-1", "EX-2"):
        case.complete(EXAMINER, "record_continuity", continuity(ref))
    exam = case.task(EXAMINER, "examine_exhibits")
    assert at(exam["due_at"]) == expires  # 5 hours, not the 8-hour P1 target
    assert exam["priority"] == 95


def _s49_case(api: Api, services: Services, clock: FrozenClock, ref: str) -> Case:
    locked = exhibit("EX-1", passcode_status="refused")
    return submitted(api, services, clock, ref, exhibits=[locked], seek_s49_notice=True)


NTAC = {
    "ntac_reference": "NTAC-26-117",
    "advice_received_at": "2026-01-05T11:00:00+00:00",
    "advice_summary": "A notice is technically appropriate; the device is encrypted at rest.",
}
PERMISSION = {
    "judge_name": "HHJ Morgan",
    "court": "Leeds Crown Court",
    "decided_at": "2026-01-05T15:00:00+00:00",
    "permission_reference": "T20260001",
}


def test_s49_notice_needs_ntac_advice_then_a_circuit_judges_permission(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    # NTAC does not support a notice: no permission is sought and no notice is served.
    no_ntac = _s49_case(api, services, clock, "DFR-NTAC")
    assert no_ntac.open_elements(DMI) == ["obtain_ntac_advice"]
    assert no_ntac.inbox(GATEKEEPER) == []  # nothing goes to triage until the s.49 route is settled
    no_ntac.complete(DMI, "obtain_ntac_advice", {**NTAC, "ntac_supports_notice": False})
    assert no_ntac.open_elements(OIC) == ["triage_request"]
    assert [t["element_id"] for t in no_ntac.inbox(OIC)] == []

    # NTAC supports it but the judge refuses: still no notice.
    refused = _s49_case(api, services, clock, "DFR-JUDGE")
    refused.complete(DMI, "obtain_ntac_advice", {**NTAC, "ntac_supports_notice": True})
    assert [t["element_id"] for t in refused.inbox(OIC)] == ["record_judge_permission"]
    refused.complete(OIC, "record_judge_permission", {**PERMISSION, "permission_granted": False})
    assert refused.open_elements(OIC) == ["triage_request"]
    assert "notice_served_at" not in refused.variables(OIC)

    # Both in place: the officer serves the notice, and only then does the request go to triage.
    granted = _s49_case(api, services, clock, "DFR-S49")
    granted.complete(DMI, "obtain_ntac_advice", {**NTAC, "ntac_supports_notice": True})
    granted.complete(OIC, "record_judge_permission", {**PERMISSION, "permission_granted": True})
    assert granted.open_elements(OIC) == ["serve_s49_notice"]
    assert granted.inbox(GATEKEEPER) == []
    granted.complete(
        OIC,
        "serve_s49_notice",
        {"notice_served_at": "2026-01-05T16:00:00+00:00", "served_on": "John Smith", "key_disclosed": True},
    )
    assert granted.open_elements(OIC) == ["triage_request"]
    assert [element for element, _ in completed_by(granted, OIC)] == [
        "submit_request",
        "dmi_advice",
        "obtain_ntac_advice",
        "record_judge_permission",
        "serve_s49_notice",
    ]


def test_non_compliance_is_declared_and_no_examiner_or_author_may_peer_review(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = submitted(api, services, clock)
    case.complete(
        GATEKEEPER,
        "triage_request",
        {
            "triage_outcome": "accept",
            "examination_level": "level_3_lab",
            "triage_rationale": "Chip-off may be needed; accredited laboratory.",
        },
    )
    for ref in ("EX-1", "EX-2"):
        case.complete(EXAMINER, "record_continuity", continuity(ref))

    # FSR Code: a non-compliant method must be declared.
    task = case.task(EXAMINER, "examine_exhibits")
    problem = assert_problem(
        api.post(
            f"/api/v1/tasks/{task['id']}/complete",
            EXAMINER,
            json={"data": examination(fsr_code_compliant=False)},
        ),
        422,
        "form-data-invalid",
    )
    assert problem["errors"] == {"$": ["'non_compliance_declaration' is a required property"]}
    declared = examination(
        fsr_code_compliant=False,
        non_compliance_declaration="Chip-off method not yet within the laboratory's ISO/IEC 17025 scope.",
    )
    case.complete(EXAMINER, "examine_exhibits", declared)
    case.complete(OIC, "review_interim_results", {"interim_outcome": "proceed_to_report"})
    case.complete(SECOND_EXAMINER, "write_report", REPORT)
    variables = case.variables(OIC)
    assert (variables["examiner"], variables["report_author"]) == ("ex.jones", "ex.patel")
    assert (variables["examiners"], variables["report_authors"]) == (["ex.jones"], ["ex.patel"])
    assert variables["fsr_code_compliant"] is False
    assert variables["non_compliance_declaration"].startswith("Chip-off")

    review = case.task(EXAMINER, "peer_review")
    for who, action in ((EXAMINER, "complete"), (SECOND_EXAMINER, "complete"), (EXAMINER, "claim")):
        body = {"data": peer_review()} if action == "complete" else None
        refusal = assert_problem(
            api.post(f"/api/v1/tasks/{review['id']}/{action}", who, json=body), 403, "separation-of-duties"
        )
        assert "separation of duties" in refusal["detail"]
    assert case.open_elements(OIC) == ["peer_review"]
    assert_problem(
        api.post(f"/api/v1/tasks/{review['id']}/complete", DISCLOSURE, json={"data": peer_review()}),
        403,
        "role-missing",
    )

    # Corrections go back to the report; the reviewer then approves.
    case.complete(PEER, "peer_review", peer_review("corrections_required"))
    case.complete(SECOND_EXAMINER, "write_report", {**REPORT, "report_reference": "DFU-2026-0042/2"})
    case.complete(PEER, "peer_review", peer_review())
    assert case.open_elements(OIC) == ["schedule_disclosure"]
    reviews = [actor for element, actor in completed_by(case, OIC) if element == "peer_review"]
    assert reviews == ["ex.okafor", "ex.okafor"]


def test_further_examination_returns_to_the_examiners(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = submitted(api, services, clock)
    case.complete(
        GATEKEEPER,
        "triage_request",
        {
            "triage_outcome": "accept",
            "examination_level": "level_2_hub",
            "triage_rationale": "Two phones, logical extraction at the hub is enough.",
        },
    )
    broken = continuity("EX-1", seal_intact=False)
    task = next(t for t in case.inbox(EXAMINER) if t["element_id"] == "record_continuity")
    problem = assert_problem(
        api.post(f"/api/v1/tasks/{task['id']}/complete", EXAMINER, json={"data": broken}),
        422,
        "form-data-invalid",
    )
    assert problem["errors"] == {"$.continuity_entry": ["'seal_notes' is a required property"]}
    broken["continuity_entry"]["seal_notes"] = "Seal torn in transit; bag resealed with SEAL-EX-1B."
    case.complete(EXAMINER, "record_continuity", broken)
    case.complete(EXAMINER, "record_continuity", continuity("EX-2"))
    # An exhibit without an extraction record (tool, version, hash) sends the examination back.
    partial = examination(extractions=[extraction("EX-1"), extraction("EX-9")])
    case.complete(EXAMINER, "examine_exhibits", partial)
    assert case.open_elements(OIC) == ["examine_exhibits"]
    variables = case.variables(OIC)
    assert (variables["exhibits_without_extraction"], variables["extractions_of_unknown_exhibits"]) == (
        ["EX-2"],
        ["EX-9"],
    )
    for _ in range(3):
        case.complete(EXAMINER, "examine_exhibits", examination())
        case.complete(
            OIC,
            "review_interim_results",
            {"interim_outcome": "further_examination", "further_questions": "Recover deleted messages too."},
        )
    case.complete(SECOND_EXAMINER, "examine_exhibits", examination())
    case.complete(OIC, "review_interim_results", {"interim_outcome": "proceed_to_report"})
    case.complete(SECOND_EXAMINER, "write_report", REPORT)
    variables = case.variables(OIC)
    assert (variables["examiner"], variables["examiners"]) == ("ex.patel", ["ex.jones", "ex.patel"])
    # The first rounds' examiner is still excluded from the peer review, though the last round was another's.
    review = case.task(EXAMINER, "peer_review")
    assert_problem(
        api.post(f"/api/v1/tasks/{review['id']}/complete", EXAMINER, json={"data": peer_review()}),
        403,
        "separation-of-duties",
    )
    case.complete(PEER, "peer_review", peer_review())
    assert case.open_elements(OIC) == ["schedule_disclosure"]
    elements = [element for element, _ in completed_by(case, OIC)]
    assert elements.count("examine_exhibits") == 5
    assert elements.count("review_interim_results") == 4
    seal_notes = [e["seal_notes"] for e in case.variables(OIC)["continuity_log"] if not e["seal_intact"]]
    assert seal_notes == ["Seal torn in transit; bag resealed with SEAL-EX-1B."]


def test_triage_may_return_a_request_or_reject_it(api: Api, services: Services, clock: FrozenClock) -> None:
    returned = submitted(api, services, clock, "DFR-RET")
    returned.complete(
        GATEKEEPER,
        "triage_request",
        {"triage_outcome": "return", "triage_rationale": "Questions for the examiner are too broad."},
    )
    assert returned.open_elements(OIC) == ["submit_request"]

    advice_returned = start(api, services, clock, "DFR-DMI")
    advice_returned.complete(OIC, "submit_request", submission())
    advice_returned.complete(
        DMI,
        "dmi_advice",
        {**DMI_PROCEED, "dmi_outcome": "returned", "return_reason": "Narrow the date range to the offence."},
    )
    assert advice_returned.open_elements(OIC) == ["submit_request"]

    rejected = submitted(api, services, clock, "DFR-REJ")
    rejected.complete(
        GATEKEEPER,
        "triage_request",
        {
            "triage_outcome": "reject",
            "triage_rationale": "Not proportionate to the offence under investigation.",
        },
    )
    state = rejected.state(OIC)
    assert (state["status"], state["open_tasks"]) == ("completed", [])
    assert rejected.inbox(EXAMINER) == []
