"""Force-local values that processes read through ``setting(name)`` (review intervals, notification minutes).

DOMAIN.md marks these [local]: they vary between forces, so they live in a settings file
(``processes/settings.json`` by default, ``OPSFLOW_PROCESS_SETTINGS`` to point elsewhere), never as
constants inside a BPMN file. Legal limits are never settings.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import DefinitionError, ScriptError


class ProcessSettings:
    """Named values, each ``{"value": ..., "description": ..., "source": ...}`` in the file."""

    def __init__(self, values: Mapping[str, Any] | None = None, *, origin: str = "(none)") -> None:
        self._values = dict(values or {})
        self.origin = origin

    @classmethod
    def from_file(cls, path: Path) -> ProcessSettings:
        if not path.exists():
            return cls(origin=str(path))
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                f"{path.name}, line {exc.lineno}: not valid JSON: {exc.msg}",
                errors={f"{path.name}:{exc.lineno}": [exc.msg]},
            ) from None
        if not isinstance(raw, dict):
            raise DefinitionError(
                f"{path.name}: settings must be a JSON object", errors={path.name: ["not an object"]}
            )
        values: dict[str, Any] = {}
        for name, entry in raw.items():
            if name.startswith("$"):
                continue
            values[name] = entry["value"] if isinstance(entry, dict) and "value" in entry else entry
        return cls(values, origin=str(path))

    def get(self, name: str) -> Any:
        """The value of ``name``; an unknown name is a script error naming the settings file."""
        if name not in self._values:
            raise ScriptError(f"setting {name!r} is not defined in {self.origin}")
        # A copy: a script must not be able to change the value every other case reads.
        return copy.deepcopy(self._values[name])

    def names(self) -> list[str]:
        return sorted(self._values)
