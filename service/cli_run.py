"""`sdhrnet run`: MLflow server, a worker and the API on one machine, stopped together on Ctrl-C or SIGTERM (what
container runtimes send); a child that dies is restarted with backoff while the others keep serving.

Embedded defaults: SQLite MLflow store and artifacts under SDHRNET_HOME, the worker's filesystem broker.
Configured services are used instead: REDIS_URL for the broker, SDHRNET_MLFLOW_BACKEND_STORE_URI
(e.g. postgresql://...) and SDHRNET_MLFLOW_ARTIFACTS_DESTINATION (e.g. s3://bucket) for the MLflow
server it starts, or MLFLOW_TRACKING_URI (http) for an MLflow server that is already running (then
none is started).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "sdhrnet" / "default_model"


def add_arguments(parser, command) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface for the API")
    parser.add_argument("--port", type=int, default=8000, help="API port")
    parser.add_argument("--mlflow-port", type=int, default=5000, help="MLflow server port (a free one if taken)")
    parser.add_argument("--no-worker", action="store_true", help="do not start a worker (jobs stay queued)")
    parser.add_argument("--default-model", type=Path, default=None,
                        help="model folder (model.onnx, model_card.json, spec.json) registered when the registry is "
                             "empty (default: SDHRNET_DEFAULT_MODEL_DIR, else sdhrnet/default_model)")
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for each service")


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


# A child that dies is started again after a pause that doubles while it keeps dying soon after its start (up to
# MAX_BACKOFF_S) and drops back to the minimum once it has run STABLE_S: a crash loop does not spin the CPU, and a
# worker killed by the OOM killer is back within a second.
MIN_BACKOFF_S, MAX_BACKOFF_S, STABLE_S = 1.0, 30.0, 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict
    log: Path | None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


class Children:
    """Child processes, each in its own process group so that a Ctrl-C reaches only us and we stop
    them in order (API first, MLflow last) and with their own children (MLflow's uvicorn workers);
    `supervise` restarts the ones that die while the others keep serving."""

    def __init__(self):
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str], env: dict, log: Path | None = None) -> subprocess.Popen:
        child = Child(name, argv, env, log)
        self.children.append(child)
        self._spawn(child)
        return child.proc

    def _spawn(self, child: Child) -> None:
        output = None
        if child.log is not None:  # MLflow logs every HTTP call: keep the console for the API and the worker
            child.log.parent.mkdir(parents=True, exist_ok=True)
            output = open(child.log, "ab")
        child.proc = subprocess.Popen(child.argv, env=child.env, start_new_session=True, stdout=output, stderr=output)
        child.started = time.monotonic()
        verb = "restarted" if child.restarts else "started"
        print(f"  {verb} {child.name} (pid {child.proc.pid}{', log ' + str(child.log) if child.log else ''})", flush=True)

    def supervise(self, now: float | None = None) -> None:
        """Schedule the restart of each child that has died, and restart those whose pause is over."""
        now = time.monotonic() if now is None else now
        for child in self.children:
            if child.proc.poll() is None:
                continue
            if child.restart_at is None:
                quick = now - child.started < STABLE_S
                child.backoff = min(MAX_BACKOFF_S, max(MIN_BACKOFF_S, child.backoff * 2)) if quick else MIN_BACKOFF_S
                child.restart_at = now + child.backoff
                print(f"{child.name} exited with code {child.proc.returncode}; restarting it in {child.backoff:.0f} s",
                      file=sys.stderr, flush=True)
            elif now >= child.restart_at:
                _signal_group(child.proc, signal.SIGKILL)  # what is left of its process group
                child.restarts += 1
                child.restart_at = None
                self._spawn(child)

    def stop_all(self, timeout: float = 20.0) -> None:
        for child in reversed(self.children):
            name, proc, began = child.name, child.proc, time.monotonic()
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    print(f"  {name} did not stop in {timeout:.0f} s; killing it", flush=True)
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait(5)
            _signal_group(proc, signal.SIGKILL)  # leftovers of the group (e.g. MLflow's workers)
            print(f"  stopped {name} ({time.monotonic() - began:.1f} s)", flush=True)
        self.children.clear()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Stop(BaseException):  # not an Exception: no `except Exception` on the way may swallow a stop
    pass


def _raise_stop(signum, frame):
    raise Stop(signal.Signals(signum).name)


def mlflow_server_argv(port: int, backend_uri: str | None, artifacts: str | None) -> list[str]:
    from sdhrnet.settings import get_settings

    # the same embedded store that the trainer uses when it runs without a server
    store = backend_uri or get_settings().mlflow_uri
    artifacts = artifacts or str(get_settings().artifact_root.resolve())
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", store, "--serve-artifacts", "--artifacts-destination", artifacts,
            "--workers", "1", "--allowed-hosts", f"127.0.0.1:{port},localhost:{port},127.0.0.1,localhost"]


def default_model_dir(given: Path | None = None) -> Path:
    from sdhrnet.settings import get_settings

    return Path(given or get_settings().service.default_model_dir or DEFAULT_MODEL_DIR)


def register_default_model(model_dir: Path, registry=None) -> None:
    """Register the bundled model when its dataset has none. The banner tells a first start (registered now)
    from a restart (already registered, nothing new) and from a registry that holds other models."""
    if not (model_dir / "model.onnx").exists():
        print(f"  no bundled model at {model_dir}; /align answers 503 until a model is trained or promoted", flush=True)
        return
    from registry import DEFAULT_JOB_ID, get_registry, model_name  # imported after MLFLOW_TRACKING_URI is set

    try:
        registry = registry or get_registry()
        dataset = str(json.loads((model_dir / "model_card.json").read_text())["dataset"]).lower()
        before = registry.version_for_job(dataset, DEFAULT_JOB_ID)
        version = registry.register_default_if_empty(model_dir)
    except Exception as exc:  # the stack is still useful without it: jobs can train and register models
        print(f"  could not register the default model from {model_dir} ({type(exc).__name__}: {exc}); "
              "/align answers 503 until a model is promoted", flush=True)
        return
    name = model_name(dataset)
    if version is None:
        line = f"{name} already holds trained models; the bundled model was not registered"
    elif before is not None and str(before.version) == str(version):
        line = f"already registered as {name} version {version} (kept, no new version)"
    else:
        line = f"registered now as {name} version {version}"
    print(f"  default model: {line}", flush=True)


def main(args) -> int:
    from sdhrnet.settings import get_settings

    settings = get_settings()
    service_settings = settings.service
    home = Path(settings.home)
    env = dict(os.environ, SDHRNET_HOME=str(home.resolve()), PYTHONUNBUFFERED="1")
    if not port_free(args.host, args.port):
        print(f"port {args.port} is in use; pick another with --port", file=sys.stderr)
        return 2
    children = Children()
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        tracking = settings.tracking_uri or ""
        if tracking.startswith(("http://", "https://")):
            mlflow_url = tracking.rstrip("/")
            print(f"using the MLflow server at {mlflow_url}", flush=True)
        else:
            port = args.mlflow_port if port_free("127.0.0.1", args.mlflow_port) else free_port()
            mlflow_url = f"http://127.0.0.1:{port}"
            backend = service_settings.mlflow_backend_store_uri or (tracking or None)
            argv = mlflow_server_argv(port, backend, service_settings.mlflow_artifacts_destination)
            # MLflow 3.17 would otherwise start a 10-process job runner beside the server
            mlflow = children.start("mlflow server", argv, {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                                    log=home / "logs" / "mlflow-server.log")
            wait_http(f"{mlflow_url}/health", args.startup_timeout, mlflow)
        env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"] = mlflow_url
        env.setdefault("SDHRNET_MLFLOW_UI_URL", mlflow_url)
        get_settings.cache_clear()
        register_default_model(default_model_dir(args.default_model))
        if not args.no_worker:
            children.start("worker", [sys.executable, "-m", "sdhrnet.cli", "worker"], env)
        api = children.start("api", [sys.executable, "-m", "sdhrnet.cli", "serve", "--host", args.host,
                                     "--port", str(args.port), "--no-access-log"], env)
        api_url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
        wait_http(f"{api_url}/livez", args.startup_timeout, api)
        broker = "Redis at " + settings.redis_url if settings.redis_url else "the embedded filesystem broker"
        print(f"\nSD-HRNet is running (jobs via {broker}):\n"
              f"  web page   {api_url}/\n  API docs   {api_url}/docs\n  MLflow UI  {mlflow_url}\n"
              f"Press Ctrl-C to stop.\n", flush=True)
        while True:
            children.supervise()
            time.sleep(0.5)
    except Stop as why:
        print(f"\n{why}: stopping", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"start-up failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop_all()
        for s, handler in previous.items():
            signal.signal(s, handler)
