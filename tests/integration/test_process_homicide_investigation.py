"""Scenarios for the homicide investigation, worked over the HTTP API by the people in each lane.

Covers the main path to a CPS charging decision and closure, the 24-hour categorisation review timer,
the authority needed to cancel an action, the Victims' Code family update across a bank holiday
weekend, the early and independent 28-day reviews with the SIO's responses in the policy file, the
independence of the review officer, and a long case with many actions and family updates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import Api, assert_problem
from scenario_support import Case, deploy_project, person

from engine.clock import FrozenClock
from engine.container import Services

KEY = "homicide_investigation"

DUTY_INSPECTOR = person("insp.duty", "duty_inspector", rank="inspector")
SIO = person("dci.morgan", "senior_investigating_officer", rank="chief_inspector")
DI_SIO = person("di.patel", "senior_investigating_officer", rank="inspector")
GOLD = person("supt.gold", "gold", rank="superintendent")
FLC = person("ds.coord", "family_liaison_coordinator", rank="sergeant")
FLO = person("dc.flo", "family_liaison_officer")
DEPUTY = person("di.deputy", "deputy_sio", rank="inspector")
OFFICE = person("ds.office", "office_manager", rank="sergeant")
ALLOCATOR = person("ds.alloc", "action_allocator", rank="sergeant")
INVESTIGATOR = person("dc.inv", "investigator")
RECEIVER = person("dc.recv", "receiver")
REVIEWER = person("dsupt.review", "review_officer", rank="superintendent", units=("Major Crime Review",))
TEAM_REVIEWER = person("dci.team", "review_officer", rank="chief_inspector")
SIO_AS_REVIEWER = SIO.but(roles=("senior_investigating_officer", "review_officer"))
TEAM = [SIO.subject, DEPUTY.subject, OFFICE.subject, TEAM_REVIEWER.subject]

GOLDEN_HOUR = {
    "life_preserved": True,
    "scene_preserved": True,
    "scene_log_started": True,
    "victim_identified": True,
    "victim_details": "Adult male, name known to the family liaison team",
    "suspects_identified": False,
    "coroner_informed": True,
    "initial_actions_summary": "Cordons at both ends of Mill Lane; scene log running; coroner told.",
    "critical_incident_recommended": False,
}
SIO_APPOINTMENT = {
    "sio_name": "DCI Morgan",
    "sio_rank": "detective_chief_inspector",
    "appointed_at": "2026-01-05T10:00:00Z",
    "deputy_sio_name": "DI Deputy",
    "policy_file_reference": "PF/KESTREL/1",
    "sensitive_policy_file_reference": "SPF/KESTREL/1",
    "terms_of_reference": "Investigate the death on Mill Lane and bring the offender to justice.",
}


def action(n: int, priority: str = "medium") -> dict[str, Any]:
    return {
        "title": f"Action {n:02d}: trace and interview witness",
        "source_document": f"M{n}",
        "priority": priority,
    }


def categorisation(*, critical: bool = False) -> dict[str, Any]:
    return {
        "category": "a",
        "category_rationale": "Offender not known; significant public concern in the neighbourhood.",
        "critical_incident": critical,
        "resourcing": "Full MIT syndicate and an outside enquiry team.",
    }


def policy_decision(
    title: str, *, family: bool = False, sensitive: bool = False, closed: bool = False
) -> dict[str, Any]:
    return {
        "decision_title": title,
        "decision": f"{title}: proceed as set out in the options below.",
        "options_considered": "Proceed now; defer until forensic results; seek further advice.",
        "policy_rationale": "Proceeding now preserves evidence and keeps the family informed.",
        "sensitive": sensitive,
        "family_to_be_told": family,
        "policy_file_closed": closed,
    }


def family_plan(*, agreed: bool) -> dict[str, Any]:
    return {
        "family_details": "Parents and two adult siblings living in the city.",
        "flo_names": ["DC Flo"],
        "deployment_objectives": "Gather victimology and keep the family informed of the investigation.",
        "exit_strategy": "Withdraw after the first court hearing; the family keeps a named contact.",
        "exit_strategy_agreed_with_sio": agreed,
    }


def family_told(at: str) -> dict[str, Any]:
    return {"family_told_at": at, "who_was_told": "Victim's mother", "how_told": "in_person"}


def contact(at: str, *, ending: bool = False) -> dict[str, Any]:
    return {
        "contact_at": at,
        "contact_summary": "Visited the family; answered questions.",
        "deployment_ending": ending,
    }


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture
def project(services: Services) -> None:
    deploy_project(services)


def open_case(
    api: Api,
    services: Services,
    clock: FrozenClock,
    actions: list[dict[str, Any]],
    *,
    critical: bool = False,
    business_key: str = "OP-KESTREL",
) -> Case:
    """Report the death, then golden hour, SIO appointment, fast-track actions and categorisation."""
    case = Case.start(
        api,
        services,
        clock,
        KEY,
        DUTY_INSPECTOR,
        business_key=business_key,
        case_reference="MIT/2026/0042",
        operation_name="Kestrel",
        reported_at=iso(clock.now()),
        investigation_team=TEAM,
    )
    case.complete(DUTY_INSPECTOR, "golden_hour", GOLDEN_HOUR)
    case.complete(SIO, "accept_sio_appointment", SIO_APPOINTMENT)
    case.complete(SIO, "set_fast_track_actions", {"actions": actions})
    case.complete(SIO, "categorise", categorisation(critical=critical))
    return case


def tasks_of(case: Case, who: Any, element_id: str) -> list[dict[str, Any]]:
    return [t for t in case.inbox(who) if t["element_id"] == element_id]


def complete_id(case: Case, who: Any, task_id: str, data: dict[str, Any]) -> Any:
    return case.api.post(f"/api/v1/tasks/{task_id}/complete", who, json={"data": data})


def work_action(case: Case, title: str, *, further: list[dict[str, Any]] | None = None) -> None:
    """Allocate, result, check and file the action called ``title``."""
    work_batch(case, [title], further={title: further or []})


def work_batch(
    case: Case, titles: list[str], *, further: dict[str, list[dict[str, Any]]] | None = None
) -> None:
    """Take a batch of actions through allocation, result and check, a stage at a time for the batch."""
    stages = (
        (
            ALLOCATOR,
            "allocate_action",
            lambda _t: {"allocation_decision": "allocate", "allocated_to": INVESTIGATOR.subject},
        ),
        (
            INVESTIGATOR,
            "result_action",
            lambda t: {"result_summary": f"{t}: statement taken.", "resulted_at": iso(case.clock.now())},
        ),
        (
            RECEIVER,
            "check_action_result",
            lambda t: {
                "check_outcome": "accept",
                "check_notes": "Result complete and indexed.",
                "further_actions": (further or {}).get(t, []),
            },
        ),
    )
    for who, element, data in stages:
        open_now = {t["summary"]: t for t in tasks_of(case, who, element)}
        for title in titles:
            response = complete_id(case, who, open_now[title]["id"], data(title))
            assert response.status_code == 200, response.get_data(as_text=True)


def history(case: Case, who: Any) -> list[dict[str, Any]]:
    return case.history(who)


def completed_by(events: list[dict[str, Any]], element_id: str) -> list[str]:
    return [
        e["actor"]
        for e in events
        if e["action"] in ("task.completed", "task.decided") and e["detail"].get("element_id") == element_id
    ]


def finish_gold(case: Case) -> None:
    case.complete(
        GOLD,
        "review_categorisation",
        {
            "confirmed_category": "a",
            "category_changed": False,
            "review_rationale": "Category A stands: the offender is still not known.",
        },
    )


def finish_family(case: Case) -> None:
    case.complete(FLC, "plan_family_liaison", family_plan(agreed=True))
    now = iso(case.clock.now())
    case.complete(
        FLO,
        "deploy_to_family",
        {
            "first_contact_at": now,
            "family_members_met": "Mother and father",
            "information_given": "Explained the investigation and the role of the FLO.",
            "victims_code_explained": True,
        },
    )
    case.complete(FLO, "record_family_contact", contact(now, ending=True))
    case.complete(
        FLC,
        "review_exit",
        {
            "exit_completed_at": now,
            "exit_strategy_followed": True,
            "exit_review_notes": "Exit as planned; the family has a named contact.",
            "ongoing_contact_point": "DS Coord",
        },
    )


def finish_actions(case: Case, titles: list[str]) -> None:
    for title in titles:
        work_action(case, title)
    case.complete(OFFICE, "review_action_queue", {"new_actions": [], "action_management_complete": True})


def finish_charging(case: Case, *, custody_expires: str | None = None, tell_family: bool = True) -> None:
    in_custody = custody_expires is not None
    case.complete(
        DEPUTY,
        "prepare_charging_file",
        {
            "charging_stage": "ready_for_cps",
            "suspect_name": "John Smith",
            "evidence_summary": "Eyewitness identification, CCTV and a matching DNA profile.",
            "test_requested": "threshold_test" if in_custody else "full_code_test",
            "suspect_in_custody": in_custody,
            **({"custody_clock_expires_at": custody_expires} if in_custody else {}),
        },
    )
    case.complete(
        SIO,
        "record_cps_decision",
        {
            "cps_decision": "charge",
            "test_applied": "threshold_test" if in_custody else "full_code_test",
            "cps_reference": "CPS/KESTREL/7",
            "decided_at": iso(case.clock.now()),
            "charges": "Murder",
        },
    )
    if tell_family:
        case.complete(FLO, "tell_family_of_charging_decision", family_told(iso(case.clock.now())))


def close(case: Case) -> None:
    case.complete(
        SIO,
        "close_investigation",
        {
            "investigation_outcome": "charged",
            "closure_summary": "Suspect charged with murder; the investigation is handed to the trial team.",
            "policy_file_lodged": True,
        },
    )


# -- the main path -----------------------------------------------------------------------------------


def test_main_path_to_a_charge_and_closure(
    api: Api, services: Services, clock: FrozenClock, project: None
) -> None:
    reported = clock.now()
    case = Case.start(
        api,
        services,
        clock,
        KEY,
        DUTY_INSPECTOR,
        business_key="OP-KESTREL",
        case_reference="MIT/2026/0042",
        operation_name="Kestrel",
        reported_at=iso(reported),
        investigation_team=TEAM,
    )
    golden = case.task(DUTY_INSPECTOR, "golden_hour")
    assert (golden["priority"], golden["due_at"]) == (100, iso(reported + timedelta(hours=1)))
    assert case.inbox(SIO) == []
    case.complete(DUTY_INSPECTOR, "golden_hour", GOLDEN_HOUR)

    # The SIO must be a chief inspector or above.
    appointment = case.task(SIO, "accept_sio_appointment")
    refused = assert_problem(
        api.post(f"/api/v1/tasks/{appointment['id']}/complete", DI_SIO, json={"data": SIO_APPOINTMENT}),
        403,
        "rank-too-low",
    )
    assert "Chief Inspector" in refused["detail"]
    case.complete(SIO, "accept_sio_appointment", SIO_APPOINTMENT)
    assert case.variables(SIO)["sio"] == SIO.subject

    case.complete(SIO, "set_fast_track_actions", {"actions": [action(1, "high"), action(2, "low")]})
    clock.advance(timedelta(minutes=30))
    categorised = clock.now()
    case.complete(SIO, "categorise", categorisation(critical=True))

    assert case.open_elements(SIO) == [
        "allocate_action",
        "allocate_action",
        "plan_family_liaison",
        "prepare_charging_file",
        "record_policy_decision",
        "review_categorisation",
        "set_gold_strategy",
    ]
    timers = case.timers(SIO)
    assert timers["categorisation_review_overdue"] == iso(categorised + timedelta(hours=24))
    assert timers["early_review_due"] == iso(reported + timedelta(days=7))
    # Each lane sees its own work and nobody else's.
    assert sorted(t["element_id"] for t in case.inbox(GOLD)) == ["review_categorisation", "set_gold_strategy"]
    allocations = sorted((t["priority"], t["summary"]) for t in case.inbox(ALLOCATOR))
    assert allocations == [(30, action(2)["title"]), (90, action(1)["title"])]
    assert case.inbox(INVESTIGATOR) == []
    assert case.inbox(REVIEWER) == []

    # Gold: categorisation review and strategy for the critical incident.
    finish_gold(case)
    case.complete(
        GOLD,
        "set_gold_strategy",
        {
            "strategic_intent": "Maintain public confidence and identify the offender quickly.",
            "gold_group_members": ["ACC Crime", "Community safety lead"],
            "community_impact_assessment": "High tension in the estate; reassurance patrols in place.",
            "critical_incident_declared_at": iso(clock.now()),
        },
    )
    assert "categorisation_review_overdue" not in case.timers(SIO)

    # The policy file: an open entry the family must hear about, a sensitive entry, then closure.
    case.complete(SIO, "record_policy_decision", policy_decision("Arrest strategy", family=True))
    decided = clock.now()
    tell = case.task(FLO, "tell_family")
    assert tell["due_at"] == "2026-01-07T00:00:00+00:00"  # end of Tuesday 6, the working day after Monday
    case.complete(SIO, "record_policy_decision", policy_decision("Covert deployment", sensitive=True))
    case.complete(SIO, "record_policy_decision", policy_decision("Policy file closed", closed=True))
    case.complete(FLO, "tell_family", family_told(iso(clock.now())))

    # Family liaison: no deployment until the exit strategy is agreed with the SIO.
    case.complete(FLC, "plan_family_liaison", family_plan(agreed=False))
    assert tasks_of(case, FLO, "deploy_to_family") == []
    assert [t["element_id"] for t in case.inbox(FLC)] == ["plan_family_liaison"]
    finish_family(case)

    # Actions: the receiver refers the first result back once before it is filed.
    [first] = [t for t in tasks_of(case, ALLOCATOR, "allocate_action") if t["summary"] == action(1)["title"]]
    assert (
        complete_id(
            case,
            ALLOCATOR,
            first["id"],
            {"allocation_decision": "allocate", "allocated_to": INVESTIGATOR.subject},
        ).status_code
        == 200
    )
    result = {"result_summary": "Witness seen; partial account.", "resulted_at": iso(clock.now())}
    case.complete(INVESTIGATOR, "result_action", result)
    case.complete(
        RECEIVER,
        "check_action_result",
        {"check_outcome": "refer_back", "check_notes": "Take a full statement.", "further_actions": []},
    )
    case.complete(
        INVESTIGATOR, "result_action", {**result, "result_summary": "Full statement taken from witness."}
    )
    case.complete(
        RECEIVER,
        "check_action_result",
        {"check_outcome": "accept", "check_notes": "Statement indexed.", "further_actions": []},
    )
    finish_actions(case, [action(2)["title"]])

    # Charging: the Threshold Test only while the suspect is in custody.
    file_task = case.task(DEPUTY, "prepare_charging_file")
    threshold_without_custody = {
        "charging_stage": "ready_for_cps",
        "suspect_name": "John Smith",
        "evidence_summary": "Eyewitness identification and CCTV of the suspect.",
        "test_requested": "threshold_test",
        "suspect_in_custody": False,
    }
    invalid = assert_problem(
        api.post(
            f"/api/v1/tasks/{file_task['id']}/complete", DEPUTY, json={"data": threshold_without_custody}
        ),
        422,
        "form-data-invalid",
    )
    assert "$.suspect_in_custody" in invalid["errors"]
    custody_expires = iso(clock.now() + timedelta(hours=20))
    case.complete(
        DEPUTY,
        "prepare_charging_file",
        {
            **threshold_without_custody,
            "suspect_in_custody": True,
            "custody_clock_expires_at": custody_expires,
        },
    )
    cps = case.task(SIO, "record_cps_decision")
    assert (cps["due_at"], cps["priority"]) == (custody_expires, 95)
    case.complete(
        SIO,
        "record_cps_decision",
        {
            "cps_decision": "charge",
            "test_applied": "threshold_test",
            "cps_reference": "CPS/KESTREL/7",
            "decided_at": iso(clock.now()),
            "charges": "Murder",
        },
    )
    # The family hears of the charge by the end of the next working day (Victims' Code).
    told = case.task(FLO, "tell_family_of_charging_decision")
    assert (told["due_at"], told["summary"]) == ("2026-01-07T00:00:00+00:00", "CPS decision: charge")
    assert case.timers(SIO)["charging_update_overdue"] == told["due_at"]
    case.complete(FLO, "tell_family_of_charging_decision", family_told(iso(clock.now())))

    # Early review at 7 days (a setting); the case is detected, so there is no 28-day review.
    assert case.advance(reported + timedelta(days=7) - clock.now() - timedelta(seconds=1)) == 0
    assert tasks_of(case, REVIEWER, "early_review") == []
    assert case.advance(timedelta(seconds=1)) == 1
    case.complete(
        REVIEWER,
        "early_review",
        {"review_findings": "Lines of enquiry are sound; suspect charged.", "case_detected": True},
    )
    assert "formal_review_due" not in case.timers(SIO)

    closing = case.task(SIO, "close_investigation")
    assert closing["element_id"] == "close_investigation"
    close(case)
    assert case.status(SIO) == "completed"

    data = case.variables(SIO)
    assert data["cps_decision"] == "charge"
    assert data["test_applied"] == "threshold_test"
    assert [(e["entry"], e["subject"], e["author"]) for e in data["policy_file"]] == [
        (1, "Arrest strategy", SIO.subject),
        (2, "Policy file closed", SIO.subject),
    ]
    assert data["policy_file"][0]["recorded_at"] == iso(decided)
    assert data["policy_file"][0]["options_considered"].startswith("Proceed now")
    assert [(e["entry"], e["subject"]) for e in data["sensitive_policy_file"]] == [(2, "Covert deployment")]
    assert [(a["status"], a["resulted_by"], a["checked_by"]) for a in data["action_log"]] == [
        ("filed", INVESTIGATOR.subject, RECEIVER.subject),
        ("filed", INVESTIGATOR.subject, RECEIVER.subject),
    ]
    assert (data["actions_filed"], data["actions_cancelled"]) == (2, 0)

    events = history(case, REVIEWER.but(roles=("review_officer", "auditor")))
    assert completed_by(events, "accept_sio_appointment") == [SIO.subject]
    assert completed_by(events, "record_cps_decision") == [SIO.subject]
    assert completed_by(events, "early_review") == [REVIEWER.subject]
    assert [e["detail"]["element_id"] for e in events if e["action"] == "timer.fired"] == ["early_review_due"]
    assert any(e["action"] == "instance.completed" for e in events)


# -- the 24-hour categorisation review ----------------------------------------------------------------


def test_categorisation_review_falls_due_24_hours_after_categorisation(
    api: Api, services: Services, clock: FrozenClock, project: None
) -> None:
    case = open_case(api, services, clock, [action(1)])
    categorised = clock.now()
    due = iso(categorised + timedelta(hours=24))
    review = case.task(GOLD, "review_categorisation")
    assert (review["due_at"], review["summary"], review["required_rank"]) == (
        due,
        "Category a - Kestrel",
        "superintendent",
    )
    assert case.timers(SIO)["categorisation_review_overdue"] == due
    assert case.variables(SIO)["categorised_at"] == iso(categorised)

    # A chief inspector is below the rank; the SIO may not review their own categorisation.
    low = assert_problem(
        api.post(f"/api/v1/tasks/{review['id']}/claim", GOLD.but(subject="ci.gold", rank="chief_inspector")),
        403,
        "rank-too-low",
    )
    assert "Superintendent" in low["detail"]
    sio_as_gold = SIO.but(roles=("senior_investigating_officer", "gold"), rank="superintendent")
    own = assert_problem(
        api.post(f"/api/v1/tasks/{review['id']}/complete", sio_as_gold, json={"data": {}}),
        403,
        "separation-of-duties",
    )
    assert "separation of duties" in own["detail"]

    assert case.advance(timedelta(hours=24) - timedelta(seconds=1)) == 0
    assert tasks_of(case, GOLD, "chase_categorisation_review") == []
    assert case.advance(timedelta(seconds=1)) == 1
    chase = case.task(GOLD, "chase_categorisation_review")
    assert chase["due_at"] == iso(clock.now() + timedelta(hours=2))
    assert tasks_of(case, SIO, "chase_categorisation_review") == []
    # Non-interrupting: the review itself is still waiting.
    assert case.task(GOLD, "review_categorisation")["id"] == review["id"]
    case.complete(
        GOLD, "chase_categorisation_review", {"chase_notes": "Gold duty officer reminded by phone."}
    )
    finish_gold(case)
    assert "categorisation_review_overdue" not in case.timers(SIO)

    events = history(case, REVIEWER.but(roles=("auditor",)))
    [fired] = [e for e in events if e["action"] == "timer.fired"]
    assert (fired["detail"]["element_id"], fired["detail"]["due_at"]) == (
        "categorisation_review_overdue",
        due,
    )
    assert completed_by(events, "review_categorisation") == [GOLD.subject]


# -- cancelling an action -------------------------------------------------------------------------------


def test_an_action_is_cancelled_only_by_the_sio_or_office_manager_with_a_reason(
    api: Api, services: Services, clock: FrozenClock, project: None
) -> None:
    actions = [action(1), action(2), action(3)]
    titles = [a["title"] for a in actions]
    case = open_case(api, services, clock, actions)
    allocation = {t["summary"]: t for t in tasks_of(case, ALLOCATOR, "allocate_action")}
    reason = "Duplicate of an action already resulted by the outside enquiry team."

    no_authority = assert_problem(
        complete_id(
            case,
            ALLOCATOR,
            allocation[titles[0]]["id"],
            {"allocation_decision": "request_cancellation", "cancellation_request_reason": reason},
        ),
        422,
        "form-data-invalid",
    )
    assert no_authority["errors"] == {"$": ["'cancellation_authority' is a required property"]}
    for title, authority in (
        (titles[0], "office_manager"),
        (titles[1], "senior_investigating_officer"),
        (titles[2], "office_manager"),
    ):
        request = {
            "allocation_decision": "request_cancellation",
            "cancellation_request_reason": reason,
            "cancellation_authority": authority,
        }
        assert complete_id(case, ALLOCATOR, allocation[title]["id"], request).status_code == 200

    by_office = {t["summary"]: t for t in tasks_of(case, OFFICE, "authorise_cancellation")}
    [by_sio] = tasks_of(case, SIO, "authorise_cancellation_sio")
    assert sorted(by_office) == [titles[0], titles[2]]
    assert by_sio["summary"] == titles[1]
    assert case.inbox(INVESTIGATOR) == []
    assert tasks_of(case, SIO, "authorise_cancellation") == []

    # An investigator may neither cancel nor write off an action.
    approve = {
        "cancellation_decision": "approve",
        "cancellation_rationale": "Duplicate confirmed on HOLMES; cancel.",
    }
    for task, role in ((by_office[titles[0]], "office_manager"), (by_sio, "senior_investigating_officer")):
        refused = assert_problem(complete_id(case, INVESTIGATOR, task["id"], approve), 403, "role-missing")
        assert f"for the role '{role}'" in refused["detail"]
    # A reason is required.
    missing = assert_problem(
        complete_id(case, OFFICE, by_office[titles[0]]["id"], {"cancellation_decision": "approve"}),
        422,
        "form-data-invalid",
    )
    assert missing["errors"] == {"$": ["'cancellation_rationale' is a required property"]}

    clock.advance(timedelta(minutes=5))
    assert complete_id(case, OFFICE, by_office[titles[0]]["id"], approve).status_code == 200
    assert complete_id(case, SIO, by_sio["id"], approve).status_code == 200
    decline = {
        "cancellation_decision": "decline",
        "cancellation_rationale": "Not a duplicate: a different witness.",
    }
    assert complete_id(case, OFFICE, by_office[titles[2]]["id"], decline).status_code == 200
    # Declined: the action goes back for allocation and runs its lifecycle.
    [again] = tasks_of(case, ALLOCATOR, "allocate_action")
    assert again["summary"] == titles[2]
    work_action(case, titles[2])

    log = {entry["title"]: entry for entry in case.variables(OFFICE)["action_log"]}
    assert (log[titles[0]]["status"], log[titles[0]]["authorised_by"], log[titles[0]]["authority"]) == (
        "cancelled",
        OFFICE.subject,
        "office_manager",
    )
    assert log[titles[0]]["result"] == approve["cancellation_rationale"]
    assert log[titles[0]]["requested_by"] == ALLOCATOR.subject
    assert (log[titles[1]]["status"], log[titles[1]]["authorised_by"]) == ("cancelled", SIO.subject)
    assert (log[titles[2]]["status"], log[titles[2]]["resulted_by"]) == ("filed", INVESTIGATOR.subject)
    data = case.variables(OFFICE)
    assert (data["actions_filed"], data["actions_cancelled"]) == (1, 2)

    events = history(case, REVIEWER.but(roles=("auditor",)))
    assert completed_by(events, "authorise_cancellation") == [OFFICE.subject, OFFICE.subject]
    assert completed_by(events, "authorise_cancellation_sio") == [SIO.subject]


# -- Victims' Code: family told within 1 working day ----------------------------------------------------


def test_family_update_overdue_across_the_easter_bank_holidays(
    api: Api, services: Services, clock: FrozenClock, project: None
) -> None:
    clock.set(datetime(2026, 4, 2, 15, 0, tzinfo=UTC))  # Thursday 2 April, 16:00 BST; Good Friday follows
    case = open_case(api, services, clock, [action(1)])
    finish_gold(case)
    case.complete(SIO, "record_policy_decision", policy_decision("Release of the victim's name", family=True))

    # Good Friday, the weekend and Easter Monday are not working days: the 1st working day after
    # Thursday is Tuesday 7 April, which ends at midnight BST.
    due = "2026-04-07T23:00:00+00:00"
    tell = case.task(FLO, "tell_family")
    assert tell["due_at"] == due
    assert case.timers(SIO)["family_update_overdue"] == due
    assert case.variables(SIO)["family_update_due"] == due
    assert tasks_of(case, FLC, "tell_family") == []

    remaining = datetime(2026, 4, 7, 23, 0, tzinfo=UTC) - clock.now()
    assert case.advance(remaining - timedelta(seconds=1)) == 0
    assert tasks_of(case, FLC, "chase_family_update") == []
    assert case.advance(timedelta(seconds=1)) == 1
    chase = case.task(FLC, "chase_family_update")
    assert chase["due_at"] == "2026-04-08T03:00:00+00:00"
    assert tasks_of(case, FLO, "chase_family_update") == []
    assert case.task(FLO, "tell_family")["id"] == tell["id"]  # still to be done

    case.complete(
        FLC,
        "chase_family_update",
        {
            "overdue_reason": "FLO was on leave over Easter.",
            "action_taken": "Second FLO tasked for this morning.",
        },
    )
    case.complete(FLO, "tell_family", family_told(iso(clock.now())))
    assert tasks_of(case, FLO, "tell_family") == []

    events = history(case, REVIEWER.but(roles=("auditor",)))
    [fired] = [e for e in events if e["action"] == "timer.fired"]
    assert (fired["detail"]["element_id"], fired["detail"]["due_at"]) == ("family_update_overdue", due)
    assert completed_by(events, "chase_family_update") == [FLC.subject]
    assert completed_by(events, "tell_family") == [FLO.subject]


# -- early and independent 28-day reviews -----------------------------------------------------------------


def test_28_day_review_recommendations_are_answered_in_the_policy_file(
    api: Api, services: Services, clock: FrozenClock, project: None
) -> None:
    reported = clock.now()
    case = open_case(api, services, clock, [action(1)])
    finish_gold(case)
    case.complete(SIO, "record_policy_decision", policy_decision("Media strategy", closed=True))
    finish_family(case)
    finish_actions(case, [action(1)["title"]])
    case.complete(
        DEPUTY,
        "prepare_charging_file",
        {
            "charging_stage": "no_charge_possible",
            "evidence_summary": "No suspect identified; forensic results awaited.",
            "suspect_in_custody": False,
            "no_charge_reason": "No suspect has been identified to put before the CPS.",
        },
    )

    # The early review falls due on day 7 (homicide.early_review_days); only an independent officer may do it.
    assert case.timers(SIO) == {"early_review_due": iso(reported + timedelta(days=7))}
    case.advance(reported + timedelta(days=7) - clock.now())
    early = case.task(REVIEWER, "early_review")
    assert early["due_at"] == iso(clock.now() + timedelta(days=7))
    findings = {
        "review_findings": "Lines of enquiry are sound but house-to-house is incomplete.",
        "case_detected": False,
    }
    on_team = assert_problem(
        complete_id(case, TEAM_REVIEWER, early["id"], findings), 403, "separation-of-duties"
    )
    assert "investigation team" in on_team["detail"]
    own = assert_problem(
        complete_id(case, SIO_AS_REVIEWER, early["id"], findings), 403, "separation-of-duties"
    )
    assert "separation of duties" in own["detail"]
    assert complete_id(case, REVIEWER, early["id"], findings).status_code == 200

    # Undetected: the independent review falls due 28 days after the report.
    formal_at = reported + timedelta(days=28)
    assert case.timers(SIO) == {"formal_review_due": iso(formal_at)}
    assert case.advance(formal_at - clock.now() - timedelta(seconds=1)) == 0
    assert case.advance(timedelta(seconds=1)) == 1
    review = case.task(REVIEWER, "independent_review")
    recommendations = [
        {"ref": "R1", "recommendation": "Complete house-to-house enquiries in Mill Lane."},
        {"ref": "R2", "recommendation": "Commission a second forensic strategy meeting."},
        {"ref": "R3", "recommendation": "Re-interview the first witness with an intermediary."},
    ]
    report = {
        "still_undetected": True,
        "review_summary": "The investigation is well run; three gaps remain to close.",
        "recommendations": recommendations,
    }
    assert_problem(complete_id(case, TEAM_REVIEWER, review["id"], report), 403, "separation-of-duties")
    assert complete_id(case, REVIEWER, review["id"], report).status_code == 200

    # The SIO answers each recommendation, accepting or rejecting it with a rationale.
    responses = {t["summary"]: t for t in tasks_of(case, SIO, "respond_to_recommendation")}
    assert sorted(responses) == [f"{r['ref']}: {r['recommendation']}" for r in recommendations]
    assert tasks_of(case, REVIEWER, "respond_to_recommendation") == []
    first = responses["R1: " + recommendations[0]["recommendation"]]
    short = {"recommendation_response": {"response": "accept", "response_rationale": "Agreed."}}
    invalid = assert_problem(complete_id(case, SIO, first["id"], short), 422, "form-data-invalid")
    assert "$.recommendation_response.response_rationale" in invalid["errors"]
    answers = [
        ("R1", "accept", "House-to-house will be completed by the outside enquiry team this week."),
        ("R2", "reject", "The forensic strategy was reviewed last week; nothing has changed since."),
        ("R3", "accept", "An intermediary will be booked and the witness re-interviewed."),
    ]
    answered_at = []
    for (ref, response, rationale), rec in zip(answers, recommendations, strict=True):
        clock.advance(timedelta(hours=1))
        answered_at.append(iso(clock.now()))
        task = responses[f"{ref}: {rec['recommendation']}"]
        body = {"recommendation_response": {"response": response, "response_rationale": rationale}}
        assert complete_id(case, SIO, task["id"], body).status_code == 200

    # Every strand is finished: the policy file is lodged with the review decisions in it.
    case.task(SIO, "close_investigation")
    data = case.variables(SIO)
    assert [(e["entry"], e["subject"], e["author"]) for e in data["policy_file"]] == [
        (1, "Media strategy", SIO.subject),
        (2, "Review recommendation R1", SIO.subject),
        (3, "Review recommendation R2", SIO.subject),
        (4, "Review recommendation R3", SIO.subject),
    ]
    for entry, (ref, response, rationale), at, rec in zip(
        data["policy_file"][1:], answers, answered_at, recommendations, strict=True
    ):
        assert (entry["decision"], entry["rationale"], entry["recorded_at"]) == (response, rationale, at)
        assert (entry["subject"], entry["recommendation"]) == (
            f"Review recommendation {ref}",
            rec["recommendation"],
        )
    close(case)
    assert case.status(SIO) == "completed"

    events = history(case, REVIEWER.but(roles=("auditor",)))
    answered = [
        e
        for e in events
        if e["action"] == "task.completed" and e["detail"]["element_id"] == "respond_to_recommendation"
    ]
    assert [(e["actor"], "recommendation_response" in e["detail"]["fields"]) for e in answered] == [
        (SIO.subject, True)
    ] * 3
    assert completed_by(events, "early_review") == [REVIEWER.subject]
    assert completed_by(events, "independent_review") == [REVIEWER.subject]
    fired = [
        (e["detail"]["element_id"], e["detail"]["due_at"]) for e in events if e["action"] == "timer.fired"
    ]
    assert fired == [
        ("early_review_due", iso(reported + timedelta(days=7))),
        ("formal_review_due", iso(formal_at)),
    ]


# -- a long case ----------------------------------------------------------------------------------------


def test_a_long_case_runs_21_actions_through_their_lifecycle_and_four_family_updates(
    api: Api, services: Services, clock: FrozenClock, project: None
) -> None:
    priorities = ("high", "medium", "low")
    fast_track = [action(n, priorities[n % 3]) for n in range(1, 9)]
    case = open_case(api, services, clock, fast_track)
    finish_gold(case)
    case.complete(FLC, "plan_family_liaison", family_plan(agreed=True))
    case.complete(
        FLO,
        "deploy_to_family",
        {
            "first_contact_at": iso(clock.now()),
            "family_members_met": "Mother and father",
            "information_given": "Explained the investigation and the role of the FLO.",
            "victims_code_explained": True,
        },
    )

    # Four key decisions 30 hours apart, Monday 09:00 to Friday 03:00; each is due by the end of the
    # next working day, so Friday's decision is due at the end of Monday.
    expected_due = [
        "2026-01-07T00:00:00+00:00",
        "2026-01-08T00:00:00+00:00",
        "2026-01-09T00:00:00+00:00",
        "2026-01-13T00:00:00+00:00",
    ]
    for n, due in enumerate(expected_due, start=1):
        case.complete(SIO, "record_policy_decision", policy_decision(f"Key decision {n}", family=True))
        tell = case.task(FLO, "tell_family")
        assert tell["due_at"] == due
        case.complete(FLO, "tell_family", family_told(iso(clock.now())))
        case.complete(FLO, "record_family_contact", contact(iso(clock.now())))
        assert case.advance(timedelta(hours=30)) == 0
    case.complete(SIO, "record_policy_decision", policy_decision("Policy file closed", closed=True))
    case.complete(FLO, "record_family_contact", contact(iso(clock.now()), ending=True))
    case.complete(
        FLC,
        "review_exit",
        {
            "exit_completed_at": iso(clock.now()),
            "exit_strategy_followed": True,
            "exit_review_notes": "Exit as planned; the family has a named contact.",
            "ongoing_contact_point": "DS Coord",
        },
    )

    # First batch: eight fast-track actions; the receiver raises a further action from each of four.
    further = {
        a["title"]: [{"title": f"{a['title']} (follow-up)", "source_document": f"S{n}", "priority": "high"}]
        for n, a in enumerate(fast_track[:4], start=1)
    }
    work_batch(case, [a["title"] for a in fast_track], further=further)
    # Second batch: the four follow-ups and four new actions; third batch: five more.
    batches = [
        [a["title"] for a in action_list]
        for action_list in ([action(n) for n in range(9, 13)], [action(n) for n in range(13, 18)])
    ]
    expected = [[f[0]["title"] for f in further.values()] + batches[0], batches[1]]
    for new_titles, expected_titles in zip(batches, expected, strict=True):
        new_actions = [a for a in (action(n) for n in range(9, 18)) if a["title"] in new_titles]
        case.complete(
            OFFICE, "review_action_queue", {"new_actions": new_actions, "action_management_complete": False}
        )
        assert sorted(t["summary"] for t in tasks_of(case, ALLOCATOR, "allocate_action")) == sorted(
            expected_titles
        )
        work_batch(case, expected_titles)
    case.complete(OFFICE, "review_action_queue", {"new_actions": [], "action_management_complete": True})

    # The CPS decides on Saturday 10 January; the family must hear by the end of Monday 12.
    assert clock.now() == datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    finish_charging(case, tell_family=False)
    assert case.task(FLO, "tell_family_of_charging_decision")["due_at"] == "2026-01-13T00:00:00+00:00"
    assert case.advance(timedelta(days=7)) == 2  # the early review (Monday 09:00), then the overdue update
    chase = case.task(FLC, "chase_charging_update")
    assert chase["due_at"] == iso(clock.now() + timedelta(hours=4))
    case.complete(
        FLC,
        "chase_charging_update",
        {
            "overdue_reason": "The FLO could not reach the family.",
            "action_taken": "Visit arranged with a second FLO.",
        },
    )
    case.complete(FLO, "tell_family_of_charging_decision", family_told(iso(clock.now())))
    case.complete(
        REVIEWER,
        "early_review",
        {"review_findings": "Lines of enquiry are sound; suspect charged.", "case_detected": True},
    )
    close(case)
    assert case.status(SIO) == "completed"

    data = case.variables(SIO)
    assert (data["actions_filed"], data["actions_cancelled"]) == (21, 0)
    assert len(data["action_log"]) == 21
    assert {a["status"] for a in data["action_log"]} == {"filed"}
    assert [a["title"] for a in data["action_log"]] == [a["title"] for a in fast_track] + expected[
        0
    ] + expected[1]
    assert all(
        (a["allocated_to"], a["resulted_by"], a["checked_by"])
        == (INVESTIGATOR.subject, INVESTIGATOR.subject, RECEIVER.subject)
        for a in data["action_log"]
    )
    assert [e["subject"] for e in data["policy_file"]] == [f"Key decision {n}" for n in range(1, 5)] + [
        "Policy file closed"
    ]

    events = history(case, REVIEWER.but(roles=("auditor",)))
    for element in ("allocate_action", "result_action", "check_action_result"):
        assert len(completed_by(events, element)) == 21
    assert completed_by(events, "tell_family") == [FLO.subject] * 4
    assert completed_by(events, "record_family_contact") == [FLO.subject] * 5
    assert completed_by(events, "chase_family_update") == []
    fired = [
        (e["detail"]["element_id"], e["detail"]["due_at"]) for e in events if e["action"] == "timer.fired"
    ]
    assert fired == [
        ("early_review_due", "2026-01-12T09:00:00+00:00"),
        ("charging_update_overdue", "2026-01-13T00:00:00+00:00"),
    ]
