import cv2
import numpy as np
import pytest
import torch

from tests.data_helpers import face_image, tiny_onnx
from landmarks import geometry as g
from landmarks import heatmaps as hm
from trainer.augment import random_downscale, random_erasing, random_noise
from landmarks.geometry import IMAGENET_STD
from landmarks.datasets import get_info, load_image, load_samples
from trainer.torch_data import LandmarkDataset
from landmarks.scoring import predict_with_landmarker
from landmarks.landmarker import OnnxLandmarker, prepare_faces

cv2.setNumThreads(1)
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def afw(shared_data):
    return load_samples("300w", shared_data / "300w", "afw")[:6]


def test_eval_mode_crop_equals_prepare_faces(afw):
    info = get_info("300w")
    ds = LandmarkDataset(afw, info, 128, train=False).build_cache(threads=2)
    for i, s in enumerate(afw):
        item = ds[i]
        batch, transforms = prepare_faces(load_image(s), s.box[None], 128)
        assert torch.equal(item["image"], torch.from_numpy(batch[0]))
        np.testing.assert_allclose(item["transform"].numpy(), transforms[0])
        np.testing.assert_allclose(item["landmarks"].numpy(), g.transform_points(s.landmarks, transforms[0]), atol=1e-4)
        assert item["heatmaps"].shape == (68, 32, 32) and item["index"] == i


@pytest.mark.parametrize("shift", [0.0, 0.2])
def test_train_items_match_a_direct_crop_of_the_photo(afw, shift):
    """The cached two-step warp equals one warp of the original photo with the composed augmentation (the
    cache's margin covers the shifted crops too: a missing margin would show as black in the cached crop)."""
    info = get_info("300w")
    ds = LandmarkDataset(afw, info, 128, train=True, augment_config={"shift": shift})
    flips, offsets = 0, []
    for seed in range(12):
        i = seed % len(afw)
        image, pts = ds.crop(i, np.random.default_rng(seed))
        p = g.sample_augmentation(np.random.default_rng(seed), ds.augment)
        flips += p.flip
        offsets.append(p.shift)
        center, scale = g.box_to_center_scale(afw[i].box)
        center = center + np.asarray(p.shift) * scale * g.PIXEL_STD
        m = g.crop_matrix(center, scale * p.scale_factor, 128, p.rotation, p.flip)
        direct = g.transform_points(afw[i].landmarks, m)
        if p.flip:
            direct = direct[info.flip_permutation]
        np.testing.assert_allclose(pts, direct, atol=1e-6)
        reference = g.warp(load_image(afw[i]), m, 128).astype(int)
        assert np.abs(image.astype(int) - reference).mean() < 6  # only resampling differs
    assert 0 < flips < 12
    offsets = np.abs(np.asarray(offsets))
    assert offsets.max() <= shift and (offsets.max() > shift / 2 if shift else True)


def test_a_box_shift_leaves_the_other_draws_as_they_were():
    """Runs without a shift keep their random stream, so a seed trains as it did before shifts existed."""
    for seed in range(20):
        plain = g.sample_augmentation(np.random.default_rng(seed), g.AugmentConfig())
        shifted = g.sample_augmentation(np.random.default_rng(seed), g.AugmentConfig(shift=0.1))
        assert plain.shift == (0.0, 0.0) and shifted.shift != (0.0, 0.0)
        assert (plain.scale_factor, plain.rotation, plain.flip) == (shifted.scale_factor, shifted.rotation,
                                                                    shifted.flip)


def test_train_item_targets_and_determinism(afw):
    info = get_info("300w")
    ds = LandmarkDataset(afw, info, 64, train=True, seed=7)
    a, b = ds[2], ds[2]
    assert torch.equal(a["image"], b["image"])  # same (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(a["image"], ds[2]["image"])
    assert a["image"].shape == (3, 64, 64) and a["heatmaps"].shape == (68, 16, 16)
    inside = ((a["landmarks"] > 6) & (a["landmarks"] < 57)).all(dim=1).numpy()  # no refinement on the border
    decoded, _ = hm.decode(a["heatmaps"].numpy()[None])
    err = np.abs(hm.heatmap_to_input(decoded[0]) - a["landmarks"].numpy())[inside]
    assert err.max() <= 1.0 + 1e-4  # quarter-pixel decode of the targets
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 3, 64, 64) and batch["transform"].shape == (3, 2, 3)


def test_cache_margin_covers_the_augmentation():
    cfg = g.AugmentConfig()
    assert cfg.max_extent() == pytest.approx(1.25 * (np.cos(np.pi / 6) + np.sin(np.pi / 6)))
    assert g.AugmentConfig(rotation_p=0).max_extent() == pytest.approx(1.25)
    assert g.AugmentConfig(rotation_p=0, shift=0.1).max_extent() == pytest.approx(1.45)


def test_random_erasing_is_independent_per_sample_and_call():
    images = torch.ones(16, 3, 40, 40)
    gen = torch.Generator().manual_seed(0)
    a = random_erasing(images, p=1.0, generator=gen)
    b = random_erasing(images, p=1.0, generator=gen)
    assert torch.equal(images, torch.ones(16, 3, 40, 40))  # input untouched
    masks_a, masks_b = (a == 0).all(dim=1), (b == 0).all(dim=1)
    areas = masks_a.float().mean(dim=(1, 2))
    assert (areas > 0.015).all() and (areas < 0.11).all()
    assert not torch.equal(masks_a, masks_b)  # two students, two masks
    assert len({tuple(m.flatten().nonzero().flatten()[:3].tolist()) for m in masks_a}) > 1
    none = random_erasing(images, p=0.0)
    assert torch.equal(none, images)
    with pytest.raises(ValueError):
        random_erasing(images[0])


def test_random_noise_has_each_sample_draw_its_own_grey_level():
    images = torch.zeros(64, 3, 32, 32)
    out = random_noise(images, p=1.0, max_grey=16.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, torch.zeros(64, 3, 32, 32))  # input untouched
    grey = out.std(dim=(2, 3)) * torch.as_tensor(IMAGENET_STD)[None] * 255  # back in grey levels, per channel
    assert grey.max() <= 16.0 * 1.1 and grey.min() < 4.0, "uniform in 0..16 grey levels"
    assert torch.allclose(grey[:, 0], grey[:, 2], rtol=0.15), "the same grey level in every channel"
    assert len({round(g, 2) for g in grey[:, 0].tolist()}) > 32, "each sample draws its own level"
    half = random_noise(images, p=0.5, generator=torch.Generator().manual_seed(1))
    assert 16 <= int((half.flatten(1).abs().amax(1) > 0).sum()) <= 48
    with pytest.raises(ValueError):
        random_noise(images[0])


def test_random_downscale_blurs_each_sample_by_its_own_factor():
    # a one-pixel checkerboard: all of its energy is at the highest frequency, which any downscale removes
    board = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).float() * 2 - 1
    images = board.expand(8, 3, 64, 64).clone()
    gen = torch.Generator().manual_seed(0)
    out = random_downscale(images, p=1.0, min_scale=0.35, generator=gen)
    assert out.shape == images.shape and torch.equal(images, board.expand(8, 3, 64, 64))  # input untouched
    contrast = out.abs().mean(dim=(1, 2, 3))
    assert (contrast < 0.5).all(), "every sample lost most of the checkerboard"
    assert len({round(c, 4) for c in contrast.tolist()}) > 1, "each sample draws its own scale"
    flat = torch.full((4, 3, 64, 64), 0.7)
    assert torch.allclose(random_downscale(flat, p=1.0, generator=gen), flat, atol=1e-5), "brightness is kept"
    assert torch.equal(random_downscale(images, p=0.0, generator=gen), images)
    with pytest.raises(ValueError):
        random_downscale(images[0])


def test_onnx_landmarker_and_predict_with_landmarker(tmp_path, afw):
    info = get_info("300w")
    model = tiny_onnx(tmp_path / "model.onnx", 68, 64)
    lm = OnnxLandmarker(model, flip_pairs=info.flip_pairs, batch_size=2)
    assert lm.input_size == 64
    image = load_image(afw[0])
    boxes = np.stack([afw[0].box, afw[0].box + 5, afw[0].box - 3])
    landmarks, conf = lm.predict(image, boxes)
    assert landmarks.shape == (3, 68, 2) and conf.shape == (3, 68)
    batch, transforms = prepare_faces(image, boxes, 64)
    heat = lm.run(batch)
    assert heat.shape == (3, 68, 16, 16)
    flipped, _ = lm.predict(image, boxes, flip_test=True)
    assert flipped.shape == (3, 68, 2)
    preds = predict_with_landmarker(lm, afw[:3])
    assert set(preds) == {s.sample_id for s in afw[:3]}
    np.testing.assert_allclose(preds[afw[0].sample_id], landmarks[0])
    with pytest.raises(ValueError, match="input_size"):
        OnnxLandmarker(model, input_size=128)
    dynamic = OnnxLandmarker(tiny_onnx(tmp_path / "dyn.onnx", 68), input_size=32)
    assert dynamic.predict(image, afw[0].box)[0].shape == (1, 68, 2)
    with pytest.raises(ValueError, match="box 0"):
        lm.predict(image, [[0, 0, 0, 0]])


def test_second_pass_frames_the_first_pass_points():
    from landmarks.passes import second_pass

    spread = np.array([[10.0, 20.0], [50.0, 25.0], [30.0, 90.0]])
    on_a_line = np.array([[5.0, 5.0], [5.0, 40.0], [5.0, 60.0]])  # no width: no crop can be framed on it
    boxes = np.array([[0.0, 0.0, 100.0, 100.0], [1.0, 2.0, 30.0, 40.0]])
    plan = second_pass([spread, on_a_line], boxes)
    np.testing.assert_allclose(plan.boxes, [[10, 20, 50, 90], [1, 2, 30, 40]], atol=1e-9)
    assert plan.index.tolist() == [0, 1] and plan.rolls.tolist() == [0, 0] and not plan.tilted.any()


def test_tiny_dataset_without_shared_data(tmp_path):
    face_image(tmp_path / "afw/a_1.jpg", size=(90, 90))
    pts = np.random.default_rng(0).uniform(20, 70, (68, 2))
    (tmp_path / "afw/a_1.pts").write_text("version: 1\nn_points: 68\n{\n" +
                                          "".join(f"{x + 1} {y + 1}\n" for x, y in pts) + "}\n")
    samples = load_samples("300w", tmp_path, "afw")
    ds = LandmarkDataset(samples, get_info("300w"), 32, train=True, cache_scale=0.5)
    ds.build_cache()
    assert ds.cache_size == int(np.ceil(32 * ds.margin * 0.5)) and ds.cached_bytes() > 0
    assert ds[0]["image"].shape == (3, 32, 32)


def test_extra_training_sets_join_the_training_split_only(shared_data):
    from pydantic import ValidationError

    from sdhrnet.train_config import make_config
    from trainer.engine import load_data

    root = shared_data / "300w"
    plain = load_data("300w", root, make_config("cpu", "300w"))
    csv_training = len(load_samples("csv", shared_data / "p1-ytf68", "training"))
    cfg = make_config("cpu", "300w", {"extra_train": [f"csv:{shared_data / 'p1-ytf68'}:training"]})
    more = load_data("300w", root, cfg)
    assert len(more.train) == len(plain.train) + csv_training
    assert [s.sample_id for s in more.val_samples] == [s.sample_id for s in plain.val_samples]
    with pytest.raises(ValidationError, match="DATASET:ROOT:SPLIT"):
        make_config("cpu", "300w", {"extra_train": ["p1-ytf68"]})
    with pytest.raises(ValidationError, match="unknown dataset"):
        make_config("cpu", "300w", {"extra_train": ["nope:/data:train"]})
