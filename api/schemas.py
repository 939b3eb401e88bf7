"""Marshmallow schemas of the HTTP API, named by direction: ``...In`` is parsed, ``...Out`` is sent."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import fields, validate

from api.paging import INT32
from engine.instances import DECISIONS

TASK_SORTS = ("due_at", "-due_at", "priority", "-priority", "created_at", "-created_at")
INSTANCE_SORTS = ("started_at", "-started_at")
INSTANCE_STATUSES = ("running", "suspended", "completed", "cancelled", "failed")
MAX_PAGE = 200
MAX_DEPLOYMENT_FILES = 100
DEFAULT_PAGE = 50


def _when(**kwargs: Any) -> fields.AwareDateTime:
    """An ISO 8601 instant; one without an offset is read as UTC."""
    return fields.AwareDateTime(format="iso", default_timezone=UTC, **kwargs)


def _limit() -> fields.Integer:
    return fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Page size, at most {MAX_PAGE}"},
    )


def _cursor() -> fields.String:
    return fields.String(
        validate=validate.Length(max=2000),
        metadata={"description": "The `next_cursor` of the previous page; opaque"},
    )


class ProblemOut(ma.Schema):
    """An RFC 9457 problem: every error this API sends has this shape (extension members may follow)."""

    class Meta:
        unknown = ma.INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "A stable slug, e.g. rank-too-low"})
    detail = fields.String()
    instance = fields.String()
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Messages keyed by the JSON path of the value they concern"},
    )
    problems = fields.List(
        fields.Dict(), metadata={"description": "Definition problems, each naming file, line and element_id"}
    )
    matches = fields.Integer(metadata={"description": "How many instances a message matched"})


# -- tasks ---------------------------------------------------------------------------------------


class TaskFilterIn(ma.Schema):
    """Narrows the inbox; without filters it holds the tasks the caller holds or may take."""

    role = fields.String(validate=validate.Length(min=1, max=100))
    assignee = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "`me` or a subject; tasks held by that person"},
    )
    unassigned = fields.Boolean(metadata={"description": "Only tasks nobody holds"})
    process_key = fields.String(validate=validate.Length(min=1, max=200))
    business_key = fields.String(validate=validate.Length(min=1, max=200))
    unit = fields.String(validate=validate.Length(min=1, max=100))
    due_before = _when()
    due_after = _when()
    overdue = fields.Boolean(metadata={"description": "Only tasks whose due time has passed"})
    min_priority = fields.Integer(validate=validate.Range(min=0, max=100))
    q = fields.String(
        validate=validate.Length(min=1, max=200), metadata={"description": "Case-insensitive name search"}
    )


class TaskQueryIn(TaskFilterIn):
    sort = fields.String(
        load_default="due_at",
        validate=validate.OneOf(TASK_SORTS),
        metadata={"description": "Due dates that are not set sort last; ties are broken by id"},
    )
    limit = _limit()
    cursor = _cursor()


class PurposeHeaderIn(ma.Schema):
    """Reading personal data is a consultation; the caller may say why, for the audit trail."""

    class Meta:
        unknown = ma.EXCLUDE  # every other request header

    purpose = fields.String(
        data_key="X-Purpose",
        validate=validate.Length(max=500),
        metadata={"description": "Why the data is read; recorded with the consultation in the audit trail"},
    )


class IdempotencyHeaderIn(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # every other request header

    key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(
            r"^[\x21-\x7e]{1,200}$", error="1-200 printable ASCII characters, no spaces"
        ),
        metadata={
            "description": "Repeating a request with the same key returns the instance it started (200)"
        },
    )


class PurposeQueryIn(ma.Schema):
    purpose = fields.String(
        validate=validate.Length(min=1, max=500),
        metadata={"description": "Why the data is read, for the audit trail (or the X-Purpose header)"},
    )


class TaskOut(ma.Schema):
    id = fields.String(required=True)
    instance_id = fields.String(required=True)
    process_key = fields.String(required=True)
    process_version = fields.Integer(required=True)
    business_key = fields.String(allow_none=True)
    element_id = fields.String(required=True)
    name = fields.String(required=True)
    lane = fields.String(allow_none=True)
    role = fields.String(required=True)
    status = fields.String(required=True)
    assignee = fields.String(allow_none=True)
    unit = fields.String(required=True)
    classification = fields.String(required=True)
    priority = fields.Integer(required=True)
    due_at = _when(allow_none=True)
    form = fields.String(allow_none=True)
    is_approval = fields.Boolean(required=True)
    required_rank = fields.String(allow_none=True)
    summary = fields.String(allow_none=True)
    created_at = _when(required=True)
    completed_at = _when(allow_none=True)
    completed_by = fields.String(allow_none=True)
    flagged = fields.Boolean(required=True)


class FormOut(ma.Schema):
    name = fields.String(required=True)
    schema = fields.Dict(required=True, metadata={"description": "JSON Schema 2020-12"})
    uischema = fields.Dict(required=True)


class TaskDetailOut(TaskOut):
    form_schema = fields.Nested(FormOut, allow_none=True, required=True)
    data = fields.Dict(required=True, metadata={"description": "The data the task currently holds"})


class TaskPageOut(ma.Schema):
    items = fields.List(fields.Nested(TaskOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class CountOut(ma.Schema):
    count = fields.Integer(required=True)


class AssignIn(ma.Schema):
    assignee = fields.String(required=True, validate=validate.Length(min=1, max=200))


class UnclaimIn(ma.Schema):
    force = fields.Boolean(
        load_default=False, metadata={"description": "Release a task someone else holds (supervisors)"}
    )


class CompleteTaskIn(ma.Schema):
    data = fields.Dict(required=True, metadata={"description": "The form data, checked against its schema"})


# -- approvals -----------------------------------------------------------------------------------


class ApprovalOut(TaskOut):
    expires_at = _when(allow_none=True, metadata={"description": "When a timer ends the approval window"})
    will_be_flagged = fields.Boolean(
        required=True, metadata={"description": "A decision by the caller would be flagged on the record"}
    )
    flag_reasons = fields.List(fields.String(), required=True)


class ApprovalListOut(ma.Schema):
    items = fields.List(fields.Nested(ApprovalOut), required=True)


class DecisionIn(ma.Schema):
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    rationale = fields.String(required=True, validate=validate.Length(max=10000))
    conditions = fields.String(validate=validate.Length(max=10000))
    duration_days = fields.Integer(validate=validate.Range(min=1, max=3660))


class DecisionOut(ma.Schema):
    task_id = fields.String(required=True)
    instance_id = fields.String(required=True)
    decision = fields.String(required=True)
    flagged = fields.Boolean(required=True)
    flag_reasons = fields.List(fields.String(), required=True)
    decided_by = fields.String(required=True)
    decided_at = _when(required=True)
    instance_status = fields.String(required=True)


# -- instances -----------------------------------------------------------------------------------


class StartInstanceIn(ma.Schema):
    process_key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    version = fields.Integer(validate=validate.Range(min=1, max=INT32))
    business_key = fields.String(validate=validate.Length(min=1, max=200))
    unit = fields.String(required=True, validate=validate.Length(min=1, max=100))
    classification = fields.String(required=True, validate=validate.Length(min=1, max=40))
    variables = fields.Dict(keys=fields.String(), load_default=dict)


class InstanceOut(ma.Schema):
    id = fields.String(required=True)
    process_key = fields.String(required=True)
    process_version = fields.Integer(required=True)
    business_key = fields.String(allow_none=True)
    status = fields.String(required=True)
    unit = fields.String(required=True)
    classification = fields.String(required=True)
    started_by = fields.String(required=True)
    started_at = _when(required=True)
    updated_at = _when(required=True)
    ended_at = _when(allow_none=True)
    end_reason = fields.String(allow_none=True)


class TimerOut(ma.Schema):
    element_id = fields.String(required=True)
    kind = fields.String(required=True)
    due_at = _when(required=True)
    interrupting = fields.Boolean(required=True)
    attached_to_task_id = fields.String(allow_none=True)


class IncidentOut(ma.Schema):
    id = fields.Integer(required=True)
    instance_id = fields.String(required=True)
    task_id = fields.String(allow_none=True)
    element_id = fields.String(allow_none=True)
    error_type = fields.String(required=True)
    message = fields.String(required=True)
    line = fields.Integer(allow_none=True)
    created_at = _when(required=True)
    resolved_at = _when(allow_none=True)
    resolved_by = fields.String(allow_none=True)


class InstanceDetailOut(InstanceOut):
    open_tasks = fields.List(fields.Nested(TaskOut), required=True)
    timers = fields.List(fields.Nested(TimerOut), required=True)
    incidents = fields.List(fields.Nested(IncidentOut), required=True)


class InstanceQueryIn(ma.Schema):
    process_key = fields.String(validate=validate.Length(min=1, max=200))
    status = fields.String(validate=validate.OneOf(INSTANCE_STATUSES))
    business_key = fields.String(validate=validate.Length(min=1, max=200))
    unit = fields.String(validate=validate.Length(min=1, max=100))
    started_after = _when()
    started_before = _when()
    sort = fields.String(load_default="-started_at", validate=validate.OneOf(INSTANCE_SORTS))
    limit = _limit()
    cursor = _cursor()


class InstancePageOut(ma.Schema):
    items = fields.List(fields.Nested(InstanceOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class VariablesOut(ma.Schema):
    instance_id = fields.String(required=True)
    variables = fields.Dict(required=True)


class AuditEventOut(ma.Schema):
    id = fields.Integer(required=True)
    chain = fields.String(required=True)
    seq = fields.Integer(required=True)
    at = _when(required=True)
    actor = fields.String(required=True)
    kind = fields.String(required=True)
    action = fields.String(required=True)
    record_type = fields.String(required=True)
    record_id = fields.String(required=True)
    instance_id = fields.String(allow_none=True)
    purpose = fields.String(allow_none=True)
    recipient = fields.String(allow_none=True)
    detail = fields.Dict(required=True)
    hash = fields.String(required=True)


class HistoryQueryIn(PurposeQueryIn):
    limit = _limit()
    cursor = _cursor()


class HistoryPageOut(ma.Schema):
    items = fields.List(fields.Nested(AuditEventOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class CancelIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class EraseIn(ma.Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=10, max=2000),
        metadata={"description": "Why the records may now be erased (kept in the audit trail)"},
    )


class ErasureOut(ma.Schema):
    instance_id = fields.String(required=True)
    erased_at = _when(required=True)
    retain_until = _when(
        required=True, metadata={"description": "The end of the retention period that had to pass first"}
    )
    tasks = fields.Integer(required=True, metadata={"description": "Inbox rows whose data was removed"})
    history_rows = fields.Integer(
        required=True, metadata={"description": "History rows whose data was removed"}
    )


class SuspendIn(ma.Schema):
    reason = fields.String(validate=validate.Length(max=2000))


# -- definitions ---------------------------------------------------------------------------------


class DefinitionOut(ma.Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    deployed_at = _when(required=True)
    deployed_by = fields.String(required=True)
    source_name = fields.String(required=True)
    content_hash = fields.String(required=True)
    forms = fields.List(fields.String(), required=True)
    decisions = fields.List(fields.String(), required=True, metadata={"description": "DMN file names"})
    calls = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Called processes and the versions pinned for them"},
    )


class DefinitionSummaryOut(ma.Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)
    latest_version = fields.Integer(required=True)
    deployed_at = _when(required=True)
    deployed_by = fields.String(required=True)


class DefinitionListOut(ma.Schema):
    items = fields.List(fields.Nested(DefinitionSummaryOut), required=True)


class VersionListOut(ma.Schema):
    items = fields.List(fields.Nested(DefinitionOut), required=True)


class DeploymentIn(ma.Schema):
    files = fields.List(
        Upload(),
        required=True,
        validate=validate.Length(min=1, max=MAX_DEPLOYMENT_FILES),
        metadata={"description": ".bpmn, .dmn, .schema.json and .uischema.json files"},
    )


class DeployedOut(ma.Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    created = fields.Boolean(required=True, metadata={"description": "False when the content was unchanged"})


class DefinitionProblemOut(ma.Schema):
    """One finding about a process file; the codes are listed in docs/designing-processes.md."""

    file = fields.String(required=True)
    line = fields.Integer(required=True, allow_none=True)
    element_id = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, metadata={"description": "A stable slug, e.g. gateway-not-covered"})
    severity = fields.String(required=True, validate=validate.OneOf(["error", "warning"]))
    message = fields.String(required=True)


class DeploymentOut(ma.Schema):
    valid = fields.Boolean(required=True)
    deployed = fields.Boolean(required=True, metadata={"description": "False for a validation only"})
    files = fields.List(fields.String(), required=True)
    definitions = fields.List(fields.Nested(DeployedOut), required=True)
    warnings = fields.List(
        fields.Nested(DefinitionProblemOut),
        required=True,
        metadata={"description": "Findings that do not block a deployment (errors come back as a 422)"},
    )


# -- messages and incidents ----------------------------------------------------------------------


def _scalar(value: Any) -> None:
    if value is None or isinstance(value, dict | list | bool):
        raise ma.ValidationError("must be a string or a number")


class MessageIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    correlation = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=100)),
        values=fields.Raw(validate=_scalar),
        load_default=dict,
        metadata={
            "description": 'The correlation keys, e.g. {"business_key": "OP-1"}; {} reaches instances '
            "waiting without a key"
        },
    )
    variables = fields.Dict(keys=fields.String(), load_default=dict)
    all = fields.Boolean(
        load_default=False,
        metadata={"description": "Deliver to every instance that matches instead of refusing several"},
    )
    unit = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "For a message that starts a process: the unit of the new case"},
    )
    classification = fields.String(
        validate=validate.Length(min=1, max=40),
        metadata={"description": "For a message that starts a process: the marking of the new case"},
    )


class MessageOut(ma.Schema):
    instances = fields.List(fields.String(), required=True)
    count = fields.Integer(required=True)


class IncidentQueryIn(ma.Schema):
    resolved = fields.Boolean(load_default=False)
    process_key = fields.String(validate=validate.Length(min=1, max=200))
    instance_id = fields.String(validate=validate.Length(min=1, max=36))
    limit = _limit()
    cursor = _cursor()


class IncidentPageOut(ma.Schema):
    items = fields.List(fields.Nested(IncidentOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
