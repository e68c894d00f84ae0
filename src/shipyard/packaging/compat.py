"""Is a new signature a safe replacement for an old one? (The promotion guard's rule.)"""

from __future__ import annotations

from shipyard.packaging.signature import NUMERIC_DTYPES, ColumnSpec, Signature

# dtype -> dtypes that accept every value it holds (a client sending the old type still works)
_WIDER: dict[str, set[str]] = {
    "int8": {"int16", "int32", "int64", "float32", "float64"},
    "int16": {"int32", "int64", "float32", "float64"},
    "int32": {"int64", "float64"},
    "int64": {"float64"},
    "uint8": {"uint16", "uint32", "uint64", "int16", "int32", "int64", "float32", "float64"},
    "uint16": {"uint32", "uint64", "int32", "int64", "float32", "float64"},
    "uint32": {"uint64", "int64", "float64"},
    "float16": {"float32", "float64"},
    "float32": {"float64"},
}


def incompatibilities(old: Signature, new: Signature) -> list[str]:
    """Every way ``new`` would break clients of ``old``; empty when it is a safe replacement."""
    problems: list[str] = []
    if old.kind != new.kind:
        problems.append(f"signature kind changed: {old.kind} -> {new.kind}")
    new_inputs = {c.name: c for c in new.inputs}
    old_names = set(old.input_names)
    for spec in old.inputs:
        if spec.name not in new_inputs:
            problems.append(f"input {spec.name!r} removed or renamed")
        else:
            problems.extend(_input_problems(spec, new_inputs[spec.name]))
    for spec in new.inputs:
        if spec.name not in old_names and not spec.nullable:
            problems.append(f"new required input {spec.name!r} (old clients do not send it)")
    if old.task != new.task:
        problems.append(f"task changed: {old.task} -> {new.task}")
    old_out = {o.name: o for o in old.outputs}
    new_out = {o.name: o for o in new.outputs}
    for name in sorted(old_out.keys() - new_out.keys()):
        problems.append(f"output {name!r} removed")
    for name in sorted(old_out.keys() & new_out.keys()):
        a, b = old_out[name], new_out[name]
        if a.dtype != b.dtype and name != "probabilities":
            problems.append(f"output {name!r} type changed: {a.dtype} -> {b.dtype}")
        if a.shape[1:] != b.shape[1:] and name != "probabilities":
            problems.append(f"output {name!r} shape changed: {a.shape} -> {b.shape}")
    if old.class_labels != new.class_labels:
        problems.append(f"class labels changed: {_labels(old)} -> {_labels(new)}")
    return problems


def _input_problems(old: ColumnSpec, new: ColumnSpec) -> list[str]:
    out = []
    if old.dtype != new.dtype and new.dtype not in _WIDER.get(old.dtype, set()):
        narrowed = old.dtype in NUMERIC_DTYPES and new.dtype in NUMERIC_DTYPES
        out.append(f"input {old.name!r} type {'narrowed' if narrowed else 'changed'}: "
                   f"{old.dtype} -> {new.dtype}")
    if old.nullable and not new.nullable:
        out.append(f"input {old.name!r} no longer accepts nulls")
    if old.shape != new.shape:
        out.append(f"input {old.name!r} shape changed: {old.shape} -> {new.shape}")
    return out


def _labels(sig: Signature) -> str:
    return "none" if sig.class_labels is None else str(list(sig.class_labels))
