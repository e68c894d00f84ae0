"""Exports of an endpoint to the engines that run containers: a Docker build context
(``docker``), Kubernetes manifests (``k8s``) and a KServe InferenceService (``kserve``), all
from one `ExportPlan` (``common``): the endpoint resolved to verified package versions."""

from shipyard.export.common import ExportError, ExportPlan, resolve
from shipyard.export.docker import export_docker
from shipyard.export.k8s import Resources, Scaling, export_k8s
from shipyard.export.kserve import export_kserve

__all__ = ["ExportError", "ExportPlan", "Resources", "Scaling", "export_docker", "export_k8s",
           "export_kserve", "resolve"]
