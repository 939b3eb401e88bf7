"""The task inbox in SQL: which ``human_task`` rows a caller may see, the filters and the sort orders.

Lists never load a workflow: every filter here is a condition on the indexed ``human_task`` table.
Visibility mirrors :func:`auth.policy.check_task_access`: clearance at least the task's classification,
the task's role among the caller's roles, and the task's unit among the caller's units unless the
task's role is itself a cross-unit role (a review officer's task may come from any unit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from api.paging import Sort
from auth.policy import visible_classifications
from auth.principal import Principal
from engine.instances import READY
from engine.models import HumanTask

TASK_SORTS: dict[str, Sort] = {
    "due_at": Sort("due_at", HumanTask.due_at, HumanTask.id),
    "-due_at": Sort("-due_at", HumanTask.due_at, HumanTask.id, descending=True),
    "priority": Sort("priority", HumanTask.priority, HumanTask.id, kind=int),
    "-priority": Sort("-priority", HumanTask.priority, HumanTask.id, kind=int, descending=True),
    "created_at": Sort("created_at", HumanTask.created_at, HumanTask.id),
    "-created_at": Sort("-created_at", HumanTask.created_at, HumanTask.id, descending=True),
}


def eligible(
    principal: Principal,
    *,
    cross_unit_roles: Iterable[str],
    role: str | None = None,
    unit: str | None = None,
) -> list[sa.ColumnElement[bool]]:
    """Open tasks the caller could take, whoever holds them now.

    ``role`` and ``unit`` are the caller's own ``role =`` and ``unit =`` filters, which the query adds
    itself. A filter on one of the caller's roles (units) already implies the role (unit) condition, so
    that condition is left out: the same column constrained twice makes PostgreSQL underestimate the
    rows by orders of magnitude and sort every open task of the pair instead of reading the first page
    in index order.
    """
    conditions: list[sa.ColumnElement[bool]] = [
        HumanTask.status == READY,
        HumanTask.classification.in_(visible_classifications(principal)),
    ]
    if role is None or role not in principal.roles:
        conditions.append(HumanTask.role.in_(sorted(principal.roles)))
    if unit is None or unit not in principal.units:
        roaming = sorted(principal.roles & frozenset(cross_unit_roles))
        in_unit: sa.ColumnElement[bool] = HumanTask.unit.in_(sorted(principal.units))
        if roaming:
            in_unit = sa.or_(in_unit, HumanTask.role.in_(roaming))
        conditions.append(in_unit)
    return conditions


def filters(principal: Principal, args: Mapping[str, Any], *, now: datetime) -> list[sa.ColumnElement[bool]]:
    """The conditions for the query parameters of ``GET /tasks``.

    Without ``assignee`` or ``unassigned`` the inbox holds the tasks the caller holds or may take;
    ``assignee`` (``me`` or a subject) shows what a colleague holds, within what the caller may see.
    """
    conditions: list[sa.ColumnElement[bool]] = []
    assignee = args.get("assignee")
    if assignee is not None:
        conditions.append(HumanTask.assignee == (principal.subject if assignee == "me" else assignee))
    if args.get("unassigned") is True:
        conditions.append(HumanTask.assignee.is_(None))
    elif args.get("unassigned") is False:
        conditions.append(HumanTask.assignee.is_not(None))
    if assignee is None and args.get("unassigned") is None:
        conditions.append(sa.or_(HumanTask.assignee.is_(None), HumanTask.assignee == principal.subject))
    for name, column in (
        ("role", HumanTask.role),
        ("process_key", HumanTask.process_key),
        ("business_key", HumanTask.business_key),
        ("unit", HumanTask.unit),
    ):
        if args.get(name) is not None:
            conditions.append(column == args[name])
    if args.get("due_before") is not None:
        conditions.append(HumanTask.due_at < args["due_before"])
    if args.get("due_after") is not None:
        conditions.append(HumanTask.due_at > args["due_after"])
    if args.get("overdue") is True:
        conditions.append(HumanTask.due_at < now)
    elif args.get("overdue") is False:
        conditions.append(sa.or_(HumanTask.due_at.is_(None), HumanTask.due_at >= now))
    if args.get("min_priority") is not None:
        conditions.append(HumanTask.priority >= args["min_priority"])
    if args.get("q"):
        conditions.append(HumanTask.name.icontains(args["q"], autoescape=True))
    return conditions


def _conditions(
    principal: Principal, args: Mapping[str, Any], *, cross_unit_roles: Iterable[str], now: datetime
) -> list[sa.ColumnElement[bool]]:
    narrowed = eligible(
        principal, cross_unit_roles=cross_unit_roles, role=args.get("role"), unit=args.get("unit")
    )
    return [*narrowed, *filters(principal, args, now=now)]


def inbox_query(
    principal: Principal, args: Mapping[str, Any], *, cross_unit_roles: Iterable[str], now: datetime
) -> sa.Select[HumanTask]:
    return sa.select(HumanTask).where(
        *_conditions(principal, args, cross_unit_roles=cross_unit_roles, now=now)
    )


def count_query(
    principal: Principal, args: Mapping[str, Any], *, cross_unit_roles: Iterable[str], now: datetime
) -> sa.Select[int]:
    return (
        sa.select(sa.func.count())
        .select_from(HumanTask)
        .where(*_conditions(principal, args, cross_unit_roles=cross_unit_roles, now=now))
    )
