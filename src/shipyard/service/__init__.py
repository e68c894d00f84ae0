"""The wiring layer: the one place that composes registry, runtimes, batching and logging."""

from shipyard.service.loading import load

__all__ = ["load"]
