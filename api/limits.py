"""Request limits checked before any view: body size per endpoint, JSON nesting, and NUL characters.

PostgreSQL cannot store a NUL character in text or JSONB, and Python's JSON parser gives up on very
deep nesting with a RecursionError; both would otherwise surface as a 500 deep inside a request.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request

from api.context import settings
from engine.errors import LimitExceededError, NotFoundError, ValidationError

UPLOAD_ENDPOINTS = frozenset({"deployments.Deployments", "deployments.ValidateDeployment"})
NUL = "\x00"
_NO_NUL = "NUL characters are not allowed"


def check_request() -> None:
    """JSON bodies get the smaller size limit (only deployments take uploads up to theirs), a depth
    limit, and no NUL characters anywhere in the body, the query string or the path."""
    if request.endpoint not in UPLOAD_ENDPOINTS:
        request.max_content_length = settings().max_body_bytes
    if any(NUL in str(value) for value in (request.view_args or {}).values()):
        raise NotFoundError("no such resource")
    for name, value in request.args.items(multi=True):
        if NUL in name or NUL in value:
            raise ValidationError(
                "the query string contains a NUL character", errors={f"$.{name.replace(NUL, '')}": [_NO_NUL]}
            )
    if request.is_json:
        _check_json(request.get_data(cache=True), settings().max_json_depth)


def _check_json(raw: bytes, max_depth: int) -> None:
    if not raw:
        return
    try:
        document = json.loads(raw)
    except RecursionError:
        raise LimitExceededError(
            "the JSON body is nested too deeply", errors={"$": [f"nested deeper than {max_depth} levels"]}
        ) from None
    except ValueError:
        return  # not JSON: the argument parser answers with its own 400
    stack: list[tuple[Any, str, int]] = [(document, "$", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > max_depth:
            raise LimitExceededError(
                f"the JSON body is nested deeper than {max_depth} levels",
                errors={path: [f"nested deeper than {max_depth} levels"]},
            )
        if isinstance(value, str):
            if NUL in value:
                raise ValidationError("the body contains a NUL character", errors={path: [_NO_NUL]})
        elif isinstance(value, dict):
            for key, item in value.items():
                if NUL in key:
                    raise ValidationError("the body contains a NUL character", errors={path: [_NO_NUL]})
                stack.append((item, f"{path}.{key}", depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))


def init_app(app: Flask) -> None:
    app.before_request(check_request)
