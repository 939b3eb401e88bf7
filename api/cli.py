"""The ``opsflow`` command: database, definitions, server, timer worker, tokens and audit trail."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from engine.audit import verify
from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.errors import DefinitionError
from engine.registry import Deployer, read_directory
from engine.settings import PROJECT_ROOT, Settings
from engine.worker import run_worker, start_embedded_worker


def _app() -> Flask:
    from api.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_app, add_default_commands=False, add_version_option=False)
def main() -> None:
    """opsflow: BPMN orchestration for specialist policing."""


def services() -> Services:
    found: Services = current_app.extensions["opsflow"]
    return found


def _alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@main.group()
def db() -> None:
    """Database schema (Alembic is its only source)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    settings = Settings.from_env()
    command.upgrade(_alembic_config(settings.database_url), revision)
    click.echo(f"database at revision {revision}")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (runs against a fresh SQLite database)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/check.sqlite3"
        config = _alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)
    click.echo("models and migrations agree")


def _collect(paths: tuple[str, ...]) -> list[SourceFile]:
    if not paths:
        paths = (str(Settings.from_env().processes_dir),)
    files: list[SourceFile] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(read_directory(path))
            files.extend(SourceFile(p.name, p.read_text()) for p in sorted(path.glob("*.schema.json")))
        elif path.exists():
            files.append(SourceFile(path.name, path.read_text()))
        else:
            raise click.BadParameter(f"{raw} does not exist", param_hint="PATHS")
    return files


@main.command("validate")
@click.argument("paths", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@with_appcontext
def validate_command(paths: tuple[str, ...], fmt: str) -> None:
    """Check BPMN, DMN and form files without deploying them."""
    svc = services()
    files = _collect(paths)
    problems: list[dict[str, object]] = []
    try:
        with svc.sessions() as session:
            Deployer(session, svc.context.registry, svc.clock).deploy(files, by="validate", dry_run=True)
            session.rollback()
    except DefinitionError as exc:
        problems = exc.problems or [{"file": "", "line": None, "element_id": None, "message": exc.detail}]
    if fmt == "json":
        click.echo(
            json.dumps({"valid": not problems, "files": [f.name for f in files], "problems": problems})
        )
    elif problems:
        by_file: dict[str, list[dict[str, object]]] = {}
        for p in problems:
            by_file.setdefault(str(p.get("file") or "(deployment)"), []).append(p)
        for name, items in sorted(by_file.items()):
            click.echo(name)
            for p in items:
                where = f"line {p['line']}" if p.get("line") else "-"
                element = f" [{p['element_id']}]" if p.get("element_id") else ""
                click.echo(f"  {where}{element}: {p['message']}")
    else:
        click.echo(f"{len(files)} file(s) valid")
    if problems:
        sys.exit(1)


@main.command("deploy")
@click.argument("paths", nargs=-1)
@click.option("--by", default="cli", show_default=True, help="Recorded as the deployer.")
@with_appcontext
def deploy_command(paths: tuple[str, ...], by: str) -> None:
    """Deploy process files; unchanged content keeps its version."""
    svc = services()
    files = _collect(paths)
    try:
        with transaction(svc.sessions) as session:
            results = Deployer(session, svc.context.registry, svc.clock).deploy(files, by=by)
    except DefinitionError as exc:
        for p in exc.problems:
            click.echo(
                f"{p.get('file')}:{p.get('line') or '-'} [{p.get('element_id') or '-'}] {p.get('message')}",
                err=True,
            )
        raise SystemExit(1) from None
    for r in results:
        click.echo(f"{r.key} v{r.version} {'deployed' if r.created else 'unchanged'}")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--reload-processes", is_flag=True, help="Redeploy a process file when it is saved.")
@with_appcontext
def serve_command(host: str, port: int, reload_processes: bool) -> None:  # noqa: FBT001  (click flag)
    """Run the HTTP server with the embedded timer worker (the single-process default)."""
    from werkzeug.serving import run_simple

    svc = services()
    _deploy_directory(svc)
    worker = start_embedded_worker(svc)
    click.echo(
        f"opsflow listening on http://{host}:{port}  (OpenAPI: http://{host}:{port}/api/v1/openapi.json)"
    )
    try:
        run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)  # type: ignore[attr-defined]
    finally:
        if worker is not None:
            worker.stop()


def _deploy_directory(svc: Services) -> None:
    files = read_directory(svc.settings.processes_dir)
    if not files:
        return
    with transaction(svc.sessions) as session:
        for r in Deployer(session, svc.context.registry, svc.clock).deploy(files, by="boot"):
            click.echo(f"  {r.key} v{r.version} {'deployed' if r.created else 'up to date'}")


@main.command("worker")
@with_appcontext
def worker_command() -> None:
    """Run a timer worker; any number may run against one PostgreSQL database."""
    run_worker(services())


@main.group()
def audit() -> None:
    """The s.62 audit trail."""


@audit.command("verify")
@click.option("--chain", default=None, help="Check one chain (a case id, or 'system').")
@with_appcontext
def audit_verify(chain: str | None) -> None:
    """Recompute the hash chains and report the first broken link."""
    svc = services()
    with svc.sessions() as session:
        checked, broken = verify(session, chain=chain)
    if broken is None:
        click.echo(f"audit trail intact: {checked} event(s) verified")
        return
    click.echo(
        f"audit trail BROKEN at chain {broken.chain} seq {broken.seq} "
        f"(event {broken.event_id}): {broken.reason}",
        err=True,
    )
    sys.exit(1)


def _register_auth_commands() -> None:
    from api.migrate_cli import migrate_command
    from auth.cli import rotate_keys_command, seed_demo_command, token_command

    main.add_command(token_command, "token")
    main.add_command(rotate_keys_command, "rotate-keys")
    main.add_command(seed_demo_command, "seed-demo")
    main.add_command(migrate_command, "migrate")


_register_auth_commands()
