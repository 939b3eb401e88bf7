"""SpiffWorkflow's script engine, rerouted through the Sandbox so no process code reaches plain exec/eval."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from engine.errors import ScriptError, ScriptSecurityError
from engine.sandbox.core import Sandbox


class SandboxEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]  # SpiffWorkflow is untyped
    """The environment Spiff calls directly for process-level conditions and message correlation."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    def evaluate(
        self, expression: str, context: Mapping[str, Any], external_context: Mapping[str, Any] | None = None
    ) -> Any:
        return self.sandbox.evaluate(expression, context, extra=external_context)

    def execute(
        self, script: str, context: dict[str, Any], external_context: Mapping[str, Any] | None = None
    ) -> bool:
        self.sandbox.execute(script, context, extra=external_context)
        return True


class SandboxScriptEngine(PythonScriptEngine):  # type: ignore[misc]  # SpiffWorkflow is untyped
    """Script tasks, gateway conditions, timer, multi-instance and DMN expressions, all run in the Sandbox.

    A failure raises the Sandbox's ScriptError (not Spiff's WorkflowTaskException) with ``element_id``
    and ``task_id`` in its ``extra``, so the engine can record the incident against the right element.
    Spiff's DMN and business-rule layers still wrap errors in their own exceptions;
    :func:`script_error_in` finds ours inside them.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(environment=SandboxEnvironment(sandbox))
        self.sandbox = sandbox

    def validate(self, expression: str) -> None:
        """Raise SyntaxError for text that does not parse (Spiff's DMN engine relies on exactly that)."""
        try:
            self.sandbox.prepare(expression, mode="eval")
        except ScriptSecurityError:
            raise
        except ScriptError as error:
            raise SyntaxError(error.detail) from error

    def evaluate(self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return self.sandbox.evaluate(expression, task.data, extra=external_context)
        except ScriptError as error:
            _locate(error, task)
            raise

    def execute(self, task: Any, script: str, external_context: Mapping[str, Any] | None = None) -> bool:
        try:
            self.sandbox.execute(script, task.data, extra=external_context)
        except ScriptError as error:
            _locate(error, task)
            raise
        return True


def _locate(error: ScriptError, task: Any) -> None:
    # setdefault: an error from a nested evaluation keeps the innermost element.
    error.extra.setdefault("element_id", task.task_spec.bpmn_id)
    error.extra.setdefault("task_id", str(task.id))


def script_error_in(error: BaseException) -> ScriptError | None:
    """Find the ScriptError inside an exception Spiff raised (it wraps DMN and business-rule failures)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        if isinstance(current, ScriptError):
            return current
        seen.add(id(current))
        wrapped = getattr(current, "exception", None)
        pending.extend(
            [wrapped if isinstance(wrapped, BaseException) else None, current.__cause__, current.__context__]
        )
    return None
