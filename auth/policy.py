"""Access policy as pure functions: who may see or take a task, who may decide an approval, what is visible.

Nothing here knows HTTP or BPMN: callers pass the facts (the task's lane role, the case's unit and
classification, the people involved) and get ``None``/a result or one of the errors in ``auth.errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from auth.errors import AuthorizationError, NotVisibleError
from auth.principal import CLASSIFICATIONS, Principal, classification_level, normalise_rank

TeamPolicy = Literal["forbid", "flag"]


def check_case_access(
    principal: Principal,
    *,
    unit: str | None,
    classification: str,
    cross_unit_roles: Iterable[str],
    granted_subjects: Iterable[str] = (),
) -> None:
    """Allow a caller to see a case: clearance at least its classification, and a need to know.

    Need to know is the case's unit, a cross-unit role, or an explicit grant to the caller's subject.
    Every refusal is ``NotVisibleError``: someone without a need to know is not told the case exists.
    """
    _check_clearance(principal, classification)
    if unit is None or unit in principal.units or principal.roles & frozenset(cross_unit_roles):
        return
    if principal.subject in frozenset(granted_subjects):
        return
    raise NotVisibleError(f"{principal.subject} has no need to know of a case in unit {unit!r}")


def check_task_access(
    principal: Principal,
    *,
    role: str,
    unit: str | None,
    classification: str,
    cross_unit_roles: Iterable[str],
) -> None:
    """Allow a caller to see or take a task in the lane ``role`` of a case in ``unit``.

    Clearance is checked first and a shortfall raises ``NotVisibleError``. Then the caller must hold
    ``role`` (``role-missing``) and belong to ``unit`` unless ``role`` is itself a cross-unit role such
    as ``review_officer`` (``unit-mismatch``). Holding some other cross-unit role (say ``auditor``) does
    not let an investigator take investigator tasks in another unit. ``unit`` None means unrestricted.
    """
    _check_clearance(principal, classification)
    if role not in principal.roles:
        raise AuthorizationError("role-missing", f"this task is for the role {role!r}, which you do not hold")
    if unit is None or unit in principal.units or role in frozenset(cross_unit_roles):
        return
    raise AuthorizationError(
        "unit-mismatch",
        f"this task belongs to unit {unit!r}; you are in {', '.join(sorted(principal.units)) or 'no unit'}",
    )


@dataclass(frozen=True)
class ApprovalCheck:
    """The outcome of an allowed approval: ``flagged`` when the record must show a conflict, and why."""

    flagged: bool
    reasons: list[str] = field(default_factory=list)


def check_approval(
    principal: Principal,
    *,
    required_rank: str | None,
    excluded_subjects: Mapping[str, str] | Iterable[str],
    team_subjects: Iterable[str],
    team_policy: TeamPolicy,
) -> ApprovalCheck:
    """Decide whether the caller may decide an approval, applying rank and separation of duties.

    ``excluded_subjects`` are people who must never decide it, e.g. the applicant; as a mapping their
    value says in what capacity ("the applicant for this application") and appears in the refusal.
    ``team_subjects`` are the investigation team: with ``team_policy`` "forbid" they are refused,
    with "flag" they are allowed and the result is flagged so the record shows it (RIPA codes: an
    authorising officer should not be part of the investigation, and where unavoidable it is noted).
    """
    exclusions = (
        excluded_subjects
        if isinstance(excluded_subjects, Mapping)
        else dict.fromkeys(excluded_subjects, "personally involved in this matter")
    )
    if principal.subject in exclusions:
        raise AuthorizationError(
            "separation-of-duties",
            f"you are {exclusions[principal.subject]}, so you may not decide it (separation of duties)",
        )
    if required_rank is not None and not principal.rank_at_least(required_rank):
        needed = _title(normalise_rank(required_rank))
        held = _title(principal.rank) if principal.rank else "no rank"
        raise AuthorizationError(
            "rank-too-low", f"this decision needs the rank of {needed} or above; your token says {held}"
        )
    if principal.subject in frozenset(team_subjects):
        if team_policy == "forbid":
            raise AuthorizationError(
                "separation-of-duties",
                "you are a member of the investigation team; this decision must come from outside the team",
            )
        return ApprovalCheck(
            flagged=True, reasons=["the decision maker is a member of the investigation team"]
        )
    return ApprovalCheck(flagged=False)


def check_can_mark(principal: Principal, classification: str) -> None:
    """Allow a caller to start or mark a case at ``classification``: never above their own clearance.

    Unlike reading, this is a plain refusal (``clearance-too-low``): the caller named the marking.
    """
    if not principal.cleared_for(classification):
        raise AuthorizationError(
            "clearance-too-low",
            f"you are cleared to {principal.clearance} and may not create material marked {classification}",
        )


def visible_classifications(principal: Principal) -> list[str]:
    """Classifications the caller is cleared for, lowest first, for ``WHERE classification IN (...)``."""
    return list(CLASSIFICATIONS[: classification_level(principal.clearance) + 1])


def visible_units(principal: Principal, *, cross_unit_roles: Iterable[str]) -> frozenset[str] | None:
    """Units whose cases the caller may list, or None for all units (the caller holds a cross-unit role)."""
    if principal.roles & frozenset(cross_unit_roles):
        return None
    return principal.units


def _check_clearance(principal: Principal, classification: str) -> None:
    if not principal.cleared_for(classification):
        raise NotVisibleError(
            f"{principal.subject} (cleared {principal.clearance}) may not see {classification} material"
        )


def _title(rank: str) -> str:
    return rank.replace("_", " ").title()
