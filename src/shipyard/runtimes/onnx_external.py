"""The files an ONNX graph reads besides itself (external data), checked against the package.

A tensor of an ONNX graph may keep its values in another file (``external_data``
``location``), which ONNX Runtime opens while it loads the graph. That file must be one the
package lists for the runtime, so its SHA-256 was verified like the graph's own: a file the
manifest does not list is read with no hash check, and ONNX Runtime before 1.24 also
followed a location that is absolute, climbs out with ``..`` or is a link to elsewhere
(any file the server can read would become weights, and its bytes would come back in the
predictions). Reading the graph's locations needs the ``onnx`` package; without it ONNX
Runtime's own check is the only one.

A tensor's location is a string entry keyed ``location``, whose bytes stand in the file as
they are: a graph file without them names no other file, and is passed without importing
``onnx`` (~50 ms of a batch run's start) or parsing the graph a second time.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shipyard.errors import ManifestError
from shipyard.packaging.integrity import safe_relpath


def check_external_data(graph_file: Path, listed: Iterable[str]) -> None:
    """ManifestError naming the first external-data location of ``graph_file`` that is not
    one of ``listed`` (package-relative paths of files whose hashes were verified)."""
    if not _may_name_files(graph_file):
        return
    try:
        import onnx
    except ImportError:
        return
    allowed = set(listed)
    model = onnx.load(str(graph_file), load_external_data=False)
    tensors = [*_graph_tensors(model.graph),
               *(t for function in model.functions for t in _node_tensors(function.node))]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if safe_relpath(location) not in allowed:  # absolute or "..": ManifestError too
            raise ManifestError(
                f"{graph_file.name}: tensor {tensor.name!r} reads its values from "
                f"{location!r}, which is not a file of this package's runtime entry (only "
                "listed files are hash-verified before loading)")


def _may_name_files(graph_file: Path) -> bool:
    """Whether the graph's bytes hold the key of an external-data location."""
    with graph_file.open("rb") as handle:
        try:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return data.find(b"location") >= 0
        except ValueError:  # an empty file: no tensor at all
            return False


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[Any]) -> Iterator[Any]:
    """Tensors in node attributes (``Constant`` values), subgraphs (``If``, ``Loop``) too."""
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
            for sparse in attr.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for graph in attr.graphs:
                yield from _graph_tensors(graph)
