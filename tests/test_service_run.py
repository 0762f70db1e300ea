"""`sdhrnet run` end to end: MLflow server + worker + API start, the curl smoke script passes against
them, and Ctrl-C stops every child."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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

        # a worker killed (OOM killer, kill -9) is started again while the API keeps answering
        worker = int(re.search(r"started worker \(pid (\d+)\)", log.read_text(errors="replace")).group(1))
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "restarted worker" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as live:
                assert live.status == 200
            time.sleep(0.5)
        new_worker = int(re.search(r"restarted worker \(pid (\d+)\)", log.read_text(errors="replace")).group(1))
        assert new_worker != worker and proc.poll() is None
        os.kill(new_worker, 0)  # alive
    finally:
        proc.send_signal(signal.SIGTERM)  # what container runtimes send; Ctrl-C (SIGINT) takes the same path
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert "stopped mlflow server" in log.read_text(errors="replace")
    assert not port_answers(port) and not port_answers(mlflow_port)


def test_a_child_that_keeps_dying_is_restarted_with_a_growing_pause(capsys):
    from service.cli_run import MIN_BACKOFF_S, Children

    children = Children()
    first = children.start("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"], dict(os.environ))
    first.wait(30)
    t0 = time.monotonic()
    children.supervise(now=t0)
    child = children.children[0]
    assert child.restart_at == t0 + MIN_BACKOFF_S and child.proc is first, "waits before restarting"
    children.supervise(now=t0 + MIN_BACKOFF_S)
    assert child.restarts == 1 and child.proc is not first
    child.proc.wait(30)
    children.supervise(now=child.started + 1)
    assert child.backoff == 2 * MIN_BACKOFF_S, "dying again soon after its start doubles the pause"
    children.supervise(now=child.started + 1 + 2 * MIN_BACKOFF_S)
    assert child.restarts == 2
    child.proc.wait(30)
    children.supervise(now=child.started + 3600)
    assert child.backoff == MIN_BACKOFF_S, "a run longer than STABLE_S resets the pause"
    children.stop_all()
    err = capsys.readouterr().err
    assert "crasher exited with code 3; restarting it in 1 s" in err and "restarting it in 2 s" in err


def test_a_stop_signal_during_start_up_is_not_swallowed(tmp_path):
    """Ctrl-C or SIGTERM while the default model is registered (MLflow calls can take seconds) must stop the
    stack: registration failures are caught and reported, a stop is not one of them."""
    from service.cli_run import Stop, _raise_stop, register_default_model

    class SignalArrives:
        def version_for_job(self, *args):
            _raise_stop(signal.SIGTERM, None)  # what the handler does when the signal lands here

    model = build_tiny_model(tmp_path / "default_model")
    with pytest.raises(Stop, match="SIGTERM"):
        register_default_model(model, registry=SignalArrives())
