"""``shipyard export docker``: a build context that serves an endpoint without a registry.

    DIR/
      Dockerfile          python:X.Y-slim; installs, copies the app, runs it as uid 10001
      README.md           how to build and run it, and what the export left out
      install/            install.sh VENV: a venv with shipyard[extras]==VERSION, pinned
        requirements.txt  constraints.txt  wheels/shipyard_ml-VERSION-*.whl (when at hand)
      app/                entrypoint.sh: shipyard serve on serve.yaml
        serve.yaml        the endpoint, serving the primary version by path (as NAME/VERSION)
        versions/M-V.yaml one serve config per version in the image (a KServe canary's)
        models/M-V/       each package, copied after its hashes were verified

The Dockerfile's RUN and CMD call ``install/install.sh`` and ``app/entrypoint.sh`` and
nothing else, so running those two scripts outside Docker (what the tests do) exercises the
image's install and start.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shipyard._version import __version__
from shipyard.export import pins
from shipyard.export.common import (
    APP_DIR,
    HOME,
    PORT,
    READY,
    UID,
    VENV,
    ExportedVersion,
    ExportPlan,
    copy_verified,
    prepare_output,
    to_yaml,
)
from shipyard.service.config import EndpointConfig, ServeConfig

INSTALL_SH = """\
#!/bin/sh
# Install shipyard into the virtual environment $1 (the Dockerfile's RUN; runs outside Docker
# too). Pinned: requirements.txt names shipyard's version and extras, constraints.txt every
# dependency's version; wheels/ holds shipyard's own wheel when the export had one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:?usage: install.sh VENV_DIR}
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --find-links "$here/wheels" \\
    --constraint "$here/constraints.txt" --requirement "$here/requirements.txt"
"""

ENTRYPOINT_SH = f"""\
#!/bin/sh
# Start shipyard serve on this directory's serve config (the image's CMD; runs outside Docker
# too). SHIPYARD_SERVE_CONFIG: another config (a ConfigMap's, a version's in versions/);
# SHIPYARD_API_KEYS_DIR: a directory of API key files (a mounted Secret).
set -eu
cd "$(dirname "$0")"
set -- --config "${{SHIPYARD_SERVE_CONFIG:-serve.yaml}}" \\
    --host "${{SHIPYARD_HOST:-0.0.0.0}}" --port "${{SHIPYARD_PORT:-{PORT}}}"
if [ -n "${{SHIPYARD_API_KEYS_DIR:-}}" ]; then
    set -- "$@" --api-keys-dir "$SHIPYARD_API_KEYS_DIR"
fi
exec "${{SHIPYARD_VENV:-{VENV}}}/bin/shipyard" serve "$@"
"""

HEALTHCHECK = ("import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s"
               f"{READY}' % os.environ.get('SHIPYARD_PORT', '{PORT}'), timeout=3)")


def serve_config(plan: ExportPlan, version: ExportedVersion) -> ServeConfig:
    """The serve config a container runs: the endpoint serving ``version`` by path (relative
    to the app directory) as its registry name and version, without a rollout controller
    (there is no registry) or registry keys (the mounted key files are the keys), and with
    ``/metrics`` open to the Prometheus the pod annotations invite."""
    endpoint = EndpointConfig(name=plan.endpoint, model=version.app_path,
                              model_name=version.model, model_version=version.version,
                              trust=plan.trust)
    return ServeConfig(endpoints=(endpoint,), rollout_controller=False, registry_keys=False,
                       open_routes=("metrics",))


def serve_yaml(plan: ExportPlan, version: ExportedVersion) -> str:
    """``serve_config`` as YAML: only the settings that differ from the defaults."""
    config = serve_config(plan, version)
    doc: dict[str, object] = {"endpoints": [
        {"name": e.name, "model": e.model, "model_name": e.model_name,
         "model_version": e.model_version, **({"trust": True} if e.trust else {})}
        for e in config.endpoints], "rollout_controller": False, "registry_keys": False,
        "open_routes": ["metrics"]}
    assert ServeConfig.from_dict(doc) == config  # what shipyard serve will read back
    head = (f"# shipyard export {__version__}: endpoint {plan.endpoint} serves "
            f"{version.ref} from the image (no registry); a path is relative to {APP_DIR}\n")
    return head + to_yaml(doc)


def version_config(version: ExportedVersion) -> str:
    """Where ``version``'s serve config is, relative to the app directory."""
    return f"versions/{version.model}-{version.version}.yaml"


def dockerfile(plan: ExportPlan, *, base_image: str) -> str:
    primary = plan.primary
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# shipyard export {__version__}: endpoint {plan.endpoint}, serving {primary.ref}",
        f"FROM {base_image}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
        "COPY install/ /tmp/shipyard-install/",
        f"RUN sh /tmp/shipyard-install/install.sh {VENV} && rm -rf /tmp/shipyard-install",
        f"RUN groupadd --system --gid {UID} shipyard \\",
        f" && useradd --system --uid {UID} --gid {UID} --home-dir {HOME} --create-home \\",
        "    --shell /usr/sbin/nologin shipyard",
        f"COPY app/ {APP_DIR}/",
        f"ENV SHIPYARD_HOME={HOME} SHIPYARD_VENV={VENV} SHIPYARD_HOST=0.0.0.0 \\",
        f"    SHIPYARD_PORT={PORT}",
        f"WORKDIR {APP_DIR}",
        f"USER {UID}:{UID}",
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\",
        f'  CMD ["{VENV}/bin/python", "-c", "{HEALTHCHECK}"]',
        f'CMD ["/bin/sh", "{APP_DIR}/entrypoint.sh"]',
    ]
    return "\n".join(lines) + "\n"


def readme(plan: ExportPlan, image: str, wheel: Path | None, extras: tuple[str, ...]) -> str:
    source = (f"shipyard's wheel (wheels/{wheel.name}), built from the running shipyard"
              if wheel is not None else
              f"the package index ({pins.DISTRIBUTION}=={__version__}): the build needs it")
    notes = "".join(f"- {n}\n" for n in plan.notes) or "- none: the policy is served whole\n"
    return f"""# {plan.endpoint}: a shipyard image

Serves endpoint `{plan.endpoint}` ({plan.primary.ref}) with `shipyard serve` on port {PORT},
as user {UID}, from the package copied into `app/{plan.primary.app_path}` (its files were
verified against the manifest's SHA-256s; no registry at run time).

    docker build -t {image} .
    docker run --rm -p {PORT}:{PORT} {image}
    curl -s localhost:{PORT}{READY}

Installs `{pins.requirement(extras)}` from {source}, every dependency pinned in
`install/constraints.txt` (the versions this export ran with). Without Docker:

    sh install/install.sh ./venv && SHIPYARD_VENV=$PWD/venv SHIPYARD_HOST=127.0.0.1 \\
        sh app/entrypoint.sh

Environment: `SHIPYARD_PORT`, `SHIPYARD_SERVE_CONFIG` (another serve config),
`SHIPYARD_API_KEYS_DIR` (a directory of API key files: a mounted Secret; without it the
server takes requests without keys).

## Notes on the policy

{notes}"""


def export_docker(plan: ExportPlan, output: Path, *, image: str | None = None,
                  base_image: str | None = None, wheel: Path | None = None,
                  force: bool = False) -> Path:
    """Write the build context of ``plan`` into ``output``; returns the Dockerfile."""
    prepare_output(output, force=force)
    extras = pins.extras_for(plan.runtimes)
    install = output / "install"
    built = pins.place_wheel(install / "wheels", wheel)
    _write(install / "requirements.txt", pins.requirement(extras) + "\n")
    _write(install / "constraints.txt", f"# the versions shipyard {__version__} ran with "
           "when it exported this image\n" + "\n".join(pins.constraints(extras)) + "\n")
    _write(install / "install.sh", INSTALL_SH, mode=0o755)
    app = output / "app"
    for version in plan.versions.values():
        copy_verified(version, app / version.app_path)
        _write(app / version_config(version), serve_yaml(plan, version))
    _write(app / "serve.yaml", serve_yaml(plan, plan.primary))
    _write(app / "entrypoint.sh", ENTRYPOINT_SH, mode=0o755)
    base = base_image or f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
    _write(output / "Dockerfile", dockerfile(plan, base_image=base))
    _write(output / ".dockerignore", "README.md\n.shipyard-export\n")
    _write(output / "README.md", readme(plan, plan.image(image), built, extras))
    return output / "Dockerfile"


def _write(path: Path, text: str, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
