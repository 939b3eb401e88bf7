"""Every error leaves as RFC 9457 ``application/problem+json``; each domain branch maps to one status here."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from auth.errors import AuthenticationError, AuthError, AuthorizationError, NotVisibleError
from auth.flask import www_authenticate_header
from engine.errors import (
    ConflictError,
    CorrelationError,
    DefinitionError,
    EngineError,
    ErasedError,
    FormDataError,
    LimitExceededError,
    NotFoundError,
    RetentionError,
    UnsafeXMLError,
    ValidationError,
)
from engine.migration import MigrationRefusedError

PROBLEM_BASE = "https://opsflow.dev/problems/"
log = logging.getLogger("opsflow.api")


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body.update({k: v for k, v in extra.items() if v not in (None, {}, [])})
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _engine_status(error: EngineError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ErasedError):
        return 410
    if isinstance(error, CorrelationError):
        return 404 if error.matches == 0 else 409
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, UnsafeXMLError | DefinitionError | FormDataError | ValidationError):
        return 413 if isinstance(error, LimitExceededError) and error.extra.get("upload") else 422
    return 500


def handle_engine_error(error: EngineError) -> Response:
    status = _engine_status(error)
    extra: dict[str, Any] = {}
    if error.errors:
        extra["errors"] = error.errors
    if isinstance(error, DefinitionError) and error.problems:
        extra["problems"] = error.problems
    if isinstance(error, CorrelationError):
        extra["matches"] = error.matches
    if isinstance(error, RetentionError | ErasedError):
        extra.update({k: v for k, v in error.extra.items() if k in ("retain_until", "erased_at")})
    if isinstance(error, MigrationRefusedError):
        extra["reasons"] = [{"element_id": r.element_id, "message": r.message} for r in error.report.reasons]
    if status >= 500:
        log.error("engine_error code=%s detail=%s", error.code, error.detail)
    return problem(status, error.code, error.title, error.detail, **extra)


def handle_auth_error(error: AuthError) -> Response:
    if isinstance(error, NotVisibleError):
        return problem(404, "not-found", "Not found", error.detail)
    if isinstance(error, AuthenticationError):
        return problem(
            401,
            error.code,
            "Authentication required",
            error.detail,
            headers={"WWW-Authenticate": www_authenticate_header(error)},
        )
    if isinstance(error, AuthorizationError):
        return problem(
            403,
            error.code,
            "Not allowed",
            error.detail,
            headers={"WWW-Authenticate": www_authenticate_header(error)}
            if error.code == "scope-missing"
            else None,
        )
    return problem(503, error.code, "Authentication is unavailable", error.detail)


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "-")
    extra: dict[str, Any] = {}
    data = getattr(error, "data", None)
    if status == 422 and isinstance(data, dict):
        # flask-smorest / webargs: {"json": {"field": ["msg"]}} -> {"$.field": ["msg"]}; the first level
        # names where the value was (json, query, files...), never a field, even one called "files".
        messages = data.get("messages", {})
        errors: dict[str, list[str]] = {}
        for fields in messages.values() if isinstance(messages, dict) else [messages]:
            errors.update(_flatten(fields))
        extra["errors"] = errors
        code = "validation-failed"
    if status == 413:
        return _too_large()
    response = problem(status, code, error.name or "Error", error.description, **extra)
    if status == 405 and error.get_response().headers.get("Allow"):
        response.headers["Allow"] = error.get_response().headers["Allow"]
    return response


def _too_large() -> Response:
    """Werkzeug refuses an over-long body before any view runs; say which limit, in our words."""
    limit = request.max_content_length
    where = "this endpoint's" if limit is None else f"the {limit}-byte"
    return problem(
        413,
        LimitExceededError.code,
        LimitExceededError.title,
        f"the request body is larger than {where} limit",
        errors={"$": [f"larger than {limit} bytes" if limit else "too large"]},
        limit=limit,
    )


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled_error path=%s", request.path)
    return problem(500, "internal-error", "Internal server error", "the error was logged")


def _flatten(messages: Any, prefix: str = "$") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            out.update(_flatten(value, f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}"))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix] = list(messages)
    else:
        out[prefix] = [str(messages)]
    return out


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(EngineError, handle_engine_error)
    app.register_error_handler(AuthError, handle_auth_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
