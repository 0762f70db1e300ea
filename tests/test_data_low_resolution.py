"""Scoring on faces with few pixels (landmarks.low_resolution): photos shrunk until their faces are a given size,
points mapped back to the original pixels."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landmarks.datasets.base import Sample
from landmarks.low_resolution import LowResolution, restore, shrink


def test_the_photo_shrinks_until_its_largest_face_has_face_px_pixels():
    image = np.zeros((400, 300, 3), np.uint8)
    boxes = np.array([[50, 60, 250, 300], [10, 10, 60, 70]], float)  # 240 px and 60 px tall
    small, small_boxes, scale = LowResolution(48).apply(image, boxes)
    assert small.shape[:2] == (80, 60) and scale == pytest.approx([0.2, 0.2])
    sides = np.maximum(small_boxes[:, 2] - small_boxes[:, 0], small_boxes[:, 3] - small_boxes[:, 1])
    assert sides == pytest.approx([48, 12])
    same, same_boxes, one = LowResolution(64).apply(image, boxes[1:])  # a face already that small stays
    assert same is image and np.array_equal(same_boxes, boxes[1:]) and np.array_equal(one, [1, 1])
    with pytest.raises(ValueError, match="at least 8 pixels across"):
        LowResolution(4)


def test_points_follow_the_pixel_centres_of_the_shrunk_photo():
    """A blob's centre in the shrunk photo is where shrink() puts it; x * scale would be off by 0.375 px here."""
    x0, y0 = 101.3, 77.8
    yy, xx = np.mgrid[0:200, 0:240]
    blob = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 8.0 ** 2))
    image = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    small, _, scale = LowResolution(30).apply(image, np.array([[0, 0, 120, 100]], float))
    assert scale == pytest.approx([0.25, 0.25])
    weights = small[..., 0].astype(float)
    sy, sx = np.mgrid[0:small.shape[0], 0:small.shape[1]]
    centre = np.array([(weights * sx).sum(), (weights * sy).sum()]) / weights.sum()
    expected = shrink(np.array([[x0, y0]]), scale)[0]
    assert np.abs(centre - expected).max() < 0.05
    assert np.abs(centre - np.array([x0, y0]) * scale).max() > 0.3
    np.testing.assert_allclose(restore(expected[None], scale)[0], [x0, y0])


class _BoxCentres:
    """Stands in for the landmark model: every point at its box's centre; keeps the images and boxes it saw."""

    def __init__(self):
        self.seen = []

    def predict(self, image, boxes, flip_test=False, recrop=False, rolls=None, tilt_at=None, framed=None):
        boxes = np.asarray(boxes, float)
        self.seen.append((image.shape, boxes))
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        return np.repeat(centres[:, None], 68, axis=1), np.ones((len(boxes), 68), np.float32)


def test_scoring_predicts_on_the_shrunk_photo_and_maps_the_points_back():
    from landmarks.scoring import predict_with_landmarker

    image = np.full((300, 400, 3), 90, np.uint8)
    box = np.array([100.0, 50.0, 300.0, 250.0])
    sample = Sample(Path("photo.jpg"), np.zeros((68, 2)), box, "photo", {"subsets": []}, image)
    landmarker = _BoxCentres()
    predictions = predict_with_landmarker(landmarker, [sample], low_resolution=LowResolution(40))
    (shape, boxes), = landmarker.seen
    assert shape[:2] == (60, 80) and (boxes[0, 2] - boxes[0, 0]) == pytest.approx(40)
    np.testing.assert_allclose(predictions["photo"], np.repeat([[200.0, 150.0]], 68, axis=0), atol=1e-9)


def test_evaluate_face_px_needs_a_model(tmp_path):
    cmd = [sys.executable, "-m", "sdhrnet.cli", "evaluate", "--dataset", "300w", "--data-root", str(tmp_path),
           "--predictions", "p.json", "--face-px", "48"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 2 and "--face-px needs --model" in run.stderr
