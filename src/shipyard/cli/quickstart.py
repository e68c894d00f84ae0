"""``shipyard quickstart``: the whole product on bundled data, narrated step by step."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from shipyard.cli.packaging import show_manifest
from shipyard.registry import Registry
from shipyard.settings import Settings


def run_quickstart(console: Console, directory: Path, settings: Settings, *,
                   serve: bool = True, keep_serving: bool | None = None) -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from shipyard.runtimes import load, package

    console.rule("[bold]shipyard quickstart")
    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target)
    # validation rows the model never sees: the monitoring reference (on its own training
    # rows an overfit model is over-confident, and the label-free estimate reads high)
    x_train, x_valid, y_train, y_valid = train_test_split(
        x_train, y_train, test_size=0.3, random_state=0, stratify=y_train)
    console.print(f"1. data: scikit-learn's bundled breast-cancer set, {len(x_train)} training, "
                  f"{len(x_valid)} validation and {len(x_test)} held-out test rows, "
                  f"{x_train.shape[1]} columns")

    started = time.perf_counter()
    model = Pipeline([("scale", StandardScaler()),
                      ("gb", GradientBoostingClassifier(n_estimators=50, random_state=0))])
    model.fit(x_train, y_train)
    accuracy = float((model.predict(x_test) == y_test).mean())
    console.print(f"2. trained StandardScaler + GradientBoostingClassifier in "
                  f"{time.perf_counter() - started:.1f}s (held-out accuracy {accuracy:.3f})")

    with console.status("3. packaging: signature, ONNX conversion, parity check…"):
        pkg = package(model, x_train, target=y_train, reference=(x_valid, y_valid),
                      name="breast-cancer",
                      params={"n_estimators": 50}, metrics={"accuracy": accuracy},
                      description="shipyard quickstart model")
        path = pkg.save(directory, overwrite=True)
    console.print(f"3. packaged to [bold]{path}[/]")
    show_manifest(console, pkg.manifest, max_inputs=6)

    loaded = load(path)
    console.print(f"4. loaded back with every file's SHA-256 verified: {loaded!r}")
    result = loaded.predict(x_test)
    agree = float(np.mean(result.predictions == model.predict(x_test)))
    proba = result.probabilities
    assert proba is not None
    diff = float(np.max(np.abs(proba - model.predict_proba(x_test))))
    console.print(f"5. predicted {len(result)} held-out rows: labels agree with scikit-learn on "
                  f"{agree:.1%} of rows, probabilities within {diff:.2g}")
    for row, label, p in zip(x_test.head(3).index, result.predictions[:3], proba[:3],
                             strict=True):
        console.print(f"   row {row}: label {label}  P(class 1) = {p[1]:.3f}")

    registry = Registry(settings=settings)
    with registry:
        version = registry.register(path, alias="production", tags={"source": "quickstart"})
        served = registry.get_version("breast-cancer@production")
    console.print(f"6. registered [bold]{version.uri}[/] in {registry.url} and pointed "
                  f"@production at it (now v{served.version})")
    from shipyard.service import load as load_uri

    production = load_uri("models:/breast-cancer@production", settings=settings)
    same = bool(np.array_equal(production.predict(x_test).predictions, result.predictions))
    console.print(f"7. loaded models:/breast-cancer@production from the registry: "
                  f"{'same predictions' if same else 'DIFFERENT predictions'}")
    from shipyard.cli.quickstart_batch import score_a_file

    if serve:
        from shipyard.cli.quickstart_rollout import Split, deploy_production, run_rollouts
        from shipyard.cli.quickstart_serve import serve_and_call

        deploy_production(console, settings, f"breast-cancer/{version.version}")
        serve_and_call(console, settings, "models:/breast-cancer@production", x_test, y_test)
        run_rollouts(console, settings, directory, Split(x_train, y_train, x_valid, y_valid,
                                                         x_test, y_test),
                     keep_serving=keep_serving,
                     before_waiting=lambda: score_a_file(console, settings, directory, x_test,
                                                         15))
    else:
        score_a_file(console, settings, directory, x_test, 8)
    console.print("\nnext: [cyan]shipyard models list[/], [cyan]shipyard models lineage "
                  f"breast-cancer/{version.version}[/], [cyan]shipyard audit[/], "
                  f"[cyan]shipyard inspect {path}[/]")
