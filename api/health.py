"""Liveness and readiness probes for operators and load balancers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask.views import MethodView

from api.blueprint import ApiBlueprint
from api.errors import problem
from engine.container import Services
from engine.models import WorkerHeartbeat

blp = ApiBlueprint("health", __name__, url_prefix="/api/v1/health", description="Probes")
HEARTBEAT_STALE = timedelta(seconds=30)


def services() -> Services:
    found: Services = current_app.extensions["opsflow"]
    return found


@blp.route("/live")
class Live(MethodView):
    @blp.response(200)
    def get(self) -> dict[str, Any]:
        """The process is up"""
        return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    @blp.response(200)
    @blp.problems(503)
    def get(self) -> Any:
        """The database answers and at least one timer worker has reported recently"""
        svc = services()
        checks: dict[str, Any] = {}
        try:
            with svc.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            checks["database"] = "ok"
        except sa.exc.SQLAlchemyError as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        if checks["database"] == "ok":
            with svc.sessions() as session:
                newest = session.scalar(sa.select(sa.func.max(WorkerHeartbeat.seen_at)))
            fresh = newest is not None and svc.clock.now() - newest < HEARTBEAT_STALE
            checks["worker"] = "ok" if fresh else "no recent heartbeat"
        if all(v == "ok" for v in checks.values()):
            return {"status": "ok", "checks": checks}
        failing = ", ".join(f"{name}: {value}" for name, value in checks.items() if value != "ok")
        return problem(503, "not-ready", "Not ready", f"not ready to serve ({failing})", checks=checks)
