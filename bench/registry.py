"""Model-registry operations per second: shipyard versus MLflow's model registry, both on SQLite.

    .venv/bin/python bench/registry.py            # full run (7 trials), ~2.5-3 min
    .venv/bin/python bench/registry.py --quick    # smoke run (3 short trials), < 1 min
    .venv/bin/python bench/registry.py --json results.json

MLflow is never installed into the project venv: on first use this script creates
``bench/.envs/mlflow`` with ``python -m venv`` and pip-installs ``mlflow`` there (falling back to
``mlflow-skinny`` plus scikit-learn if that fails). The MLflow side runs in that interpreter as
``bench/_mlflow_worker.py``, a long-lived subprocess that takes JSON requests on stdin and
answers JSON timings on stdout, so its trials interleave with shipyard's, trial by trial.

Both sides fit the same model (``LogisticRegression(max_iter=1000)`` on iris) and do the same
things the same number of times:

* registration: N new versions of one model, each trial on a fresh database (a copy of a
  migrated, empty one) and a fresh artifact store, in two flavours: registering an
  already-saved/logged model, and going from the fitted model to a registered version;
* resolving ``NAME/3`` and ``NAME@production`` and moving an alias, on a database holding 50
  versions.

Figures are medians over interleaved trials (rotating who goes first); the ratio is shipyard's
median ops/s over MLflow's: above 1 means shipyard is faster.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from _timing import calibrate, machine_info, spread, time_calls, write_json

HERE = Path(__file__).resolve().parent
ENV_DIR = HERE / ".envs" / "mlflow"
ENV_PYTHON = ENV_DIR / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
INSTALL_MARKER = ENV_DIR / "bench-install.json"
INSTALL_LOG = HERE / ".envs" / "mlflow-install.log"
WORKER = HERE / "_mlflow_worker.py"

MODEL = "bench-iris"
SHIPYARD, MLFLOW = "shipyard", "MLflow"


@dataclass
class Series:
    """One contender's trials for one thing timed, as operations per second."""

    contender: str
    key: str
    ops_per_s: list[float] = field(default_factory=list)
    iterations: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.ops_per_s)

    @property
    def spread(self) -> float:
        return spread(self.ops_per_s)


@dataclass(frozen=True)
class Row:
    """A line of the table: a shipyard series against an MLflow series."""

    label: str
    shipyard: str  # series keys
    mlflow: str
    shipyard_call: str
    mlflow_call: str


ROWS = (
    Row("register saved model", "register_saved", "register_model",
        "reg.register(package_dir, name=...)",
        "mlflow.register_model(model_uri, name)  [model logged once, untimed]"),
    Row("  same, MLflow client API", "register_saved", "create_model_version",
        "(same shipyard figure)",
        "client.create_registered_model once + client.create_model_version(name, uri, run_id)"),
    Row("register from fitted model", "register_fitted", "log_model",
        "reg.register(shipyard.package(model, X, name=...), name=...)",
        "start_run + mlflow.sklearn.log_model(model, input_example=X[:5], "
        "registered_model_name=...)"),
    Row("  same, MLflow reqs pinned", "register_fitted", "log_model_pinned",
        "(same shipyard figure)",
        "as above with pip_requirements=[scikit-learn==...] (skips requirement inference)"),
    Row("get version NAME/3", "get_version", "get_version",
        'reg.get_version("bench-iris/3")', 'client.get_model_version("bench-iris", "3")'),
    Row("get by alias @production", "get_by_alias", "get_by_alias",
        'reg.get_version("bench-iris@production")',
        'client.get_model_version_by_alias("bench-iris", "production")'),
    Row("set alias", "set_alias", "set_alias",
        'reg.set_alias("bench-iris", "staging", v)',
        'client.set_registered_model_alias("bench-iris", "staging", v)  [v cycles over all]'),
)
SHIPYARD_REGISTER = ("register_saved", "register_fitted")
MLFLOW_REGISTER = ("register_model", "create_model_version", "log_model", "log_model_pinned")
LOOKUPS = ("get_version", "get_by_alias", "set_alias")


# --- timing -------------------------------------------------------------------------------


def copy_db(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dest}{suffix}")


# --- the MLflow environment and worker ----------------------------------------------------


def ensure_mlflow_env(reinstall: bool) -> dict[str, Any]:
    """Create ``bench/.envs/mlflow`` and install MLflow into it unless already done."""
    if INSTALL_MARKER.is_file() and ENV_PYTHON.exists() and not reinstall:
        return {**json.loads(INSTALL_MARKER.read_text(encoding="utf-8")), "installed_now": False}
    if ENV_DIR.exists():  # a half-made environment (interrupted install) or --reinstall
        shutil.rmtree(ENV_DIR)
    print(f"creating {ENV_DIR.relative_to(HERE.parent)} and pip-installing mlflow into it "
          f"(first run only; about a minute; log: {INSTALL_LOG.relative_to(HERE.parent)}) ...",
          flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(ENV_DIR)], check=True)
    INSTALL_LOG.parent.mkdir(parents=True, exist_ok=True)
    chosen = None
    with INSTALL_LOG.open("w", encoding="utf-8") as log:
        for dist, requirements in (("mlflow", ["mlflow"]),
                                   ("mlflow-skinny", ["mlflow-skinny", "scikit-learn"])):
            log.write(f"$ pip install {' '.join(requirements)}\n")
            log.flush()
            done = subprocess.run(
                [str(ENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check",
                 *requirements], stdout=log, stderr=subprocess.STDOUT, check=False)
            if done.returncode == 0 and subprocess.run(
                    [str(ENV_PYTHON), "-c", "import mlflow.sklearn, sklearn"],
                    stdout=log, stderr=subprocess.STDOUT, check=False).returncode == 0:
                chosen = dist
                break
            print(f"  installing {dist} failed (see the log)"
                  + ("; trying mlflow-skinny + scikit-learn" if dist == "mlflow" else ""),
                  file=sys.stderr, flush=True)
    if chosen is None:
        raise SystemExit(f"could not install MLflow into {ENV_DIR}; see {INSTALL_LOG}")
    info = {"distribution": chosen, "install_seconds": time.perf_counter() - started,
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    INSTALL_MARKER.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {**info, "installed_now": True}


class MlflowWorker:
    """``bench/_mlflow_worker.py`` running in the MLflow venv, one JSON line each way."""

    def __init__(self, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
               and not k.startswith("MLFLOW_")}
        # no usage telemetry from the benchmark (MLflow 3 sends it from a background thread)
        env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
        self.log_path = log_path
        self._log: IO[str] = log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [str(ENV_PYTHON), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, text=True, encoding="utf-8", env=env, bufsize=1)

    def send(self, cmd: str, **params: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **params}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the MLflow worker exited (status {self.proc.wait()})\n"
                               + self.log_tail())
        reply: dict[str, Any] = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError(f"the MLflow worker failed: {reply['error']}\n" + self.log_tail())
        return reply

    def request(self, cmd: str, **params: Any) -> dict[str, Any]:
        self.send(cmd, **params)
        return self.receive()

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "--- MLflow worker stderr (tail) ---\n" + "\n".join(text[-lines:])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --- the shipyard side --------------------------------------------------------------------


class ShipyardSide:
    """The same operations on shipyard's registry, in this process."""

    def __init__(self, root: Path) -> None:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        import shipyard

        self.shipyard = shipyard
        self.root = root
        self.features, target = load_iris(return_X_y=True)
        self.model = LogisticRegression(max_iter=1000).fit(self.features, target)
        self.trial = 0
        self.alias_cursor = 0
        self.populate = 0
        self.ops: dict[str, Callable[[], object]] = {}
        self.registry: Any = None

    def _open(self, db: Path, artifacts: Path) -> Any:
        from shipyard.settings import Settings

        return self.shipyard.Registry(
            url=f"sqlite:///{db}", artifacts=artifacts, actor="bench",
            settings=Settings.from_env({"SHIPYARD_HOME": str(self.root / "home")}))

    def _package(self) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pkg = self.shipyard.package(self.model, self.features, name=MODEL)
        for w in caught:
            print(f"  warning while packaging: {w.message}", file=sys.stderr)
        return pkg

    def setup(self, populate: int, production: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        pkg = self._package()
        self.package_dir = Path(pkg.save(self.root / "package"))
        self.runtime = pkg.manifest.runtime.name
        self.template_db = self.root / "template" / "reg.db"
        self._open(self.template_db, self.root / "template" / "artifacts").close()  # migrate
        template_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        self.populate = populate
        copy_db(self.template_db, self.root / "resolve" / "reg.db")
        reg = self._open(self.root / "resolve" / "reg.db", self.root / "resolve" / "artifacts")
        for _ in range(populate):
            reg.register(self.package_dir, name=MODEL)
        reg.set_alias(MODEL, "production", production)
        self.registry = reg

        def set_alias() -> None:
            self.alias_cursor += 1
            reg.set_alias(MODEL, "staging", 1 + self.alias_cursor % populate)

        self.ops = {
            "get_version": lambda: reg.get_version(f"{MODEL}/3"),
            "get_by_alias": lambda: reg.get_version(f"{MODEL}@production"),
            "set_alias": set_alias,
        }
        got = (reg.get_version(f"{MODEL}/3").version,
               reg.get_version(f"{MODEL}@production").version)
        if got != (3, production):
            raise RuntimeError(f"populated shipyard registry answers {got}")
        return {"template_s": template_s, "populate_s": time.perf_counter() - t1}

    def register(self, variant: str, n: int) -> float:
        self.trial += 1
        trial_dir = self.root / f"trial-{self.trial}"
        copy_db(self.template_db, trial_dir / "reg.db")
        reg = self._open(trial_dir / "reg.db", trial_dir / "artifacts")
        try:
            if variant == "register_saved":
                def one() -> object:
                    return reg.register(self.package_dir, name=MODEL)
            else:
                def one() -> object:
                    return reg.register(self._package(), name=MODEL)
            elapsed = time_calls(one, n)
            latest = reg.get_version(MODEL).version
            if latest != n:
                raise RuntimeError(f"{variant}: expected {n} versions, the registry has {latest}")
        finally:
            reg.close()
        return elapsed

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()


# --- reporting ----------------------------------------------------------------------------


def human(rate: float) -> str:
    if rate >= 1e3:
        return f"{rate / 1e3:.2f}k"
    return f"{rate:.2f}" if rate < 10 else f"{rate:.1f}"


def ratio_text(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def versions_here() -> dict[str, Any]:
    import sklearn
    import sqlalchemy

    import shipyard

    return {
        "python": platform.python_version(),
        "shipyard": shipyard.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": __import__("sqlite3").sqlite_version,
        "sklearn": sklearn.__version__,
    }


def print_header(info: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any],
                 install: dict[str, Any], args: argparse.Namespace) -> None:
    how = ("installed by this run" if install["installed_now"]
           else f"installed {install.get('installed_at', '?')}")
    print("shipyard vs MLflow model-registry benchmark (SQLite)")
    print(f"  machine     : {info['cpu_count']} CPUs (affinity {info['affinity']}), "
          f"{info['platform']}")
    print(f"  shipyard    : shipyard {ours['shipyard']}, python {ours['python']}, sqlalchemy "
          f"{ours['sqlalchemy']}, sqlite {ours['sqlite']}, scikit-learn {ours['sklearn']} "
          "(project venv)")
    print(f"  MLflow      : {theirs['distribution']} {theirs['mlflow']}, python "
          f"{theirs['python']}, sqlalchemy {theirs['sqlalchemy']}, alembic {theirs['alembic']}, "
          f"scikit-learn {theirs['sklearn']} (bench/.envs/mlflow, {how}, pip install took "
          f"{install['install_seconds']:.0f} s)")
    print(f"  method      : {args.trials} interleaved trials; registration: {args.versions} "
          f"versions per trial from a saved model, {args.fitted_versions} from the fitted "
          "model, fresh database + artifact store each trial;")
    print(f"                lookups/alias: ~{args.trial_seconds:g} s per trial on a database "
          f"with {args.populate} versions; median ops/s; ratio = shipyard / MLflow")
    print()


def print_table(series: dict[tuple[str, str], Series], args: argparse.Namespace) -> None:
    headers = ["operation", "per trial", "shipyard ops/s", "MLflow ops/s", "ratio",
               "noise s/m"]
    rows: list[list[str]] = []
    for row in ROWS:
        ours, theirs = series[(SHIPYARD, row.shipyard)], series[(MLFLOW, row.mlflow)]
        if row.shipyard in SHIPYARD_REGISTER:
            count = args.versions if row.shipyard == "register_saved" else args.fitted_versions
            per_trial = f"{count} version{'s' if count > 1 else ''}"
        else:
            per_trial = f"{ours.iterations}/{theirs.iterations} calls"
        rows.append([row.label, per_trial, human(ours.median), human(theirs.median),
                     ratio_text(ours.median / theirs.median),
                     f"{ours.spread:.0%}/{theirs.spread:.0%}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = {1, 2, 3, 4, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for i, cells in enumerate(rows):
        if i in (2, 4):
            print()
        print(line(cells))
    print()
    print("ratio = shipyard median / MLflow median: > 1 means shipyard is faster. noise = IQR / "
          "median of the trials, shipyard/MLflow.")
    print("per trial: versions registered (registration rows) or calls per trial, "
          "shipyard/MLflow (lookup rows).")
    print()
    print("what each row times (shipyard | MLflow):")
    for row in ROWS:
        print(f"  {row.label.strip()}:")
        print(f"      shipyard  {row.shipyard_call}")
        print(f"      MLflow    {row.mlflow_call}")
    print("The realistic MLflow path from a training script is 'register from fitted model' "
          "(log_model with registered_model_name);")
    print("'register saved model' compares registering an existing artifact: a saved shipyard "
          "package directory vs an already logged MLflow model.")


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 short trials and fewer versions (a smoke run, < 1 min)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--trials", type=int, help="timed trials per contender (default 7)")
    parser.add_argument("--trial-seconds", type=float,
                        help="target duration of one lookup trial (default 0.2)")
    parser.add_argument("--versions", type=int,
                        help="versions registered per trial from a saved model (default 50)")
    parser.add_argument("--fitted-versions", type=int,
                        help="versions registered per trial from the fitted model (default 3; "
                             "MLflow's log_model takes seconds each)")
    parser.add_argument("--populate", type=int, default=50,
                        help="versions in the database the lookups run on (default 50)")
    parser.add_argument("--reinstall", action="store_true",
                        help="recreate bench/.envs/mlflow and reinstall MLflow")
    args = parser.parse_args(argv)
    args.trials = args.trials or (3 if args.quick else 7)
    args.trial_seconds = args.trial_seconds or (0.05 if args.quick else 0.2)
    args.versions = args.versions or (10 if args.quick else 50)
    args.fitted_versions = args.fitted_versions or (1 if args.quick else 3)
    if min(args.trials, args.versions, args.fitted_versions) < 1 or args.trial_seconds <= 0:
        parser.error("--trials, --versions and --fitted-versions must be >= 1, "
                     "--trial-seconds > 0")
    if args.populate < 3:
        parser.error("--populate must be at least 3 (the lookups resolve version 3)")
    args.production = max(3, args.populate - 8)  # alias "production": not the newest version
    return args


def run(args: argparse.Namespace, root: Path, worker: MlflowWorker,
        side: ShipyardSide) -> tuple[dict[tuple[str, str], Series], dict[str, Any]]:
    series: dict[tuple[str, str], Series] = {}
    for key in SHIPYARD_REGISTER + LOOKUPS:
        series[(SHIPYARD, key)] = Series(SHIPYARD, key)
    for key in MLFLOW_REGISTER + LOOKUPS:
        series[(MLFLOW, key)] = Series(MLFLOW, key)

    # setups run concurrently: the MLflow worker's in its process, shipyard's here
    worker.send("setup", dir=str(root / "mlflow"), model=MODEL, populate=args.populate,
                production=args.production)
    ours = side.setup(args.populate, args.production)
    theirs = worker.receive()
    setup = {"shipyard": ours, "mlflow": theirs}
    print(f"setup: shipyard package + template {ours['template_s']:.1f} s, populate "
          f"{args.populate} versions {ours['populate_s']:.1f} s (runtime {side.runtime!r}); "
          f"MLflow template + log_model {theirs['template_s']:.1f} s, populate "
          f"{theirs['populate_s']:.1f} s", flush=True)

    print("registration trials ", end="", flush=True)
    jobs: list[tuple[str, str]] = ([(SHIPYARD, k) for k in SHIPYARD_REGISTER]
                                   + [(MLFLOW, k) for k in MLFLOW_REGISTER])
    for trial in range(args.trials):
        gc.collect()
        shift = trial % len(jobs)
        for contender, key in jobs[shift:] + jobs[:shift]:  # rotate who goes first
            n = args.versions if key in ("register_saved", "register_model",
                                         "create_model_version") else args.fitted_versions
            if contender == SHIPYARD:
                elapsed = side.register(key, n)
            else:
                elapsed = worker.request("register", variant=key, n=n)["elapsed"]
            series[(contender, key)].ops_per_s.append(n / elapsed)
        print(".", end="", flush=True)
    print()

    print("lookup trials ", end="", flush=True)
    for op in LOOKUPS:
        mine, other = series[(SHIPYARD, op)], series[(MLFLOW, op)]
        mine.iterations = calibrate(side.ops[op], args.trial_seconds, min_calls=5)
        other.iterations = worker.request("calibrate", op=op,
                                          trial_seconds=args.trial_seconds)["iterations"]
        for trial in range(args.trials):
            gc.collect()
            for contender in ((SHIPYARD, MLFLOW) if trial % 2 == 0 else (MLFLOW, SHIPYARD)):
                if contender == SHIPYARD:
                    elapsed = time_calls(side.ops[op], mine.iterations)
                    mine.ops_per_s.append(mine.iterations / elapsed)
                else:
                    elapsed = worker.request("time", op=op, iterations=other.iterations)[
                        "elapsed"]
                    other.ops_per_s.append(other.iterations / elapsed)
        print(".", end="", flush=True)
    print("\n")
    return series, setup


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install = ensure_mlflow_env(args.reinstall)
    started = time.perf_counter()  # the wall time reported excludes a first-run install
    if install["installed_now"]:
        print(f"installed {install['distribution']} in {install['install_seconds']:.0f} s\n",
              flush=True)
    info, ours = machine_info(), versions_here()
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-registry-") as tmp:
        root = Path(tmp)
        worker = MlflowWorker(root / "mlflow-worker.log")
        side = None
        try:
            theirs = worker.request("hello")
            print_header(info, ours, theirs, install, args)
            side = ShipyardSide(root / "shipyard")
            series, setup = run(args, root, worker, side)
        finally:
            if side is not None:
                side.close()
            worker.close()
    print_table(series, args)
    elapsed = time.perf_counter() - started
    print(f"\ntotal wall time {elapsed:.0f} s (MLflow install not included)"
          if install["installed_now"] else f"\ntotal wall time {elapsed:.0f} s")
    if args.json:
        payload = {
            "machine": info,
            "shipyard_env": ours,
            "mlflow_env": theirs,
            "mlflow_install": install,
            "config": {"trials": args.trials, "trial_seconds": args.trial_seconds,
                       "quick": args.quick, "versions": args.versions,
                       "fitted_versions": args.fitted_versions, "populate": args.populate,
                       "model": MODEL, "production_version": args.production},
            "setup": setup,
            "series": [{"contender": s.contender, "key": s.key, "trials_ops_per_s": s.ops_per_s,
                        "median_ops_per_s": s.median, "iqr_over_median": s.spread,
                        "iterations_per_trial": s.iterations or None}
                       for s in series.values()],
            "rows": [{"operation": r.label.strip(), "shipyard": r.shipyard_call,
                      "mlflow": r.mlflow_call,
                      "shipyard_ops_per_s": series[(SHIPYARD, r.shipyard)].median,
                      "mlflow_ops_per_s": series[(MLFLOW, r.mlflow)].median,
                      "ratio": series[(SHIPYARD, r.shipyard)].median
                      / series[(MLFLOW, r.mlflow)].median}
                     for r in ROWS],
            "wall_seconds": elapsed,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
