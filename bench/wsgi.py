"""A bench-only application factory: the production app with the audit writes taken out.

``gunicorn 'bench.wsgi:app_without_audit()'`` serves exactly what ``gunicorn 'api.app:create_app()'``
serves, except that :meth:`engine.audit.AuditLog.record` builds its event and returns it without
locking the case's chain head, hashing, or inserting the row. Comparing the two servers under the same
load shows what the audit trail costs. It exists only here, so that no setting of the product can turn
the audit trail off.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from api.app import create_app
from engine.audit import KINDS, AuditLog
from engine.models import AuditEvent


def _record_nothing(self: AuditLog, **fields: Any) -> AuditEvent:
    if fields["kind"] not in KINDS:
        raise ValueError(f"unknown audit kind {fields['kind']!r}")
    return AuditEvent(at=self.clock.now(), **fields)


def app_without_audit() -> Flask:
    AuditLog.record = _record_nothing  # type: ignore[method-assign]
    return create_app()
