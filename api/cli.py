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
from engine.bpmn import Problem, SourceFile
from engine.container import Services
from engine.db import transaction
from engine.errors import DefinitionError, UnsafeXMLError
from engine.registry import Deployer, read_directory
from engine.reloader import ProcessReloader, ReloadReport
from engine.settings import PROJECT_ROOT, Settings
from engine.validation import as_problems, errors_in, validate_files, warnings_in
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


SOURCE_PATTERNS = ("*.bpmn", "*.dmn", "*.schema.json", "*.uischema.json")


def _collect(paths: tuple[str, ...], *, default: tuple[Path, ...]) -> dict[str, Path]:
    """The files named by PATHS (directories give their process and form files), by file name."""
    found: dict[str, Path] = {}
    for raw in paths or tuple(str(p) for p in default):
        path = Path(raw)
        if path.is_dir():
            for pattern in SOURCE_PATTERNS:
                for item in sorted(path.glob(pattern)):
                    found.setdefault(item.name, item)
        elif path.is_file():
            found.setdefault(path.name, path)
        else:
            raise click.BadParameter(f"{raw} does not exist", param_hint="PATHS")
    return found


def _read(paths: dict[str, Path]) -> list[SourceFile]:
    return [SourceFile(name, path.read_text(encoding="utf-8")) for name, path in paths.items()]


@main.command("validate", with_appcontext=False)
@click.argument("paths", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def validate_command(paths: tuple[str, ...], fmt: str, strict: bool) -> None:  # noqa: FBT001  (click flag)
    """Check BPMN, DMN and form files without deploying them; no database is used.

    Without PATHS, checks processes/ and forms/. References to other processes and decision tables
    resolve to the files checked, the rest of processes/ and the directories of the files named; forms
    to those checked and forms/. Exits 1 when there is an error (with --strict, also a warning).
    """
    settings = Settings.from_env()
    named = _collect(paths, default=(settings.processes_dir, settings.forms_dir))
    files = _read(named)
    context_dirs = {settings.processes_dir, *(p.parent for p in named.values())}
    context = [f for d in sorted(context_dirs) if d.is_dir() for f in read_directory(d)]
    forms = {p.name[: -len(".schema.json")] for p in settings.forms_dir.glob("*.schema.json")}
    try:
        problems = validate_files(files, context=context, forms=forms.__contains__)
    except UnsafeXMLError as exc:
        problems = as_problems(exc, default_file="(upload)")
    errors, warnings = errors_in(problems), warnings_in(problems)
    if fmt == "json":
        report = {
            "valid": not errors,
            "errors": len(errors),
            "warnings": len(warnings),
            "files": sorted(named),
            "problems": [{**p.as_dict(), "path": str(named.get(p.file, p.file))} for p in problems],
        }
        click.echo(json.dumps(report, indent=2))
    else:
        _print_problems(problems, named)
        summary = f"{len(errors)} error(s), {len(warnings)} warning(s) in {len(named)} file(s)"
        click.echo(summary if problems else f"{len(named)} file(s) valid")
    if errors or (strict and warnings):
        sys.exit(1)


def _print_problems(problems: list[Problem], paths: dict[str, Path], *, err: bool = False) -> None:
    """Problems grouped by file, in line order, one per line: where, which element, severity, code."""
    by_file: dict[str, list[Problem]] = {}
    for p in problems:
        by_file.setdefault(p.file, []).append(p)
    for name in sorted(by_file):
        click.echo(str(paths.get(name, name)), err=err)
        for p in sorted(by_file[name], key=lambda q: (q.line or 0, q.element_id or "")):
            where = f"line {p.line}" if p.line else "-"
            element = f" [{p.element_id}]" if p.element_id else ""
            click.echo(f"  {where}{element} {p.severity} {p.code}: {p.message}", err=err)


@main.command("deploy")
@click.argument("paths", nargs=-1)
@click.option("--by", default="cli", show_default=True, help="Recorded as the deployer.")
@with_appcontext
def deploy_command(paths: tuple[str, ...], by: str) -> None:
    """Deploy process files; unchanged content keeps its version."""
    svc = services()
    named = _collect(paths, default=(svc.settings.processes_dir,))
    try:
        with transaction(svc.sessions) as session:
            deployer = Deployer(session, svc.context.registry, svc.clock)
            results = deployer.deploy(_read(named), by=by)
    except DefinitionError as exc:
        _print_problems(as_problems(exc, default_file="(deployment)"), named, err=True)
        raise SystemExit(1) from None
    _print_problems(deployer.warnings, named, err=True)
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
    reloader: ProcessReloader | None = None
    if reload_processes or svc.settings.reload_processes:
        reloader = ProcessReloader(svc, report=_report_reload)
        reloader.poll()
        reloader.start()
        click.echo(f"watching {svc.settings.processes_dir} and {svc.settings.forms_dir} for changes")
    else:
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
        if reloader is not None:
            reloader.stop()


def _report_reload(report: ReloadReport) -> None:
    """What a reload did, on the console of ``serve --reload-processes``."""
    if report.changed:
        click.echo(f"changed: {', '.join(report.changed)}", err=not report.deployed)
    for r in report.results:
        if r.created:
            click.echo(f"  {r.key} v{r.version} deployed")
    if not report.deployed:
        click.echo("  not deployed; the previous versions stay in use:", err=True)
    _print_problems(report.problems, {}, err=True)


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
