import json
import subprocess
import sys
from argparse import Namespace

import pytest
import torch

from sdhrnet.cli import complexity as cli_complexity
from trainer.complexity import complexity
from trainer.nets import build_network

torch.set_num_threads(1)

# METHOD.md reference counts at 256x256: params, total MACs, head MACs (None = not given)
REFERENCE = {
    "s-hrnet-300w": (0.961e6, 0.971e9, 0.374e9),
    "s-hrnet-wflw": (1.351e6, 0.711e9, 0.116e9),
    "s-hrnet-cofw": (1.075e6, 0.684e9, 0.080e9),
    "hrnetv2-w18": (9.65e6, 4.66e9, None),
}


@pytest.mark.parametrize("arch", sorted(REFERENCE))
def test_counts_match_reference_within_two_percent(arch):
    params, macs, head = REFERENCE[arch]
    c = complexity(build_network(arch), 256)
    assert c["params"] == pytest.approx(params, rel=0.02)
    assert c["macs"] == pytest.approx(macs, rel=0.02)
    if head is not None:
        assert c["macs_head"] == pytest.approx(head, rel=0.02)
    assert c["macs_backbone"] == c["macs"] - c["macs_head"]
    assert all(isinstance(v, int) for v in c.values())


def test_params_exclude_alpha_and_counting_leaves_the_model_alone():
    net = build_network("hrsupernet").train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    c = complexity(net, 64)
    assert c["params"] == sum(p.numel() for p in net.weight_parameters())
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    # MACs scale with the pixel count
    assert complexity(net, 128)["macs"] == 4 * c["macs"]


def test_input_size_must_be_divisible_by_32():
    with pytest.raises(ValueError, match="divisible by 32"):
        complexity(build_network("s-hrnet-300w"), 100)


def test_table_of_all_presets(capsys):
    args = Namespace(arch="all", input_size=64, landmarks=None, json=False)
    assert cli_complexity.main(args) == 0
    out = capsys.readouterr().out
    for name in ("hrsupernet", "s-hrnet-300w", "s-hrnet-wflw", "s-hrnet-cofw", "hrnetv2-w18"):
        assert name in out


def test_spec_file_arch(tmp_path, capsys):
    build_network("s-hrnet-cofw").spec.save(tmp_path / "cofw.json")
    args = Namespace(arch=str(tmp_path / "cofw.json"), input_size=64, landmarks=None, json=True)
    assert cli_complexity.main(args) == 0
    assert json.loads(capsys.readouterr().out)["num_landmarks"] == 29


@pytest.mark.slow
def test_cli_json_via_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "sdhrnet.cli", "complexity", "--arch", "s-hrnet-300w", "--input-size", "256", "--json"],
        capture_output=True, text=True, timeout=120, check=True)
    data = json.loads(proc.stdout)
    assert {"params", "macs", "macs_head", "macs_backbone"} <= set(data)
    assert data["params"] == pytest.approx(0.961e6, rel=0.02)
