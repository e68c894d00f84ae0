"""The input/output signature of a model: what it accepts and what it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.errors import ManifestError

Kind = Literal["tabular", "tensor"]
Task = Literal["classification", "regression", "other"]

NUMERIC_DTYPES = frozenset(
    {"float16", "float32", "float64", "int8", "int16", "int32", "int64",
     "uint8", "uint16", "uint32", "uint64"}
)
DTYPES = NUMERIC_DTYPES | {"bool", "string", "datetime"}


@dataclass(frozen=True)
class ColumnSpec:
    """One input: a column of a table (shape ``(-1,)``) or a tensor (``(-1, d1, ...)``).

    ``-1`` marks a free dimension; the first is always the row axis.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = (-1,)
    nullable: bool = False
    minimum: float | str | None = None  # str: ISO 8601 for datetimes
    maximum: float | str | None = None
    categories: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ManifestError(f"input {self.name!r}: unknown dtype {self.dtype!r}")
        if not self.shape or self.shape[0] != -1:
            raise ManifestError(f"input {self.name!r}: the first dimension must be -1 (rows)")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "dtype": self.dtype, "shape": list(self.shape),
            "nullable": self.nullable,
        }
        if self.minimum is not None or self.maximum is not None:
            out["range"] = [self.minimum, self.maximum]
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        try:
            rng = data.get("range") or [None, None]
            cats = data.get("categories")
            return cls(
                name=str(data["name"]), dtype=str(data["dtype"]),
                shape=tuple(int(d) for d in data.get("shape", [-1])),
                nullable=bool(data.get("nullable", False)),
                minimum=rng[0], maximum=rng[1],
                categories=None if cats is None else tuple(cats),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ManifestError(f"malformed input spec {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True)
class OutputSpec:
    """One output of the model as shipyard returns it (after normalisation)."""

    name: str
    dtype: str
    shape: tuple[int, ...] = (-1,)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSpec:
        try:
            return cls(str(data["name"]), str(data["dtype"]),
                       tuple(int(d) for d in data.get("shape", [-1])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"malformed output spec {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True)
class Signature:
    """What a model accepts (``inputs``) and returns (``outputs``).

    ``tabular`` models take named 1-D columns (clients send raw rows); ``tensor`` models take
    named n-D arrays. Classifiers list their ``class_labels``; their outputs are ``label`` and
    ``probabilities`` (one column per class, in ``class_labels`` order). Regressors output
    ``value``.
    """

    kind: Kind
    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[OutputSpec, ...] = ()
    task: Task = "other"
    class_labels: tuple[Any, ...] | None = None
    _by_name: dict[str, ColumnSpec] = field(init=False, repr=False, compare=False)
    # ``str`` of each class label: the keys of a JSON answer's per-class probabilities
    class_names: tuple[str, ...] | None = field(init=False, repr=False, compare=False)
    # validation's precomputed fast-path checks, filled on first use (see validation.py)
    _plain: Any = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        names = [c.name for c in self.inputs]
        if len(set(names)) != len(names):
            raise ManifestError(f"duplicate input names in signature: {names}")
        object.__setattr__(self, "_by_name", {c.name: c for c in self.inputs})
        object.__setattr__(self, "class_names", None if self.class_labels is None
                           else tuple(str(c) for c in self.class_labels))

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def input(self, name: str) -> ColumnSpec:
        return self._by_name[name]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "task": self.task,
            "inputs": [c.to_dict() for c in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
        }
        if self.class_labels is not None:
            out["class_labels"] = list(self.class_labels)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        kind = data.get("kind")
        if kind not in ("tabular", "tensor"):
            raise ManifestError(f"signature kind must be 'tabular' or 'tensor', got {kind!r}")
        task = data.get("task", "other")
        if task not in ("classification", "regression", "other"):
            raise ManifestError(f"unknown task {task!r}")
        labels = data.get("class_labels")
        return cls(
            kind=kind,
            inputs=tuple(ColumnSpec.from_dict(c) for c in _list(data, "inputs")),
            outputs=tuple(OutputSpec.from_dict(o) for o in _list(data, "outputs")),
            task=task,
            class_labels=None if labels is None else tuple(labels),
        )

    def with_outputs(self, outputs: Sequence[OutputSpec], task: Task,
                     class_labels: Sequence[Any] | None) -> Signature:
        return Signature(self.kind, self.inputs, tuple(outputs), task,
                         None if class_labels is None else tuple(class_labels))


def _list(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ManifestError(f"signature {key!r} must be a list")
    return value
