"""Loading task forms: a valid schema is accepted every time, an invalid one is refused every time."""

from __future__ import annotations

import json

import pytest

from engine.errors import DefinitionError
from engine.forms import load_form_files

VALID = json.dumps({"type": "object", "properties": {"rationale": {"type": "string", "minLength": 20}}})
INVALID = json.dumps({"type": "object", "properties": {"rationale": {"type": "string", "minLength": -1}}})


def test_the_same_valid_form_loads_twice_with_its_ui_schema() -> None:
    first = load_form_files("decision", VALID, None)
    second = load_form_files("decision", VALID, '{"rationale": {"ui:widget": "textarea"}}')
    assert first == {"schema": json.loads(VALID), "uischema": {}}
    assert second["uischema"] == {"rationale": {"ui:widget": "textarea"}}


def test_an_invalid_form_is_refused_on_every_load() -> None:
    for _ in range(2):
        with pytest.raises(DefinitionError) as refused:
            load_form_files("decision", INVALID, None)
        assert "not a valid JSON Schema" in str(refused.value)
        assert refused.value.errors == {
            "decision.properties.rationale.minLength": ["-1 is less than the minimum of 0"]
        }
