"""``shipyard export docker|k8s|kserve``: an endpoint as a container image, Kubernetes
manifests or a KServe InferenceService. Parses arguments and delegates to ``shipyard.export``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.output import console

if TYPE_CHECKING:  # the registry and the YAML writer load only when a command runs
    from shipyard.export import ExportPlan, Resources

app = typer.Typer(no_args_is_help=True, help="Export an endpoint to Docker, Kubernetes or "
                  "KServe (served by path from the image: no registry at run time).")

Source = Annotated[str, typer.Argument(
    help="an endpoint name (its deployment policy in the registry), a models:/ URI or a "
         "package directory")]
Output = Annotated[Path, typer.Option("-o", "--output", help="directory to write")]
Force = Annotated[bool, typer.Option("--force", help="replace a previous export in OUTPUT")]
Image = Annotated[str | None, typer.Option(help="image name (default: shipyard-ENDPOINT:TAG, "
                                           "the tag naming the versions inside)")]
EndpointName = Annotated[str | None, typer.Option(
    "--endpoint", help="the served endpoint's name (default: the source's)")]
Trust = Annotated[bool, typer.Option(
    "--trust", help="the served package may run its own code (unpickle, import classes)")]
Namespace = Annotated[str | None, typer.Option(help="Kubernetes namespace of the objects")]
Name = Annotated[str | None, typer.Option(help="Kubernetes object name (default: the "
                                          "endpoint's, made DNS-safe)")]
ApiKeys = Annotated[bool, typer.Option(
    "--api-keys/--no-api-keys", help="mount API keys from the Secret NAME-api-keys")]
CpuRequest = Annotated[str, typer.Option(help="container CPU request")]
CpuLimit = Annotated[str, typer.Option(help="container CPU limit (ONNX Runtime threads)")]
MemRequest = Annotated[str, typer.Option(help="container memory request")]
MemLimit = Annotated[str, typer.Option(help="container memory limit")]


def _plan(source: str, endpoint: str | None, trust: bool) -> ExportPlan:
    from shipyard.export import resolve

    plan = resolve(source, endpoint=endpoint, trust=trust)
    versions = ", ".join(plan.versions)
    console.print(f"endpoint [bold]{plan.endpoint}[/]: {plan.policy.kind} policy"
                  f"{f' (revision {plan.revision})' if plan.revision else ''}; serving "
                  f"{plan.primary.ref}; packages {versions}", highlight=False)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    return plan


def _resources(cpu_request: str, cpu_limit: str, memory_request: str,
               memory_limit: str) -> Resources:
    from shipyard.export import Resources

    return Resources(cpu_request, cpu_limit, memory_request, memory_limit)


def _done(output: Path, what: str) -> None:
    console.print(f"[green]✓[/] wrote {what} to {output} (see {output / 'README.md'})",
                  highlight=False)


@app.command()
def docker(
    source: Source, output: Output, image: Image = None, endpoint: EndpointName = None,
    trust: Trust = False, force: Force = False,
    base_image: Annotated[str | None, typer.Option(
        help="base image (default: python:X.Y-slim of this Python)")] = None,
    wheel: Annotated[Path | None, typer.Option(
        help="shipyard's wheel to install (default: built from this shipyard's source tree, "
             "else installed from the package index by version)")] = None,
) -> None:
    """A Docker build context: pinned install, verified packages, non-root, health check."""
    from shipyard.export import export_docker

    plan = _plan(source, endpoint, trust)
    export_docker(plan, output, image=image, base_image=base_image, wheel=wheel, force=force)
    _done(output, f"a build context (docker build -t {plan.image(image)} {output})")


@app.command()
def k8s(
    source: Source, output: Output, image: Image = None, endpoint: EndpointName = None,
    trust: Trust = False, force: Force = False, name: Name = None,
    namespace: Namespace = None, api_keys: ApiKeys = True,
    min_replicas: Annotated[int, typer.Option(help="HorizontalPodAutoscaler minimum")] = 2,
    max_replicas: Annotated[int, typer.Option(help="HorizontalPodAutoscaler maximum")] = 10,
    cpu_target: Annotated[int, typer.Option(help="target CPU use, % of the request")] = 70,
    cpu_request: CpuRequest = "500m", cpu_limit: CpuLimit = "2",
    memory_request: MemRequest = "512Mi", memory_limit: MemLimit = "2Gi",
) -> None:
    """Kubernetes manifests: Deployment, Service, HPA, PDB, ConfigMap; keys from a Secret."""
    from shipyard.export import Scaling, export_k8s

    resources = _resources(cpu_request, cpu_limit, memory_request, memory_limit)
    scaling = Scaling(min_replicas, max_replicas, cpu_target)
    plan = _plan(source, endpoint, trust)
    export_k8s(plan, output, force=force, image=image, name=name, namespace=namespace,
               resources=resources, scaling=scaling, api_keys=api_keys)
    _done(output, "Kubernetes manifests")


@app.command()
def kserve(
    source: Source, output: Output, image: Image = None, endpoint: EndpointName = None,
    trust: Trust = False, force: Force = False, name: Name = None,
    namespace: Namespace = None, api_keys: ApiKeys = True,
    min_replicas: Annotated[int, typer.Option(help="predictor minReplicas")] = 1,
    max_replicas: Annotated[int, typer.Option(help="predictor maxReplicas")] = 5,
    cpu_request: CpuRequest = "500m", cpu_limit: CpuLimit = "2",
    memory_request: MemRequest = "512Mi", memory_limit: MemLimit = "2Gi",
) -> None:
    """A KServe InferenceService: a custom OIP (v2) predictor, canaries as canaryTrafficPercent."""
    from shipyard.export import ExportError, export_kserve

    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise ExportError("replicas: 0 <= min <= max, max at least 1")
    resources = _resources(cpu_request, cpu_limit, memory_request, memory_limit)
    plan = _plan(source, endpoint, trust)
    export_kserve(plan, output, force=force, image=image, name=name, namespace=namespace,
                  resources=resources, min_replicas=min_replicas, max_replicas=max_replicas,
                  api_keys=api_keys)
    _done(output, "a KServe InferenceService")
