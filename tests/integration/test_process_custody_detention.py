"""Scenarios of the custody detention clock (PACE 1984 Part IV, Code C) driven over the HTTP API."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import Api, assert_problem
from scenario_support import FORMS, PROCESSES, Case, person

from engine.bpmn import SourceFile
from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.instances import InstanceService
from engine.models import TaskHistory
from engine.registry import Deployer

KEY = "custody_detention"
CUSTODY = person("ps.custody", "custody_officer", rank="sergeant")
DETENTION = person("do.hale", "detention_officer", rank=None)
OIC = person("dc.case", "officer_in_case")
INSPECTOR = person("insp.review", "review_inspector", rank="inspector")
TEAM_INSPECTOR = person("insp.team", "review_inspector", rank="inspector")
ACTING = person("sgt.acting", "review_inspector", rank="sergeant")
SUPT = person("supt.station", "superintendent", rank="superintendent")
CHIEF_INSPECTOR = person("ci.duty", "superintendent", rank="chief_inspector")
AUDITOR = person("aud.it", "auditor")

# The clock starts at 09:00 UTC on Monday 5 January 2026 (GMT, so UTC is local time).
ARRESTED_AT = "2026-01-05T07:40:00+00:00"
ARRIVED_AT = "2026-01-05T08:30:00+00:00"
RELEVANT_TIME = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)

BOOKING = {
    "offence_description": "Robbery of a jeweller's shop on the High Street",
    "indictable": True,
    "detention_authorised": True,
    "grounds_for_detention": "To obtain evidence by questioning and to secure CCTV and forensic evidence.",
    "intoxicated": False,
    "juvenile": False,
    "vulnerable": False,
    "rights_given": True,
    "risk_assessment_summary": "No risk markers; no medication; fit to be detained.",
    "delay_inform_requested": False,
    "delay_legal_advice_requested": False,
}
DELAYS = {
    "delay_inform_requested": True,
    "delay_legal_advice_requested": True,
    "delay_request_details": "DS Ahmed: two accomplices and the stolen jewellery are still outstanding.",
}
DELAY_RATIONALE = "Telling anyone now would alert the two outstanding accomplices who hold the jewellery."
REVIEW = {
    "continued_detention_authorised": True,
    "review_grounds": "Interviews continue and the CCTV from the scene is still being recovered.",
    "review_method": "in_person",
    "representations_heard": True,
    "representations_summary": "Solicitor says the detainee has answered all questions.",
    "next_step": "continue",
}
EXTENSION = {
    "extended_until_hours": 36,
    "indictable_confirmed": True,
    "necessity_grounds": "A co-accused is to be interviewed and the phones are being examined tonight.",
    "diligent_and_expeditious": True,
    "representations_considered": True,
}
EXTENSION_RATIONALE = "Extension needed to interview the co-accused and put the phone evidence to him."
CHARGED = {
    "disposal": "charged",
    "disposal_reason": "CPS authorised charge on the full code test after the second interview.",
    "charge_details": "Robbery, Theft Act 1968 s.8; CPS reference 01YY1234526",
}


def deploy_custody(services: Services) -> None:
    """Deploy this process and the forms (the other shipped processes are not needed here)."""
    files = [SourceFile(f"{KEY}.bpmn", (PROCESSES / f"{KEY}.bpmn").read_text())]
    files += [SourceFile(p.name, p.read_text()) for p in sorted(FORMS.glob("*.json"))]
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(files, by="tests")


def iso(moment: datetime) -> str:
    return moment.isoformat()


def at(hours: float) -> str:
    """The instant ``hours`` after the relevant time, as the API shows it."""
    return iso(RELEVANT_TIME + timedelta(hours=hours))


def history(case: Case) -> list[dict[str, Any]]:
    response = case.api.get(
        f"/api/v1/process-instances/{case.id}/history", AUDITOR, query_string={"limit": 200}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.get_json()["items"])


def steps(services: Services, case: Case) -> list[TaskHistory]:
    """The finished steps of the case as the engine recorded them, oldest first."""
    with services.sessions() as session:
        return InstanceService(session, services.context).history(case.id)


def completed_elements(case: Case) -> list[str]:
    return [
        e["detail"]["element_id"] for e in history(case) if e["action"] in ("task.completed", "task.decided")
    ]


def move_to(case: Case, moment: str | datetime) -> None:
    """Move the clock to ``moment``, firing every timer due on the way."""
    target = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    delta = target - case.clock.now()
    assert delta >= timedelta(0), f"cannot move the clock back to {target}"
    case.advance(delta)


def now(case: Case) -> str:
    return iso(case.clock.now())


def visit(case: Case, *, intoxicated: bool = False, **extra: Any) -> None:
    data = {"visited_at": now(case), "intoxicated": intoxicated, "welfare_concern": False, **extra}
    if intoxicated:
        data.setdefault("roused_and_responded", True)
    case.complete(DETENTION, "welfare_visit", data)


def extend(case: Case, who: Any = SUPT, **changes: Any) -> Any:
    """The superintendent grants the extension with the full s.42 form (the approvals endpoint takes only
    the decision and rationale, so the form goes through the task API, which applies the same checks)."""
    data = {"decision": "granted", "rationale": EXTENSION_RATIONALE, **EXTENSION, **changes}
    return case.complete(who, "decide_extension", data)


def review(case: Case, who: Any = INSPECTOR, **changes: Any) -> None:
    case.complete(who, "review_detention", {**REVIEW, **changes})


def start(api: Api, services: Services, clock: FrozenClock, number: int) -> Case:
    return Case.start(
        api,
        services,
        clock,
        KEY,
        CUSTODY,
        business_key=f"CUS-{number:04d}",
        custody_reference=f"NW/{number:04d}/26",
        case_reference="OP-GARNET",
        arrested_at=ARRESTED_AT,
        arrived_at=ARRIVED_AT,
        investigation_team=["dc.case", "insp.team"],
    )


@pytest.fixture
def booked(api: Api, services: Services, clock: FrozenClock) -> Case:
    """A detainee booked in and detention authorised at 09:00; the investigation team has insp.team."""
    deploy_custody(services)
    case = Case.start(
        api,
        services,
        clock,
        KEY,
        CUSTODY,
        business_key="CUS-0001",
        custody_reference="NW/0001/26",
        case_reference="OP-GARNET",
        arrested_at=ARRESTED_AT,
        arrived_at=ARRIVED_AT,
        investigation_team=["dc.case", "insp.team"],
    )
    assert [t["element_id"] for t in case.inbox(CUSTODY)] == ["book_in"]
    assert case.inbox(DETENTION) == []
    case.complete(CUSTODY, "book_in", BOOKING)
    return case


def test_detention_runs_from_booking_to_charge(booked: Case) -> None:
    case = booked
    data = case.variables(CUSTODY)
    assert data["custody_officer"] == "ps.custody"
    assert data["relevant_time"] == ARRIVED_AT  # arrival is earlier than 24 hours after arrest
    assert data["detention_authorised_at"] == "2026-01-05T09:00:00+00:00"
    assert data["detention_limit_at"] == at(24)
    assert data["next_review_due"] == "2026-01-05T15:00:00+00:00"  # 6 hours after authorisation
    assert case.timers(CUSTODY) == {
        "detention_limit_reached": at(24),
        "visit_window_opens": "2026-01-05T09:50:00+00:00",
        "review_overdue": "2026-01-05T15:00:00+00:00",
    }
    # Each role sees its own task and no other.
    assert [t["element_id"] for t in case.inbox(CUSTODY)] == ["decide_disposal"]
    [first_review] = case.inbox(INSPECTOR)
    assert first_review["element_id"] == "review_detention"
    assert first_review["due_at"] == "2026-01-05T15:00:00+00:00"
    assert first_review["required_rank"] == "inspector"
    assert first_review["summary"] == "Review 1 of NW/0001/26, due 2026-01-05T15:00:00+00:00"
    assert case.inbox(DETENTION) == []  # the first visit's window opens at 09:50
    assert case.inbox(SUPT) == []

    move_to(case, "2026-01-05T09:50:00+00:00")
    [first_visit] = case.inbox(DETENTION)
    assert (first_visit["element_id"], first_visit["due_at"], first_visit["priority"]) == (
        "welfare_visit",
        "2026-01-05T10:00:00+00:00",
        85,
    )
    visit(case)
    assert case.timers(CUSTODY)["visit_window_opens"] == "2026-01-05T10:40:00+00:00"  # visited 09:50

    # A review held early at 14:00: the next is due 9 hours after it, at 23:00.
    move_to(case, "2026-01-05T14:00:00+00:00")
    review(case)
    data = case.variables(INSPECTOR)
    assert (data["review_count"], data["reviewed_at"], data["next_review_due"]) == (
        1,
        "2026-01-05T14:00:00+00:00",
        "2026-01-05T23:00:00+00:00",
    )
    assert case.task(INSPECTOR, "review_detention")["due_at"] == "2026-01-05T23:00:00+00:00"

    case.complete(CUSTODY, "decide_disposal", CHARGED)
    state = case.state(CUSTODY)
    assert state["status"] == "completed"
    assert (state["open_tasks"], state["timers"]) == ([], [])
    assert case.variables(CUSTODY)["disposal"] == "charged"
    events = history(case)
    actions = [e["action"] for e in events if e["kind"] != "consultation"]
    assert actions[0] == "instance.started"
    assert actions[-1] == "instance.completed"
    assert completed_elements(case)[-4:] == [
        "book_in",
        "welfare_visit",
        "review_detention",
        "decide_disposal",
    ]
    by_element = {e["detail"]["element_id"]: e for e in events if e["action"] == "task.completed"}
    assert by_element["review_detention"]["actor"] == "insp.review"
    assert "continued_detention_authorised" in by_element["review_detention"]["detail"]["fields"]
    assert by_element["decide_disposal"]["actor"] == "ps.custody"


def test_relevant_time_is_24_hours_after_arrest_when_that_is_earlier(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    deploy_custody(services)
    case = Case.start(
        api,
        services,
        clock,
        KEY,
        CUSTODY,
        business_key="CUS-0002",
        custody_reference="NW/0002/26",
        case_reference="OP-GARNET",
        arrested_at="2026-01-04T06:00:00+00:00",  # arrested elsewhere, brought here a day later
        arrived_at=ARRIVED_AT,
        investigation_team=["dc.case"],
    )
    case.complete(CUSTODY, "book_in", BOOKING)
    data = case.variables(CUSTODY)
    assert data["relevant_time"] == "2026-01-05T06:00:00+00:00"
    assert data["detention_limit_at"] == "2026-01-06T06:00:00+00:00"
    assert case.timers(CUSTODY)["detention_limit_reached"] == "2026-01-06T06:00:00+00:00"


def test_detention_not_authorised_ends_without_a_clock(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    deploy_custody(services)
    case = Case.start(
        api,
        services,
        clock,
        KEY,
        CUSTODY,
        business_key="CUS-0003",
        custody_reference="NW/0003/26",
        case_reference="OP-GARNET",
        arrested_at=ARRESTED_AT,
        arrived_at=ARRIVED_AT,
        investigation_team=[],
    )
    refusal = {
        **{k: v for k, v in BOOKING.items() if k != "grounds_for_detention"},
        "detention_authorised": False,
    }
    problem = assert_problem(
        case.api.post(
            f"/api/v1/tasks/{case.task(CUSTODY, 'book_in')['id']}/complete", CUSTODY, json={"data": refusal}
        ),
        422,
        "form-data-invalid",
    )
    assert any("release_reason" in m for messages in problem["errors"].values() for m in messages)
    case.complete(CUSTODY, "book_in", {**refusal, "release_reason": "No grounds: the property was his own."})
    state = case.state(CUSTODY)
    assert (state["status"], state["timers"]) == ("completed", [])
    assert "relevant_time" not in case.variables(CUSTODY)


def test_the_24_hour_limit_without_extension_forces_release_or_charge(booked: Case) -> None:
    case = booked
    move_to(case, RELEVANT_TIME + timedelta(hours=24, minutes=-1))
    assert "detention_limit_reached" in case.timers(CUSTODY)
    assert "release_or_charge_at_limit" not in [t["element_id"] for t in case.inbox(CUSTODY)]
    move_to(case, at(24))
    # The clock's tasks are gone; the custody officer must charge or release now.
    [at_limit] = [t for t in case.inbox(CUSTODY) if t["element_id"] == "release_or_charge_at_limit"]
    assert at_limit["priority"] == 100
    assert at_limit["due_at"] == iso(RELEVANT_TIME + timedelta(hours=24, minutes=15))
    assert at_limit["summary"] == "Limit reached for NW/0001/26"
    assert "decide_disposal" not in [t["element_id"] for t in case.inbox(CUSTODY)]
    assert case.inbox(INSPECTOR) == []
    assert "detention_limit_reached" not in case.timers(CUSTODY)
    # Until released the detainee is still in a cell: the welfare visit stays open.
    assert [t["element_id"] for t in case.inbox(DETENTION)] == ["welfare_visit"]
    fired = [e for e in history(case) if e["action"] == "timer.fired"]
    assert "detention_limit_reached" in [e["detail"].get("element_id") for e in fired]
    case.complete(
        CUSTODY,
        "release_or_charge_at_limit",
        {
            "disposal": "released_under_investigation",
            "disposal_reason": "No extension sought; enquiries into the phones continue.",
        },
    )
    state = case.state(CUSTODY)
    assert (state["status"], state["open_tasks"], state["timers"]) == ("completed", [], [])
    assert case.variables(CUSTODY)["disposal"] == "released_under_investigation"


def test_a_postponed_review_keeps_the_original_schedule(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T15:00:00+00:00")
    [postpone] = [t for t in case.inbox(INSPECTOR) if t["element_id"] == "record_postponement"]
    assert postpone["due_at"] == "2026-01-05T15:30:00+00:00"
    case.complete(
        INSPECTOR,
        "record_postponement",
        {
            "postponement_reason": "being_questioned",
            "postponement_explanation": "The detainee is in interview; interrupting it would prejudice it.",
            "expected_review_at": "2026-01-05T16:30:00+00:00",
        },
    )
    move_to(case, "2026-01-05T16:30:00+00:00")
    review(case)
    # Held 90 minutes late, but the next review is still 9 hours after 15:00 (s.40(7)).
    assert case.variables(INSPECTOR)["next_review_due"] == "2026-01-06T00:00:00+00:00"
    assert case.timers(INSPECTOR)["review_overdue"] == "2026-01-06T00:00:00+00:00"


def test_a_missed_welfare_visit_is_escalated_to_the_custody_officer(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T10:00:00+00:00")
    assert sorted(t["element_id"] for t in case.inbox(CUSTODY)) == [
        "decide_disposal",
        "escalate_missed_visit",
    ]
    [late] = case.inbox(DETENTION)
    assert late["element_id"] == "welfare_visit"  # still open: the visit must still happen
    case.complete(
        CUSTODY,
        "escalate_missed_visit",
        {"overdue_reason": "Cell alarm in another wing", "visit_arranged": True},
    )
    move_to(case, "2026-01-05T10:04:00+00:00")
    visit(case)
    assert case.variables(DETENTION)["next_visit_due"] == "2026-01-05T11:04:00+00:00"


def test_a_drunk_detainee_is_roused_every_30_minutes(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    deploy_custody(services)
    case = start(api, services, clock, 4)
    case.complete(CUSTODY, "book_in", {**BOOKING, "intoxicated": True})
    data = case.variables(CUSTODY)
    assert (data["next_visit_due"], data["visit_opens_at"]) == (
        "2026-01-05T09:30:00+00:00",
        "2026-01-05T09:20:00+00:00",
    )
    move_to(case, "2026-01-05T09:20:00+00:00")
    assert case.task(DETENTION, "welfare_visit")["priority"] == 95
    visit(case, intoxicated=True)
    assert case.variables(DETENTION)["next_visit_due"] == "2026-01-05T09:50:00+00:00"
    move_to(case, "2026-01-05T09:40:00+00:00")
    visit(case, intoxicated=False)  # sober now: back to hourly visits
    assert case.variables(DETENTION)["next_visit_due"] == "2026-01-05T10:40:00+00:00"


def test_an_extension_is_refused_before_the_second_review(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T14:00:00+00:00")
    review(case, next_step="seek_extension")
    # No superintendent is asked: the request is refused with its reason and the clock runs on.
    assert case.inbox(SUPT) == []
    assert case.api.get("/api/v1/approvals", SUPT).get_json()["items"] == []
    data = case.variables(INSPECTOR)
    assert data["refused_step"] == "seek_extension"
    assert data["refused_step_reason"] == (
        "a superintendent may extend detention only after the second review (PACE s.42(4)(b)); "
        "reviews held: 1"
    )
    assert data["detention_limit_at"] == at(24)
    assert case.timers(CUSTODY)["detention_limit_reached"] == at(24)
    assert case.task(INSPECTOR, "review_detention")["due_at"] == "2026-01-05T23:00:00+00:00"


def test_a_superintendent_extension_by_a_lower_rank_is_refused(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T14:00:00+00:00")
    review(case)
    move_to(case, "2026-01-05T22:00:00+00:00")
    review(case, next_step="seek_extension")
    task = case.task(SUPT, "decide_extension")
    assert (task["required_rank"], task["is_approval"], task["due_at"]) == ("superintendent", True, at(24))
    # A chief inspector acting in the superintendent's role may not extend detention.
    assert case.api.get("/api/v1/approvals", CHIEF_INSPECTOR).get_json()["items"] == []
    decision = f"/api/v1/approvals/{task['id']}/decision"
    body = {"decision": "granted", "rationale": EXTENSION_RATIONALE}
    refused = assert_problem(case.api.post(decision, CHIEF_INSPECTOR, json=body), 403, "rank-too-low")
    assert refused["detail"] == (
        "this decision needs the rank of Superintendent or above; your token says Chief Inspector"
    )
    full = {"data": {**body, **EXTENSION}}
    complete = f"/api/v1/tasks/{task['id']}/complete"
    assert_problem(case.api.post(complete, CHIEF_INSPECTOR, json=full), 403, "rank-too-low")
    assert "decide_extension" not in completed_elements(case)
    assert case.variables(CUSTODY)["detention_limit_at"] == at(24)
    # The superintendent must give the s.42 grounds, not only a decision.
    incomplete = assert_problem(case.api.post(decision, SUPT, json=body), 422, "form-data-invalid")
    assert "$.extended_until_hours" in str(incomplete["errors"]) or "extended_until_hours" in str(incomplete)

    done = extend(case)
    assert (done["completed_by"], done["status"]) == ("supt.station", "completed")
    data = case.variables(CUSTODY)
    assert (data["limit_hours"], data["detention_limit_at"], data["extension_granted"]) == (36, at(36), True)
    assert (data["decided_by"], data["authoriser_flagged"]) == ("supt.station", False)
    assert case.timers(CUSTODY)["detention_limit_reached"] == at(36)
    # The review schedule carries on: 9 hours after the second review.
    assert case.task(INSPECTOR, "review_detention")["due_at"] == "2026-01-06T07:00:00+00:00"
    decisions = [e for e in history(case) if e["action"] == "task.decided"]
    assert [(e["actor"], e["detail"]["decision"]) for e in decisions] == [("supt.station", "granted")]


def test_a_review_by_an_inspector_involved_in_the_investigation_is_refused(booked: Case) -> None:
    case = booked
    task = case.task(TEAM_INSPECTOR, "review_detention")  # visible, as the role says
    path = f"/api/v1/tasks/{task['id']}/complete"
    refused = assert_problem(
        case.api.post(path, TEAM_INSPECTOR, json={"data": REVIEW}), 403, "separation-of-duties"
    )
    assert refused["detail"] == (
        "you are a member of the investigation team; this decision must come from outside the team"
    )
    low = assert_problem(case.api.post(path, ACTING, json={"data": REVIEW}), 403, "rank-too-low")
    assert "Inspector" in low["detail"]
    assert "review_detention" not in completed_elements(case)
    assert case.variables(CUSTODY)["review_count"] == 0
    review(case)
    assert case.variables(CUSTODY)["review_count"] == 1


def apply_for_warrant(case: Case, *, expires_at: str, reference: str) -> None:
    """The officer in the case applies; the magistrates issue (or extend) the warrant to ``expires_at``."""
    case.complete(
        OIC,
        "apply_for_warrant",
        {
            "court": "Manchester and Salford Magistrates' Court",
            "information_laid_at": now(case),
            "hours_sought": 36,
            "warrant_grounds": "Phone downloads continue and a third suspect is still to be traced.",
        },
    )
    case.complete(
        OIC,
        "record_warrant_decision",
        {
            "warrant_issued": True,
            "warrant_expires_at": expires_at,
            "court_reference": reference,
            "magistrates_reasons": "Further detention is justified to complete the phone examination.",
        },
    )


def test_a_warrant_of_further_detention_never_runs_beyond_96_hours(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T14:00:00+00:00")
    review(case)
    move_to(case, "2026-01-05T22:00:00+00:00")
    review(case, next_step="seek_extension")
    extend(case)
    # The third review, held late just before the 36-hour limit, asks for a warrant.
    move_to(case, RELEVANT_TIME + timedelta(hours=35))
    review(case, next_step="seek_warrant")
    application = case.task(OIC, "apply_for_warrant")
    assert application["due_at"] == at(36)
    # The court's date is later than the law allows: a warrant runs at most 36 hours from its issue.
    apply_for_warrant(case, expires_at=at(120), reference="MSMC/26/0042")
    data = case.variables(CUSTODY)
    assert (data["warrant_count"], data["detention_limit_at"]) == (1, at(71))
    assert case.timers(CUSTODY)["detention_limit_reached"] == at(71)
    # Extended by the court (s.44) two hours before it expires: never beyond 96 hours in all.
    move_to(case, RELEVANT_TIME + timedelta(hours=69))
    review(case, next_step="seek_warrant")
    apply_for_warrant(case, expires_at=at(120), reference="MSMC/26/0057")
    data = case.variables(CUSTODY)
    assert (data["warrant_count"], data["detention_limit_at"]) == (2, at(96))
    assert case.timers(CUSTODY)["detention_limit_reached"] == at(96)
    # No superintendent's extension once a warrant is in force.
    move_to(case, RELEVANT_TIME + timedelta(hours=70))
    review(case, next_step="seek_extension")
    assert case.inbox(SUPT) == []
    assert case.variables(INSPECTOR)["refused_step_reason"] == (
        "a warrant of further detention is in force; only the court may extend it (PACE s.44)"
    )
    move_to(case, at(96))
    assert "release_or_charge_at_limit" in [t["element_id"] for t in case.inbox(CUSTODY)]


def test_thirty_hourly_welfare_visits_with_reviews_falling_due_among_them(booked: Case) -> None:
    """A day and a half in custody: 30 visits, reviews every 9 hours, an extension after the second."""
    case = booked
    visits = 0
    reviews = 0
    seen_due: list[str] = []
    while visits < 30:
        # What the officers see: the review task's due time and the next visit (open, or when it opens).
        review_due = datetime.fromisoformat(case.task(INSPECTOR, "review_detention")["due_at"])
        open_visits = case.inbox(DETENTION)
        if open_visits:
            opens = None
            due = datetime.fromisoformat(open_visits[0]["due_at"])
        else:
            opens = datetime.fromisoformat(case.timers(CUSTODY)["visit_window_opens"])
            due = opens + timedelta(minutes=10)  # custody.welfare_visit_lead_minutes
        if review_due - timedelta(minutes=30) <= due - timedelta(minutes=1):
            # A review falls due before the next visit: the inspector holds it 30 minutes early.
            move_to(case, review_due - timedelta(minutes=30))
            step = "seek_extension" if reviews == 1 else "continue"
            review(case, next_step=step)
            reviews += 1
            if step == "seek_extension":
                extend(case)
            continue
        if opens is not None:
            move_to(case, opens)
        [task] = case.inbox(DETENTION)
        assert datetime.fromisoformat(task["due_at"]) == due
        move_to(case, due - timedelta(minutes=1))
        seen_due.append(task["due_at"])
        visit(case)
        visits += 1
        assert [t["element_id"] for t in case.inbox(CUSTODY)] == ["decide_disposal"]  # never overdue

    review_times = [
        e["at"]
        for e in history(case)
        if e["action"] == "task.completed" and e["detail"]["element_id"] == "review_detention"
    ]
    # Held 30 minutes early each time, each review sets the next 9 hours after it (s.40(3)).
    assert review_times == [
        "2026-01-05T14:30:00+00:00",
        "2026-01-05T23:00:00+00:00",
        "2026-01-06T07:30:00+00:00",
    ]
    next_review = case.task(INSPECTOR, "review_detention")
    assert (next_review["due_at"], next_review["summary"]) == (
        "2026-01-06T16:30:00+00:00",
        "Review 4 of NW/0001/26, due 2026-01-06T16:30:00+00:00",
    )
    # The extension after the second review moved the limit to 36 hours; the visits never restarted.
    assert case.timers(CUSTODY)["detention_limit_reached"] == at(36)
    assert len(seen_due) == 30
    gaps = [datetime.fromisoformat(b) - datetime.fromisoformat(a) for a, b in itertools.pairwise(seen_due)]
    assert max(gaps) <= timedelta(hours=1)
    assert seen_due[-1] == "2026-01-06T14:31:00+00:00"
    assert case.status(CUSTODY) == "running"
    assert sum(1 for e in completed_elements(case) if e == "welfare_visit") == 30
    case.complete(CUSTODY, "decide_disposal", CHARGED)
    assert case.status(CUSTODY) == "completed"


def test_delays_of_rights_need_the_right_rank_and_end_by_36_hours(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    deploy_custody(services)
    case = start(api, services, clock, 5)
    case.complete(CUSTODY, "book_in", {**BOOKING, **DELAYS})
    inform = case.task(INSPECTOR, "decide_inform_delay")
    advice = case.task(SUPT, "decide_advice_delay")
    assert (inform["required_rank"], inform["is_approval"], inform["due_at"]) == (
        "inspector",
        True,
        "2026-01-05T10:00:00+00:00",  # custody.rights_delay_decision_minutes
    )
    assert advice["summary"] == "Delay legal advice for NW/0005/26 (s.58)"
    assert [a["element_id"] for a in api.get("/api/v1/approvals", SUPT).get_json()["items"]] == [
        "decide_advice_delay"
    ]
    granted = {"decision": "granted", "rationale": DELAY_RATIONALE, "indictable_confirmed": True}
    granted |= {"delay_grounds": ["alert_other_suspects"], "detainee_told": True}
    # Legal advice may be delayed only by a superintendent (s.58(6)).
    path = f"/api/v1/tasks/{advice['id']}/complete"
    low = assert_problem(
        api.post(path, CHIEF_INSPECTOR, json={"data": {**granted, "delay_until_hours": 10}}),
        403,
        "rank-too-low",
    )
    assert "Superintendent" in low["detail"]
    # Never beyond 36 hours after the relevant time.
    too_long = assert_problem(
        api.post(path, SUPT, json={"data": {**granted, "delay_until_hours": 40}}), 422, "form-data-invalid"
    )
    assert "$.delay_until_hours" in too_long["errors"]
    case.complete(SUPT, "decide_advice_delay", {**granted, "delay_until_hours": 10})
    case.complete(INSPECTOR, "decide_inform_delay", {**granted, "delay_until_hours": 12})
    timers = case.timers(CUSTODY)
    assert (timers["advice_delay_ends"], timers["inform_delay_ends"]) == (at(10), at(12))
    data = case.variables(CUSTODY)
    assert (data["inform_delay_status"], data["inform_delay_authorised_by"]) == ("in_force", "insp.review")

    move_to(case, at(10))
    allow = case.task(CUSTODY, "allow_advice")
    assert allow["summary"] == "Delay of legal advice has ended for NW/0005/26"
    case.complete(
        CUSTODY,
        "allow_advice",
        {"right_allowed_at": at(10), "action_taken": "Duty solicitor called at the detainee's request."},
    )
    move_to(case, at(12))
    case.complete(
        CUSTODY,
        "allow_inform",
        {"right_allowed_at": at(12), "action_taken": "Partner told where he is held."},
    )
    assert {"advice_delay_ends", "inform_delay_ends"}.isdisjoint(case.timers(CUSTODY))
    decided = [
        (e["actor"], e["detail"]["element_id"]) for e in history(case) if e["action"] == "task.decided"
    ]
    assert sorted(decided) == [
        ("insp.review", "decide_inform_delay"),
        ("supt.station", "decide_advice_delay"),
    ]
    case.complete(CUSTODY, "decide_disposal", CHARGED)
    assert case.status(CUSTODY) == "completed"


def test_delays_of_rights_are_refused_for_an_offence_that_is_not_indictable(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    deploy_custody(services)
    case = start(api, services, clock, 6)
    case.complete(CUSTODY, "book_in", {**BOOKING, **DELAYS, "indictable": False})
    assert [t["element_id"] for t in case.inbox(INSPECTOR)] == ["review_detention"]
    assert case.inbox(SUPT) == []
    # The refusals and their reasons are on the record of the steps taken.
    refusals = {row.element_id: row.data_changes["updated"] for row in steps(services, case)}
    assert refusals["refuse_advice_delay"] == {
        "advice_delay_status": "refused",
        "advice_delay_refusal_reason": (
            "access to legal advice may be delayed only for an indictable offence (PACE s.58(6)(a))"
        ),
    }
    assert refusals["refuse_inform_delay"]["inform_delay_refusal_reason"] == (
        "the right to have someone informed may be delayed only for an indictable offence (PACE s.56(2)(a))"
    )
    assert "decide_advice_delay" not in refusals
    # Nor can detention go beyond 24 hours: a warrant is refused with its reason.
    move_to(case, "2026-01-05T14:00:00+00:00")
    review(case, next_step="seek_warrant")
    assert case.inbox(OIC) == []
    assert case.variables(INSPECTOR)["refused_step_reason"] == (
        "the offence is not indictable, so detention cannot go beyond 24 hours (PACE ss.42(1), 43(4))"
    )


def test_pre_charge_bail_runs_3_months_then_6_9_and_then_only_the_court(booked: Case) -> None:
    case = booked
    case.complete(
        CUSTODY,
        "decide_disposal",
        {
            "disposal": "released_on_bail",
            "disposal_reason": "Phone downloads will take weeks; conditions protect the witnesses.",
            "bail_return_at": "2026-04-01T10:00:00+00:00",
            "bail_conditions": "Not to contact the shop staff.",
        },
    )
    # Custody is over: no visits, reviews or clock; the bail period runs from the day after arrest.
    assert case.inbox(DETENTION) == []
    assert case.inbox(INSPECTOR) == []
    data = case.variables(OIC)
    assert data["bail_months"] == 3
    # 3 months beginning with 6 January end with 5 April: midnight BST is 23:00 UTC.
    three, six, nine = "2026-04-05T23:00:00+00:00", "2026-07-05T23:00:00+00:00", "2026-10-05T23:00:00+00:00"
    assert case.timers(OIC) == {"bail_period_ends": three}
    decision = case.task(OIC, "bail_decision")
    assert (decision["due_at"], decision["summary"]) == (three, f"Bail of NW/0001/26 ends {three} (3 months)")
    extend_bail = {
        "bail_outcome": "extend",
        "bail_reasons": "Phone downloads are not back yet.",
        "conditions_still_necessary": True,
    }
    granted = {
        "decision": "granted",
        "rationale": "Downloads are booked for next month; bail conditions still needed.",
        "diligent_and_expeditious": True,
        "representations_considered": True,
    }

    move_to(case, "2026-03-20T09:00:00+00:00")
    case.complete(OIC, "bail_decision", extend_bail)
    six_months = case.task(INSPECTOR, "authorise_bail_6")
    assert (six_months["required_rank"], six_months["due_at"]) == ("inspector", three)
    path = f"/api/v1/tasks/{six_months['id']}/complete"
    assert_problem(case.api.post(path, ACTING, json={"data": granted}), 403, "rank-too-low")
    case.complete(INSPECTOR, "authorise_bail_6", granted)
    assert case.timers(OIC) == {"bail_period_ends": six}

    move_to(case, "2026-06-25T09:00:00+00:00")
    case.complete(OIC, "bail_decision", extend_bail)
    assert case.inbox(INSPECTOR) == []  # 9 months needs a superintendent
    nine_months = case.task(SUPT, "authorise_bail_9")
    path = f"/api/v1/tasks/{nine_months['id']}/complete"
    low = assert_problem(case.api.post(path, CHIEF_INSPECTOR, json={"data": granted}), 403, "rank-too-low")
    assert "Superintendent" in low["detail"]
    case.complete(SUPT, "authorise_bail_9", granted)
    assert case.timers(OIC) == {"bail_period_ends": nine}

    move_to(case, "2026-09-28T09:00:00+00:00")
    case.complete(OIC, "bail_decision", extend_bail)
    assert case.inbox(SUPT) == []  # beyond 9 months only the court
    court_date = "2027-01-05T23:59:00+00:00"
    case.complete(
        OIC,
        "court_bail_extension",
        {
            "court": "Manchester and Salford Magistrates' Court",
            "court_extended": True,
            "court_bail_ends_at": court_date,
            "court_reference": "MSMC/26/0977",
            "court_reasons": "The expert report on the phones is due in December.",
        },
    )
    assert case.timers(OIC) == {"bail_period_ends": court_date}
    assert case.variables(OIC)["bail_months"] == 12

    # Nobody decides before the court's date: bail lapses on its own timer.
    move_to(case, court_date)
    assert case.status(OIC) == "completed"
    data = case.variables(OIC)
    assert (data["bail_outcome"], data["bail_extensions"]) == ("lapsed", 3)
    decided = [
        (e["actor"], e["detail"]["element_id"]) for e in history(case) if e["action"] == "task.decided"
    ]
    assert decided == [("insp.review", "authorise_bail_6"), ("supt.station", "authorise_bail_9")]


def test_a_juvenile_or_vulnerable_detainee_cannot_be_booked_in_without_an_appropriate_adult(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    deploy_custody(services)
    case = start(api, services, clock, 7)
    path = f"/api/v1/tasks/{case.task(CUSTODY, 'book_in')['id']}/complete"
    for who in ({"juvenile": True}, {"vulnerable": True}):
        problem = assert_problem(
            api.post(path, CUSTODY, json={"data": {**BOOKING, **who}}), 422, "form-data-invalid"
        )
        assert any("appropriate_adult_details" in m for ms in problem["errors"].values() for m in ms)
    assert [t["element_id"] for t in case.inbox(CUSTODY)] == ["book_in"]
    adult = {"juvenile": True, "appropriate_adult_details": "Mother, Mrs J Cole, 07700 900123"}
    case.complete(CUSTODY, "book_in", {**BOOKING, **adult})
    assert case.variables(CUSTODY)["appropriate_adult_details"] == "Mother, Mrs J Cole, 07700 900123"


def test_a_refused_extension_keeps_the_limit_and_a_review_can_end_detention(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T14:00:00+00:00")
    review(case)
    move_to(case, "2026-01-05T22:00:00+00:00")
    review(case, next_step="seek_extension")
    refusal = "Refused: the evidence sought can be obtained after release on bail without harm."
    case.complete(
        SUPT,
        "decide_extension",
        {"decision": "refused", "rationale": refusal, "representations_considered": True},
    )
    [applied] = [row for row in steps(case.services, case) if row.element_id == "apply_extension"]
    assert applied.data_changes["updated"] == {"clock_action": "extension_not_granted"}
    data = case.variables(CUSTODY)
    assert (data["detention_limit_at"], data["extension_granted"], data["limit_hours"]) == (at(24), False, 24)
    assert case.timers(CUSTODY)["detention_limit_reached"] == at(24)
    assert case.task(INSPECTOR, "review_detention")["due_at"] == "2026-01-06T07:00:00+00:00"
    # The next review does not authorise continued detention: the custody officer must act at once.
    move_to(case, "2026-01-06T06:30:00+00:00")
    not_continued = {k: v for k, v in REVIEW.items() if k != "next_step"}
    not_continued |= {
        "continued_detention_authorised": False,
        "review_grounds": "Interviews are finished; nothing more can be gained by keeping him.",
    }
    case.complete(INSPECTOR, "review_detention", not_continued)
    [after_review] = [t for t in case.inbox(CUSTODY) if t["element_id"] == "release_or_charge_after_review"]
    assert (after_review["priority"], after_review["summary"]) == (
        100,
        "Continued detention refused for NW/0001/26",
    )
    assert "decide_disposal" not in [t["element_id"] for t in case.inbox(CUSTODY)]
    assert "detention_limit_reached" not in case.timers(CUSTODY)
    case.complete(
        CUSTODY,
        "release_or_charge_after_review",
        {"disposal": "released_no_further_action", "disposal_reason": "No realistic prospect of conviction."},
    )
    state = case.state(CUSTODY)
    assert (state["status"], state["open_tasks"], state["timers"]) == ("completed", [], [])
    decided = [(e["actor"], e["detail"]["decision"]) for e in history(case) if e["action"] == "task.decided"]
    assert decided == [("supt.station", "refused")]


def test_a_welfare_concern_calls_a_healthcare_professional_and_visits_go_on(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T09:50:00+00:00")
    visit(case, welfare_concern=True, welfare_notes="Complains of chest pain; pale and sweating.")
    referral = case.task(CUSTODY, "arrange_healthcare")
    assert (referral["priority"], referral["due_at"]) == (100, "2026-01-05T10:05:00+00:00")
    assert case.inbox(DETENTION) == []
    case.complete(
        CUSTODY,
        "arrange_healthcare",
        {
            "healthcare_called_at": "2026-01-05T09:52:00+00:00",
            "concern_summary": "Chest pain reported at the 09:50 visit.",
            "hospital_transfer": False,
        },
    )
    # The next visit is scheduled from the referral.
    assert case.timers(CUSTODY)["visit_window_opens"] == "2026-01-05T10:40:00+00:00"


def test_a_warrant_refused_by_the_court_leaves_the_36_hour_limit(booked: Case) -> None:
    case = booked
    move_to(case, "2026-01-05T14:00:00+00:00")
    review(case)
    move_to(case, "2026-01-05T22:00:00+00:00")
    review(case, next_step="seek_extension")
    extend(case)
    move_to(case, "2026-01-06T07:00:00+00:00")
    review(case, next_step="seek_warrant")
    case.complete(
        OIC,
        "apply_for_warrant",
        {
            "court": "Manchester and Salford Magistrates' Court",
            "information_laid_at": "2026-01-06T09:00:00+00:00",
            "hours_sought": 24,
            "warrant_grounds": "Phone downloads continue and a third suspect is still to be traced.",
        },
    )
    case.complete(
        OIC,
        "record_warrant_decision",
        {
            "warrant_issued": False,
            "court_reference": "MSMC/26/0043",
            "magistrates_reasons": "Not satisfied the investigation has been conducted expeditiously.",
        },
    )
    data = case.variables(CUSTODY)
    assert (data["warrant_count"], data["detention_limit_at"]) == (0, at(36))
    assert case.timers(CUSTODY)["detention_limit_reached"] == at(36)
    move_to(case, at(36))
    assert "release_or_charge_at_limit" in [t["element_id"] for t in case.inbox(CUSTODY)]
