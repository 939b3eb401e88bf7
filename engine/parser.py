"""opsflow's BPMN parser: SpiffWorkflow's, with our timer definitions and properties on catching events.

Two differences from :class:`SpiffBpmnParser`:

* timer events get the definitions of :mod:`engine.timer_events`; a constant timer expression that is
  not valid ISO 8601 fails the deployment, naming the element and the line;
* start, intermediate catch and boundary events and receive tasks keep their
  ``spiffworkflow:properties`` (SpiffWorkflow drops them), which is where a message event declares its
  ``correlation_keys``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.util import first
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import BoundaryEvent, IntermediateCatchEvent, StartEvent
from SpiffWorkflow.spiff.parser.event_parsers import (
    SpiffBoundaryEventParser,
    SpiffIntermediateCatchEventParser,
    SpiffReceiveTaskParser,
    SpiffStartEventParser,
)
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.specs.defaults import ReceiveTask

from engine.errors import ValidationError
from engine.timer_events import (
    CycleTimerDefinition,
    DateTimerDefinition,
    DurationTimerDefinition,
    literal_text,
)


class _CatchingEventParsing:
    """Mixed in before a SpiffWorkflow event parser."""

    node: Any
    filename: str
    xpath: Callable[[str], Any]
    get_event_description: Callable[[Any], str]
    parse_extensions: Callable[[], dict[str, Any]]

    def create_task(self) -> Any:
        task = super().create_task()  # type: ignore[misc]  # the SpiffWorkflow parser follows in the MRO
        if not getattr(task, "extensions", None):
            task.extensions = self.parse_extensions()
        return task

    def parse_timer_event(self, event: Any) -> Any:
        element_id = self.node.get("id")
        name = self.node.get("name", element_id)
        description = self.get_event_description(event)
        for tag, cls in (
            ("timeDate", DateTimerDefinition),
            ("timeDuration", DurationTimerDefinition),
            ("timeCycle", CycleTimerDefinition),
        ):
            found = first(self.xpath(f".//bpmn:{tag}"))
            if found is None:
                continue
            expression = (found.text or "").strip()
            try:
                literal_text(cls.kind, expression)
            except ValidationError as exc:
                raise self._invalid(f"{tag}: {exc.detail}", found) from None
            return cls(name, expression, element_id=element_id, description=description)
        raise self._invalid("a timer event needs a timeDate, timeDuration or timeCycle", event)

    def _invalid(self, message: str, node: Any) -> ValidationException:
        exc = ValidationException(message, node=self.node, file_name=self.filename)
        exc.line_number = getattr(node, "sourceline", None) or getattr(self.node, "sourceline", None)
        return exc


class _StartEventParser(_CatchingEventParsing, SpiffStartEventParser):  # type: ignore[misc]  # untyped base
    pass


class _BoundaryEventParser(_CatchingEventParsing, SpiffBoundaryEventParser):  # type: ignore[misc]  # untyped
    pass


class _CatchEventParser(_CatchingEventParsing, SpiffIntermediateCatchEventParser):  # type: ignore[misc]  # untyped
    pass


class _ReceiveTaskParser(_CatchingEventParsing, SpiffReceiveTaskParser):  # type: ignore[misc]  # untyped base
    pass


class OpsflowBpmnParser(SpiffBpmnParser):  # type: ignore[misc]  # untyped base
    """The parser :func:`engine.bpmn.build_bundle` uses."""

    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("startEvent"): (_StartEventParser, StartEvent),
        full_tag("boundaryEvent"): (_BoundaryEventParser, BoundaryEvent),
        full_tag("intermediateCatchEvent"): (_CatchEventParser, IntermediateCatchEvent),
        full_tag("receiveTask"): (_ReceiveTaskParser, ReceiveTask),
    }
