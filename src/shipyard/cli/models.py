"""``shipyard models ...``: the registry from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.output import console, parse_pairs, parse_time, print_json, table

if TYPE_CHECKING:  # the registry (SQLAlchemy, Alembic) loads only when a command runs
    from shipyard.registry import ModelVersion, Registry

app = typer.Typer(no_args_is_help=True, help="Register, find, alias and trace model versions.")
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _registry() -> Registry:
    from shipyard.registry import Registry

    return Registry()


@app.command()
def register(
    path: Annotated[Path, typer.Argument(help="package directory")],
    name: Annotated[str | None, typer.Option(help="model name (default: the package's)")] = None,
    alias: Annotated[str | None, typer.Option(help="point this alias at the new version")]
    = None,
    tag: Annotated[list[str] | None, typer.Option(help="k=v, repeatable")] = None,
    description: Annotated[str | None, typer.Option(help="free text")] = None,
    parent: Annotated[int | None, typer.Option(help="version this one derives from")] = None,
    force: Annotated[bool, typer.Option(help="override the signature guard for --alias")]
    = False,
    trusted_keys: Annotated[Path | None, typer.Option(
        "--trusted-keys", help="a folder of trusted public keys (*.pub); default "
                               "$SHIPYARD_TRUSTED_KEYS")] = None,
    require_signed: Annotated[bool, typer.Option(
        "--require-signed", help="refuse a package without a signature by a trusted key "
                                 "(default $SHIPYARD_REQUIRE_SIGNED)")] = False,
    require_evaluation: Annotated[bool, typer.Option(
        "--require-evaluation", help="with --alias: refuse unless the package's newest gated "
                                     "evaluation passed (default "
                                     "$SHIPYARD_REQUIRE_EVALUATION)")] = False,
    override_evaluation: Annotated[str | None, typer.Option(
        help="with --alias: go on without a passed evaluation, for this reason "
             "(audited)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a package as the next version of its model."""
    with _registry() as reg:
        if trusted_keys is not None or require_signed:
            from shipyard.packaging.signing import SigningPolicy

            reg.signing = SigningPolicy.load(trusted_keys or reg.settings.trusted_keys,
                                             require_signed or reg.settings.require_signed)
        version = reg.register(path, name=name, alias=alias, tags=parse_pairs(tag),
                               description=description, parent=parent, force=force,
                               require_evaluation=require_evaluation,
                               override_evaluation=override_evaluation)
    if as_json:
        print_json(version.to_dict())
        return
    extra = f" and set @{alias}" if alias else ""
    if version.signed_by is not None:
        extra += f" (signed by key {version.signed_by})"
    console.print(f"[green]✓[/] registered [bold]{version.uri}[/]{extra}")


@app.command("list")
def list_models(
    tag: Annotated[list[str] | None, typer.Option(help="k=v, repeatable")] = None,
    alias: Annotated[str | None, typer.Option(help="only models with this alias")] = None,
    query: Annotated[str | None, typer.Option(help="name contains")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered models."""
    with _registry() as reg:
        found = reg.list_models(tags=parse_pairs(tag), alias=alias, query=query)
    if as_json:
        print_json([m.to_dict() for m in found])
        return
    table("models", ["name", "latest", "versions", "aliases", "tags", "updated"],
          [(m.name, m.latest_version, m.versions,
            {k: f"v{v}" for k, v in sorted(m.aliases.items())}, m.tags, m.updated_at)
           for m in found])


@app.command()
def versions(
    name: Annotated[str | None, typer.Argument(help="model name (default: all models)")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="k=v, repeatable")] = None,
    alias: Annotated[str | None, typer.Option(help="versions holding this alias")] = None,
    metric: Annotated[str | None, typer.Option(help="e.g. 'accuracy>=0.9'")] = None,
    since: Annotated[str | None, typer.Option(help="created at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="created before (ISO 8601)")] = None,
    include_archived: Annotated[bool, typer.Option("--all", help="include archived")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Search versions by model, tag, alias, metric value and time range."""
    with _registry() as reg:
        found = reg.search_versions(name, tags=parse_pairs(tag), alias=alias, metric=metric,
                                    since=parse_time(since), until=parse_time(until),
                                    include_archived=include_archived)
    if as_json:
        print_json([v.to_dict() for v in found])
        return
    _versions_table(found)


def _versions_table(found: list[ModelVersion]) -> None:
    table("versions", ["model", "version", "status", "aliases", "runtime", "metrics", "tags",
                       "created", "by"],
          [(v.name, v.version, v.status, v.aliases, v.runtime, v.metrics, v.tags,
            v.created_at, v.created_by) for v in found])


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/VERSION or NAME@ALIAS")],
    as_json: JsonOpt = False,
) -> None:
    """Show a model (with its versions) or one version."""
    from shipyard.registry import parse_ref

    parsed = parse_ref(ref)
    with _registry() as reg:
        if parsed.version is None and parsed.alias is None:
            model = reg.get_model(parsed.name)
            found = reg.search_versions(parsed.name, include_archived=True)
            if as_json:
                print_json({**model.to_dict(), "versions": [v.to_dict() for v in found]})
                return
            console.print(f"[bold]{model.name}[/]  {model.description or ''}")
            console.print(f"aliases: {model.aliases or 'none'}  tags: {model.tags or 'none'}")
            _versions_table(found)
            return
        version = reg.get_version(ref)
        evaluated = reg.evaluations.of_version(version.uri)
    if as_json:
        print_json({**version.to_dict(with_manifest=True),
                    "evaluations": [e.brief() for e in evaluated]})
        return
    doc = version.to_dict()
    table(version.uri, ["field", "value"],
          [(k, doc[k]) for k in ("status", "aliases", "runtime", "created_at", "created_by",
                                 "description", "tags", "metrics", "params", "parent_version",
                                 "data", "code", "signed_by")]
          + [("evaluation", _evaluation_line(evaluated[0].brief()) if evaluated
              else "none recorded")])


def _evaluation_line(brief: dict[str, Any]) -> str:
    """An evaluation in a line: verdict, headline metric, data, when."""
    value = brief.get("value")
    shown = "" if value is None else f", {brief.get('headline')} {value:.4f}"
    failed = brief.get("failed_rules") or []
    return (f"#{brief['id']} {brief['verdict']}{shown} on {brief.get('rows')} rows (data "
            f"sha256 {str(brief.get('data_sha256'))[:12]}…), {brief['at'][:16]} by "
            f"{brief['by']}" + (f"; failed: {'; '.join(map(str, failed))}" if failed else ""))


@app.command()
def alias(
    name: Annotated[str, typer.Argument(help="model name")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production")],
    version: Annotated[int | None, typer.Argument(help="version to point at")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="remove the alias")] = False,
    force: Annotated[bool, typer.Option(help="override the signature guard (audited)")]
    = False,
    require_evaluation: Annotated[bool, typer.Option(
        "--require-evaluation", help="refuse unless the version's newest gated evaluation "
                                     "passed (shipyard evaluate --gate)")] = False,
    override_evaluation: Annotated[str | None, typer.Option(
        help="with --require-evaluation: go on without a passed evaluation, for this "
             "reason (audited)")] = None,
) -> None:
    """Set, move (``NAME ALIAS VERSION``) or delete (``--delete``) an alias."""
    with _registry() as reg:
        if delete:
            reg.delete_alias(name, alias_name)
            console.print(f"[green]✓[/] deleted {name}@{alias_name}")
            return
        if version is None:
            raise typer.BadParameter("give the VERSION to point at, or --delete")
        reg.set_alias(name, alias_name, version, force=force,
                      require_evaluation=require_evaluation,
                      override_evaluation=override_evaluation)
    console.print(f"[green]✓[/] {name}@{alias_name} → version {version}")


@app.command()
def tag(
    ref: Annotated[str, typer.Argument(help="NAME (model) or NAME/VERSION")],
    pairs: Annotated[list[str] | None, typer.Argument(help="k=v ...")] = None,
    delete: Annotated[list[str] | None, typer.Option("--delete", help="tag key to remove")]
    = None,
) -> None:
    """Set or delete tags on a model or a version."""
    with _registry() as reg:
        for key, value in parse_pairs(pairs).items():
            reg.set_tag(ref, key, value)
        for key in delete or []:
            reg.delete_tag(ref, key)
    console.print(f"[green]✓[/] tags updated on {ref}")


@app.command()
def describe(
    ref: Annotated[str, typer.Argument(help="NAME (model) or NAME/VERSION")],
    text: Annotated[str, typer.Argument(help="the description")],
) -> None:
    """Set the description of a model or a version."""
    with _registry() as reg:
        reg.set_description(ref, text)
    console.print(f"[green]✓[/] description set on {ref}")


@app.command()
def archive(ref: Annotated[str, typer.Argument(help="NAME/VERSION")]) -> None:
    """Archive a version (refused while an alias or deployment points at it)."""
    with _registry() as reg:
        version = reg.archive(ref)
    console.print(f"[green]✓[/] archived {version.uri}")


@app.command()
def restore(ref: Annotated[str, typer.Argument(help="NAME/VERSION")]) -> None:
    """Restore an archived version."""
    with _registry() as reg:
        version = reg.restore(ref)
    console.print(f"[green]✓[/] restored {version.uri}")


@app.command()
def lineage(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION or NAME@ALIAS")],
    as_json: JsonOpt = False,
) -> None:
    """Upstream (data, code, params, parents) and downstream (versions, deployments)."""
    with _registry() as reg:
        found = reg.lineage(ref).to_dict()
    if as_json:
        print_json(found)
        return
    up, down = found["upstream"], found["downstream"]
    data = up["data"] or {}
    code = up["code"] or {}
    table(f"lineage of {found['uri']}", ["", "what", "detail"], [
        ("upstream", "data", f"sha256 {str(data.get('sha256', ''))[:16]}…, "
                             f"{data.get('rows')} rows, {len(data.get('columns', []))} columns"
                             + (f", {data['uri']}" if data.get("uri") else "")
         if data else "not recorded"),
        ("upstream", "code", f"git {code.get('git_commit', '')[:12]}"
                             + (" (dirty)" if code.get("dirty") else "")
         if code else "not in a git work tree"),
        ("upstream", "params", up["params"]),
        ("upstream", "parents", up["parents"] or "none"),
        ("downstream", "versions", down["versions"] or "none"),
        ("downstream", "deployments",
         [f"{d['endpoint']} ({d['status']})" for d in down["deployments"]] or "none"),
        *(("evaluated", f"#{e['id']}", _evaluation_line(e)) for e in found["evaluations"]),
    ])
