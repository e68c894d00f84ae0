"""``shipyard audit``, ``shipyard db ...`` and ``shipyard gc``."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.output import console, parse_time, print_json, table

db_app = typer.Typer(no_args_is_help=True, help="The registry database.")


def audit(
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. alias.set")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many records")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the append-only audit log (oldest first)."""
    from shipyard.registry import Registry

    with Registry() as reg:
        records = reg.audit(model=model, action=action, since=parse_time(since), limit=limit)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table("audit log", ["#", "at", "actor", "action", "target", "change"],
          [(r.id, r.at, r.actor, r.action + (" [red](forced)[/]" if r.forced else ""),
            _target(r.model, r.version, r.alias), _change(r.before, r.after))
           for r in records])


def _target(model: str | None, version: int | None, alias: str | None) -> str:
    text = model or ""
    if version is not None:
        text += f"/{version}"
    return text + (f" @{alias}" if alias else "")


def _change(before: object, after: object) -> str:
    def compact(value: object) -> str:
        if isinstance(value, dict):
            return " ".join(f"{k}={v}" for k, v in value.items() if v not in (None, {}, []))
        return "" if value is None else str(value)

    if before is None:
        return compact(after)
    return f"{compact(before)} → {compact(after) or '∅'}"


@db_app.command()
def upgrade(
    url: Annotated[str | None, typer.Option(help="database URL (default: settings)")] = None,
) -> None:
    """Migrate the registry database to the newest schema."""
    from shipyard.registry import database
    from shipyard.settings import Settings

    target = url or Settings.from_env().registry_url
    engine = database.create_engine(target)
    try:
        before = database.current_revision(engine)
        database.upgrade(engine)
        after = database.current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"[green]✓[/] {engine.url.render_as_string(hide_password=True)}: schema "
                  f"{before or 'empty'} → {after}")


@db_app.command()
def status(
    url: Annotated[str | None, typer.Option(help="database URL (default: settings)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the database's schema revision and the one this shipyard needs."""
    from shipyard.registry import database
    from shipyard.settings import Settings

    engine = database.create_engine(url or Settings.from_env().registry_url)
    try:
        current = database.current_revision(engine)
    finally:
        engine.dispose()
    head = database.head_revision()
    if as_json:
        print_json({"current": current, "head": head, "up_to_date": current == head})
        return
    state = "up to date" if current == head else "needs `shipyard db upgrade`"
    console.print(f"schema {current or 'empty'} (head {head}): {state}")


def gc(
    grace: Annotated[float, typer.Option(help="keep unreferenced blobs younger than this "
                                         "many seconds")] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only count")] = False,
) -> None:
    """Delete artifact blobs that no registered version references."""
    from shipyard.registry import Registry

    with Registry() as reg:
        report = reg.gc(grace_seconds=grace, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {report.deleted} blob(s), {report.bytes_freed:,} bytes; "
                  f"kept {report.kept}")
