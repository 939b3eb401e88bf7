"""Incidents: failures inside processes that stopped an instance until someone retries it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask.views import MethodView

from api.blueprint import ApiBlueprint
from api.context import cross_unit_roles, services
from api.paging import INT64, Sort, encode_cursor, split_page
from api.schemas import IncidentPageOut, IncidentQueryIn
from auth.flask import current_principal
from auth.policy import visible_classifications, visible_units
from engine.models import Incident, ProcessInstance

blp = ApiBlueprint(
    "incidents", __name__, url_prefix="/api/v1/incidents", description="Failures waiting for attention"
)

INCIDENT_SORT = Sort("id", Incident.id, Incident.id, kind=int, id_kind=int, int_bound=INT64)


@blp.route("")
class Incidents(MethodView):
    @blp.require_scope("instances:read")
    @blp.problems(422)
    @blp.arguments(IncidentQueryIn, location="query")
    @blp.response(200, IncidentPageOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Incidents of the cases the caller may see, oldest first; open ones unless `resolved=true`"""
        principal = current_principal()
        query = (
            sa.select(Incident)
            .join(ProcessInstance, ProcessInstance.id == Incident.instance_id)
            .where(ProcessInstance.classification.in_(visible_classifications(principal)))
        )
        units = visible_units(principal, cross_unit_roles=cross_unit_roles())
        if units is not None:
            query = query.where(ProcessInstance.unit.in_(sorted(units)))
        resolved = Incident.resolved_at.is_not(None)
        query = query.where(resolved if args["resolved"] else sa.not_(resolved))
        if args.get("process_key") is not None:
            query = query.where(ProcessInstance.process_key == args["process_key"])
        if args.get("instance_id") is not None:
            query = query.where(Incident.instance_id == args["instance_id"])
        with services().sessions() as session:
            rows = list(
                session.scalars(INCIDENT_SORT.page(query, cursor=args.get("cursor"), limit=args["limit"]))
            )
        items, more = split_page(rows, args["limit"])
        next_cursor = encode_cursor(INCIDENT_SORT.name, items[-1].id, items[-1].id) if more else None
        return {"items": items, "next_cursor": next_cursor}
