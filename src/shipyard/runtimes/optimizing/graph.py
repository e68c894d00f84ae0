"""ONNX graph work: ONNX Runtime's offline graph optimisation and int8 quantisation.

Steps, on files in a scratch folder (ONNX Runtime's tools read and write paths):

1. ONNX Runtime's basic graph optimisations (constant folding, redundant nodes removed,
   semantics-preserving fusions into standard ONNX operators), saved offline;
2. ``int8``: dynamic quantisation (weights int8 now, activations quantised per batch at run
   time) or static (activations' ranges calibrated on rows given here); ``Gemm`` nodes with
   constant weights become ``MatMul`` + ``Add`` first, since the dynamic quantiser only
   quantises ``MatMul`` (``torch.nn.Linear`` exports as ``Gemm``); types and shapes are
   inferred first, as the quantiser wants;
3. the basic optimisations again, saved offline.

The result stays standard ONNX (the quantiser's ``MatMulInteger``, ``QuantizeLinear``...),
portable to any ONNX Runtime build and execution provider, and quantisable again after a
graph-only pass: the extended optimisations (fusions into ONNX Runtime's own CPU operators
such as ``FusedGemm`` or ``MatMulIntegerToFloat``, which the quantiser cannot read) are
hardware-specific and run when the package loads, as for every ONNX package.

``onnx`` (the ``[optimize]`` extra) is imported only here, on first use.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from shipyard.runtimes.optimizing.errors import OptimizationError
from shipyard.types import Array

Quantize = Literal["int8", "none"]
_DYNAMIC_OPS = ["MatMul"]
_STATIC_OPS = ["MatMul", "Gemm", "Conv"]


def optimize_onnx(model: bytes, *, quantize: Quantize, static: bool = False,
                  calibration: Sequence[dict[str, Array]] = (), reduce_range: bool = False,
                  ) -> bytes:
    """The model's bytes, graph-optimised and (``int8``) quantised. ``calibration``: the
    graph's feeds, one dict per batch, for static quantisation."""
    with tempfile.TemporaryDirectory(prefix="shipyard-optimize-") as tmp:
        work = Path(tmp)
        source = work / "source.onnx"
        source.write_bytes(model)
        basic = _ort_optimize(source, work / "basic.onnx",
                              ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
        if quantize == "none":
            return basic.read_bytes()
        quantized = work / "quantized.onnx"
        try:
            if static:
                _quantize_static(_prepared(basic, work / "prepared.onnx"), quantized,
                                 calibration, reduce_range)
            else:
                matmul = _gemm_as_matmul(basic, work / "matmul.onnx")
                _quantize_dynamic(_prepared(matmul, work / "prepared.onnx"), quantized,
                                  reduce_range)
        except OptimizationError:
            raise
        except Exception as exc:  # the quantiser raises many kinds; say which step failed
            raise OptimizationError(f"int8 quantisation failed: {type(exc).__name__}: "
                                    f"{_first_line(exc)}") from exc
        return _ort_optimize(quantized, work / "optimized.onnx",
                             ort.GraphOptimizationLevel.ORT_ENABLE_BASIC).read_bytes()


def _ort_optimize(source: Path, target: Path, level: ort.GraphOptimizationLevel) -> Path:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.optimized_model_filepath = str(target)
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(str(source), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise OptimizationError(f"ONNX Runtime cannot optimise the graph: {_first_line(exc)}"
                                ) from exc
    return target


def _prepared(source: Path, target: Path) -> Path:
    """The graph with every tensor's type and shape inferred, as the quantiser wants; the
    graph as it was when inference fails on it (the quantiser then assumes float). ONNX's
    own inference only: ONNX Runtime's symbolic one writes a file into the working
    directory when it cannot finish, and the graph holds only standard operators here."""
    from onnxruntime.quantization import quant_pre_process

    try:
        quant_pre_process(source, target, skip_optimization=True, skip_symbolic_shape=True)
    except Exception:  # the inference raises many kinds
        return source
    return target


def _extra_options() -> dict[str, Any]:
    from onnx import TensorProto

    # a tensor whose type inference could not find (after an operator of ONNX Runtime's
    # own) is float: quantisable weights and activations are
    return {"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT}


def _quantize_dynamic(source: Path, target: Path, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, target, op_types_to_quantize=_DYNAMIC_OPS, per_channel=False,
                     reduce_range=reduce_range, weight_type=QuantType.QInt8,
                     extra_options=_extra_options())


def _quantize_static(source: Path, target: Path, calibration: Sequence[dict[str, Array]],
                     reduce_range: bool) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not calibration:
        raise OptimizationError("static quantisation needs calibration rows; none were given")
    # u8 activations and s8 weights: ONNX Runtime's advice for x86 CPUs
    quantize_static(source, target, _Feeds(calibration), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=_STATIC_OPS, per_channel=False,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    extra_options=_extra_options())


class _Feeds:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over a list of feeds."""

    def __init__(self, batches: Sequence[dict[str, Array]]) -> None:
        self._batches: Iterator[dict[str, Array]] = iter(batches)

    def get_next(self) -> dict[str, Array] | None:
        return next(self._batches, None)


def _gemm_as_matmul(source: Path, target: Path) -> Path:
    """``Gemm(A, B, C)`` with constant ``B`` as ``MatMul(A, B') + C`` (``B'`` transposed
    when ``transB``, scaled by ``alpha``; ``C`` scaled by ``beta``). Other Gemms stay."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    nodes: list[Any] = []
    changed = False
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "Gemm" or attrs.get("transA", 0) or len(node.input) < 2 \
                or node.input[1] not in weights:
            nodes.append(node)
            continue
        b = numpy_helper.to_array(weights[node.input[1]])
        if attrs.get("transB", 0):
            b = b.T
        b = np.ascontiguousarray(b * np.asarray(attrs.get("alpha", 1.0), dtype=b.dtype))
        b_name = f"{node.input[1]}__matmul"
        graph.initializer.append(numpy_helper.from_array(b, b_name))
        has_bias = len(node.input) > 2 and node.input[2] != ""
        product = f"{node.output[0]}__matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], b_name], [product],
                                      name=f"{node.name}__matmul"))
        if has_bias:
            bias = node.input[2]
            beta = float(attrs.get("beta", 1.0))
            if beta != 1.0 and bias in weights:
                scaled = numpy_helper.to_array(weights[bias]) * beta
                bias = f"{bias}__beta"
                graph.initializer.append(numpy_helper.from_array(scaled.astype(b.dtype), bias))
            elif beta != 1.0:
                return source  # a computed bias scaled by beta: leave the graph as it was
            nodes.append(helper.make_node("Add", [product, bias], [node.output[0]],
                                          name=f"{node.name}__bias"))
        changed = True
    if not changed:
        return source
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)
    onnx.save(model, str(target))
    return target


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input}
    used |= {out.name for out in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
