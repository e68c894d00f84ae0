"""What an export ships: an endpoint resolved to the package versions it serves.

Every export (a Docker build context, Kubernetes manifests, a KServe InferenceService) starts
from one `ExportPlan`: the endpoint's name, the traffic policy it serves (the registry's
stored policy for the endpoint, or a `Single` for a model URI or a package directory), each
version that policy routes to as a verified package directory, and the one version a
container serves by path (``primary``). Containers never reach a registry: a package is
copied into the image after its files are checked against the manifest's SHA-256s, and
served from there.

What a target cannot express (a sticky A/B split, a shadow, a split over three versions)
is never dropped silently: it becomes a line of ``notes``, printed by the CLI and written
into the README of every export.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.names import SAFE_NAME_RULE, is_safe_name
from shipyard.packaging import MANIFEST_FILE, Manifest, verify_files
from shipyard.registry import Registry, is_model_uri, parse_ref
from shipyard.routing import BlueGreen, Policy, Shadow, Single, StickyAB, Weighted
from shipyard.service.config import default_endpoint_name

PORT = 8080  # the container's port (KServe's default for a custom predictor)
APP_DIR = "/srv/shipyard"  # in the image: entrypoint.sh, serve.yaml, models/
VENV = "/opt/venv"  # in the image: the virtual environment shipyard is installed in
HOME = "/var/lib/shipyard"  # in the image: SHIPYARD_HOME (prediction logs, spools)
UID = 10001  # the non-root user the server runs as
READY = "/v2/health/ready"  # the Open Inference Protocol's health routes
LIVE = "/v2/health/live"
METRICS = "/metrics"


class ExportError(ShipyardError):
    """An export cannot be made (nothing to export, a package that fails its hashes, ...)."""


@dataclass(frozen=True)
class ExportedVersion:
    """One package version an export ships, at ``source`` (verified when resolved)."""

    ref: str  # NAME/VERSION as the policy names it
    model: str
    version: int
    source: Path
    runtime: str  # the package's default runtime (which extras the image needs)

    @property
    def app_path(self) -> str:
        """Where the package lives in the image, relative to the app directory (one folder
        per version). The serve config names what it is served as (``model_name``,
        ``model_version``): responses and the prediction log say ``iris/3``, as the
        registry does."""
        return f"models/{self.model}-{self.version}"


@dataclass(frozen=True)
class ExportPlan:
    """An endpoint, its policy, and the versions an export ships."""

    endpoint: str
    policy: Policy
    revision: int  # the stored policy's revision; 0 for a model URI or a package path
    versions: dict[str, ExportedVersion]  # ref -> version, every one the policy routes to
    trust: bool = False
    notes: tuple[str, ...] = field(default=())
    source: str = ""  # what the export was asked for (a path, a URI, the endpoint)

    def __post_init__(self) -> None:
        if not is_safe_name(self.endpoint):
            raise ExportError(f"invalid endpoint name {self.endpoint!r}: use {SAFE_NAME_RULE}")

    @property
    def primary(self) -> ExportedVersion:
        """The version a container serves: the one that answers most clients now."""
        return self.versions[primary_ref(self.policy)]

    @property
    def runtimes(self) -> tuple[str, ...]:
        return tuple(sorted({v.runtime for v in self.versions.values()}))

    def image(self, name: str | None = None) -> str:
        """The image name an export refers to: ``name``, else ``shipyard-ENDPOINT:TAG`` with
        a tag naming the versions inside (the same for every export of this plan)."""
        if name:
            return name
        tag = ".".join(f"{v.model}-{v.version}" for v in self.versions.values())
        if len(tag) > 128:  # Docker's limit on a tag
            tag = hashlib.sha256(tag.encode()).hexdigest()[:16]
        repository = re.sub(r"[^a-z0-9]+", "-", self.endpoint.lower()).strip("-")
        return f"shipyard-{repository}:{tag}"


def docker_command(plan: ExportPlan, image: str) -> str:
    """The commands that build the image a manifest of ``plan`` runs (for its README)."""
    trust = " --trust" if plan.trust else ""
    source = shlex.quote(plan.source or plan.endpoint)
    return (f"shipyard export docker {source} --endpoint {plan.endpoint}{trust} "
            f"--image {image} -o image && docker build -t {image} image")


def primary_ref(policy: Policy) -> str:
    """The version that answers a policy's main traffic: the stable split of a canary, the
    control (A) of an A/B test, the primary of a shadow, the live colour of a blue-green."""
    if isinstance(policy, Single):
        return policy.version
    if isinstance(policy, Weighted):
        stable, weight = policy.splits[0]
        return stable if weight > 0 else max(policy.splits, key=lambda split: split[1])[0]
    if isinstance(policy, StickyAB):
        return policy.a
    if isinstance(policy, Shadow):
        return policy.primary
    if isinstance(policy, BlueGreen):
        return policy.live_version
    raise ExportError(f"cannot export a {type(policy).__name__} policy")


def resolve(source: str, *, registry: Registry | None = None,
            endpoint: str | None = None, trust: bool = False) -> ExportPlan:
    """The plan for ``source``: a package directory, a ``models:/`` URI, or an endpoint name
    whose stored policy (``Registry.deployments``) names its versions. ``registry`` is opened
    only when ``source`` is not a directory (from the environment when not given)."""
    path = Path(source)
    if not is_model_uri(source) and path.is_dir():
        name = endpoint or default_endpoint_name(source)
        version = _package(path, ref=f"{Manifest.read(path).name}/1")
        return ExportPlan(name, Single(version.ref), 0, {version.ref: version}, trust,
                          (f"{source} is a package directory: exported as version 1",),
                          source)
    owned = registry is None
    reg = registry or Registry()
    try:
        return _from_registry(reg, source, endpoint, trust)
    finally:
        if owned:
            reg.close()


def _from_registry(registry: Registry, source: str, endpoint: str | None,
                   trust: bool) -> ExportPlan:
    if is_model_uri(source):
        found = registry.get_version(source)
        ref = f"{found.name}/{found.version}"
        name = endpoint or default_endpoint_name(source)
        return ExportPlan(name, Single(ref), 0, {ref: _fetched(registry, ref)}, trust,
                          (f"{source} resolved to {ref} now; the image keeps that version",),
                          source)
    current = registry.deployments.current(source)
    if current is None:
        raise ExportError(f"{source!r} is neither a package directory nor an endpoint with "
                          f"a deployment policy; export a model URI instead (e.g. "
                          f"models:/{source}@production)")
    revision, policy = current
    versions = {ref: _fetched(registry, ref) for ref in shipped_refs(policy)}
    return ExportPlan(endpoint or source, policy, revision, versions, trust,
                      policy_notes(policy), source)


def canary_split(policy: Policy) -> tuple[str, str, float] | None:
    """``(stable, canary, percent)`` for a split KServe can express (two versions, both
    taking traffic: ``canaryTrafficPercent``), else None."""
    if isinstance(policy, Weighted) and len(policy.versions) == 2:
        (stable, _), (canary, percent) = (s for s in policy.splits if s[1] > 0)
        return stable, canary, percent
    return None


def shipped_refs(policy: Policy) -> tuple[str, ...]:
    """The versions an image holds: the primary, and a KServe canary's candidate."""
    split = canary_split(policy)
    return split[:2] if split is not None else (primary_ref(policy),)


def policy_notes(policy: Policy) -> tuple[str, ...]:
    """What a container serving one version by path leaves out of ``policy``."""
    primary = primary_ref(policy)
    if isinstance(policy, Single):
        return ()
    if isinstance(policy, Weighted):
        split = ", ".join(f"{v} {w:g}%" for v, w in policy.splits)
        if len(policy.versions) == 1:
            return (f"weighted split ({split}): all traffic on {primary}, exported alone",)
        if canary_split(policy) is not None:
            return (f"weighted split ({split}): the Docker and Kubernetes exports serve "
                    f"{primary}; the KServe export maps it to canaryTrafficPercent",)
        return (f"weighted split ({split}) over more than two versions: not expressible by "
                f"KServe's canaryTrafficPercent (two revisions); every export serves "
                f"{primary} only",)
    if isinstance(policy, StickyAB):
        return (f"sticky A/B test ({policy.a} / {policy.b}, {policy.split:g}% to B, sticky "
                f"by {policy.key}): not expressible by Kubernetes or KServe (their splits are "
                f"per request, not sticky per user); the export serves A ({primary}) only",)
    if isinstance(policy, Shadow):
        return (f"shadow of {policy.candidate} ({policy.percent:g}% of requests copied): "
                "not expressible by Kubernetes or KServe (no request mirroring); the export "
                f"serves the primary ({primary}) only",)
    if isinstance(policy, BlueGreen):
        return (f"blue-green ({policy.blue} / {policy.green}, {policy.live} live): the export "
                f"serves the live version ({primary}); switch by exporting again after the "
                "switch",)
    return ()


def _fetched(registry: Registry, ref: str) -> ExportedVersion:
    """``ref``'s package from the registry's cache (``Registry.fetch`` verifies it)."""
    parsed = parse_ref(ref, require_version=True)
    return _package(registry.fetch(str(parsed)), ref=str(parsed))


def _package(path: Path, *, ref: str) -> ExportedVersion:
    manifest = Manifest.read(path)
    verify(path, manifest)
    parsed = parse_ref(ref, require_version=True)
    assert parsed.version is not None  # require_version
    return ExportedVersion(ref, manifest.name, parsed.version, path, manifest.runtime.name)


def verify(path: Path, manifest: Manifest) -> None:
    """Every file of ``manifest`` is in ``path`` with its SHA-256, else `ExportError`."""
    try:
        verify_files(path, manifest.files)
    except ShipyardError as exc:
        raise ExportError(f"package {manifest.name} at {path} fails verification: {exc}; "
                          "nothing was exported") from exc


def copy_verified(version: ExportedVersion, dest: Path) -> Path:
    """Copy the manifest and exactly the files it lists (nothing else in the directory) to
    ``dest``, then verify the copy: what the image holds is what the manifest hashes."""
    manifest = Manifest.read(version.source)
    verify(version.source, manifest)
    dest.mkdir(parents=True, exist_ok=False)
    shutil.copyfile(version.source / MANIFEST_FILE, dest / MANIFEST_FILE)
    for entry in manifest.files:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(version.source / entry.path, target)
    verify(dest, Manifest.read(dest))
    return dest


def to_yaml(doc: Any) -> str:
    """``doc`` as block YAML in insertion order, without anchors (a shared dict is written
    out at each place, as a human would)."""
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(doc, Dumper=Plain, sort_keys=False)


MARKER = ".shipyard-export"


def prepare_output(output: Path, *, force: bool) -> None:
    """``output`` as an empty directory; one that holds anything is refused unless
    ``force``, and then only when it holds a previous export (its marker file)."""
    if output.exists() and any(output.iterdir()):
        if not force:
            raise ExportError(f"{output} is not empty; choose a new directory or pass --force")
        if not (output / MARKER).is_file():
            raise ExportError(f"{output} holds files that are not a shipyard export; "
                              "--force replaces only a previous export")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("written by shipyard export; safe to replace with --force\n",
                                 encoding="utf-8")


def write_manifests(output: Path, docs: Mapping[str, Any], readme: str, *,
                    force: bool) -> list[Path]:
    """Each of ``docs`` (file name -> object) as YAML in ``output``, and a README."""
    prepare_output(output, force=force)
    written = []
    for file, doc in docs.items():
        path = output / file
        path.write_text(to_yaml(doc), encoding="utf-8")
        written.append(path)
    (output / "README.md").write_text(readme, encoding="utf-8")
    return written
