"""Messages from other systems, delivered to the instances waiting for them (or starting a process)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.blueprint import ApiBlueprint
from api.context import actor, services, transaction
from api.instances import check_may_open
from api.schemas import MessageIn, MessageOut
from auth.flask import current_principal
from engine.errors import ValidationError
from engine.messages import correlate

blp = ApiBlueprint(
    "messages", __name__, url_prefix="/api/v1/messages", description="Messages that instances wait for"
)


@blp.route("")
class Messages(MethodView):
    @blp.require_scope("messages:send")
    @blp.problems(404, 409, 422)
    @blp.arguments(MessageIn)
    @blp.response(200, MessageOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deliver a message by name and correlation keys.

        404 when no instance waits for it (and no process starts with it); 409, with `matches`, when
        several wait and `all` is not set, in which case nothing is delivered. A message that starts
        a process needs `unit` and `classification`, checked as for `POST /process-instances`.
        """
        principal = current_principal()
        unit, classification = body.get("unit"), body.get("classification")
        if (unit is None) != (classification is None):
            missing = "$.classification" if classification is None else "$.unit"
            raise ValidationError(
                "unit and classification go together", errors={missing: ["required with the other"]}
            )
        if unit is not None and classification is not None:
            classification = check_may_open(principal, unit=unit, classification=classification)
        with transaction() as session:
            reached = correlate(
                session,
                services().context,
                body["name"],
                body["correlation"],
                body["variables"],
                all=body["all"],
                actor=actor(principal),
                unit=unit,
                classification=classification,
            )
        return {"instances": reached, "count": len(reached)}
