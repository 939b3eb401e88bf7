"""The OpenAPI document at /api/v1/openapi.json and a self-contained reader for it at /api/v1/docs."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from api.blueprint import PROBLEM_CONTENT_TYPE

API_EXTENSION = "opsflow_api"
SPEC_CACHE = "opsflow_openapi"

STATIC = Path(__file__).resolve().parent / "static"
bp = Blueprint("docs", __name__, url_prefix="/api/v1", static_folder=STATIC, static_url_path="/docs/assets")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def openapi_document(app: Flask) -> dict[str, Any]:
    """The spec flask-smorest built, with every shared error response declared as problem+json.

    flask-smorest registers its ready-made error responses (such as the 422 for a body that fails
    its schema) as ``application/json``; api.errors sends them as ``application/problem+json``.
    """
    cached: dict[str, Any] | None = app.extensions.get(SPEC_CACHE)
    if cached is not None:
        return cached
    spec: dict[str, Any] = copy.deepcopy(app.extensions[API_EXTENSION].spec.to_dict())
    for response in spec.get("components", {}).get("responses", {}).values():
        content = response.get("content", {})
        if "application/json" in content:
            content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
    app.extensions[SPEC_CACHE] = spec
    return spec


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document(current_app))


@functools.cache
def _docs_html() -> str:
    return (STATIC / "docs.html").read_text(encoding="utf-8")


@bp.get("/docs")
def docs_page() -> Response:
    response = Response(_docs_html(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
