"""A typed facade over flask-smorest's Blueprint that also documents scopes and problem responses."""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any, TypeVar, cast

import flask_smorest

from api.schemas import ProblemOut
from auth import flask as auth_flask

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

PROBLEM_CONTENT_TYPE = "application/problem+json"

PROBLEM_DESCRIPTIONS = {
    400: "The request is malformed",
    401: "No valid access token (problem+json, with a WWW-Authenticate challenge)",
    403: "The token lacks a scope, or the caller lacks the role, unit, clearance or rank this needs",
    404: "No such object, or not visible to the caller (above their clearance or outside their need to know)",
    409: "The state changed underneath the request: already completed, held by someone else, wrong status",
    413: "The upload is larger than the configured limit",
    422: "The request or the submitted data failed validation; `errors` maps a JSON path to messages",
    503: "A collaborator needed for this request is not available",
}


class ApiBlueprint:
    """flask-smorest's ``Blueprint`` with typed decorators.

    flask-smorest ships no type information, so under ``mypy --strict`` each of its decorators would
    erase the signature of the view it wraps; this facade restores them. ``require_scope`` enforces
    the scopes with :func:`auth.flask.require_scope` as the outermost wrapper (401/403 before the body
    is parsed) and records them, with the 401 and 403 problems, in the OpenAPI document.
    """

    def __init__(self, name: str, import_name: str, *, url_prefix: str, description: str) -> None:
        self.blueprint: Any = flask_smorest.Blueprint(
            name, import_name, url_prefix=url_prefix, description=description
        )

    def route(self, rule: str, **options: Any) -> Callable[[C], C]:
        return cast(Callable[[C], C], self.blueprint.route(rule, **options))

    def arguments(self, schema: Any, **options: Any) -> Callable[[F], F]:
        """Parse and validate a request part; a JSON body also documents the 400 for one that is not JSON."""
        parse = cast(Callable[[F], F], self.blueprint.arguments(schema, **options))
        if options.get("location", "json") != "json":
            return parse
        return lambda view: self.problems(400)(parse(view))

    def response(self, status: int, schema: Any = None, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], self.blueprint.response(status, schema, **options))

    def alt_response(self, status: int, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], self.blueprint.alt_response(status, **options))

    def doc(self, **kwargs: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], self.blueprint.doc(**kwargs))

    def problems(self, *statuses: int) -> Callable[[F], F]:
        """Document error responses as RFC 9457 problems (api.errors renders every error that way)."""

        def decorate(view: F) -> F:
            for status in statuses:
                view = cast(
                    F,
                    self.blueprint.alt_response(
                        status,
                        schema=ProblemOut,
                        content_type=PROBLEM_CONTENT_TYPE,
                        description=PROBLEM_DESCRIPTIONS.get(status, http.HTTPStatus(status).phrase),
                    )(view),
                )
            return view

        return decorate

    def require_scope(self, *scopes: str) -> Callable[[F], F]:
        """Enforce ``scopes`` before anything else runs and document them on the operation."""
        enforce = auth_flask.require_scope(*scopes)

        def decorate(view: F) -> F:
            documented = self.doc(security=[{"oauth2": list(scopes)}])(self.problems(401, 403)(view))
            return cast(F, enforce(documented))

        return decorate
