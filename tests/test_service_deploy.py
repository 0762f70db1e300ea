"""docker-compose.yml and Dockerfile, checked statically (no Docker engine on this machine)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sdhrnet.cli import SUBCOMMANDS
from sdhrnet.settings import ServiceSettings, Settings, WorkerSettings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
SERVICES = COMPOSE["services"]


def stages() -> dict[str, str]:
    """target name -> its Dockerfile text."""
    parts = re.split(r"^FROM\s+", DOCKERFILE, flags=re.M)[1:]
    return {re.match(r"\S+\s+AS\s+(\S+)", p, re.I).group(1): p for p in parts}


def command_of(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def option(cmd: list[str], name: str) -> str | None:
    for i, part in enumerate(cmd):
        if part == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    return None


def test_the_stack_has_every_service_with_health_checks():
    assert {"redis", "postgres", "minio", "mlflow", "api", "worker"} <= set(SERVICES)
    for name, service in SERVICES.items():
        if service.get("restart") != "no":  # one-shot init containers need none
            assert "healthcheck" in service, f"{name} has no health check"
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{name} uses undeclared volume {source}"
    for name in ("redis", "postgres", "minio", "mlflow", "api", "worker"):
        assert SERVICES[name].get("volumes") or name == "mlflow", f"{name} keeps its data nowhere"


def test_build_targets_and_copied_files_exist():
    targets = stages()
    assert {"api", "worker", "mlflow"} <= set(targets)
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).exists()
            assert build["target"] in targets, f"{name} builds unknown target {build['target']}"
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert (REPO / ".dockerignore").exists()


def test_api_image_has_no_torch_and_worker_image_has_cuda_torch():
    """The images install the dependency files the package itself is built from (one list, in requirements/)."""
    targets = stages()
    serve, train = ((REPO / "requirements" / f).read_text() for f in ("serve.txt", "train.txt"))
    assert "torch" not in re.sub(r"#.*", "", targets["api"]).replace("'torch' not in sys.modules", "")
    assert "torch" not in re.sub(r"#.*", "", serve) and "onnxruntime" in serve
    assert "pip install -r requirements/serve.txt\n" in targets["api"] and "--no-deps ." in targets["api"]
    assert "pip install -r requirements/serve.txt -r requirements/train.txt" in targets["worker"]
    assert re.search(r"^torch==", train, re.M)


def test_ports_commands_and_urls_agree():
    api, mlflow, worker = SERVICES["api"], SERVICES["mlflow"], SERVICES["worker"]
    api_cmd, mlflow_cmd = command_of(api), command_of(mlflow)
    assert api_cmd[:2] == ["sdhrnet", "serve"] and command_of(worker)[:2] == ["sdhrnet", "worker"]
    assert {"serve", "worker", "run"} <= set(SUBCOMMANDS)
    api_port = option(api_cmd, "--port")
    assert any(str(p).endswith(f":{api_port}") for p in api["ports"])
    mlflow_port = option(mlflow_cmd, "--port")
    assert any(str(p).endswith(f":{mlflow_port}") for p in mlflow["ports"])
    for service in (api, worker):
        env = service["environment"]
        assert env["MLFLOW_TRACKING_URI"] == f"http://mlflow:{mlflow_port}"
        assert env["REDIS_URL"].startswith("redis://redis:")
    allowed = option(mlflow_cmd, "--allowed-hosts").split(",")
    assert "mlflow" in allowed and f"mlflow:{mlflow_port}" in allowed
    assert "--serve-artifacts" in mlflow_cmd and option(mlflow_cmd, "--backend-store-uri").startswith("postgresql+psycopg2://")
    assert "@postgres:" in option(mlflow_cmd, "--backend-store-uri")
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"].startswith("http://minio:")


def test_worker_is_scalable_with_a_gpu_each():
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_environment_names_are_ones_the_code_reads():
    known = {f"SDHRNET_{name.upper()}" for name in (*Settings.model_fields, *WorkerSettings.model_fields,
                                                     *ServiceSettings.model_fields)}
    known |= {"MLFLOW_TRACKING_URI", "REDIS_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
              "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}  # read by MLflow 3.17 itself
    for name, service in SERVICES.items():
        for key in service.get("environment") or {}:
            assert key in known, f"{name} sets {key}, which nothing reads"
    for dep in (d for s in SERVICES.values() for d in (s.get("depends_on") or {})):
        assert dep in SERVICES


def test_docker_compose_config_when_available():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here; the static checks above cover the file")
    result = subprocess.run([docker, "compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_api_code_imports_no_torch():
    """The api image has no torch: everything the API process imports must do without it."""
    code = ("import sys\n"
            "import service.app, service.cli_serve, service.cli_run, service.evaluation\n"
            "import registry, worker.api, landmarks.landmarker, trainer.evaluate, landmarks.datasets, trainer.model_uri\n"
            "import service.detection, landmarks.face_detector\n"
            "service.app.create_app(); landmarks.face_detector.FaceDetector()\n"
            "assert 'torch' not in sys.modules, [m for m in sys.modules if m.startswith('torch')][:5]\n")
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_readme_installs_the_pinned_cpu_torch_before_the_project():
    """On a CPU machine that reaches only the public index, PyPI's torch is the CUDA build (GB of CUDA wheels):
    the README installs the pinned CPU wheel from PyTorch's CPU index first, then the project."""
    pin = re.search(r"^torch==(\S+)", (REPO / "requirements" / "train.txt").read_text(), re.M).group(1)
    readme = (REPO / "README.md").read_text()
    cpu = readme.find(f"pip install torch=={pin} --index-url https://download.pytorch.org/whl/cpu")
    assert cpu >= 0, f"the README must show `pip install torch=={pin} --index-url .../whl/cpu`"
    assert readme.find("pip install -e", cpu) > cpu and "CUDA" in readme[cpu - 600:cpu]
