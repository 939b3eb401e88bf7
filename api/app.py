"""The application factory: configuration, engine services, authentication, blueprints, error handlers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask_smorest import Api

from api import (
    approvals,
    definitions,
    docs,
    errors,
    health,
    incidents,
    instances,
    limits,
    messages,
    metrics,
    migrations,
    tasks,
)
from api.schemas import ProblemOut
from auth.flask import AuthExtension
from auth.keys import KeyStore
from auth.settings import AuthSettings
from auth.tokens import TokenValidator
from engine.clock import Clock
from engine.container import Services, build_services
from engine.settings import Settings

API_TITLE = "opsflow"
API_VERSION = "v1"
API_DESCRIPTION = (
    "BPMN workflows for specialist policing. Every call needs an OAuth 2 bearer token; what it may do "
    "follows from its scopes and from the caller's roles, units, rank and clearance. Every error is an "
    "RFC 9457 `application/problem+json` with a stable `code`; validation errors carry `errors` keyed by "
    "JSON path. Lists page with an opaque `cursor` (`next_cursor` in each page). Reading case data is "
    "recorded in the audit trail; say why in the `X-Purpose` header."
)


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    auth_settings: AuthSettings | None = None,
    validator: TokenValidator | None = None,
    clock: Clock | None = None,
    **overrides: Any,
) -> Flask:
    """Build the app. Tests pass collaborators in by keyword instead of patching."""
    settings = settings or Settings.from_env()
    auth_settings = auth_settings or AuthSettings.from_env()
    services = services or build_services(settings, clock=clock)
    app = Flask("opsflow")
    app.config.update(
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.1.0",
        API_SPEC_OPTIONS={"info": {"description": API_DESCRIPTION}},
        MAX_CONTENT_LENGTH=max(settings.max_upload_bytes, settings.max_body_bytes),
        JSON_SORT_KEYS=False,
        **overrides,
    )
    app.extensions["opsflow"] = services
    app.extensions["opsflow_settings"] = settings

    keystore: KeyStore | None = None
    if auth_settings.embedded:
        keystore = KeyStore(auth_settings.key_dir, token_lifetime=auth_settings.token_lifetime)
    if validator is None:
        validator = TokenValidator.from_settings(auth_settings, keystore=keystore)
    AuthExtension(validator, auth_settings).init_app(app)
    if keystore is not None:
        from auth.server import init_auth_server

        init_auth_server(app, sessions=services.sessions, keystore=keystore, settings=auth_settings)

    api = Api()
    # Every error leaves as a problem (api.errors); document it so rather than flask-smorest's own shape.
    api.ERROR_SCHEMA = ProblemOut
    api.DEFAULT_ERROR_RESPONSE_NAME = None
    api.init_app(app)
    app.extensions[docs.API_EXTENSION] = api
    api.spec.components.security_scheme(
        "oauth2",
        {
            "type": "oauth2",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": f"{auth_settings.expected_issuer.rstrip('/')}/oauth2/token",
                    "scopes": {s: s for s in SCOPES},
                }
            },
        },
    )
    api.register_blueprint(health.blp.blueprint)
    for blueprint in (
        tasks.blp,
        approvals.blp,
        instances.blp,
        definitions.blp,
        definitions.deployments_blp,
        messages.blp,
        migrations.blp,
        incidents.blp,
        metrics.blp,
    ):
        api.register_blueprint(blueprint.blueprint)
    app.register_blueprint(docs.bp)
    errors.register_error_handlers(app)
    limits.init_app(app)
    metrics.init_metrics(app, services)
    logging.getLogger("opsflow").setLevel(logging.INFO)
    return app


SCOPES = (
    "tasks:read",
    "tasks:write",
    "instances:read",
    "instances:write",
    "instances:migrate",
    "instances:erase",
    "approvals:decide",
    "definitions:deploy",
    "audit:read",
    "messages:send",
    "admin",
)
