"""Access policy: who may see or take a task, and who may decide an approval."""

from __future__ import annotations

import pytest
from auth_fixtures import principal

from auth.errors import AuthorizationError, NotVisibleError
from auth.policy import (
    check_approval,
    check_can_mark,
    check_case_access,
    check_task_access,
    visible_classifications,
    visible_units,
)
from auth.principal import normalise_classification, normalise_rank

CROSS_UNIT = frozenset({"central_record_keeper", "review_officer", "auditor"})


def test_holder_of_the_role_in_the_unit_with_clearance_may_take_the_task() -> None:
    caller = principal(roles=frozenset({"investigator"}), clearance="SECRET")
    check_task_access(
        caller, role="investigator", unit="MIT-North", classification="secret", cross_unit_roles=CROSS_UNIT
    )


def test_wrong_role_is_refused_with_role_missing() -> None:
    caller = principal(roles=frozenset({"investigator"}))
    with pytest.raises(AuthorizationError) as caught:
        check_task_access(
            caller,
            role="authorising_officer",
            unit="MIT-North",
            classification="OFFICIAL",
            cross_unit_roles=CROSS_UNIT,
        )
    assert caught.value.code == "role-missing"
    assert "authorising_officer" in caught.value.detail


def test_wrong_unit_is_refused_with_unit_mismatch() -> None:
    caller = principal(roles=frozenset({"investigator"}), units=frozenset({"MIT-South"}))
    with pytest.raises(AuthorizationError) as caught:
        check_task_access(
            caller,
            role="investigator",
            unit="MIT-North",
            classification="OFFICIAL",
            cross_unit_roles=CROSS_UNIT,
        )
    assert caught.value.code == "unit-mismatch"
    assert "MIT-North" in caught.value.detail
    assert "MIT-South" in caught.value.detail


def test_a_cross_unit_role_works_in_any_unit() -> None:
    caller = principal(roles=frozenset({"review_officer"}), units=frozenset({"Major-Crime-Review"}))
    check_task_access(
        caller,
        role="review_officer",
        unit="MIT-North",
        classification="OFFICIAL",
        cross_unit_roles=CROSS_UNIT,
    )


def test_holding_some_other_cross_unit_role_does_not_open_other_units() -> None:
    caller = principal(roles=frozenset({"investigator", "auditor"}), units=frozenset({"MIT-South"}))
    with pytest.raises(AuthorizationError) as caught:
        check_task_access(
            caller,
            role="investigator",
            unit="MIT-North",
            classification="OFFICIAL",
            cross_unit_roles=CROSS_UNIT,
        )
    assert caught.value.code == "unit-mismatch"


def test_low_clearance_hides_the_task_before_anything_else_is_said() -> None:
    caller = principal(roles=frozenset(), units=frozenset({"Elsewhere"}), clearance="OFFICIAL-SENSITIVE")
    with pytest.raises(NotVisibleError) as caught:
        check_task_access(
            caller,
            role="authorising_officer",
            unit="MIT-North",
            classification="SECRET",
            cross_unit_roles=CROSS_UNIT,
        )
    assert caught.value.code == "not-found"
    assert "SECRET" not in caught.value.detail
    assert "SECRET" in caught.value.reason


def test_case_visibility_needs_clearance_and_a_need_to_know() -> None:
    outsider = principal(units=frozenset({"MIT-South"}), roles=frozenset({"investigator"}))
    with pytest.raises(NotVisibleError):
        check_case_access(outsider, unit="MIT-North", classification="OFFICIAL", cross_unit_roles=CROSS_UNIT)
    check_case_access(
        outsider,
        unit="MIT-North",
        classification="OFFICIAL",
        cross_unit_roles=CROSS_UNIT,
        granted_subjects=[outsider.subject],
    )
    auditor = principal(units=frozenset(), roles=frozenset({"auditor"}), clearance="OFFICIAL")
    check_case_access(auditor, unit="MIT-North", classification="OFFICIAL", cross_unit_roles=CROSS_UNIT)
    with pytest.raises(NotVisibleError):
        check_case_access(auditor, unit="MIT-North", classification="SECRET", cross_unit_roles=CROSS_UNIT)


def test_low_rank_is_refused_with_the_rank_needed() -> None:
    inspector = principal(rank="inspector")
    with pytest.raises(AuthorizationError) as caught:
        check_approval(
            inspector,
            required_rank="superintendent",
            excluded_subjects={},
            team_subjects=[],
            team_policy="forbid",
        )
    assert caught.value.code == "rank-too-low"
    assert "Superintendent" in caught.value.detail
    assert "Inspector" in caught.value.detail


def test_met_titles_carry_the_authority_of_their_rank() -> None:
    commander = principal(rank=normalise_rank("Commander"))
    result = check_approval(
        commander,
        required_rank="assistant_chief_constable",
        excluded_subjects=[],
        team_subjects=[],
        team_policy="forbid",
    )
    assert result.flagged is False
    commissioner = principal(rank=normalise_rank("Assistant Commissioner"))
    assert commissioner.rank_at_least("chief_constable")


def test_a_caller_without_rank_cannot_meet_a_rank_requirement() -> None:
    with pytest.raises(AuthorizationError) as caught:
        check_approval(
            principal(rank=None),
            required_rank="inspector",
            excluded_subjects=[],
            team_subjects=[],
            team_policy="flag",
        )
    assert caught.value.code == "rank-too-low"


def test_the_applicant_may_not_approve_their_own_application() -> None:
    applicant = principal(subject="dc.patel", rank="superintendent")
    with pytest.raises(AuthorizationError) as caught:
        check_approval(
            applicant,
            required_rank="superintendent",
            excluded_subjects={"dc.patel": "the applicant for this application"},
            team_subjects=[],
            team_policy="flag",
        )
    assert caught.value.code == "separation-of-duties"
    assert "you are the applicant for this application" in caught.value.detail


def test_excluded_subjects_may_be_a_plain_list() -> None:
    with pytest.raises(AuthorizationError) as caught:
        check_approval(
            principal(subject="ps.khan"),
            required_rank=None,
            excluded_subjects=iter(["ps.khan"]),
            team_subjects=[],
            team_policy="flag",
        )
    assert caught.value.code == "separation-of-duties"


def test_a_team_member_is_refused_where_the_policy_forbids_it() -> None:
    member = principal(subject="supt.okafor", rank="superintendent")
    with pytest.raises(AuthorizationError) as caught:
        check_approval(
            member,
            required_rank="superintendent",
            excluded_subjects={"dc.patel": "the applicant"},
            team_subjects=["supt.okafor", "dc.ali"],
            team_policy="forbid",
        )
    assert caught.value.code == "separation-of-duties"
    assert "investigation team" in caught.value.detail


def test_a_team_member_is_allowed_but_flagged_where_unavoidable() -> None:
    member = principal(subject="supt.okafor", rank="superintendent")
    result = check_approval(
        member,
        required_rank="superintendent",
        excluded_subjects={"dc.patel": "the applicant"},
        team_subjects=["supt.okafor"],
        team_policy="flag",
    )
    assert result.flagged is True
    assert result.reasons == ["the decision maker is a member of the investigation team"]


def test_an_independent_officer_of_rank_is_allowed_unflagged() -> None:
    result = check_approval(
        principal(subject="acc.stone", rank="assistant_chief_constable"),
        required_rank="superintendent",
        excluded_subjects={"dc.patel": "the applicant"},
        team_subjects=["dc.ali"],
        team_policy="flag",
    )
    assert result.flagged is False
    assert result.reasons == []


def test_nobody_marks_material_above_their_own_clearance() -> None:
    with pytest.raises(AuthorizationError) as caught:
        check_can_mark(principal(clearance="OFFICIAL"), "SECRET")
    assert caught.value.code == "clearance-too-low"
    check_can_mark(principal(clearance="SECRET"), "official-sensitive")


@pytest.mark.parametrize(
    ("clearance", "visible"),
    [
        ("OFFICIAL", ["OFFICIAL"]),
        ("OFFICIAL-SENSITIVE", ["OFFICIAL", "OFFICIAL-SENSITIVE"]),
        ("SECRET", ["OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET"]),
        ("TOP SECRET", ["OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET", "TOP SECRET"]),
    ],
)
def test_visible_classifications_for_sql_filters(clearance: str, visible: list[str]) -> None:
    assert visible_classifications(principal(clearance=clearance)) == visible


def test_visible_units_is_everything_for_a_cross_unit_role() -> None:
    assert visible_units(principal(), cross_unit_roles=CROSS_UNIT) == {"MIT-North"}
    assert visible_units(principal(roles=frozenset({"auditor"})), cross_unit_roles=CROSS_UNIT) is None


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("official_sensitive", "OFFICIAL-SENSITIVE"),
        ("Official Sensitive", "OFFICIAL-SENSITIVE"),
        ("top-secret", "TOP SECRET"),
        ("TOP_SECRET", "TOP SECRET"),
        ("secret", "SECRET"),
    ],
)
def test_classification_spellings_are_normalised(spelling: str, canonical: str) -> None:
    assert normalise_classification(spelling) == canonical


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("Chief Inspector", "chief_inspector"),
        ("DCI", "chief_inspector"),
        ("Supt.", "superintendent"),
        ("commander", "assistant_chief_constable"),
        ("Deputy Assistant Commissioner", "deputy_chief_constable"),
        ("Commissioner", "chief_constable"),
        ("assistant-commissioner", "chief_constable"),
    ],
)
def test_rank_spellings_and_met_titles_are_normalised(spelling: str, canonical: str) -> None:
    assert normalise_rank(spelling) == canonical


def test_unknown_markings_are_errors_not_guesses() -> None:
    with pytest.raises(ValueError, match="classification"):
        normalise_classification("RESTRICTED")
    with pytest.raises(ValueError, match="rank"):
        normalise_rank("admiral")
