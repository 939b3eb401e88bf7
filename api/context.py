"""What a view needs from its app and request: engine services, the unit of work, the acting person."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from flask import current_app, request
from sqlalchemy.orm import Session

from auth.flask import EXTENSION_KEY, AuthExtension, current_principal
from auth.principal import Principal
from engine import db
from engine.audit import AuditLog
from engine.container import Services
from engine.instances import Actor, InstanceService
from engine.settings import Settings

MAX_PURPOSE = 500


def services() -> Services:
    found: Services = current_app.extensions["opsflow"]
    return found


def settings() -> Settings:
    """The app's settings (those passed to ``create_app``, which may differ from the services' own)."""
    found: Settings = current_app.extensions["opsflow_settings"]
    return found


def cross_unit_roles() -> frozenset[str]:
    """Roles whose holders work across units (``AuthSettings.cross_unit_roles``)."""
    extension: AuthExtension = current_app.extensions[EXTENSION_KEY]
    return extension.settings.cross_unit_roles


@contextmanager
def transaction() -> Iterator[Session]:
    """The request's one unit of work: commits when the block ends, rolls back on any error."""
    with db.transaction(services().sessions) as session:
        yield session


def instance_service(session: Session) -> InstanceService:
    return InstanceService(session, services().context)


def audit_log(session: Session) -> AuditLog:
    return AuditLog(session, services().clock)


def record_consultation(
    session: Session,
    *,
    action: str,
    record_type: str,
    record_id: str,
    instance_id: str,
    fields: Iterable[str],
) -> None:
    """Log that the caller read personal data (DPA 2018 s.62 consultation): which fields, and why."""
    audit_log(session).record(
        actor=current_principal().subject,
        kind="consultation",
        action=action,
        record_type=record_type,
        record_id=record_id,
        instance_id=instance_id,
        purpose=purpose(),
        detail={"fields": sorted(fields)},
    )


def purpose() -> str | None:
    """Why the caller reads personal data: the ``X-Purpose`` header, else the ``purpose`` query parameter."""
    value = request.headers.get("X-Purpose") or request.args.get("purpose") or ""
    value = value.strip()[:MAX_PURPOSE]
    return value or None


def actor(principal: Principal) -> Actor:
    """The engine's view of the caller: subject, display name and the purpose they gave."""
    return Actor(principal.subject, principal.name, purpose())
