"""Process definitions and their versions, and deployments of BPMN, DMN and form files (or checks of them)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import sqlalchemy as sa
from flask import Response, request
from flask.views import MethodView
from werkzeug.datastructures import FileStorage

from api.blueprint import ApiBlueprint
from api.context import audit_log, services, settings, transaction
from api.paging import INT32
from api.schemas import (
    DefinitionListOut,
    DefinitionOut,
    DeploymentIn,
    DeploymentOut,
    VersionListOut,
)
from auth.flask import current_principal
from engine.bpmn import SourceFile
from engine.errors import LimitExceededError, NotFoundError, ValidationError
from engine.models import ProcessDefinition
from engine.registry import Deployer, DeployResult, get_definition

blp = ApiBlueprint(
    "definitions",
    __name__,
    url_prefix="/api/v1/process-definitions",
    description="Deployed process definitions and their versions",
)
deployments_blp = ApiBlueprint(
    "deployments",
    __name__,
    url_prefix="/api/v1/deployments",
    description="Deploy BPMN, DMN and form files, or check them without deploying",
)

ACCEPTED_SUFFIXES = (".bpmn", ".dmn", ".schema.json", ".uischema.json")


def definition_fields(definition: ProcessDefinition) -> dict[str, Any]:
    resources = definition.resources or {}
    return {
        "key": definition.key,
        "name": definition.name,
        "version": definition.version,
        "deployed_at": definition.deployed_at,
        "deployed_by": definition.deployed_by,
        "source_name": definition.source_name,
        "content_hash": definition.content_hash,
        "forms": sorted(resources.get("forms", {})),
        "decisions": sorted(resources.get("dmn", {})),
        "calls": dict(resources.get("calls", {})),
    }


@blp.route("")
class Definitions(MethodView):
    @blp.require_scope()
    @blp.response(200, DefinitionListOut)
    def get(self) -> dict[str, Any]:
        """Every deployed process at its latest version (any signed-in caller)"""
        latest = (
            sa.select(ProcessDefinition.key, sa.func.max(ProcessDefinition.version).label("version"))
            .group_by(ProcessDefinition.key)
            .subquery()
        )
        query = (
            sa.select(ProcessDefinition)
            .join(
                latest,
                sa.and_(ProcessDefinition.key == latest.c.key, ProcessDefinition.version == latest.c.version),
            )
            .order_by(ProcessDefinition.key)
        )
        with services().sessions() as session:
            items = [
                {
                    "key": d.key,
                    "name": d.name,
                    "latest_version": d.version,
                    "deployed_at": d.deployed_at,
                    "deployed_by": d.deployed_by,
                }
                for d in session.scalars(query)
            ]
        return {"items": items}


@blp.route("/<string:key>")
class Definition(MethodView):
    @blp.require_scope()
    @blp.problems(404)
    @blp.response(200, DefinitionOut)
    def get(self, key: str) -> dict[str, Any]:
        """The latest version of a process"""
        with services().sessions() as session:
            return definition_fields(get_definition(session, key))


@blp.route("/<string:key>/versions")
class Versions(MethodView):
    @blp.require_scope()
    @blp.problems(404)
    @blp.response(200, VersionListOut)
    def get(self, key: str) -> dict[str, Any]:
        """Every version of a process, newest first"""
        with services().sessions() as session:
            rows = list(
                session.scalars(
                    sa.select(ProcessDefinition)
                    .where(ProcessDefinition.key == key)
                    .order_by(ProcessDefinition.version.desc())
                )
            )
        if not rows:
            raise NotFoundError(f"process {key!r} is not deployed")
        return {"items": [definition_fields(d) for d in rows]}


@blp.route("/<string:key>/versions/<int:version>/bpmn")
class Source(MethodView):
    @blp.require_scope()
    @blp.problems(404)
    @blp.response(
        200, {"type": "string"}, content_type="application/xml", description="The BPMN 2.0 XML as deployed"
    )
    def get(self, key: str, version: int) -> Response:
        """The BPMN source of one version"""
        if not 1 <= version <= INT32:
            raise NotFoundError(f"version {version} of process {key!r} is not deployed")
        with services().sessions() as session:
            definition = get_definition(session, key, version)
        return Response(definition.bpmn_source, mimetype="application/xml")


def _source_files(uploads: list[FileStorage]) -> list[SourceFile]:
    """The uploads as text, refusing unknown kinds, repeated names, non-UTF-8 content and excess size."""
    limit = settings().max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise LimitExceededError(
            f"the upload is {request.content_length} bytes; the limit is {limit}", upload=True
        )
    files: list[SourceFile] = []
    errors: dict[str, list[str]] = {}
    total = 0
    for index, upload in enumerate(uploads):
        where = f"$.files[{index}]"
        name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
        if not name.endswith(ACCEPTED_SUFFIXES):
            errors[where] = [
                f"{name or 'a file without a name'}: expected one of {', '.join(ACCEPTED_SUFFIXES)}"
            ]
            continue
        if any(f.name == name for f in files):
            errors[where] = [f"{name}: the same file name appears twice"]
            continue
        raw = upload.stream.read(limit + 1)
        total += len(raw)
        if total > limit:
            raise LimitExceededError(f"the uploaded files exceed {limit} bytes", upload=True)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            errors[where] = [f"{name}: not UTF-8 text"]
            continue
        files.append(SourceFile(name, text))
    if errors:
        raise ValidationError(f"{len(errors)} uploaded file(s) cannot be used", errors=errors)
    return files


def _deployed(results: list[DeployResult]) -> list[dict[str, Any]]:
    return [{"key": r.key, "name": r.name, "version": r.version, "created": r.created} for r in results]


@deployments_blp.route("")
class Deployments(MethodView):
    @deployments_blp.require_scope("definitions:deploy")
    @deployments_blp.problems(413, 422)
    @deployments_blp.arguments(DeploymentIn, location="files")
    @deployments_blp.alt_response(
        200, schema=DeploymentOut, success=True, description="Every file was unchanged: nothing new deployed"
    )
    @deployments_blp.response(201, DeploymentOut)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Deploy files as new versions of their processes; unchanged processes keep their version.

        Errors come back as a 422 whose `problems` name the file, line, element id, code and severity of
        each (warnings included); warnings alone do not stop a deployment and are listed in the reply.
        """
        principal = current_principal()
        files = _source_files(body["files"])
        names = [f.name for f in files]
        with transaction() as session:
            deployer = Deployer(session, services().context.registry, services().clock)
            results = deployer.deploy(files, by=principal.subject)
            for result in results:
                if result.created:
                    audit_log(session).record(
                        actor=principal.subject,
                        kind="alteration",
                        action="definition.deployed",
                        record_type="process_definition",
                        record_id=f"{result.key}:{result.version}",
                        detail={"key": result.key, "version": result.version, "files": names},
                    )
        created = any(r.created for r in results)
        reply = {
            "valid": True,
            "deployed": created,
            "files": names,
            "definitions": _deployed(results),
            "warnings": [w.as_dict() for w in deployer.warnings],
        }
        return reply, 201 if created else 200


@deployments_blp.route("/validate")
class ValidateDeployment(MethodView):
    @deployments_blp.require_scope("definitions:deploy")
    @deployments_blp.problems(413, 422)
    @deployments_blp.arguments(DeploymentIn, location="files")
    @deployments_blp.response(200, DeploymentOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run every deployment check and deploy nothing; the versions are those a deployment would get

        Errors come back as a 422 whose `problems` name the file, line, element id, code and severity of
        each; a valid deployment may still carry `warnings`.
        """
        principal = current_principal()
        files = _source_files(body["files"])
        with services().sessions() as session:
            deployer = Deployer(session, services().context.registry, services().clock)
            try:
                results = deployer.deploy(files, by=principal.subject, dry_run=True)
            finally:
                session.rollback()
        return {
            "valid": True,
            "deployed": False,
            "files": [f.name for f in files],
            "definitions": _deployed(results),
            "warnings": [w.as_dict() for w in deployer.warnings],
        }
