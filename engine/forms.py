"""Task forms: JSON Schema 2020-12 documents (and UI schemas), checked at load, used to validate data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from engine.errors import DefinitionError, FormDataError


def json_path(path: Any) -> str:
    """Render a jsonschema error path as ``$.a.b[0]``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_schema(name: str, schema: Any) -> None:
    if not isinstance(schema, dict):
        raise DefinitionError(
            f"form {name!r}: a JSON Schema must be an object", errors={name: ["not an object"]}
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise DefinitionError(
            f"form {name!r} is not a valid JSON Schema: {exc.message}",
            errors={f"{name}{json_path(exc.path)[1:] or ''}": [exc.message]},
        ) from None


def validate_data(name: str, schema: Mapping[str, Any], data: Any) -> None:
    """Raise FormDataError with every failure keyed by JSON path."""
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    errors: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.path)):
        errors.setdefault(json_path(error.path), []).append(error.message)
    if errors:
        count = sum(len(v) for v in errors.values())
        raise FormDataError(f"{count} field(s) failed validation against form {name!r}", errors=errors)


class FormRegistry:
    """The forms in ``forms/``: ``<name>.schema.json`` and optional ``<name>.uischema.json``."""

    def __init__(self, forms: Mapping[str, dict[str, Any]] | None = None) -> None:
        self._forms: dict[str, dict[str, Any]] = dict(forms or {})

    @classmethod
    def from_directory(cls, directory: Path) -> FormRegistry:
        forms: dict[str, dict[str, Any]] = {}
        if directory.is_dir():
            for path in sorted(directory.glob("*.schema.json")):
                name = path.name[: -len(".schema.json")]
                forms[name] = load_form_files(
                    name, path.read_text(), _read_optional(path.with_name(f"{name}.uischema.json"))
                )
        return cls(forms)

    def names(self) -> list[str]:
        return sorted(self._forms)

    def get(self, name: str) -> dict[str, Any] | None:
        return self._forms.get(name)

    def add(self, name: str, form: dict[str, Any]) -> None:
        self._forms[name] = form


def load_form_files(name: str, schema_text: str, ui_text: str | None) -> dict[str, Any]:
    try:
        schema = json.loads(schema_text)
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            f"{name}.schema.json, line {exc.lineno}: not valid JSON: {exc.msg}",
            errors={f"{name}.schema.json:{exc.lineno}": [exc.msg]},
        ) from None
    check_schema_text(name, schema_text)
    ui: Any = {}
    if ui_text is not None:
        try:
            ui = json.loads(ui_text)
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                f"{name}.uischema.json, line {exc.lineno}: not valid JSON: {exc.msg}",
                errors={f"{name}.uischema.json:{exc.lineno}": [exc.msg]},
            ) from None
    return {"schema": schema, "uischema": ui}


@lru_cache(maxsize=1024)
def check_schema_text(name: str, schema_text: str) -> None:
    """``check_schema`` remembered by text: checking a form against the meta-schema takes tens of
    milliseconds, and every deployment rechecks every form it carries. A refusal is not remembered."""
    check_schema(name, json.loads(schema_text))


def _read_optional(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
