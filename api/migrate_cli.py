"""``opsflow migrate``: move one case, or every case of a version, to another version of its process."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from engine.container import Services
from engine.db import transaction
from engine.errors import EngineError
from engine.instances import Actor
from engine.migration import (
    BulkResult,
    MigrationRefusedError,
    MigrationReport,
    MigrationService,
    migrate_version,
)


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise click.BadParameter(f"{pair!r} is not OLD_ID=NEW_ID", param_hint="--map")
        mapping[old.strip()] = new.strip()
    return mapping


def _describe(report: MigrationReport) -> list[str]:
    verb = "would move" if report.dry_run else "moved"
    if report.reasons:
        verb = "cannot move"
    lines = [
        f"{report.instance_id} {report.process_key} v{report.from_version} -> v{report.to_version}: {verb}"
    ]
    for element in report.elements:
        target = element.to_element_id or "(none)"
        lines.append(f"  {element.state:8} {element.element_id} -> {target}")
    for timer in report.timers:
        due = timer.to_due_at.isoformat() if timer.to_due_at else "-"
        lines.append(f"  timer    {timer.to_element_id} due {due} ({timer.basis})")
    lines.extend(f"  refused  {reason.element_id}: {reason.message}" for reason in report.reasons)
    return lines


@click.command("migrate")
@click.argument("instance_id", required=False)
@click.option("--process", "process_key", help="Migrate every running or suspended case of this process...")
@click.option("--from-version", type=int, help="...that runs this version.")
@click.option("--to-version", type=int, required=True, help="The version to move to.")
@click.option(
    "--map", "pairs", multiple=True, metavar="OLD=NEW", help="Map an element id to one of the new version."
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@click.option("--by", default="cli", show_default=True, help="Recorded as who migrated.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@with_appcontext
def migrate_command(
    instance_id: str | None,
    process_key: str | None,
    from_version: int | None,
    to_version: int,
    pairs: tuple[str, ...],
    dry_run: bool,  # noqa: FBT001  (click flag)
    by: str,
    fmt: str,
) -> None:
    """Move INSTANCE_ID, or every case of --process at --from-version, to --to-version.

    Exits 1 when a case is refused (its reasons name each element) or the request is wrong.
    """
    if instance_id is not None and process_key is not None:
        raise click.UsageError("give either INSTANCE_ID or --process with --from-version, not both")
    mapping = _mapping(pairs)
    svc: Services = current_app.extensions["opsflow"]
    actor = Actor(by)
    try:
        if instance_id is not None:
            results = [_one(svc, instance_id, to_version, mapping, dry_run=dry_run, actor=actor)]
        elif process_key is None or from_version is None:
            raise click.UsageError("give INSTANCE_ID, or --process with --from-version")
        else:
            results = migrate_version(
                svc.sessions,
                svc.context,
                key=process_key,
                from_version=from_version,
                to_version=to_version,
                mapping=mapping,
                dry_run=dry_run,
                actor=actor,
            )
    except EngineError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        for path, messages in exc.errors.items():
            click.echo(f"  {path}: {'; '.join(messages)}", err=True)
        sys.exit(1)
    _print(results, fmt)
    if any(r.outcome in ("refused", "failed") for r in results):
        sys.exit(1)


def _one(
    svc: Services, instance_id: str, to_version: int, mapping: dict[str, str], *, dry_run: bool, actor: Actor
) -> BulkResult:
    try:
        with transaction(svc.sessions) as session:
            report = MigrationService(session, svc.context).migrate(
                instance_id, to_version=to_version, mapping=mapping, dry_run=dry_run, actor=actor
            )
    except MigrationRefusedError as exc:
        return BulkResult(instance_id, "refused", report=exc.report, detail=exc.detail)
    outcome = ("possible" if report.possible else "refused") if dry_run else "migrated"
    return BulkResult(instance_id, outcome, report=report)


def _print(results: list[BulkResult], fmt: str) -> None:
    if fmt == "json":
        payload: list[dict[str, Any]] = [
            {
                "instance_id": r.instance_id,
                "outcome": r.outcome,
                "detail": r.detail,
                "report": r.report.as_dict() if r.report else None,
            }
            for r in results
        ]
        click.echo(json.dumps(payload, default=str))
        return
    if not results:
        click.echo("no running or suspended case of that version")
    for result in results:
        if result.report is not None:
            for line in _describe(result.report):
                click.echo(line)
        else:
            click.echo(f"{result.instance_id}: {result.outcome}: {result.detail}")
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    if len(results) > 1:
        click.echo(", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
