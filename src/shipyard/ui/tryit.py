"""Try it: a form generated from the served version's signature (numbers, categories as
selects with their known values, booleans), prefilled from the package's input example. It
calls the server's own predict route (the real one: routed, logged, counted), shows the label
and each class's probability, and sends feedback on the answer."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from html import escape
from typing import Any

from shipyard.errors import NotFoundError, ShipyardError
from shipyard.packaging.signature import NUMERIC_DTYPES, ColumnSpec, Signature
from shipyard.service.dataplane import DataPlane
from shipyard.ui.layout import cell, page, table, url

# the predict route, called in process: (endpoint, JSON body, key headers) -> status, body
Predict = Callable[[str, bytes, dict[bytes, bytes]], Awaitable[tuple[int, bytes]]]


def served_signature(plane: DataPlane | None, name: str) -> tuple[Signature, dict[str, Any]]:
    """The signature of the version ``name`` answers with, and its input example's first row
    (empty without one)."""
    if plane is None:
        raise NotFoundError("Try it needs a model server: open the dashboard that "
                            "`shipyard serve` mounts at /ui")
    model = plane.endpoint(name).deployment().model
    example: dict[str, Any] = {}
    if model.manifest.input_example:
        try:
            rows = json.loads((model.path / model.manifest.input_example).read_text("utf-8"))
            example = rows[0] if isinstance(rows, list) and rows and isinstance(
                rows[0], dict) else {}
        except (OSError, ValueError):
            example = {}
    return model.signature, example


def form_page(name: str, signature: Signature, values: Mapping[str, Any], *,
              answer: str = "", notice: str = "") -> str:
    if signature.kind != "tabular":
        return page(f"Try {name}", "<p>Try it draws forms for tabular models; this one takes "
                    "tensors (POST them to the predict route).</p>", notice=notice)
    fields = "".join(_field(spec, values.get(spec.name)) for spec in signature.inputs)
    form = (f'<form class="card" method="post" action="{url("endpoints", name, "try")}">'
            f"<h2>Inputs</h2>{fields}<button type=\"submit\">Predict</button></form>")
    return page(f"Try {name}", f'<p><a href="{url("endpoints", name)}">Endpoint '
                f"{escape(name)}</a></p>" + form + answer, notice=notice)


def _field(spec: ColumnSpec, value: Any) -> str:
    ident = f"in-{spec.name}"
    lab = f'<label for="{escape(ident)}">{escape(spec.name)} <span class="meta">' \
          f"({escape(spec.dtype)})</span></label>"
    name = escape(spec.name)
    if spec.categories:
        options = "".join(f'<option{" selected" if str(c) == str(value) else ""}>'
                          f"{escape(str(c))}</option>" for c in spec.categories)
        control = f'<select id="{escape(ident)}" name="{name}">{options}</select>'
    elif spec.dtype == "bool":
        options = "".join(f'<option value="{v}"{" selected" if str(value).lower() == v else ""}'
                          f">{v}</option>" for v in ("true", "false"))
        control = f'<select id="{escape(ident)}" name="{name}">{options}</select>'
    elif spec.dtype in NUMERIC_DTYPES:
        step = "1" if spec.dtype.startswith(("int", "uint")) else "any"
        shown = "" if value is None else escape(str(value))
        control = (f'<input id="{escape(ident)}" name="{name}" type="number" step="{step}" '
                   f'value="{shown}"{"" if spec.nullable else " required"}>')
    else:
        shown = "" if value is None else escape(str(value))
        control = f'<input id="{escape(ident)}" name="{name}" value="{shown}">'
    return f'<div class="field">{lab}{control}</div>'


def parse_form(signature: Signature, form: Mapping[str, str]) -> dict[str, Any]:
    """The form's values as one JSON row, typed by the signature (the predict route checks
    them again)."""
    row: dict[str, Any] = {}
    for spec in signature.inputs:
        text = str(form.get(spec.name, "")).strip()
        if text == "":
            row[spec.name] = None
        elif spec.dtype == "bool":
            row[spec.name] = text.lower() == "true"
        elif spec.dtype in NUMERIC_DTYPES:
            try:
                number = float(text)
            except ValueError:
                raise ShipyardError(f"{spec.name}: {text!r} is not a number") from None
            row[spec.name] = int(number) if spec.dtype.startswith(("int", "uint")) \
                and math.isfinite(number) and number.is_integer() else number
        else:
            row[spec.name] = text
    return row


def answer_html(name: str, status: int, body: bytes, classes: Sequence[Any] | None) -> str:
    """The predict route's answer: label and per-class probabilities, and the feedback form
    for it; an error answer shown as the route gave it."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"error": body.decode("utf-8", "replace")}
    if status != 200:
        return (f'<div class="card error" role="alert"><h2>Answer: HTTP {status}</h2>'
                f"<p>{escape(str(doc.get('error', doc)))}</p></div>")
    predictions = doc.get("predictions") or [None]
    probabilities = (doc.get("probabilities") or [None])[0] or {}
    rows = [f'<tr><th scope="row">{escape(str(k))}</th>{cell(v, f"{v:.1%}", name=str(k))}</tr>'
            for k, v in probabilities.items()]
    request_id = str(doc.get("request_id", ""))
    options = "".join(f'<option{" selected" if str(c) == str(predictions[0]) else ""}>'
                      f"{escape(str(c))}</option>" for c in classes or ())
    label_control = (f'<select id="label" name="label">{options}</select>' if classes else
                     '<input id="label" name="label" required>')
    return (f'<section class="card" aria-live="polite" id="answer"><h2>Answer</h2>'
            f'<p>Label: <b data-metric="label">{escape(str(predictions[0]))}</b> '
            f"(model {escape(str(doc.get('model')))} v{escape(str(doc.get('version')))}, "
            f'request <code data-metric="request_id">{escape(request_id)}</code>)</p>'
            + (table("Probability per class", ["class", "probability"], rows) if rows else "")
            + f'<form method="post" action="{url("endpoints", name, "feedback")}">'
            f'<input type="hidden" name="request_id" value="{escape(request_id)}">'
            f'<div class="field"><label for="label">True label</label>{label_control}</div>'
            f"<button type=\"submit\">Send feedback</button></form></section>")


def feedback_label(signature: Signature, text: str) -> Any:
    """The label as the model's classes type it (``"1"`` -> 1 for integer classes)."""
    for c in signature.class_labels or ():
        if str(c) == text:
            return c
    if signature.task == "regression":
        try:
            return float(text)
        except ValueError:
            raise ShipyardError(f"the label {text!r} is not a number") from None
    return text
