"""Synthetic occlusion (a Masked-300W-like robustness score): seeded per face, inside the box, and scored next to
the clean figure by `sdhrnet evaluate --occlusion`."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landmarks.occlusion import Occlusion

REPO = Path(__file__).resolve().parents[1]


def _image():
    return np.full((240, 320, 3), 128, np.uint8)


def test_the_same_seed_covers_the_same_pixels_whatever_the_order():
    boxes = np.array([[20, 30, 120, 150], [170, 40, 300, 200]], float)
    keys = ["a/1.jpg", "b/2.jpg"]
    together = Occlusion(seed=3).apply(_image(), boxes, keys)
    reversed_order = Occlusion(seed=3).apply(_image(), boxes[::-1], keys[::-1])
    one_by_one = Occlusion(seed=3).apply(Occlusion(seed=3).apply(_image(), boxes[:1], keys[:1]), boxes[1:], keys[1:])
    assert np.array_equal(together, reversed_order) and np.array_equal(together, one_by_one)
    assert not np.array_equal(together, Occlusion(seed=4).apply(_image(), boxes, keys)), "another seed, other occluders"


def test_occluders_stay_inside_their_box_and_cover_the_asked_share():
    occ = Occlusion(seed=0, area=(0.2, 0.4))
    box = np.array([50, 40, 250, 220], float)
    for i in range(50):
        x1, y1, x2, y2, _ = occ.rectangle(box, f"face-{i}")
        assert 50 <= x1 < x2 <= 250 and 40 <= y1 < y2 <= 220
        share = (x2 - x1) * (y2 - y1) / (200 * 180)
        assert 0.15 < share < 0.45, share
    changed = (Occlusion(seed=0).apply(_image(), box[None], ["x"]) != 128).any(-1)
    ys, xs = np.nonzero(changed)
    assert changed.any() and xs.min() >= 50 and xs.max() < 250 and ys.min() >= 40 and ys.max() < 220


@pytest.mark.slow
def test_evaluate_reports_the_occluded_score_beside_the_clean_one_and_repeats_it(shared_data, tmp_path):
    cmd = [sys.executable, "-m", "sdhrnet.cli", "evaluate", "--dataset", "300w", "--data-root", str(shared_data / "300w"),
           "--split", "dev", "--model", str(REPO / "sdhrnet" / "default_model"), "--occlusion", "--json"]
    runs = [subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["occluded"]["nme"] == second["occluded"]["nme"], "seeded occluders: two runs agree"
    assert first["occluded"]["nme"] > first["nme"], "covering part of every face costs accuracy"
    assert first["occluded"]["n"] == first["n"] == 107 and first["occluded"]["occlusion"]["seed"] == 0
    refused = subprocess.run(cmd[:-4] + ["--predictions", "p.json", "--occlusion"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert refused.returncode == 2 and "--occlusion needs --model" in refused.stderr
