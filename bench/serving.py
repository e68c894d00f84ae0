"""HTTP serving throughput and latency: shipyard versus MLServer, BentoML, MLflow and a raw
ASGI hello-world, one server after another in one run, all loaded by ``wrk``.

    .venv/bin/python bench/serving.py             # full run: 10 s of load per server, ~2-2.5 min
    .venv/bin/python bench/serving.py --quick     # smoke run: 5 s per server
    .venv/bin/python bench/serving.py --json results.json
    .venv/bin/python bench/serving.py --workers 2 --peers shipyard,mlserver

Every server serves the same model, trained once here: ``StandardScaler`` +
``GradientBoostingClassifier(n_estimators=100, random_state=0)`` on
``make_classification(n_samples=20000, n_features=30, n_informative=12, random_state=0)``,
saved in each server's own format:

* shipyard: ``shipyard.package(pipe, X, name="bench")`` (ONNX), ``shipyard serve DIR``, from
  the project venv, default config (adaptive batching 32 rows / 2 ms, input validation,
  prediction log at 100 %); its simple-JSON route counts in the targets, and a reference row
  loads its Open Inference Protocol route (``/v2/models/bench/infer``) with the request
  MLServer gets;
* MLServer: ``mlserver-sklearn`` on a joblib file, adaptive batching on (``max_batch_size`` 32,
  ``max_batch_time`` 2 ms), from ``bench/.envs/mlserver``;
* BentoML: ``bench/_bentoml_service.py``, ``@bentoml.api(batchable=True)`` on the joblib file,
  from ``bench/.envs/bentoml``;
* MLflow: ``mlflow.sklearn.save_model`` + ``mlflow models serve --env-manager local``, from
  ``bench/.envs/mlflow`` (the venv ``bench/registry.py`` makes; reused when present);
* hello-world: ``bench/_hello_asgi.py``, a raw ASGI app answering a constant, under uvicorn with
  the options ``shipyard serve`` uses: the HTTP ceiling of this machine.

Peers are never installed into the project venv: on first use the script creates each peer's
venv under ``bench/.envs/`` (git-ignored) and pip-installs the newest release there.
Every server listens on 127.0.0.1 only, with the same number of workers (``--workers``, 1 by
default) and access logs off. Before timing, each server must answer one row with the label
scikit-learn gives. Then ``wrk`` (2 threads, 64 connections, a single-row JSON POST) warms it up
and loads it for ``--duration`` seconds; the table gives requests/s, p50 / p99 latency and
errors, and shipyard's ratios to MLServer and to the hello-world ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from _timing import listed, machine_info, tree_pids, write_json

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENVS = HERE / ".envs"
PROJECT_BIN = Path(sys.executable).parent

MAX_BATCH_SIZE = 32  # the same adaptive-batching limits for shipyard, MLServer and BentoML
MAX_BATCH_MS = 2.0
ENDPOINT = "bench"
TARGET_VS_MLSERVER = 3.0
TARGET_VS_HELLO = 0.5
TARGET_P99_MS = 50.0


# --- peer virtualenvs ---------------------------------------------------------------------


@dataclass(frozen=True)
class PeerEnv:
    """A peer's own venv under ``bench/.envs/<name>``, created on first use."""

    name: str
    attempts: tuple[tuple[str, tuple[str, ...]], ...]  # (what it is, pip requirements), in order
    check: str  # Python that must run in the venv once installed
    dists: tuple[str, ...]  # distributions whose versions the header prints

    @property
    def dir(self) -> Path:
        return ENVS / self.name

    @property
    def python(self) -> Path:
        return self.dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    @property
    def bin(self) -> Path:
        return self.python.parent

    @property
    def marker(self) -> Path:
        return self.dir / "bench-install.json"

    @property
    def log(self) -> Path:
        return ENVS / f"{self.name}-install.log"


def peer_envs(sklearn_version: str) -> dict[str, PeerEnv]:
    pin = f"scikit-learn=={sklearn_version}"  # the joblib file unpickles in the same version
    common = ("scikit-learn", "numpy", "uvicorn", "uvloop", "httptools")
    return {
        # the same venv, marker and log as bench/registry.py, so either script reuses it
        "mlflow": PeerEnv("mlflow", (("mlflow", ("mlflow",)),
                                     ("mlflow-skinny", ("mlflow-skinny", "scikit-learn"))),
                          "import mlflow.sklearn, sklearn",
                          ("mlflow", "mlflow-skinny", "fastapi", *common)),
        "mlserver": PeerEnv("mlserver",
                            # uvloop>=0.22 crashes MLServer 1.7's inference-pool workers
                            # at start (SeldonIO/MLServer#2286): its default config would not
                            # start, so pin the last uvloop that works with it
                            ((f"mlserver + mlserver-sklearn, {pin}, uvloop<0.22",
                              ("mlserver", "mlserver-sklearn", pin, "uvloop<0.22")),
                             ("mlserver + mlserver-sklearn, uvloop<0.22",
                              ("mlserver", "mlserver-sklearn", "uvloop<0.22")),
                             ("mlserver + mlserver-sklearn", ("mlserver", "mlserver-sklearn"))),
                            "import mlserver, mlserver_sklearn, sklearn, joblib",
                            ("mlserver", "mlserver-sklearn", "fastapi", *common)),
        "bentoml": PeerEnv("bentoml", ((f"bentoml, {pin}", ("bentoml", pin)),
                                       ("bentoml, scikit-learn", ("bentoml", "scikit-learn"))),
                           "import bentoml, sklearn, joblib",
                           ("bentoml", "starlette", *common)),
    }


def ensure_env(spec: PeerEnv, reinstall: bool) -> dict[str, Any]:
    """Create the venv and pip-install the peer unless already done; never raises for a
    failed install (the peer is then reported as unavailable)."""
    if spec.marker.is_file() and spec.python.exists() and not reinstall:
        return {**json.loads(spec.marker.read_text(encoding="utf-8")), "installed_now": False}
    if spec.dir.exists():  # a half-made environment (interrupted install) or --reinstall
        shutil.rmtree(spec.dir)
    print(f"creating {spec.dir.relative_to(ROOT)} and pip-installing {spec.name} into it "
          f"(first run only; about a minute; log: {spec.log.relative_to(ROOT)}) ...", flush=True)
    started = time.perf_counter()
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([sys.executable, "-m", "venv", str(spec.dir)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return {"error": f"python -m venv failed: {made.stderr.strip()[-200:]}",
                "installed_now": True}
    chosen = None
    with spec.log.open("w", encoding="utf-8") as log:
        for label, requirements in spec.attempts:
            log.write(f"$ pip install {' '.join(requirements)}\n")
            log.flush()
            done = subprocess.run(
                [str(spec.python), "-m", "pip", "install", "--disable-pip-version-check",
                 *requirements], stdout=log, stderr=subprocess.STDOUT, check=False)
            if done.returncode == 0 and subprocess.run(
                    [str(spec.python), "-c", spec.check],
                    stdout=log, stderr=subprocess.STDOUT, check=False).returncode == 0:
                chosen = label
                break
            print(f"  installing {label} failed (see the log)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    if chosen is None:
        return {"error": f"pip install failed (see {spec.log.relative_to(ROOT)})",
                "install_seconds": seconds, "installed_now": True}
    info = {"distribution": chosen, "install_seconds": seconds,
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    spec.marker.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"  installed {chosen} in {seconds:.0f} s", flush=True)
    return {**info, "installed_now": True}


VERSIONS_CODE = """
import importlib.metadata as md, json, platform, sys
out = {"python": platform.python_version()}
for dist in sys.argv[1:]:
    try:
        out[dist] = md.version(dist)
    except md.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def env_versions(python: Path, dists: tuple[str, ...]) -> dict[str, str]:
    done = subprocess.run([str(python), "-c", VERSIONS_CODE, *dists], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-200:]}
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("wrk is missing: apt-get update && apt-get install -y wrk ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("this benchmark needs wrk (https://github.com/wg/wrk): "
                     "apt-get install -y wrk, or build it and put it on PATH")


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def process_tree(root: int) -> dict[int, float]:
    """The process ``root`` and its descendants (whatever session they moved to), with their
    CPU seconds so far (Linux)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    tree = {}
    for pid in tree_pids(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        tree[pid] = (int(fields[11]) + int(fields[12])) / tick
    return tree


class ServerProcess:
    """A server we started: its process, its descendants, its log."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.cmd, self.log_path = cmd, log_path
        self._log = log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.known: set[int] = {self.proc.pid}

    def tree(self) -> dict[int, float]:
        tree = process_tree(self.proc.pid)
        self.known.update(tree)
        return tree

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(f"    | {line}" for line in text[-lines:])

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the server (it shuts down gracefully, flushing logs), then SIGKILL whatever
        it started that is still there. Only processes this object started are signalled."""
        self.tree()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = [pid for pid in self.known if pid != self.proc.pid and _pid_alive(pid)]
            if not left:
                break
            time.sleep(0.2)
        for pid in self.known:
            if pid != self.proc.pid and _pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def post_json(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")[:300]


class UnavailableError(Exception):
    """This server could not be installed, prepared, started or checked."""


# --- the servers --------------------------------------------------------------------------


@dataclass
class Prepared:
    """Everything needed to start one server and talk to it."""

    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    url: str
    body: bytes
    label_of: Callable[[Any], Any] | None  # response -> predicted label (None: hello-world)
    ready_s: float = 180.0


@dataclass
class Server:
    key: str
    label: str
    workers: str  # how the worker count was configured, for the table
    prepare: Callable[[], Prepared]
    env_name: str | None = None  # the peer venv it runs from; None: the project venv
    primary: bool = True  # counted in the ratios (False: a reference row)


@dataclass
class Outcome:
    server: Server
    status: str = "ok"  # "ok" or "unavailable: ..."
    result: dict[str, Any] = field(default_factory=dict)


def peer_env_vars(extra: dict[str, str] | None = None, bin_dir: Path | None = None
                  ) -> dict[str, str]:
    """The caller's environment without venv / tool-specific variables, telemetry off."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
           and not k.startswith(("MLFLOW_", "BENTOML_", "MLSERVER_", "UVICORN_"))
           and not (k.startswith("SHIPYARD_") and k not in (
               "SHIPYARD_ORT_THREADS", "SHIPYARD_ORT_INTER_OP_THREADS", "SHIPYARD_DEVICE"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"})
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


class Bench:
    """The model, trained once, and how each server gets it."""

    def __init__(self, root: Path, workers: int, envs: dict[str, PeerEnv]) -> None:
        self.root, self.workers, self.envs = root, workers, envs
        self.setup: dict[str, float] = {}

    def train(self) -> None:
        import joblib
        from sklearn.datasets import make_classification
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        t0 = time.perf_counter()
        features, target = make_classification(n_samples=20000, n_features=30,
                                               n_informative=12, random_state=0)
        self.X = np.ascontiguousarray(features, dtype=np.float64)
        self.pipe = make_pipeline(
            StandardScaler(), GradientBoostingClassifier(n_estimators=100, random_state=0)
        ).fit(self.X, target)
        self.setup["train_s"] = time.perf_counter() - t0
        self.row = self.X[0].tolist()  # every request carries this row
        self.expected = int(self.pipe.predict(self.X[:1])[0])
        self.joblib_path = self.root / "model.joblib"
        joblib.dump(self.pipe, self.joblib_path)
        np.save(self.root / "sample.npy", self.X[:5])

    def package_shipyard(self) -> None:
        import shipyard

        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pkg = shipyard.package(self.pipe, self.X, name=ENDPOINT)
        for w in caught:
            print(f"  warning while packaging: {w.message}", file=sys.stderr)
        self.shipyard_dir = Path(pkg.save(self.root / ENDPOINT))  # endpoint = directory name
        self.shipyard_runtime = pkg.manifest.runtime.name
        self.setup["shipyard_package_s"] = time.perf_counter() - t0

    def instances_body(self) -> bytes:
        return json.dumps({"instances": [self.row]}).encode()

    # -- one Prepared per server --------------------------------------------------------------

    def hello(self) -> Prepared:
        port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "_hello_asgi:app", "--app-dir", str(HERE),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers),
               "--no-access-log", "--lifespan", "on", "--timeout-graceful-shutdown", "30",
               "--log-level", "info"]  # loop/http "auto": uvloop + httptools when installed
        return Prepared(cmd, peer_env_vars(bin_dir=PROJECT_BIN), self.root,
                        f"http://127.0.0.1:{port}/", self.instances_body(), None, 60)

    def shipyard(self, home_name: str = "shipyard-home") -> Prepared:
        port = free_port()
        home = self.root / home_name
        self.shipyard_logs = home / "logs"
        cmd = [str(PROJECT_BIN / "shipyard"), "serve", str(self.shipyard_dir),
               "--port", str(port), "--workers", str(self.workers)]
        return Prepared(cmd, peer_env_vars({"SHIPYARD_HOME": str(home)}, PROJECT_BIN),
                        self.root, f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT}/predict",
                        self.instances_body(), lambda r: r["predictions"][0])

    def shipyard_oip(self) -> Prepared:
        """shipyard on its Open Inference Protocol route, with the request MLServer gets."""
        base = self.shipyard("shipyard-home-oip")
        manifest = json.loads((self.shipyard_dir / "shipyard.json").read_text(encoding="utf-8"))
        name = manifest["signature"]["inputs"][0]["name"]
        body = json.dumps({"inputs": [{"name": name, "shape": [1, len(self.row)],
                                       "datatype": "FP64", "data": self.row}]}).encode()
        return Prepared(base.cmd, base.env, base.cwd,
                        base.url.replace(f"/v1/endpoints/{ENDPOINT}/predict",
                                         f"/v2/models/{ENDPOINT}/infer"),
                        body, lambda r: r["outputs"][0]["data"][0])

    def mlserver(self, parallel_workers: int | None) -> Prepared:
        spec = self.envs["mlserver"]
        port = free_port()
        repo = self.root / ("mlserver" if parallel_workers is not None else "mlserver-default")
        model_dir = repo / ENDPOINT
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.joblib_path, model_dir / "model.joblib")
        settings: dict[str, Any] = {
            "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
            "metrics_port": free_port(), "metrics_dir": str(repo / ".metrics"),
            "environments_dir": str(repo / ".envs"),
            "debug": False,  # MLServer's access log is on only in debug mode
        }
        if parallel_workers is not None:
            settings["parallel_workers"] = parallel_workers
        (repo / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        (model_dir / "model-settings.json").write_text(json.dumps({
            "name": ENDPOINT, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
            "max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MAX_BATCH_MS / 1000,
        }, indent=2), encoding="utf-8")
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, len(self.row)],
                                       "datatype": "FP64", "data": self.row}]}).encode()
        return Prepared([str(spec.bin / "mlserver"), "start", str(repo)],
                        peer_env_vars(bin_dir=spec.bin), repo,
                        f"http://127.0.0.1:{port}/v2/models/{ENDPOINT}/infer", body,
                        lambda r: r["outputs"][0]["data"][0])

    def bentoml(self) -> Prepared:
        spec = self.envs["bentoml"]
        port = free_port()
        cwd = self.root / "bentoml"
        cwd.mkdir(exist_ok=True)
        env = peer_env_vars({"BENTOML_HOME": str(cwd / "home"),
                             "BENCH_MODEL_PATH": str(self.joblib_path),
                             "BENCH_WORKERS": str(self.workers),
                             "BENCH_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE),
                             "PYTHONDONTWRITEBYTECODE": "1"}, spec.bin)
        cmd = [str(spec.bin / "bentoml"), "serve", "_bentoml_service:BenchModel",
               "--working-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port)]
        return Prepared(cmd, env, cwd, f"http://127.0.0.1:{port}/predict",
                        self.instances_body(), lambda r: r[0])

    def mlflow(self) -> Prepared:
        spec = self.envs["mlflow"]
        model_dir = self.root / "mlflow-model"
        env = peer_env_vars(bin_dir=spec.bin)
        t0 = time.perf_counter()
        # MLflow 3 saves scikit-learn models with skops by default and refuses types it does
        # not trust; we trust the ones skops reports for our own model (cloudpickle for
        # MLflow versions without skops support)
        code = """
import inspect, sys, joblib, numpy as np, sklearn, mlflow.sklearn
model, sample = joblib.load(sys.argv[1]), np.load(sys.argv[2])
kwargs = {"input_example": sample, "pip_requirements": ["scikit-learn==" + sklearn.__version__]}
if "skops_trusted_types" in inspect.signature(mlflow.sklearn.save_model).parameters:
    import skops.io
    kwargs["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
mlflow.sklearn.save_model(model, sys.argv[3], **kwargs)
"""
        done = subprocess.run([str(spec.python), "-c", code, str(self.joblib_path),
                               str(self.root / "sample.npy"), str(model_dir)],
                              env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise UnavailableError("mlflow.sklearn.save_model failed: "
                              + (done.stderr.strip().splitlines() or ["?"])[-1][:200])
        self.setup["mlflow_save_model_s"] = time.perf_counter() - t0
        port = free_port()
        cmd = [str(spec.bin / "mlflow"), "models", "serve", "-m", str(model_dir),
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
               "-w", str(self.workers)]
        env["UVICORN_ACCESS_LOG"] = "false"  # its uvicorn reads UVICORN_* options from the env
        body = json.dumps({"inputs": [self.row]}).encode()
        return Prepared(cmd, env, self.root, f"http://127.0.0.1:{port}/invocations", body,
                        lambda r: r["predictions"][0])


def make_servers(bench: Bench, workers: int) -> list[Server]:
    w = str(workers)
    one_process = "parallel_workers=0" if workers == 1 else f"parallel_workers={workers}"
    return [
        Server("hello", "hello-world (raw ASGI)", f"uvicorn --workers {w}", bench.hello),
        Server("shipyard", "shipyard", f"--workers {w}", bench.shipyard),
        Server("shipyard-oip", "  shipyard, OIP infer", f"--workers {w}", bench.shipyard_oip,
               primary=False),
        Server("mlserver", "MLServer (adaptive batching)", one_process,
               lambda: bench.mlserver(0 if workers == 1 else workers), "mlserver"),
        Server("mlserver-default", "  MLServer, its default pool", "parallel_workers=1 (default)",
               lambda: bench.mlserver(None), "mlserver", primary=False),
        Server("bentoml", "BentoML (adaptive batching)", f"workers={w}", bench.bentoml,
               "bentoml"),
        Server("mlflow", "mlflow models serve", f"-w {w}", bench.mlflow, "mlflow"),
    ]


# --- load ---------------------------------------------------------------------------------


LUA = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,\\"connect\\":%d,"
    .. "\\"read\\":%d,\\"write\\":%d,\\"non_2xx\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,"
    .. "\\"p90_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d,\\"mean_us\\":%.1f}}\\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def run_wrk(wrk: str, url: str, script: Path, seconds: float, args: argparse.Namespace
            ) -> dict[str, Any]:
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(seconds))}s",
           "--timeout", "10s", "--latency", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise UnavailableError(f"wrk failed ({done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-200:]}")
    stats: dict[str, Any] = json.loads(line[len("BENCHJSON "):])
    stats["wrk_output"] = "\n".join(ln for ln in done.stdout.splitlines()
                                    if not ln.startswith("BENCHJSON "))
    stats["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return stats


def wait_ready(server: ServerProcess, prep: Prepared) -> tuple[float, Any]:
    """Poll the prediction route until it answers 200; (seconds it took, the response)."""
    t0 = time.perf_counter()
    last = "no answer"
    while time.perf_counter() - t0 < prep.ready_s:
        if not server.alive():
            raise UnavailableError(f"the server exited with status {server.proc.returncode} "
                                   f"before it was ready\n{server.log_tail()}")
        try:
            status, payload = post_json(prep.url, prep.body, timeout=30)
        except (OSError, urllib.error.URLError) as exc:
            last = str(getattr(exc, "reason", exc))
        else:
            if status == 200:
                return time.perf_counter() - t0, payload
            last = f"HTTP {status}: {str(payload)[:200]}"
        time.sleep(0.25)
    raise UnavailableError(f"not ready after {prep.ready_s:.0f} s (last: {last})\n"
                           f"{server.log_tail()}")


def bench_server(srv: Server, bench: Bench, wrk: str, args: argparse.Namespace) -> Outcome:
    out = Outcome(srv)
    print(f"\n== {srv.label.strip()}", flush=True)
    try:
        prep = srv.prepare()
    except UnavailableError as exc:
        out.status = f"unavailable: {exc}"
        print(f"  {out.status}", flush=True)
        return out
    except Exception as exc:  # a broken peer must not end the run for the others
        traceback.print_exc()
        out.status = f"unavailable: {type(exc).__name__}: {exc}"
        return out
    log_path = bench.root / f"{srv.key}.log"
    proc = ServerProcess(prep.cmd, prep.env, prep.cwd, log_path)
    try:
        started_in, payload = wait_ready(proc, prep)
        if prep.label_of is not None:
            try:
                got = prep.label_of(payload)
            except (KeyError, IndexError, TypeError) as exc:
                raise UnavailableError(f"unexpected response shape ({exc!r}): "
                                  f"{str(payload)[:200]}") from None
            if int(float(got)) != bench.expected:
                raise UnavailableError(f"wrong prediction: got {got!r}, scikit-learn says "
                                  f"{bench.expected}")
            check = f"label {got!r} == scikit-learn's {bench.expected}"
        else:
            check = "n/a (constant answer)"
        print(f"  ready in {started_in:.1f} s; check: {check}", flush=True)
        script = bench.root / f"{srv.key}.lua"
        script.write_text(LUA.format(body=prep.body.decode()), encoding="utf-8")
        warm = run_wrk(wrk, prep.url, script, args.warmup, args)  # warm-up, not reported
        tree_before = proc.tree()
        t0 = time.perf_counter()
        stats = run_wrk(wrk, prep.url, script, args.duration, args)
        wall = time.perf_counter() - t0
        tree_after = proc.tree()
        cpu = sum(tree_after.values()) - sum(v for p, v in tree_before.items()
                                             if p in tree_after)
        stats.update(server_cpu_s=cpu, server_cores=cpu / wall, wrk_cores=stats["wrk_cpu_s"]
                     / wall, processes=len(tree_after), ready_s=started_in, check=check,
                     url=prep.url, command=prep.cmd, warmup_requests=warm["requests"],
                     warmup_errors=warm["non_2xx"] + warm["connect"] + warm["read"]
                     + warm["write"] + warm["timeout"])
        stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
        stats["socket_errors"] = stats["connect"] + stats["read"] + stats["write"] + \
            stats["timeout"]
        out.result = stats
        print(f"  {stats['rps']:.0f} req/s, p50 {stats['p50_us'] / 1e3:.1f} ms, p99 "
              f"{stats['p99_us'] / 1e3:.1f} ms, non-2xx {stats['non_2xx']}, socket errors "
              f"{stats['socket_errors']}; server used {stats['server_cores']:.2f} cores in "
              f"{stats['processes']} process(es), wrk {stats['wrk_cores']:.2f}", flush=True)
        if stats["non_2xx"] or stats["socket_errors"]:
            print(f"  ERROR: {stats['non_2xx']} non-2xx responses, socket errors connect "
                  f"{stats['connect']} read {stats['read']} write {stats['write']} timeout "
                  f"{stats['timeout']}", flush=True)
            try:
                status, body = post_json(prep.url, prep.body, timeout=10)
                print(f"  a request after the run: HTTP {status} {str(body)[:300]}", flush=True)
            except OSError as exc:
                print(f"  a request after the run failed: {exc}", flush=True)
            print(f"  server log (tail):\n{proc.log_tail()}", flush=True)
    except UnavailableError as exc:
        out.status = f"unavailable: {exc}"
        print(f"  {out.status}", flush=True)
    except Exception as exc:  # a broken peer must not end the run for the others
        traceback.print_exc()
        out.status = f"unavailable: {type(exc).__name__}: {exc}\n{proc.log_tail()}"
        out.result = {}
    finally:
        proc.stop()
    if srv.key == "shipyard" and out.result:
        out.result["logged_rows"] = count_logged(bench)
    return out


def paired_rounds(bench: Bench, wrk: str, args: argparse.Namespace) -> dict[str, Any]:
    """hello-world and shipyard served side by side, loaded in turn: H S H S ... H, each
    ``--pair-duration`` seconds. Each shipyard run is divided by the mean of the hello-world
    runs just before and after it, so a slow drift of this shared machine's speed (seen here
    as -35 % for the hello-world within minutes) cancels out of the ratio; the median of
    those ratios is what the ceiling target reads."""
    preps = {"hello": bench.hello(), "shipyard": bench.shipyard("shipyard-home-paired")}
    procs: dict[str, ServerProcess] = {}
    try:
        for key, prep in preps.items():
            procs[key] = ServerProcess(prep.cmd, prep.env, prep.cwd, bench.root / f"{key}-p.log")
        scripts = {}
        for key, prep in preps.items():
            wait_ready(procs[key], prep)
            scripts[key] = bench.root / f"{key}-paired.lua"
            scripts[key].write_text(LUA.format(body=prep.body.decode()), encoding="utf-8")
            run_wrk(wrk, prep.url, scripts[key], args.warmup, args)
        runs: dict[str, list[float]] = {"hello": [], "shipyard": []}
        p99s: list[float] = []
        order = ["hello", *(["shipyard", "hello"] * args.pairs)]
        for key in order:
            stats = run_wrk(wrk, preps[key].url, scripts[key], args.pair_duration, args)
            if stats["non_2xx"] or stats["connect"] + stats["read"] + stats["write"] \
                    + stats["timeout"]:
                raise UnavailableError(f"{key}: errors during the paired runs")
            runs[key].append(stats["requests"] / (stats["duration_us"] / 1e6))
            if key == "shipyard":
                p99s.append(stats["p99_us"] / 1e3)
    except UnavailableError as exc:
        print(f"  paired runs unavailable: {exc}", flush=True)
        return {}
    finally:
        for proc in procs.values():
            proc.stop()
    hello, ours = runs["hello"], runs["shipyard"]
    ratios = [s / ((hello[i] + hello[i + 1]) / 2) for i, s in enumerate(ours)]
    print(f"\npaired runs ({args.pairs} x {args.pair_duration:g} s, hello-world before and "
          "after each shipyard run):")
    for i, ratio in enumerate(ratios):
        print(f"  round {i + 1}: hello {hello[i]:.0f} / {hello[i + 1]:.0f} req/s, shipyard "
              f"{ours[i]:.0f} req/s (p99 {p99s[i]:.1f} ms) -> {ratio:.0%} of the ceiling")
    median = float(np.median(ratios))
    print(f"  median {median:.0%} (range {min(ratios):.0%}-{max(ratios):.0%})", flush=True)
    return {"hello_rps": hello, "shipyard_rps": ours, "shipyard_p99_ms": p99s,
            "ratios": ratios, "median_ratio": median}


def count_logged(bench: Bench) -> int | None:
    """Rows in shipyard's prediction log once the server has stopped (and flushed)."""
    from shipyard.errors import ShipyardError
    from shipyard.stores.predictions import read_log

    try:
        return int(read_log(bench.shipyard_logs, ENDPOINT).num_rows)
    except (ShipyardError, OSError) as exc:
        print(f"  could not read the prediction log: {exc}", file=sys.stderr)
        return None


# --- reporting ----------------------------------------------------------------------------


def project_versions() -> dict[str, str]:
    import importlib.metadata as md

    import shipyard

    out = {"python": platform.python_version(), "shipyard": shipyard.__version__}
    for dist in ("onnxruntime", "scikit-learn", "numpy", "starlette", "uvicorn", "uvloop",
                 "httptools", "orjson"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


def describe_versions(v: dict[str, str]) -> str:
    return ", ".join(f"{k} {val}" for k, val in v.items() if k != "error") or v.get("error", "?")


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def print_table(outcomes: list[Outcome]) -> dict[str, Any]:
    by_key = {o.server.key: o for o in outcomes}

    def rps(key: str) -> float | None:
        o = by_key.get(key)
        return o.result["rps"] if o is not None and o.result else None

    ml, hello = rps("mlserver"), rps("hello")
    headers = ["server", "workers", "procs", "req/s", "p50 ms", "p99 ms", "non-2xx",
               "sock err", "srv cores", "vs MLServer", "vs hello"]
    rows = []
    for o in outcomes:
        r = o.result
        if not r:
            rows.append([o.server.label, o.server.workers, "", "", "", "", "", "", "", "", ""])
            continue
        rows.append([o.server.label, o.server.workers, str(r["processes"]),
                     f"{r['rps']:.0f}" + ("*" if r["non_2xx"] or r["socket_errors"] else ""),
                     f"{r['p50_us'] / 1e3:.1f}", f"{r['p99_us'] / 1e3:.1f}",
                     str(r["non_2xx"]), str(r["socket_errors"]), f"{r['server_cores']:.2f}",
                     fmt_ratio(r["rps"] / ml) if ml else "-",
                     f"{r['rps'] / hello:.0%}" if hello else "-"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for o, cells in zip(outcomes, rows, strict=True):
        if not o.result:
            first = "  ".join(c.ljust(w) for c, w in zip(cells[:2], widths[:2], strict=True))
            print(f"{first}  {o.status.splitlines()[0]}")
        else:
            print(line(cells))
    if any(o.result and (o.result["non_2xx"] or o.result["socket_errors"]) for o in outcomes):
        print("* ERRORS: this server answered some requests with an error status (or dropped "
              "them); its figures are not comparable (see its section above)")
    return {"mlserver_rps": ml, "hello_rps": hello}


def print_targets(outcomes: list[Outcome], refs: dict[str, Any], args: argparse.Namespace,
                  paired: dict[str, Any] | None = None) -> dict[str, Any]:
    ours = next((o for o in outcomes if o.server.key == "shipyard"), None)
    if ours is None or not ours.result:
        print("targets: shipyard did not run" + (f" ({ours.status})" if ours else ""))
        return {}
    r = ours.result
    p99 = r["p99_us"] / 1e3
    vs_ml = r["rps"] / refs["mlserver_rps"] if refs["mlserver_rps"] else None
    vs_hello = r["rps"] / refs["hello_rps"] if refs["hello_rps"] else None
    hello_note = "hello-world unavailable" if vs_hello is None else f"{vs_hello:.0%}"
    if paired:  # the drift-cancelling measure, when it ran
        vs_hello = paired["median_ratio"]
        hello_note = f"{vs_hello:.0%} (paired median)"
    checks = {
        f"req/s >= {TARGET_VS_MLSERVER:g}x MLServer's": (
            None if vs_ml is None else vs_ml >= TARGET_VS_MLSERVER,
            "MLServer unavailable" if vs_ml is None else f"{vs_ml:.2f}x"),
        f">= {TARGET_VS_HELLO:.0%} of the hello-world ceiling": (
            None if vs_hello is None else vs_hello >= TARGET_VS_HELLO, hello_note),
        f"p99 < {TARGET_P99_MS:g} ms": (p99 < TARGET_P99_MS, f"{p99:.1f} ms"),
        "no non-2xx responses or socket errors": (
            r["non_2xx"] == 0 and r["socket_errors"] == 0,
            f"{r['non_2xx']} non-2xx, {r['socket_errors']} socket errors"),
    }
    print("targets from the issue (shipyard, validation on, prediction log at 100 %):")
    for name, (ok, value) in checks.items():
        verdict = "n/a" if ok is None else ("met" if ok else "NOT MET")
        print(f"  {name:<45} {value:>22}   {verdict}")
    logged = r.get("logged_rows")
    if logged is not None:
        answered = 1 + r["warmup_requests"] + r["requests"]
        print(f"  prediction log: {logged} rows written; wrk counted {answered} answered requests "
              f"(readiness check + warm-up + timed), and up to 2 x {args.connections} more were "
              "in flight when each wrk run stopped")
    return {name: {"met": ok, "value": value} for name, (ok, value) in checks.items()}


# --- main ---------------------------------------------------------------------------------

ALL_PEERS = ("hello", "shipyard", "shipyard-oip", "mlserver", "mlserver-default", "bentoml",
             "mlflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="5 s of load per server after a 2 s warm-up (default 10 s / 3 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes for every server (default 1)")
    parser.add_argument("--duration", type=float, help="seconds of timed load per server")
    parser.add_argument("--warmup", type=float, help="seconds of untimed load first")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--peers", default=",".join(ALL_PEERS),
                        help=f"comma-separated subset of {','.join(ALL_PEERS)}")
    parser.add_argument("--pairs", type=int,
                        help="paired hello-world/shipyard rounds after the table (default 5; "
                             "--quick 2; 0 skips them)")
    parser.add_argument("--pair-duration", type=float, default=6.0,
                        help="seconds of load per paired run (6)")
    parser.add_argument("--reinstall", action="store_true",
                        help="recreate the peers' venvs under bench/.envs/")
    parser.add_argument("--rollouts", action="store_true",
                        help="then the traffic-policy rows of bench/rollouts.py (single, canary, "
                             "A/B, shadow) on the same model")
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 10.0)
    args.warmup = args.warmup or (2.0 if args.quick else 3.0)
    args.peers = listed(parser, "--peers", args.peers, ALL_PEERS)
    if args.pairs is None:
        args.pairs = 2 if args.quick else 5
    if args.pairs < 0 or args.pair_duration < 1:
        parser.error("--pairs must be >= 0 and --pair-duration >= 1")
    if args.workers < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--workers, --connections and --threads must be >= 1")
    if args.workers > 1 and "mlserver-default" in args.peers:
        args.peers.remove("mlserver-default")  # the reference row is about --workers 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import sklearn

    wrk = ensure_wrk()
    specs = peer_envs(sklearn.__version__)
    installs: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        if any(p == name or p.startswith(f"{name}-") for p in args.peers):
            installs[name] = ensure_env(spec, args.reinstall)
    started = time.perf_counter()  # the wall time reported excludes first-run installs
    info, ours = machine_info(), project_versions()
    theirs = {name: env_versions(specs[name].python, specs[name].dists)
              for name, inst in installs.items() if "error" not in inst}
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True,
                                 check=False).stdout.splitlines()[:1]

    cores = info["affinity"] or info["cpu_count"]
    print("HTTP serving benchmark: shipyard vs MLServer, BentoML, mlflow models serve and a "
          "raw ASGI hello-world")
    print(f"  machine  : {info['cpu_count']} CPUs (affinity {info['affinity']}), "
          f"{info['platform']}")
    print(f"  NOTE     : wrk runs on the same {cores} cores as the server it loads, so every "
          "figure is for server + load generator sharing them;")
    print("             absolute numbers are low and noisy; compare rows within one run.")
    print(f"  load     : {' '.join(wrk_version)}; {args.threads} threads, {args.connections} "
          f"connections, single-row JSON POST, {args.warmup:g} s warm-up + {args.duration:g} s "
          "timed per server, one server at a time")
    print(f"  workers  : {args.workers} per server (MLServer: HTTP and inference in one process "
          "with parallel_workers=0; its default pool is the reference row)")
    print(f"  batching : shipyard default (max {MAX_BATCH_SIZE} rows / {MAX_BATCH_MS:g} ms), "
          f"MLServer max_batch_size={MAX_BATCH_SIZE} max_batch_time={MAX_BATCH_MS / 1000:g} s, "
          f"BentoML batchable max_batch_size={MAX_BATCH_SIZE} (adaptive wait)")
    print("  logging  : access logs off everywhere; shipyard logs every prediction "
          "(log_sample_rate 1.0) and validates every request")
    print(f"  shipyard : {describe_versions(ours)} (project venv; ONNX Runtime threads: "
          f"{os.environ.get('SHIPYARD_ORT_THREADS', 'default min(4, cores)')})")
    for name, inst in installs.items():
        if "error" in inst:
            print(f"  {name:<9}: unavailable: {inst['error']}")
            continue
        how = ("installed by this run" if inst["installed_now"]
               else f"installed {inst.get('installed_at', '?')}")
        print(f"  {name:<9}: {describe_versions(theirs[name])} (bench/.envs/{name}: "
              f"{inst['distribution']}, {how}, pip install took "
              f"{inst['install_seconds']:.0f} s)")
    print(flush=True)

    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-serving-") as tmp:
        bench = Bench(Path(tmp), args.workers, specs)
        bench.train()
        bench.package_shipyard()
        print(f"model: trained in {bench.setup['train_s']:.1f} s; shipyard package in "
              f"{bench.setup['shipyard_package_s']:.1f} s (runtime {bench.shipyard_runtime!r}"
              f"); row 0 -> label {bench.expected}", flush=True)
        for srv in make_servers(bench, args.workers):
            if srv.key not in args.peers:
                continue
            if srv.env_name is not None and "error" in installs.get(srv.env_name, {}):
                outcomes.append(Outcome(srv, f"unavailable: {installs[srv.env_name]['error']}"))
                continue
            outcomes.append(bench_server(srv, bench, wrk, args))
        paired: dict[str, Any] = {}
        if args.pairs and {"hello", "shipyard"} <= set(args.peers):
            paired = paired_rounds(bench, wrk, args)
        policies: dict[str, Any] = {}
        if args.rollouts:
            import rollouts  # its own script; imports this module's helpers

            opts = rollouts.parse_args(["--quick"] if args.quick else [])
            opts.workers, opts.connections, opts.threads = (args.workers, args.connections,
                                                            args.threads)
            print("\n== traffic policies (bench/rollouts.py)", flush=True)
            policies = rollouts.run_rows(bench, wrk, opts)
        setup = bench.setup
    print()
    refs = print_table(outcomes)
    print()
    print("req/s over the timed run; p50/p99: wrk's latency percentiles; non-2xx: wrk's "
          "'Non-2xx or 3xx responses'; sock err: connect/read/write errors and 10 s timeouts;")
    print("procs: processes in the server's tree; srv cores: the server's CPU seconds / wall "
          "seconds while timed (the rest of the machine went to wrk and the OS);")
    print("vs MLServer / vs hello: req/s divided by the MLServer (one process) and hello-world "
          "rows'. Indented rows are references: shipyard's OIP infer route loaded with")
    print("MLServer's request, and MLServer as installed (HTTP in one process, inference in a "
          "pool of one more, parallel_workers=1).")
    print()
    targets = print_targets(outcomes, refs, args, paired)
    elapsed = time.perf_counter() - started
    installed_now = any(i.get("installed_now") for i in installs.values())
    print(f"\ntotal wall time {elapsed:.0f} s" + (" (peer installs not included)"
                                                 if installed_now else ""))
    if args.json:
        payload = {
            "machine": info, "shipyard_env": ours, "peer_envs": theirs, "installs": installs,
            "wrk": wrk_version,
            "config": {"quick": args.quick, "workers": args.workers, "duration_s": args.duration,
                       "warmup_s": args.warmup, "connections": args.connections,
                       "threads": args.threads, "pairs": args.pairs,
                       "pair_duration_s": args.pair_duration, "max_batch_size": MAX_BATCH_SIZE,
                       "max_batch_ms": MAX_BATCH_MS},
            "setup": setup,
            "servers": [{"key": o.server.key, "label": o.server.label.strip(),
                         "workers": o.server.workers, "status": o.status, **o.result}
                        for o in outcomes],
            "reference_rps": refs, "paired": paired, "targets": targets, "rollouts": policies,
            "wall_seconds": elapsed,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
