"""``shipyard keys create / list / revoke``: API keys with scopes, in the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from shipyard.cli.output import console, print_json, table
from shipyard.errors import ShipyardError

app = typer.Typer(no_args_is_help=True, help="API keys with scopes, stored hashed in the "
                                             "registry; servers see changes within one poll.")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="the key's name (logged and audited)")],
    scope: Annotated[str, typer.Option(help="predict, feedback, read or admin (everything)")],
    endpoint: Annotated[str | None, typer.Option(help="only this endpoint's routes")] = None,
    expires: Annotated[str | None, typer.Option(
        help="a duration (30d, 12h) or an ISO 8601 time; default: never")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create a key. Its secret is printed once, here, and never stored."""
    from shipyard.registry import Registry

    with Registry() as reg:
        key, secret = reg.api_keys.create(name, scope, endpoint=endpoint,
                                          expires_at=_expiry(expires))
    if as_json:
        print_json({**key.to_dict(), "secret": secret})
        return
    console.print(f"[green]✓[/] created API key [bold]{key.name}[/] (scope {key.scope}"
                  f"{', endpoint ' + key.endpoint if key.endpoint else ''}"
                  f"{', expires ' + key.expires_at.isoformat() if key.expires_at else ''})")
    console.print("Its secret, shown only now (send it as Authorization: Bearer KEY or "
                  "X-API-Key: KEY):")
    typer.echo(secret)  # plain, so a script can read it off the last line


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the keys (never their secrets)."""
    from shipyard.registry import Registry

    with Registry() as reg:
        keys = reg.api_keys.all()
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    table("API keys", ["name", "scope", "endpoint", "state", "prefix", "created", "expires",
                       "first used"],
          [(k.name, k.scope, k.endpoint or "", k.state(), k.prefix + "…", k.created_at,
            k.expires_at or "", k.first_used_at or "") for k in keys])


@app.command()
def revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke a key for good: servers refuse it within one poll interval."""
    from shipyard.registry import Registry

    with Registry() as reg:
        key = reg.api_keys.revoke(name)
    console.print(f"[green]✓[/] revoked API key [bold]{key.name}[/]")


def _expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    from shipyard.service.config import ConfigError, parse_duration

    try:
        return datetime.now(UTC) + timedelta(seconds=parse_duration(text, "--expires"))
    except ConfigError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ShipyardError(f"--expires takes a duration (30d, 12h) or an ISO 8601 time, "
                            f"not {text!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
