"""Command-line tools of the embedded authorization server: ``token`` and ``seed-demo``.

Plain click commands wrapped in ``with_appcontext``; the main CLI adds them to its group and they find
the server's state in ``current_app.extensions``.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from auth.errors import AuthConfigError
from auth.seed import DEMO_SEED, load_seed
from auth.server import EXTENSION_KEY, EmbeddedAuthServer


def _server() -> EmbeddedAuthServer:
    state = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, EmbeddedAuthServer):
        raise click.ClickException(
            "the embedded authorization server is not running in this app (is OPSFLOW_OIDC_ISSUER set?)"
        )
    return state


@click.command("token")
@click.option("--user", "username", required=True, help="Username of an active user of the embedded server.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A scope to grant; repeat, or separate with spaces. Default: every scope the user may have.",
)
@click.option(
    "--client-id", default="opsflow-cli", show_default=True, help="client_id to write into the token."
)
@with_appcontext
def token_command(username: str, scopes: tuple[str, ...], client_id: str) -> None:
    """Print a signed access token for USER, for scripts and curl (embedded mode only)."""
    wanted = [scope for option in scopes for scope in option.split()]
    try:
        issued = _server().issue_user_token(username, scopes=wanted, client_id=client_id)
    except AuthConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(issued.access_token)


@click.command("seed-demo")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEMO_SEED,
    show_default=True,
    help="Seed file with users and clients.",
)
@with_appcontext
def seed_demo_command(path: Path) -> None:
    """Create or update the demo users and OAuth clients of the embedded server (idempotent)."""
    server = _server()
    try:
        with server.sessions.begin() as session:
            result = load_seed(session, path)
    except AuthConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"users: {result.users_created} created, {result.users_updated} updated; "
        f"clients: {result.clients_created} created, {result.clients_updated} updated"
    )


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command() -> None:
    """Make a new signing key current; tokens signed by the old one stay valid until they expire."""
    fresh = _server().keystore.rotate()
    click.echo(f"new signing key {fresh.kid}; the previous key stays published until its tokens expire")
