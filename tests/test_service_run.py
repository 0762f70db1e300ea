"""`sdhrnet run` end to end: MLflow server + worker + API start, the curl smoke script passes against
them, and Ctrl-C stops every child."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.service_support import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "tests" / "smoke" / "curl_smoke.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_sdhrnet_run_passes_the_curl_smoke_script_and_stops_cleanly(tmp_path):
    model = build_tiny_model(tmp_path / "default_model")
    home = tmp_path / "home"
    port, mlflow_port = free_port(), free_port()
    env = {**os.environ, "SDHRNET_HOME": str(home), "SDHRNET_DEFAULT_MODEL_DIR": str(model),
           "SDHRNET_API_KEYS": "smoke-key", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "PYTHONPATH": str(REPO)}
    for name in ("MLFLOW_TRACKING_URI", "REDIS_URL", "SDHRNET_TRACKING_URI", "SDHRNET_REDIS_URL"):
        env.pop(name, None)
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "sdhrnet.cli", "run", "--port", str(port),
                             "--mlflow-port", str(mlflow_port)], cwd=tmp_path, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while b"Press Ctrl-C" not in log.read_bytes():
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "sdhrnet run did not come up:\n" + log.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        text = log.read_text(errors="replace")
        assert f"http://127.0.0.1:{port}/docs" in text and f"http://127.0.0.1:{mlflow_port}" in text
        smoke = subprocess.run(["bash", str(SMOKE), f"http://127.0.0.1:{port}", "smoke-key"],
                               capture_output=True, text=True, timeout=300)
        print(smoke.stdout)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr + log.read_text(errors="replace")[-3000:]
        assert " 0 failed" in smoke.stdout
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert "stopped mlflow server" in log.read_text(errors="replace")
    assert not port_answers(port) and not port_answers(mlflow_port)
