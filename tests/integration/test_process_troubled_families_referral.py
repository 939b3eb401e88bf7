"""Scenarios for ``troubled_families_referral``: the shipped process worked over HTTP with real tokens.

Triage with immediate escalation of child protection, consent that never blocks safeguarding,
eligibility from ``supporting_families_eligibility.dmn``, Team Around the Family reviews every 6 to 8
weeks, the sustainment check 6 months after closure, the claim and its audit.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, Person, assert_problem
from scenario_support import Case, deploy_project, person

from engine.clock import FrozenClock
from engine.container import Services
from engine.settings import Settings

KEY = "troubled_families_referral"
REFERRER = person("pc.hill", "referrer")
TRIAGE = person("eh.shaw", "early_help_triage")
MANAGER = person("eh.lowe", "early_help_manager")
DATA = person("sf.data", "data_team")
KEYWORKER = person("kw.green", "keyworker")
TAF = person("taf.chair", "team_around_family")
CLAIMS = person("claims.ng", "claims_officer")
AUDITOR = person("audit.fox", "internal_auditor")
# The keyworker also holds the auditor role: separation of duties must keep them off the audit.
KEYWORKER_AUDITOR = person("kw.green", "keyworker", "internal_auditor")

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
NEEDS = ["domestic_abuse", "education", "housing"]


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The test settings, with ``families.taf_review_weeks`` set to the test's parameter if it has one."""
    weeks = getattr(request, "param", None)
    if weeks is None:
        return settings
    values = json.loads((settings.processes_dir / "settings.json").read_text())
    values["families.taf_review_weeks"]["value"] = weeks
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(values))
    return dataclasses.replace(settings, process_settings_file=path)


@pytest.fixture(autouse=True)
def _project(services: Services) -> None:
    deploy_project(services, only=("troubled_families_referral.bpmn", "supporting_families_eligibility.dmn"))


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def referral(**changes: Any) -> dict[str, Any]:
    return {
        "referring_agency": "police",
        "referral_reasons": ["domestic_abuse", "school_attendance"],
        "concerns": "Third domestic abuse call-out this year; the children were present.",
        "family_members": [
            {"name": "Sam Carter", "relationship": "parent_or_carer", "age": 34},
            {"name": "Lily Carter", "relationship": "child", "age": 9},
        ],
        "has_dependent_children": True,
        "expectant_parent": False,
        "child_at_risk_of_significant_harm": False,
        "sharing_basis": "crime_and_disorder_act_s115",
        **changes,
    }


def triage(level: str) -> dict[str, Any]:
    return {"threshold_level": level, "triage_rationale": f"Assessed against the local thresholds: {level}."}


def consent(*, given: bool = True, harm: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "privacy_notice_given": True,
        "privacy_notice_given_at": "2026-01-05T10:00:00+00:00",
        "consent_given": given,
        "significant_harm_identified": harm,
    }
    data.update(
        {"consent_scope": "Early help and sharing with the TAF"} if given else {"declined_reason": "Not now"}
    )
    if harm:
        data["harm_concern"] = "Lily disclosed being hit with a belt by her father last night."
    return data


def needs_check(needs: list[str], *, children: bool = True, expectant: bool = False) -> dict[str, Any]:
    return {
        "needs": needs,
        "has_dependent_children": children,
        "expectant_parent": expectant,
        "data_sources": ["police", "education"],
    }


ESCALATION = {
    "escalated_at": "2026-01-05T09:30:00+00:00",
    "csc_contact": "Duty social worker, MASH",
    "csc_reference": "CSC-77",
    "strategy_discussion_requested": True,
    "escalation_notes": "Child protection concern passed by phone and in writing.",
}


ALLOCATION = {
    "keyworker_name": "K Green",
    "keyworker_service": "Early Help",
    "allocated_at": "2026-01-05T12:00:00Z",
}
ASSESSMENT = {
    "assessment_summary": "Domestic abuse, poor school attendance and rent arrears affect the whole family.",
    "needs_assessed": [{"need": n, "description": f"{n} need seen at home visit"} for n in NEEDS],
    "family_views": "Sam wants help with the rent and the school run.",
    "assessment_completed_at": "2026-01-05T14:00:00Z",
}
PLAN = {
    "goals": [
        {
            "need": n,
            "goal": f"Improve {n}",
            "actions": "Weekly keyworker visit",
            "lead_agency": "Early Help",
            "target_date": "2026-06-30",
        }
        for n in NEEDS
    ],
    "family_agreed": True,
    "plan_agreed_at": "2026-01-05T15:00:00Z",
}


def taf_review(outcome: str, weeks: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "progress": [{"need": need, "progress": "improving"} for need in NEEDS],
        "review_outcome": outcome,
        "taf_rationale": "School attendance up; no further call-outs since the plan.",
        "attendees": ["Keyworker", "School", "Police"],
    }
    if weeks is not None:
        data["taf_review_weeks"] = weeks
    return data


def closure() -> dict[str, Any]:
    return {
        "outcomes": [
            {"need": n, "outcome": "achieved", "evidence": "Records checked at closure."} for n in NEEDS
        ],
        "closure_reason": "outcomes_achieved",
        "closure_summary": "All goals in the plan met; family agrees to closure.",
    }


def sustainment(*, unsustained: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "sustainment": [
            {"need": n, "sustained": n not in unsustained, "evidence": "Police and school data checked."}
            for n in NEEDS
        ],
        "checked_at": "2026-10-07T10:00:00+00:00",
    }


def start(api: Api, services: Services, clock: FrozenClock, ref: str = "SF-1") -> Case:
    return Case.start(api, services, clock, KEY, REFERRER, business_key=ref, case_reference=ref)


def to_plan(api: Api, services: Services, clock: FrozenClock, ref: str = "SF-1") -> Case:
    """A consenting, eligible family with a keyworker, assessment and plan, waiting for its first review."""
    case = start(api, services, clock, ref)
    case.complete(REFERRER, "make_referral", referral())
    case.complete(TRIAGE, "triage_referral", triage("early_help"))
    case.complete(TRIAGE, "record_consent", consent())
    case.complete(DATA, "check_needs", needs_check(NEEDS))
    case.complete(TRIAGE, "allocate_keyworker", ALLOCATION)
    case.complete(KEYWORKER, "whole_family_assessment", ASSESSMENT)
    case.complete(KEYWORKER, "agree_family_plan", PLAN)
    return case


def history(case: Case, who: Person) -> list[dict[str, Any]]:
    return case.history(who)


def fired(case: Case, who: Person) -> list[tuple[str, datetime]]:
    """(element id, due time) of every timer the case has fired, from the audit trail."""
    return [
        (e["detail"]["element_id"], at(e["detail"]["due_at"]))
        for e in history(case, who)
        if e["action"] == "timer.fired"
    ]


def test_family_runs_from_referral_to_a_verified_claim(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    started = clock.now()
    case = start(api, services, clock)
    assert [t["element_id"] for t in case.inbox(REFERRER)] == ["make_referral"]
    assert case.inbox(TRIAGE) == []
    case.complete(REFERRER, "make_referral", referral())
    assert case.variables(TRIAGE)["referrer"] == "pc.hill"

    triage_task = case.task(TRIAGE, "triage_referral")
    assert (triage_task["priority"], at(triage_task["due_at"])) == (60, started + 2 * DAY)
    case.complete(TRIAGE, "triage_referral", triage("early_help"))
    case.complete(TRIAGE, "record_consent", consent())
    assert at(case.task(DATA, "check_needs")["due_at"]) == started + 5 * DAY
    case.complete(DATA, "check_needs", needs_check(NEEDS))
    variables = case.variables(TRIAGE)
    assert (variables["eligible_for_payment"], variables["eligibility_reason"]) == (
        True,
        "At least 3 needs, with dependent children or an expectant parent",
    )
    assert at(case.task(TRIAGE, "allocate_keyworker")["due_at"]) == started + 5 * DAY
    case.complete(TRIAGE, "allocate_keyworker", ALLOCATION)
    assert at(case.task(KEYWORKER, "whole_family_assessment")["due_at"]) == started + 30 * DAY
    case.complete(KEYWORKER, "whole_family_assessment", ASSESSMENT)
    case.complete(KEYWORKER, "agree_family_plan", PLAN)

    # First review 6 weeks after the plan (families.taf_review_weeks).
    assert case.timers(TAF) == {"taf_review_due": (started + 6 * WEEK).isoformat()}
    assert case.inbox(TAF) == []
    case.advance(6 * WEEK)
    review = case.task(TAF, "taf_review")
    assert at(review["due_at"]) == started + 6 * WEEK + 5 * DAY
    case.complete(TAF, "taf_review", taf_review("continue", weeks=7))
    assert at(case.timers(TAF)["taf_review_due"]) == started + 13 * WEEK
    case.advance(7 * WEEK)
    case.complete(TAF, "taf_review", taf_review("close"))

    # Closed on Monday 6 April 2026 (10:00 BST): 6 months beginning with that day end at the end of 5 October.
    closed = clock.now()
    assert closed == datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
    case.complete(KEYWORKER, "close_case", closure())
    variables = case.variables(KEYWORKER)
    assert variables["sustainment_check_at"] == "2026-10-05T23:00:00+00:00"
    assert case.timers(DATA) == {"six_months_after_closure": "2026-10-05T23:00:00+00:00"}
    case.advance(datetime(2026, 10, 5, 23, 0, tzinfo=UTC) - closed - MINUTE)
    assert case.inbox(DATA) == []
    case.advance(MINUTE)
    check = case.task(DATA, "check_sustainment")
    assert at(check["due_at"]) == datetime(2026, 10, 15, 23, 0, tzinfo=UTC)
    case.complete(DATA, "check_sustainment", sustainment())
    assert case.variables(DATA)["claim_ready"] is True

    case.complete(
        CLAIMS,
        "submit_claim",
        {
            "claim_reference": "PBR-2026-31",
            "claim_period": "2026 window 3",
            "claim_evidence_summary": "Three needs, all sustained six months after closure.",
        },
    )
    audit = case.task(AUDITOR, "audit_claim")
    refusal = assert_problem(
        api.post(
            f"/api/v1/tasks/{audit['id']}/complete",
            KEYWORKER_AUDITOR,
            json={
                "data": {
                    "audit_outcome": "passed",
                    "evidence_checked": ["eligibility"],
                    "audit_findings": "All evidence present and correct.",
                }
            },
        ),
        403,
        "separation-of-duties",
    )
    assert "separation of duties" in refusal["detail"]
    case.complete(
        AUDITOR,
        "audit_claim",
        {
            "audit_outcome": "failed",
            "evidence_checked": ["eligibility", "plan"],
            "audit_findings": "The plan's signed copy is missing from the file.",
        },
    )
    case.complete(
        CLAIMS,
        "correct_claim",
        {"correction_action": "resubmit", "correction_notes": "Signed plan added to file."},
    )
    case.complete(
        AUDITOR,
        "audit_claim",
        {
            "audit_outcome": "passed",
            "evidence_checked": ["eligibility", "keyworker", "assessment", "plan", "sustained_outcomes"],
            "audit_findings": "All evidence present; claim verified.",
        },
    )
    state = case.state(KEYWORKER)
    assert (state["status"], state["open_tasks"], state["timers"]) == ("completed", [], [])
    assert fired(case, KEYWORKER) == [
        ("taf_review_due", started + 6 * WEEK),
        ("taf_review_due", started + 13 * WEEK),
        ("six_months_after_closure", datetime(2026, 10, 5, 23, 0, tzinfo=UTC)),
    ]


def test_child_protection_goes_to_childrens_social_care_within_the_hour(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    started = clock.now()
    late = start(api, services, clock, "SF-CP-LATE")
    late.complete(REFERRER, "make_referral", referral(child_at_risk_of_significant_harm=True))
    triage_task = late.task(TRIAGE, "triage_referral")
    assert (triage_task["priority"], at(triage_task["due_at"])) == (100, started + 60 * MINUTE)
    late.complete(TRIAGE, "triage_referral", triage("child_protection"))
    escalation = late.task(TRIAGE, "escalate_to_csc")
    assert (escalation["priority"], at(escalation["due_at"])) == (100, started + 60 * MINUTE)
    assert late.inbox(DATA) == []
    assert late.timers(TRIAGE) == {"csc_escalation_overdue": (started + 60 * MINUTE).isoformat()}

    # A child in need is referred within families.child_in_need_referral_days (1).
    in_need = start(api, services, clock, "SF-CIN")
    in_need.complete(REFERRER, "make_referral", referral())
    in_need.complete(TRIAGE, "triage_referral", triage("child_in_need"))
    assert at(in_need.task(TRIAGE, "escalate_to_csc")["due_at"]) == started + DAY
    assert in_need.timers(TRIAGE) == {"csc_escalation_overdue": (started + DAY).isoformat()}

    on_time = start(api, services, clock, "SF-CP-OK")
    on_time.complete(REFERRER, "make_referral", referral(child_at_risk_of_significant_harm=True))
    on_time.complete(TRIAGE, "triage_referral", triage("child_protection"))
    on_time.advance(59 * MINUTE)
    assert [t["element_id"] for t in late.inbox(TRIAGE)] == ["escalate_to_csc"]
    on_time.complete(TRIAGE, "escalate_to_csc", ESCALATION)
    state = on_time.state(TRIAGE)
    assert (state["status"], state["timers"]) == ("completed", [])
    # Passing the concern on is a disclosure, logged with its recipient (DPA 2018 s.62).
    [shared] = [e for e in history(on_time, TRIAGE) if e["kind"] == "disclosure"]
    assert (shared["action"], shared["actor"]) == ("task.completed", TRIAGE.subject)
    assert shared["recipient"] == "Children's social care: Duty social worker, MASH"

    # Sixty minutes (families.child_protection_escalation_minutes): the duty manager gets a task.
    assert late.inbox(MANAGER) == []
    late.advance(MINUTE)
    assert [t["element_id"] for t in late.inbox(TRIAGE)] == ["escalate_to_csc"]
    chase = late.task(MANAGER, "chase_csc_escalation")
    assert [t["element_id"] for t in late.inbox(MANAGER)] == ["chase_csc_escalation"]
    assert (chase["priority"], at(chase["due_at"])) == (100, started + 120 * MINUTE)
    assert fired(late, TRIAGE) == [("csc_escalation_overdue", started + 60 * MINUTE)]
    problem = assert_problem(
        api.post(
            f"/api/v1/tasks/{chase['id']}/complete",
            MANAGER,
            json={"data": {"spoke_to": "E Shaw", "delay_reason": "Phones down"}},
        ),
        422,
        "form-data-invalid",
    )
    assert problem["errors"] == {"$": ["'action_taken' is a required property"]}
    late.complete(
        MANAGER,
        "chase_csc_escalation",
        {
            "spoke_to": "E Shaw",
            "delay_reason": "MASH phone line down for an hour.",
            "action_taken": "phoned_children_social_care",
        },
    )
    late.complete(TRIAGE, "escalate_to_csc", ESCALATION)
    assert late.status(TRIAGE) == "completed"


def test_refused_consent_does_not_block_a_child_protection_referral(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    started = clock.now()
    case = start(api, services, clock, "SF-HARM")
    task = case.task(REFERRER, "make_referral")
    # The referral records the basis for sharing (consent, CDA 1998 s.115 or safeguarding).
    problem = assert_problem(
        api.post(
            f"/api/v1/tasks/{task['id']}/complete",
            REFERRER,
            json={"data": {k: v for k, v in referral().items() if k != "sharing_basis"}},
        ),
        422,
        "form-data-invalid",
    )
    assert problem["errors"] == {"$": ["'sharing_basis' is a required property"]}
    case.complete(REFERRER, "make_referral", referral())
    case.complete(TRIAGE, "triage_referral", triage("early_help"))
    case.complete(TRIAGE, "record_consent", consent(given=False, harm=True))
    escalation = case.task(TRIAGE, "escalate_to_csc")
    assert at(escalation["due_at"]) == started + 60 * MINUTE
    assert case.inbox(DATA) == []
    variables = case.variables(TRIAGE)
    assert (variables["threshold_level"], variables["shared_without_consent"]) == ("child_protection", True)
    assert variables["csc_sharing_basis"] == "child_safeguarding"
    case.complete(TRIAGE, "escalate_to_csc", ESCALATION)
    assert case.status(TRIAGE) == "completed"

    declined = start(api, services, clock, "SF-DECLINED")
    declined.complete(REFERRER, "make_referral", referral())
    declined.complete(TRIAGE, "triage_referral", triage("early_help"))
    declined.complete(TRIAGE, "record_consent", consent(given=False))
    state = declined.state(TRIAGE)
    assert (state["status"], state["open_tasks"]) == ("completed", [])
    assert declined.inbox(DATA) == []


ELIGIBILITY = [
    # (needs confirmed, dependent children, expectant parent, eligible, reason)
    (["domestic_abuse", "education"], True, False, False, "Fewer than 3 needs across the framework"),
    ([*NEEDS, "health", "crime"], False, False, False, "No dependent children or expectant parent"),
    (NEEDS, False, True, True, "At least 3 needs, with dependent children or an expectant parent"),
]


def test_eligibility_comes_from_the_decision_table(api: Api, services: Services, clock: FrozenClock) -> None:
    """Ineligible families end without a keyworker; an expectant parent with 3 needs is eligible."""
    for number, (needs, children, expectant, eligible, reason) in enumerate(ELIGIBILITY):
        case = start(api, services, clock, f"SF-E{number}")
        case.complete(REFERRER, "make_referral", referral())
        case.complete(TRIAGE, "triage_referral", triage("early_help"))
        case.complete(TRIAGE, "record_consent", consent())
        case.complete(DATA, "check_needs", needs_check(needs, children=children, expectant=expectant))
        variables = case.variables(DATA)
        assert (variables["eligible_for_payment"], variables["eligibility_reason"]) == (eligible, reason)
        state = case.state(DATA)
        if eligible:
            assert [t["element_id"] for t in case.inbox(TRIAGE)] == ["allocate_keyworker"]
        else:
            assert (state["status"], state["open_tasks"]) == ("completed", [])
            assert case.inbox(TRIAGE) == []

    universal = start(api, services, clock, "SF-UNIVERSAL")
    universal.complete(REFERRER, "make_referral", referral())
    universal.complete(TRIAGE, "triage_referral", triage("universal"))
    assert universal.status(TRIAGE) == "completed"
    assert universal.inbox(TRIAGE) == []


def test_ten_team_around_the_family_reviews_each_exactly_on_time(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = to_plan(api, services, clock)
    due = clock.now() + 6 * WEEK
    expected = [due]
    intervals = [6, 7, 8, 6, 7, 8, 6, 7, 8]
    for weeks in intervals:
        assert case.timers(TAF) == {"taf_review_due": due.isoformat()}
        case.advance(due - clock.now() - MINUTE)
        assert case.inbox(TAF) == []
        case.advance(MINUTE)
        case.complete(TAF, "taf_review", taf_review("continue", weeks=weeks))
        due = clock.now() + weeks * WEEK
        expected.append(due)
    # A review may not set the next one outside 6-8 weeks.
    case.advance(due - clock.now())
    task = case.task(TAF, "taf_review")
    for weeks in (5, 9):
        problem = assert_problem(
            api.post(
                f"/api/v1/tasks/{task['id']}/complete",
                TAF,
                json={"data": taf_review("continue", weeks=weeks)},
            ),
            422,
            "form-data-invalid",
        )
        assert list(problem["errors"]) == ["$.taf_review_weeks"]
    case.complete(TAF, "taf_review", taf_review("step_down"))
    assert case.open_elements(KEYWORKER) == ["close_case"]
    assert fired(case, TAF) == [("taf_review_due", when) for when in expected]
    assert len(expected) == 10


@pytest.mark.parametrize(("settings", "weeks"), [(7, 7), (10, 8), (4, 6)], indirect=["settings"])
def test_the_first_review_interval_is_a_setting_kept_within_six_to_eight_weeks(
    api: Api, services: Services, clock: FrozenClock, weeks: int
) -> None:
    case = to_plan(api, services, clock)
    assert case.variables(TAF)["taf_review_weeks"] == weeks
    assert case.timers(TAF) == {"taf_review_due": (clock.now() + weeks * WEEK).isoformat()}
    case.advance(weeks * WEEK - MINUTE)
    assert case.inbox(TAF) == []
    case.advance(MINUTE)
    assert [t["element_id"] for t in case.inbox(TAF)] == ["taf_review"]


def test_step_up_to_childrens_social_care_at_a_review(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = to_plan(api, services, clock)
    case.advance(6 * WEEK)
    case.complete(TAF, "taf_review", taf_review("step_up"))
    step_up = case.task(TRIAGE, "step_up_to_csc")
    assert at(step_up["due_at"]) == clock.now() + DAY
    case.complete(TRIAGE, "step_up_to_csc", ESCALATION)
    state = case.state(TRIAGE)
    assert (state["status"], state["open_tasks"], state["timers"]) == ("completed", [], [])


def test_sustainment_check_decides_the_claim_and_a_failed_claim_may_be_withdrawn(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    unsustained = to_plan(api, services, clock, "SF-UNSUSTAINED")
    withdrawn = to_plan(api, services, clock, "SF-WITHDRAWN")
    unsustained.advance(6 * WEEK)
    for case in (unsustained, withdrawn):
        case.complete(TAF, "taf_review", taf_review("close"))
        # Closed on Monday 16 February 2026 (GMT): the check falls at 00:00 on 16 August (BST).
        assert clock.now() == datetime(2026, 2, 16, 9, 0, tzinfo=UTC)
        case.complete(KEYWORKER, "close_case", closure())
        assert case.timers(DATA) == {"six_months_after_closure": "2026-08-15T23:00:00+00:00"}
    assert unsustained.advance(datetime(2026, 8, 15, 23, 0, tzinfo=UTC) - clock.now()) == 2

    unsustained.complete(DATA, "check_sustainment", sustainment(unsustained=("housing",)))
    variables = unsustained.variables(DATA)
    assert (variables["claim_ready"], variables["unsustained_needs"]) == (False, ["housing"])
    state = unsustained.state(DATA)
    assert (state["status"], state["open_tasks"]) == ("completed", [])
    assert unsustained.inbox(CLAIMS) == []

    withdrawn.complete(DATA, "check_sustainment", sustainment())
    withdrawn.complete(
        CLAIMS,
        "submit_claim",
        {
            "claim_reference": "PBR-2026-40",
            "claim_period": "2026 window 3",
            "claim_evidence_summary": "Three needs, all sustained six months after closure.",
        },
    )
    withdrawn.complete(
        AUDITOR,
        "audit_claim",
        {
            "audit_outcome": "failed",
            "evidence_checked": ["eligibility", "sustained_outcomes"],
            "audit_findings": "Housing outcome rests on a tenancy that had already ended.",
        },
    )
    withdrawn.complete(
        CLAIMS,
        "correct_claim",
        {"correction_action": "withdraw", "correction_notes": "The housing outcome cannot be evidenced."},
    )
    state = withdrawn.state(CLAIMS)
    assert (state["status"], state["open_tasks"]) == ("completed", [])
    assert withdrawn.inbox(AUDITOR) == []
    assert withdrawn.variables(CLAIMS)["claims_officer"] == "claims.ng"
