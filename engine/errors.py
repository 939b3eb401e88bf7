"""Domain errors raised by the engine, each with a stable ``code`` slug and no HTTP in it.

The tree::

    EngineError
    ├── NotFoundError                 a definition, instance or task does not exist (or is not visible)
    ├── ConflictError                 the state changed underneath the caller
    │   ├── ConcurrentUpdateError     lost update detected by the version column
    │   ├── TaskNotReadyError         task already completed, cancelled or held by someone else
    │   ├── InstanceStateError        instance is suspended, failed, completed or cancelled
    │   └── IdempotencyConflictError  same Idempotency-Key, different request
    ├── ValidationError               caller input is wrong; ``errors`` maps a JSON path to messages
    │   ├── FormDataError             task data does not satisfy the form's JSON Schema
    │   └── LimitExceededError        a size or depth limit was exceeded
    ├── DefinitionError               a BPMN, DMN or form file is invalid (file, line, element)
    │   └── UnsafeXMLError            entities, DTDs or external references in an uploaded file
    ├── CorrelationError              a message reached no waiting instance, or several
    └── ScriptError                   a script or expression failed inside a process (becomes an incident)
        ├── ScriptSecurityError       the sandbox refused an operation
        ├── ScriptTimeoutError        the CPU budget was exceeded
        └── ScriptMemoryError         the allocation guard tripped
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base of every domain error."""

    code = "engine-error"
    title = "Engine error"

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}
        self.extra = extra


class NotFoundError(EngineError):
    code = "not-found"
    title = "Not found"


class ConflictError(EngineError):
    code = "conflict"
    title = "Conflict"


class ConcurrentUpdateError(ConflictError):
    code = "concurrent-update"
    title = "The record was changed by someone else"


class TaskNotReadyError(ConflictError):
    code = "task-not-ready"
    title = "The task cannot be acted on in its current state"


class InstanceStateError(ConflictError):
    code = "instance-state"
    title = "The process instance is not in a state that allows this"


class RetentionError(ConflictError):
    code = "retention-period"
    title = "The records of this case must still be kept"


class ErasedError(EngineError):
    code = "erased"
    title = "The data of this case has been erased"


class IdempotencyConflictError(ConflictError):
    code = "idempotency-key-reused"
    title = "The Idempotency-Key was used for a different request"


class ValidationError(EngineError):
    code = "validation-failed"
    title = "The request is not valid"


class FormDataError(ValidationError):
    code = "form-data-invalid"
    title = "Submitted data does not match the task form"


class LimitExceededError(ValidationError):
    code = "limit-exceeded"
    title = "A size limit was exceeded"


class DefinitionError(EngineError):
    code = "definition-invalid"
    title = "The process definition is not valid"

    def __init__(
        self,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        problems: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail, errors=errors, **extra)
        self.problems = problems or []


class UnsafeXMLError(DefinitionError):
    code = "unsafe-xml"
    title = "The uploaded XML uses forbidden constructs"


class CorrelationError(EngineError):
    code = "correlation-failed"
    title = "The message could not be correlated"

    def __init__(self, detail: str, *, matches: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.matches = matches


class ScriptError(EngineError):
    code = "script-failed"
    title = "A script or expression in the process failed"

    def __init__(self, detail: str, *, line: int | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.line = line


class ScriptSecurityError(ScriptError):
    code = "script-forbidden"
    title = "The sandbox refused an operation"


class ScriptTimeoutError(ScriptError):
    code = "script-timeout"
    title = "The script exceeded its CPU budget"


class ScriptMemoryError(ScriptError):
    code = "script-memory"
    title = "The script tried to allocate too much memory"
