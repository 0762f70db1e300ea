"""bf16 autocast for training steps, and a stage that is stopped by a signal keeps the step it reached."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sdhrnet.train_config import make_config
from trainer.engine import autocast, resolve_precision
from trainer.losses import heatmap_mse, student_loss
from trainer.nets import build_network
from trainer.teacher import supervised_step

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_explicit_precisions_are_kept_and_auto_picks_one_of_them():
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("auto", CPU) in ("fp32", "bf16")
    assert make_config("cpu", "300w").precision == "auto" and make_config("paper", "300w").precision == "fp32"
    with pytest.raises(ValueError):
        make_config("tiny", "300w", {"precision": "fp16"})


def test_auto_takes_bf16_only_where_the_cpu_has_bf16_instructions(monkeypatch):
    """oneDNN reports bf16 on any AVX-512 CPU, but without avx512_bf16 or AMX it emulates it, slower than fp32.
    The CPU's features are patched: one machine cannot show both kinds."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("oneDNN has no bf16 on this CPU at all")
    monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"


def test_a_bf16_step_runs_the_network_in_bf16_and_keeps_losses_and_weights_fp32():
    torch.manual_seed(0)
    net = build_network("s-hrnet-300w", 68).train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    images, heatmaps = torch.rand(2, 3, 64, 64), torch.rand(2, 68, 16, 16)
    with autocast("bf16", CPU):
        pred = net(images)
        assert pred.dtype == torch.bfloat16
        loss, parts = student_loss(pred, heatmaps, pred.detach() * 0.5, pred.detach(), 4.0, 1.0)
        assert loss.dtype == torch.float32 and all(torch.isfinite(v) for v in parts.values())
        first = supervised_step(net, images, heatmaps, opt)["mse"]
        for _ in range(4):
            last = supervised_step(net, images, heatmaps, opt)["mse"]
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert last < first, "bf16 steps still fit a fixed batch"
    with autocast("fp32", CPU):
        assert net(images).dtype == torch.float32
        assert heatmap_mse(net(images), heatmaps).dtype == torch.float32


@pytest.mark.slow
def test_a_stage_started_in_the_background_stops_on_sigint_and_keeps_its_step(tmp_path, shared_data):
    """A shell starting a process in the background (as `setsid nohup ... &` does) makes it ignore SIGINT; the
    stage still stops on it, and on SIGTERM, and checkpoints the step it reached."""
    env = {**os.environ, "SDHRNET_HOME": str(tmp_path / "home"), "SDHRNET_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "sdhrnet.cli", "train-teacher", "--dataset", "300w", "--data-root",
           str(shared_data / "300w"), "--preset", "tiny", "--run-name", "stopped", "--set", "epochs=500"]
    for sig in (signal.SIGINT, signal.SIGTERM):
        log_path = tmp_path / f"{sig.name}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=log,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        deadline = time.monotonic() + 240
        while log_path.read_text().count("/500 done") < 2 and time.monotonic() < deadline:  # two epochs of this start
            assert proc.poll() is None, log_path.read_text()[-2000:]
            time.sleep(0.2)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130, log_path.read_text()[-2000:]
        text = log_path.read_text()
        assert "stopped at epoch" in text and "run the same command again to resume" in text
    saved = list((tmp_path / "home" / "checkpoints").glob("*/last.pt"))
    assert len(saved) == 1, "the second start resumed the first one's run"
    state = torch.load(saved[0], weights_only=False)
    assert state["epoch"] >= 4, "each stop kept the epochs it had done (two or more per start)"
    assert "resumed teacher at epoch" in (tmp_path / "SIGTERM.log").read_text()
