"""Scenarios of surveillance_authorisation over HTTP: RIPA Part II and IPA 2016 authorities end to end.

Each test starts a case as an investigator with a real signed token and works it through the inbox,
the task API and the approvals API, moving the injected clock to fire the expiry, review, renewal
window, lapse and Judicial Commissioner timers. The clock starts on Monday 5 January 2026 at 09:00 UTC.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from api_support import Api, Person, assert_problem
from scenario_support import Case, deploy_project, person

from engine.clock import FrozenClock
from engine.container import Services

KEY = "surveillance_authorisation"

APPLICANT = person("dc.hale", "applicant")
APPLICANT_AS_AUTHORISER = person("dc.hale", "authorising_officer", rank="superintendent")
GATEKEEPER = person("ps.bureau", "gatekeeper", rank="sergeant")
INSPECTOR = person("insp.ward", "authorising_officer", rank="inspector")
SUPT = person("supt.khan", "authorising_officer", rank="superintendent")
SUPT_ON_TEAM = person("supt.ray", "authorising_officer", rank="superintendent")
ACC = person("acc.moore", "authorising_officer", rank="assistant_chief_constable")
CHIEF = person("cc.grant", "authorising_officer", rank="chief_constable")
OCDA = person("ocda.lin", "communications_data_authoriser", rank=None, units=("MIT-North",))
OCDA_ON_TEAM = person("ocda.team", "communications_data_authoriser", rank=None)
RECORDS = person("cr.patel", "central_record_keeper")
TEAM = person("dc.obi", "operational_team")

REASONS = "I have read the application and I am satisfied on my own assessment of the intelligence."


@pytest.fixture(autouse=True)
def project(services: Services) -> None:
    deploy_project(services)


# -- building blocks ---------------------------------------------------------------------------------


def application(
    power_type: str = "directed_surveillance", *, urgent: bool = False, **changes: Any
) -> dict[str, Any]:
    """A complete application form of ``power_type``."""
    data: dict[str, Any] = {
        "power_type": power_type,
        "urgent": urgent,
        "statutory_ground": "preventing_or_detecting_crime",
        "conduct_and_purpose": "Follow the subject between home and the lock-up to find the supply chain.",
        "subjects": ["Subject A"],
        "intelligence_case": "Three B2 reports place the subject at the lock-up with suppliers weekly.",
        "information_sought": "Who the subject meets and where the drugs are stored.",
        "necessity": "Open enquiries have not found the store; only observation shows who attends.",
        "collateral_intrusion": "Neighbours and passers-by may be seen at the lock-ups.",
        "collateral_intrusion_justification": "Footage of others is not kept unless relevant to the offence.",
        "confidential_material_likely": False,
        "legally_privileged_material_sought": False,
        "residential_premises_or_private_vehicle": False,
        "proportionality": "Public places only, on the days the intelligence names; least intrusive.",
        "less_intrusive_means_considered": "Financial checks and ANPR were tried and did not show the store.",
    }
    if urgent:
        data["urgency_reason"] = "A delivery is due tonight and waiting for a Superintendent would lose it."
    if power_type in ("chis", "juvenile_chis"):
        data["source_reference"] = "SRC-0412"
    if power_type == "juvenile_chis":
        data.update(
            source_age=16,
            target_is_parent_of_source=False,
            appropriate_adult_arrangements="An appropriate adult from the youth offending team attends.",
        )
    data.update(changes)
    return data


def grant_form(review_interval_days: int = 28, **changes: Any) -> dict[str, Any]:
    return {
        "decision": "granted",
        "rationale": REASONS,
        "necessity_reasoning": "Observation is the only way left to find the store; other means failed.",
        "proportionality_reasoning": "Public places on named days; small intrusion against serious supply.",
        "collateral_intrusion_reasoning": "Third parties will be seen but not recorded unless relevant.",
        "review_interval_days": review_interval_days,
        "authoriser_involved_in_investigation": False,
        **changes,
    }


def renewal_form(review_interval_days: int = 28) -> dict[str, Any]:
    return {
        "decision": "granted",
        "rationale": REASONS,
        "necessity_reasoning": "The supply goes on and the source is the only access to the organisers.",
        "proportionality_reasoning": "Product is precise; the conduct is unchanged and no wider than needed.",
        "review_interval_days": review_interval_days,
        "authoriser_involved_in_investigation": False,
    }


READY = {
    "gatekeeper_outcome": "ready",
    "gatekeeper_notes": "All sections complete, specific and not templated.",
}
ENTRY = {"central_record_reference": "CR-2026-0107", "entry_verified": True}
CONTINUE = {
    "review_outcome": "continue",
    "still_necessary": True,
    "still_proportionate": True,
    "review_rationale": "Product this month bears on the supply chain; intrusion is unchanged.",
}


def cancellation(reason: str) -> dict[str, Any]:
    return {
        "cease_instruction_given_at": "2026-01-05T09:00:00+00:00",
        "cancellation_reason": reason,
        "cancellation_rationale": "The authority is no longer in force and the record must show it ended.",
        "material_obtained": "Observation logs and photographs listed on the product schedule.",
        "product_handling": "Retained on the covert product store under the force retention schedule.",
        "confidential_material_obtained": False,
    }


def start(
    api: Api, services: Services, clock: FrozenClock, key: str = "OP-KESTREL", **variables: Any
) -> Case:
    variables.setdefault("operation_name", "Operation Kestrel")
    variables.setdefault("case_reference", "MIT/26/0107")
    variables.setdefault(
        "investigation_team", [APPLICANT.subject, SUPT_ON_TEAM.subject, OCDA_ON_TEAM.subject]
    )
    return Case.start(api, services, clock, KEY, APPLICANT, business_key=key, **variables)


def applied(
    api: Api, services: Services, clock: FrozenClock, form: dict[str, Any], key: str = "OP-KESTREL"
) -> Case:
    """A case whose application is submitted and, unless urgent, passed by the bureau."""
    case = start(api, services, clock, key)
    case.complete(APPLICANT, "prepare_application", form)
    if not form["urgent"]:
        case.complete(GATEKEEPER, "gatekeeper_check", READY)
    return case


def in_force(case: Case, authoriser: Person, **grant: Any) -> dict[str, Any]:
    """Grant and enter it on the central record; returns the case variables."""
    case.complete(authoriser, "decide_authorisation", grant_form(**grant))
    case.complete(RECORDS, "record_grant", ENTRY)
    return case.variables(SUPT)


def finish_cancellation(case: Case, authoriser: Person, reason: str) -> None:
    case.complete(authoriser, "cancel_authorisation", cancellation(reason))
    case.complete(RECORDS, "record_cancellation", {**ENTRY, "central_record_reference": "CR-2026-0107-C"})
    assert case.status(SUPT) == "completed"


def elements(case: Case, who: Person) -> list[str]:
    return sorted(t["element_id"] for t in case.inbox(who))


def complete_as(case: Case, who: Person, element_id: str, data: dict[str, Any]) -> Any:
    """``POST /tasks/{id}/complete`` for a task ``who`` can see, returning the raw response."""
    task = case.task(who, element_id)
    return case.api.post(f"/api/v1/tasks/{task['id']}/complete", who, json={"data": data})


def history(case: Case) -> list[dict[str, Any]]:
    auditor = person("audit.ng", "auditor", rank="inspector")
    response = case.api.get(
        f"/api/v1/process-instances/{case.id}/history",
        auditor,
        headers={"X-Purpose": "verifying lawfulness"},
        query_string={"limit": 200},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.get_json()["items"])


def decisions(case: Case, element_id: str) -> list[tuple[str, str, bool]]:
    """(actor, decision, flagged) of every ``task.decided`` audit event of ``element_id``."""
    return [
        (e["actor"], e["detail"]["decision"], e["detail"]["flagged"])
        for e in history(case)
        if e["action"] == "task.decided" and e["detail"]["element_id"] == element_id
    ]


def approvals(api: Api, who: Person, case: Case) -> list[dict[str, Any]]:
    response = api.get("/api/v1/approvals", who)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [a for a in response.get_json()["items"] if a["instance_id"] == case.id]


# -- directed surveillance: the main path ------------------------------------------------------------


def test_directed_surveillance_from_application_through_return_review_and_cancellation(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = start(api, services, clock)
    assert elements(case, APPLICANT) == ["prepare_application"]
    case.complete(APPLICANT, "prepare_application", application())

    # The bureau sees the check; nobody else does. A return goes back to the applicant.
    assert elements(case, GATEKEEPER) == ["gatekeeper_check"]
    assert elements(case, APPLICANT) == []
    assert elements(case, SUPT) == []
    case.complete(
        GATEKEEPER,
        "gatekeeper_check",
        {
            "gatekeeper_outcome": "returned",
            "quality_issues": ["proportionality_templated"],
            "gatekeeper_notes": "Proportionality reads as a template; say why these days and places.",
        },
    )
    assert elements(case, APPLICANT) == ["prepare_application"]
    case.complete(APPLICANT, "prepare_application", application())
    case.complete(GATEKEEPER, "gatekeeper_check", READY)

    # Rank: an Inspector may not grant a non-urgent directed surveillance authority.
    low = assert_problem(
        complete_as(case, INSPECTOR, "decide_authorisation", grant_form()), 403, "rank-too-low"
    )
    assert "Superintendent" in low["detail"]
    # Separation of duties: the applicant may not authorise, even holding the rank.
    own = assert_problem(
        complete_as(case, APPLICANT_AS_AUTHORISER, "decide_authorisation", grant_form()),
        403,
        "separation-of-duties",
    )
    assert "separation of duties" in own["detail"]
    # A Superintendent on the investigation team may decide but is flagged; one outside is not.
    [listed_for_team] = approvals(api, SUPT_ON_TEAM, case)
    assert listed_for_team["will_be_flagged"] is True
    assert listed_for_team["flag_reasons"] == ["the decision maker is a member of the investigation team"]
    [listed] = approvals(api, SUPT, case)
    assert (listed["element_id"], listed["will_be_flagged"]) == ("decide_authorisation", False)
    assert listed["summary"] == "Directed surveillance: Operation Kestrel"
    assert approvals(api, INSPECTOR, case) == []

    # A grant needs the authoriser's own necessity and proportionality reasoning.
    bare = {k: v for k, v in grant_form().items() if k != "necessity_reasoning"}
    problem = case.complete(SUPT, "decide_authorisation", bare, status=422)
    assert problem["errors"] == {"$": ["'necessity_reasoning' is a required property"]}

    variables = in_force(case, SUPT, review_interval_days=28)
    assert variables["authority_label"] == "Directed surveillance"
    assert variables["decided_by"] == SUPT.subject
    assert variables["authoriser_flagged"] is False
    # 3 months beginning with 5 January end at the end of 4 April (00:00 BST on 5 April).
    assert variables["expires_at"] == "2026-04-04T23:00:00+00:00"
    assert variables["cancel_or_renew_from"] == "2026-03-26T00:00:00+00:00"
    assert case.timers(SUPT) == {
        "review_due": "2026-02-02T09:00:00+00:00",
        "renew_or_cancel_window": "2026-03-26T00:00:00+00:00",
        "authorisation_expires": "2026-04-04T23:00:00+00:00",
    }
    assert elements(case, TEAM) == ["carry_out_activity"]
    assert decisions(case, "decide_authorisation") == [(SUPT.subject, "granted", False)]

    # The review falls due on the day the authorising officer set; an Inspector may not do it.
    case.advance(timedelta(days=28))
    assert elements(case, TEAM) == []
    assert elements(case, SUPT) == ["review_authorisation"]
    assert_problem(complete_as(case, INSPECTOR, "review_authorisation", CONTINUE), 403, "rank-too-low")
    case.complete(SUPT, "review_authorisation", {**CONTINUE, "next_review_interval_days": 60})
    variables = case.variables(SUPT)
    assert (variables["review_count"], variables["next_review_at"]) == (1, "2026-04-03T09:00:00+00:00")
    assert case.timers(SUPT)["review_due"] == "2026-04-03T09:00:00+00:00"

    # The must-cancel task comes before expiry; the applicant asks for cancellation.
    case.advance(timedelta(days=52, hours=14))  # 2026-03-26T00:00Z
    assert elements(case, APPLICANT) == ["renew_or_cancel"]
    case.complete(
        APPLICANT,
        "renew_or_cancel",
        {"expiry_action": "cancel", "cancellation_request_reason": "The store has been found and searched."},
    )
    assert "authorisation_expires" not in case.timers(SUPT)
    assert elements(case, SUPT) == ["cancel_authorisation"]
    finish_cancellation(case, SUPT, "objectives_met")
    recorded = [e["detail"]["element_id"] for e in history(case) if e["action"] == "task.completed"]
    assert [r for r in recorded if r.startswith("record_")] == ["record_grant", "record_cancellation"]


def test_the_authorising_officer_returns_then_refuses_from_the_approvals_list(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application())
    returned = case.decide(
        SUPT, "decide_authorisation", "returned", "Say which days and why those days matter."
    )
    assert returned["instance_status"] == "running"
    assert elements(case, APPLICANT) == ["prepare_application"]
    case.complete(APPLICANT, "prepare_application", application())
    case.complete(GATEKEEPER, "gatekeeper_check", READY)

    refused = case.decide(
        SUPT, "decide_authorisation", "refused", "Not proportionate: the overt enquiries are unfinished."
    )
    assert refused["instance_status"] == "completed"
    variables = case.variables(SUPT)
    assert (variables["decision"], variables["decided_by"]) == ("refused", SUPT.subject)
    assert "expires_at" not in variables
    assert case.timers(SUPT) == {}
    assert decisions(case, "decide_authorisation") == [
        (SUPT.subject, "returned", False),
        (SUPT.subject, "refused", False),
    ]


def test_a_renewal_returned_then_refused_ends_in_cancellation(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application())
    in_force(case, SUPT, review_interval_days=92)
    renew = {
        "expiry_action": "renew",
        "renewal_case": "The lock-up is still in use and the supplier is not yet identified.",
        "results_so_far": "Two visits by a courier were photographed.",
    }
    case.advance(timedelta(days=80, hours=15))  # 2026-03-26T00:00Z
    case.complete(APPLICANT, "renew_or_cancel", renew)
    [listed] = approvals(api, SUPT, case)
    assert (listed["element_id"], listed["due_at"]) == ("decide_renewal", "2026-04-04T23:00:00+00:00")
    assert listed["summary"] == "Renewal - Directed surveillance: Operation Kestrel"
    # The renewal applicant may not decide their own renewal either.
    assert_problem(
        complete_as(case, APPLICANT_AS_AUTHORISER, "decide_renewal", renewal_form()),
        403,
        "separation-of-duties",
    )
    case.decide(SUPT, "decide_renewal", "returned", "Say what the courier photographs added to the case.")
    assert elements(case, APPLICANT) == ["renew_or_cancel"]
    case.complete(APPLICANT, "renew_or_cancel", renew)
    refused = case.decide(
        SUPT, "decide_renewal", "refused", "Three months have produced too little to justify more."
    )
    assert refused["instance_status"] == "running"
    assert elements(case, SUPT) == ["cancel_authorisation"]
    assert "authorisation_expires" not in case.timers(SUPT)
    finish_cancellation(case, SUPT, "renewal_refused")
    assert decisions(case, "decide_renewal") == [
        (SUPT.subject, "returned", False),
        (SUPT.subject, "refused", False),
    ]


# -- urgent route --------------------------------------------------------------------------------------


def test_an_urgent_grant_lapses_72_hours_after_the_minute_of_grant(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application(urgent=True))
    assert elements(case, GATEKEEPER) == []  # the urgent route skips the bureau
    [task] = case.inbox(INSPECTOR)
    assert (task["element_id"], task["due_at"], task["required_rank"]) == (
        "decide_authorisation",
        "2026-01-05T11:00:00+00:00",
        "inspector",
    )
    clock.advance(timedelta(minutes=17))
    variables = in_force(case, INSPECTOR)
    assert variables["urgent_route"] is True
    assert variables["authority_label"] == "Directed surveillance (urgent)"
    assert variables["expires_at"] == "2026-01-08T09:17:00+00:00"
    assert case.timers(SUPT)["renew_or_cancel_window"] == "2026-01-07T09:17:00+00:00"

    case.advance(timedelta(hours=48))
    assert elements(case, APPLICANT) == ["renew_or_cancel"]
    case.advance(timedelta(hours=24) - timedelta(seconds=1))
    assert case.variables(SUPT).get("lapsed") is None
    case.advance(timedelta(seconds=1))
    variables = case.variables(SUPT)
    assert (variables["lapsed"], variables["lapsed_at"]) == (True, "2026-01-08T09:17:00+00:00")
    assert elements(case, APPLICANT) == []
    assert elements(case, TEAM) == []
    assert elements(case, INSPECTOR) == ["cancel_authorisation"]
    finish_cancellation(case, INSPECTOR, "lapsed")


def test_an_urgent_chis_is_renewed_in_writing_by_a_superintendent_from_the_old_expiry(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("chis", urgent=True))
    variables = in_force(case, INSPECTOR)
    assert variables["expires_at"] == "2026-01-08T09:00:00+00:00"
    case.advance(timedelta(hours=48))
    case.complete(
        APPLICANT,
        "renew_or_cancel",
        {
            "expiry_action": "renew",
            "renewal_case": "The source meets the organisers this week; without it the access is lost.",
            "results_so_far": "Two meetings reported; the supply route is now known.",
        },
    )
    # Renewal is in writing by someone entitled to grant: a Superintendent, not the urgent Inspector.
    assert_problem(complete_as(case, INSPECTOR, "decide_renewal", renewal_form()), 403, "rank-too-low")
    case.complete(SUPT, "decide_renewal", renewal_form())
    case.complete(RECORDS, "record_renewal", ENTRY)
    variables = case.variables(SUPT)
    assert variables["renewal_count"] == 1
    assert variables["urgent_route"] is False
    assert variables["previous_expires_at"] == "2026-01-08T09:00:00+00:00"
    # s.43(4): 12 months beginning with the day the urgent grant would have ceased (8 January).
    assert variables["expires_at"] == "2027-01-08T00:00:00+00:00"
    assert (variables["required_rank"], variables["authorised_rank"]) == ("superintendent", "superintendent")
    assert case.timers(SUPT)["authorisation_expires"] == "2027-01-08T00:00:00+00:00"

    # The handler reports the source is no longer needed: cancellation at once (s.45).
    case.complete(
        TEAM,
        "carry_out_activity",
        {
            "activity_status": "no_longer_necessary",
            "activity_summary": "The organisers were arrested this morning.",
            "reason_no_longer_necessary": "The conspiracy has been disrupted and the source is withdrawn.",
        },
    )
    assert elements(case, SUPT) == ["cancel_authorisation"]
    finish_cancellation(case, SUPT, "no_longer_necessary")
    recorded = [e["detail"]["element_id"] for e in history(case) if e["action"] == "task.completed"]
    assert [r for r in recorded if r.startswith("record_")] == [
        "record_grant",
        "record_renewal",
        "record_cancellation",
    ]


# -- escalations ---------------------------------------------------------------------------------------


def test_a_juvenile_chis_needs_an_acc_lasts_4_months_and_is_reviewed_at_least_monthly(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("juvenile_chis"))
    assert_problem(complete_as(case, SUPT, "decide_authorisation", grant_form()), 403, "rank-too-low")
    variables = in_force(case, ACC, review_interval_days=60)
    assert variables["authority_label"] == "Juvenile CHIS"
    # 4 months beginning with 5 January end at the end of 4 May (BST).
    assert variables["expires_at"] == "2026-05-04T23:00:00+00:00"
    # The authoriser asked for 60 days; the law caps a juvenile source's review at one month.
    assert variables["next_review_at"] == "2026-02-05T00:00:00+00:00"
    case.advance(timedelta(days=30, hours=15))
    assert elements(case, ACC) == ["review_authorisation"]
    case.complete(ACC, "review_authorisation", {**CONTINUE, "next_review_interval_days": 60})
    assert case.timers(SUPT)["review_due"] == "2026-03-05T00:00:00+00:00"

    # The next review finds it no longer proportionate: the review itself leads to cancellation.
    case.advance(timedelta(days=28))
    case.complete(
        ACC,
        "review_authorisation",
        {
            "review_outcome": "cancel",
            "still_necessary": True,
            "still_proportionate": False,
            "review_rationale": "The source's welfare assessment changed; tasking is not proportionate.",
        },
    )
    assert elements(case, TEAM) == []
    assert case.timers(SUPT) == {}
    finish_cancellation(case, ACC, "no_longer_proportionate")


def test_a_source_under_16_cannot_be_authorised_against_a_parent(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    form = application("juvenile_chis", source_age=15, target_is_parent_of_source=True)
    case = start(api, services, clock)
    # A juvenile source needs appropriate adult arrangements on the application.
    without_adult = {k: v for k, v in form.items() if k != "appropriate_adult_arrangements"}
    problem = case.complete(APPLICANT, "prepare_application", without_adult, status=422)
    assert problem["errors"] == {"$": ["'appropriate_adult_arrangements' is a required property"]}
    case.complete(APPLICANT, "prepare_application", form)
    case.complete(GATEKEEPER, "gatekeeper_check", READY)
    assert case.status(SUPT) == "completed"
    variables = case.variables(SUPT)
    assert variables["authorisable"] is False
    assert "SI 2000/2793 art.3" in variables["not_authorisable_reason"]
    assert approvals(api, CHIEF, case) == []


def test_confidential_material_escalates_to_the_chief_constable(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    form = application(
        confidential_material_likely=True,
        confidential_material_details="The subject meets a journalist at the lock-up on Fridays.",
    )
    case = applied(api, services, clock, form)
    [task] = approvals(api, CHIEF, case)
    assert (task["required_rank"], task["summary"]) == (
        "chief_constable",
        "Directed surveillance: confidential material likely: Operation Kestrel",
    )
    low = assert_problem(complete_as(case, SUPT, "decide_authorisation", grant_form()), 403, "rank-too-low")
    assert "Chief Constable" in low["detail"]
    variables = in_force(case, CHIEF)
    assert (variables["authorised_rank"], variables["expires_at"]) == (
        "chief_constable",
        "2026-04-04T23:00:00+00:00",
    )

    # A CHIS seeking legally privileged material also needs a Judicial Commissioner's prior approval.
    privileged = applied(
        api,
        services,
        clock,
        application(
            "chis",
            legally_privileged_material_sought=True,
            confidential_material_details="The source will attend meetings with the subject's solicitor.",
        ),
        key="OP-PLOVER",
    )
    assert_problem(complete_as(privileged, SUPT, "decide_authorisation", grant_form()), 403, "rank-too-low")
    privileged.complete(CHIEF, "decide_authorisation", grant_form())
    assert privileged.variables(SUPT)["authority_label"] == "CHIS: legally privileged material"
    assert elements(privileged, GATEKEEPER) == ["record_jc_decision"]
    assert elements(privileged, RECORDS) == []


# -- intrusive surveillance ----------------------------------------------------------------------------


def test_intrusive_surveillance_takes_effect_only_when_a_judicial_commissioner_approves(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    refused = applied(api, services, clock, application("intrusive_surveillance"), key="OP-HERON")
    assert_problem(complete_as(refused, ACC, "decide_authorisation", grant_form()), 403, "rank-too-low")
    refused.complete(CHIEF, "decide_authorisation", grant_form())
    assert elements(refused, GATEKEEPER) == ["record_jc_decision"]
    refused.complete(
        GATEKEEPER,
        "record_jc_decision",
        {
            "jc_decision": "refused",
            "jc_reference": "IPCO/26/311",
            "jc_decided_at": "2026-01-05T15:00:00+00:00",
        },
    )
    assert refused.status(SUPT) == "completed"
    assert "expires_at" not in refused.variables(SUPT)
    assert elements(refused, RECORDS) == []

    # Directed surveillance in a private vehicle is intrusive surveillance.
    approved = applied(
        api, services, clock, application(residential_premises_or_private_vehicle=True), key="OP-EGRET"
    )
    approved.complete(CHIEF, "decide_authorisation", grant_form())
    assert approved.variables(SUPT)["authority_label"] == "Intrusive surveillance"
    assert elements(approved, RECORDS) == []  # not in force yet
    clock.advance(timedelta(days=2))
    approved.complete(
        GATEKEEPER,
        "record_jc_decision",
        {
            "jc_decision": "approved",
            "jc_reference": "IPCO/26/312",
            "jc_decided_at": "2026-01-07T09:00:00+00:00",
        },
    )
    approved.complete(RECORDS, "record_grant", ENTRY)
    variables = approved.variables(SUPT)
    # It takes effect on approval (7 January), so 3 months run to the end of 6 April.
    assert (variables["takes_effect_at"], variables["expires_at"]) == (
        "2026-01-07T09:00:00+00:00",
        "2026-04-06T23:00:00+00:00",
    )


def test_urgent_intrusive_surveillance_quashed_by_the_judicial_commissioner_ceases(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("intrusive_surveillance", urgent=True))
    assert_problem(complete_as(case, SUPT, "decide_authorisation", grant_form()), 403, "rank-too-low")
    variables = in_force(case, ACC)
    assert variables["authority_label"] == "Intrusive surveillance (urgent)"
    assert variables["jc_decide_by"] == variables["expires_at"] == "2026-01-08T09:00:00+00:00"
    assert case.timers(SUPT) == {"jc_decision_deadline": "2026-01-08T09:00:00+00:00"}
    case.complete(
        GATEKEEPER,
        "record_urgent_jc_decision",
        {
            "jc_decision": "refused",
            "jc_reference": "IPCO/26/318",
            "jc_decided_at": "2026-01-05T18:00:00+00:00",
        },
    )
    assert case.variables(SUPT)["ceased_at"] == "2026-01-05T09:00:00+00:00"
    assert elements(case, ACC) == ["cancel_authorisation"]
    finish_cancellation(case, ACC, "not_approved_by_judicial_commissioner")


# -- communications data --------------------------------------------------------------------------------


def test_communications_data_is_decided_by_the_ocda_for_one_month_and_renewed_by_it(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("communications_data"))
    assert elements(case, SUPT) == []
    assert elements(case, CHIEF) == []
    assert elements(case, OCDA) == ["ocda_decision"]
    team = assert_problem(
        complete_as(case, OCDA_ON_TEAM, "ocda_decision", grant_form()), 403, "separation-of-duties"
    )
    assert "investigation team" in team["detail"]
    case.complete(OCDA, "ocda_decision", grant_form())
    case.complete(RECORDS, "record_grant", ENTRY)
    variables = case.variables(SUPT)
    assert variables["authority_label"] == "Communications data"
    assert variables["expires_at"] == "2026-02-05T00:00:00+00:00"  # 1 month: to the end of 4 February
    assert variables["cancel_or_renew_from"] == "2026-01-26T09:00:00+00:00"

    case.advance(timedelta(days=21))
    case.complete(
        APPLICANT,
        "renew_or_cancel",
        {
            "expiry_action": "renew",
            "renewal_case": "Subscriber checks found two new handsets needing the same data for a month.",
            "results_so_far": "Call data placed the subject with the supplier on three dates.",
        },
    )
    assert elements(case, SUPT) == []
    assert elements(case, OCDA) == ["ocda_renewal_decision"]
    case.complete(OCDA, "ocda_renewal_decision", renewal_form())
    case.complete(RECORDS, "record_renewal", ENTRY)
    variables = case.variables(SUPT)
    assert (variables["previous_expires_at"], variables["expires_at"]) == (
        "2026-02-05T00:00:00+00:00",
        "2026-03-05T00:00:00+00:00",
    )
    assert variables["cancel_or_renew_from"] == "2026-02-26T00:00:00+00:00"


def test_urgent_communications_data_lapses_after_3_days(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("communications_data", urgent=True))
    assert elements(case, OCDA) == []  # the urgent route stays with a designated senior officer
    variables = in_force(case, INSPECTOR)
    assert variables["expires_at"] == "2026-01-08T09:00:00+00:00"
    case.advance(timedelta(days=3))
    variables = case.variables(SUPT)
    assert (variables["lapsed"], variables["lapsed_at"]) == (True, "2026-01-08T09:00:00+00:00")
    finish_cancellation(case, INSPECTOR, "lapsed")


# -- equipment interference ------------------------------------------------------------------------------


def test_equipment_interference_needs_the_double_lock_and_lasts_6_months(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("equipment_interference"))
    assert_problem(complete_as(case, ACC, "decide_authorisation", grant_form()), 403, "rank-too-low")
    case.complete(CHIEF, "decide_authorisation", grant_form())
    case.complete(
        GATEKEEPER,
        "record_jc_decision",
        {
            "jc_decision": "approved",
            "jc_reference": "IPCO/26/400",
            "jc_decided_at": "2026-01-05T12:00:00+00:00",
        },
    )
    case.complete(RECORDS, "record_grant", ENTRY)
    variables = case.variables(SUPT)
    assert variables["expires_at"] == "2026-07-04T23:00:00+00:00"  # 6 months: to the end of 4 July


def test_an_urgent_equipment_interference_warrant_ceases_without_approval_by_the_3rd_working_day(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("equipment_interference", urgent=True))
    variables = in_force(case, ACC)
    # Issued on Monday 5 January: the 3rd working day after is Thursday 8 January.
    assert variables["jc_decide_by"] == "2026-01-09T00:00:00+00:00"
    assert case.timers(SUPT) == {"jc_decision_deadline": "2026-01-09T00:00:00+00:00"}
    assert elements(case, GATEKEEPER) == ["record_urgent_jc_decision"]
    case.advance(timedelta(days=3, hours=14, minutes=59))
    assert elements(case, GATEKEEPER) == ["record_urgent_jc_decision"]
    case.advance(timedelta(minutes=1))
    variables = case.variables(SUPT)
    assert (variables["jc_decision"], variables["ceased_at"]) == (
        "not_decided_in_time",
        "2026-01-09T00:00:00+00:00",
    )
    assert elements(case, GATEKEEPER) == []
    finish_cancellation(case, ACC, "not_approved_by_judicial_commissioner")


def test_an_urgent_equipment_interference_warrant_approved_in_time_runs_its_6_months(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("equipment_interference", urgent=True))
    variables = in_force(case, ACC)
    assert variables["authority_label"] == "Equipment interference (urgent)"
    assert elements(case, TEAM) == []  # the period waits for the Judicial Commissioner
    case.advance(timedelta(days=2))
    case.complete(
        GATEKEEPER,
        "record_urgent_jc_decision",
        {
            "jc_decision": "approved",
            "jc_reference": "IPCO/26/401",
            "jc_decided_at": "2026-01-07T09:00:00+00:00",
        },
    )
    assert elements(case, TEAM) == ["carry_out_activity"]
    assert case.timers(SUPT)["authorisation_expires"] == "2026-07-04T23:00:00+00:00"
    assert "jc_decision_deadline" not in case.timers(SUPT)
    assert case.variables(SUPT)["jc_decision"] == "approved"


# -- the long loop ---------------------------------------------------------------------------------------


def test_a_chis_reviewed_monthly_for_a_year_then_renewed_from_the_old_expiry(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    case = applied(api, services, clock, application("chis"))
    variables = in_force(case, SUPT, review_interval_days=28)
    assert variables["expires_at"] == "2027-01-05T00:00:00+00:00"  # 12 months: to the end of 4 January 2027

    start_at = clock.now()
    for review in range(1, 13):
        due = start_at + timedelta(days=28 * review)
        assert case.timers(SUPT)["review_due"] == due.isoformat()
        case.advance(due - clock.now())
        assert elements(case, TEAM) == []
        case.complete(SUPT, "review_authorisation", {**CONTINUE, "next_review_interval_days": 28})
        assert elements(case, TEAM) == ["carry_out_activity"]
    assert clock.now().isoformat() == "2026-12-07T09:00:00+00:00"
    variables = case.variables(SUPT)
    assert (variables["review_count"], variables["last_reviewed_at"]) == (12, "2026-12-07T09:00:00+00:00")
    reviews = [
        e
        for e in history(case)
        if e["action"] == "task.completed" and e["detail"]["element_id"] == "review_authorisation"
    ]
    assert [e["actor"] for e in reviews] == [SUPT.subject] * 12

    case.advance(timedelta(days=18, hours=15))  # the renewal window opens at 00:00 on 26 December
    assert elements(case, APPLICANT) == ["renew_or_cancel"]
    case.complete(
        APPLICANT,
        "renew_or_cancel",
        {
            "expiry_action": "renew",
            "renewal_case": "The source still reports on the organisers and no other access exists to them.",
            "results_so_far": "Twelve months of reporting; two seizures and the supply route.",
        },
    )
    case.complete(SUPT, "decide_renewal", renewal_form())
    case.complete(RECORDS, "record_renewal", ENTRY)
    variables = case.variables(SUPT)
    assert (variables["previous_expires_at"], variables["expires_at"]) == (
        "2027-01-05T00:00:00+00:00",
        "2028-01-05T00:00:00+00:00",
    )
    assert variables["renewal_count"] == 1
    assert case.timers(SUPT)["authorisation_expires"] == "2028-01-05T00:00:00+00:00"
    assert decisions(case, "decide_renewal") == [(SUPT.subject, "granted", False)]
