import logging
import sys

import numpy as np
import pytest

from tests.data_helpers import (face_image, random_shape, write_cofw_v5, write_cofw_v73, write_landmark_csv, write_pts,
                          write_wflw_list)
from landmarks.datasets import DatasetError, get_info, load_image, load_samples
from landmarks.datasets import w300


# --- 300W ------------------------------------------------------------------------------------------

def test_300w_layouts_ids_and_one_based_coordinates(tmp_path, caplog):
    pts = random_shape(68, seed=1)
    face_image(tmp_path / "afw/111_1.jpg")
    write_pts(tmp_path / "afw/111_1.pts", pts)
    # original iBUG layout: one photo, one .pts per face
    photo = face_image(tmp_path / "helen/testset/296814969.jpg", seed=2)
    write_pts(tmp_path / "helen/testset/296814969_1.pts", pts + 1)
    write_pts(tmp_path / "helen/testset/296814969_3.pts", pts + 2)
    face_image(tmp_path / "lfpw/testset/image_0001.png")
    write_pts(tmp_path / "lfpw/testset/image_0001.pts", pts)
    write_pts(tmp_path / "lfpw/testset/orphan.pts", pts)  # no image: skipped, reported

    with caplog.at_level(logging.WARNING, logger="landmarks.datasets"):
        common = load_samples("300w", tmp_path, "common")
    assert [s.sample_id for s in common] == ["helen/testset/296814969_1.jpg", "helen/testset/296814969_3.jpg",
                                            "lfpw/testset/image_0001.png"]
    np.testing.assert_allclose(common[0].landmarks, pts + 1, atol=1e-9)  # 1-based file -> 0-based
    np.testing.assert_allclose(common[0].box, [*(pts + 1).min(0), *(pts + 1).max(0)])
    assert common[0].attributes["subsets"] == ["helen/testset", "common"]
    assert np.array_equal(load_image(common[1]), photo)
    assert common.skipped == ["lfpw/testset/orphan.pts"]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="landmarks.datasets"):
        train = load_samples("300w", tmp_path, "train")
    assert [s.sample_id for s in train] == ["afw/111_1.jpg"]
    assert train.found_subsets == ["afw"] and train.missing_subsets == ["helen/trainset", "lfpw/trainset"]
    assert "helen/trainset" in caplog.text and "lfpw/trainset" in caplog.text
    assert len(load_samples("300w", tmp_path, "full")) == 3

    with pytest.raises(DatasetError, match="ibug"):
        load_samples("300w", tmp_path, "challenge")
    with pytest.raises(DatasetError, match="unknown 300W split"):
        load_samples("300w", tmp_path, "nope")
    with pytest.raises(DatasetError, match="not a directory"):
        load_samples("300w", tmp_path / "absent", "train")


def test_300w_bad_pts_is_a_clear_error(tmp_path):
    face_image(tmp_path / "ibug/a.jpg")
    (tmp_path / "ibug/a.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(DatasetError, match="n_points 68"):
        load_samples("300w", tmp_path, "challenge")


def test_300w_dev_split_is_deterministic_and_disjoint(tmp_path):
    pts = random_shape(68)
    face_image(tmp_path / "helen/trainset/x.jpg")
    for i in range(64):
        write_pts(tmp_path / f"helen/trainset/x_{i}.pts", pts)
    dev = {s.sample_id for s in load_samples("300w", tmp_path, "dev")}
    rest = {s.sample_id for s in load_samples("300w", tmp_path, "train-dev")}
    assert dev and not dev & rest and len(dev | rest) == 64
    assert dev == {s.sample_id for s in load_samples("300w", tmp_path, "dev")}
    assert all(w300.is_dev(i) for i in dev)


# --- WFLW ------------------------------------------------------------------------------------------

def test_wflw_list_format(tmp_path):
    ann = tmp_path / "WFLW_annotations/list_98pt_rect_attr_train_test"
    pts = [random_shape(98, seed=i) for i in range(3)]
    for rel in ("51--Dresses/51_a.jpg", "2--Demonstration/2_b.jpg"):
        face_image(tmp_path / "WFLW_images" / rel)
    rows = [(pts[0], [10, 12, 90, 95], [1, 0, 0, 0, 1, 0], "51--Dresses/51_a.jpg"),
            (pts[1], [5, 6, 70, 80], [0, 0, 0, 0, 0, 1], "2--Demonstration/2_b.jpg"),
            (pts[2], [5, 6, 70, 80], [0, 1, 0, 0, 0, 0], "51--Dresses/51_a.jpg")]
    write_wflw_list(ann / "list_98pt_rect_attr_test.txt", rows)
    test = load_samples("wflw", tmp_path, "test")
    assert [s.sample_id for s in test] == ["51--Dresses/51_a_1.jpg", "2--Demonstration/2_b.jpg", "51--Dresses/51_a_2.jpg"]
    np.testing.assert_allclose(test[2].landmarks, pts[2], atol=1e-6)
    assert test[0].attributes["subsets"] == ["pose", "occlusion"]
    np.testing.assert_array_equal(test[0].attributes["rect"], [10, 12, 90, 95])
    assert test[0].image_path == tmp_path / "WFLW_images/51--Dresses/51_a.jpg"
    assert [s.sample_id for s in load_samples("wflw", tmp_path, "blur")] == ["2--Demonstration/2_b.jpg"]
    assert len(load_samples("wflw", tmp_path, "occlusion")) == 1
    with pytest.raises(DatasetError, match="list_98pt_rect_attr_train.txt"):
        load_samples("wflw", tmp_path, "train")
    (ann / "list_98pt_rect_attr_train.txt").write_text("1 2 3 x.jpg\n")
    with pytest.raises(DatasetError, match="expected 207"):
        load_samples("wflw", tmp_path, "train")


# --- COFW ------------------------------------------------------------------------------------------

def _cofw_content(n=3, seed=0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (60 + 7 * i, 50 + 5 * i, 3), dtype=np.uint8) for i in range(n - 1)]
    images.append(rng.integers(0, 255, (40, 45), dtype=np.uint8))  # COFW has a few grey images
    phis = np.hstack([rng.uniform(5, 40, (n, 58)), rng.integers(0, 2, (n, 29))])
    boxes = np.array([[3, 4, 30, 35]] * n, dtype=float)
    return images, phis, boxes


@pytest.mark.parametrize("writer", [write_cofw_v73, write_cofw_v5], ids=["v7.3-hdf5", "v5"])
def test_cofw_mat_formats(tmp_path, writer):
    images, phis, boxes = _cofw_content()
    writer(tmp_path / "COFW_test_color.mat", images, phis, boxes)
    samples = load_samples("cofw", tmp_path, "test")
    assert [s.sample_id for s in samples] == ["COFW_test_color.mat/0001", "COFW_test_color.mat/0002",
                                              "COFW_test_color.mat/0003"]
    for s, img, phi in zip(samples, images, phis):
        expected = img if img.ndim == 3 else np.stack([img] * 3, -1)
        assert np.array_equal(load_image(s), expected)  # H x W x 3 orientation survives MATLAB's transposition
        np.testing.assert_allclose(s.landmarks[:, 0], phi[:29] - 1)
        np.testing.assert_allclose(s.landmarks[:, 1], phi[29:58] - 1)
        np.testing.assert_array_equal(s.attributes["occluded"], phi[58:].astype(bool))
    np.testing.assert_allclose(samples[0].attributes["rect"], [2, 3, 32, 38])
    with pytest.raises(DatasetError, match="COFW_train_color.mat"):
        load_samples("cofw", tmp_path, "train")


def test_cofw_train_keys(tmp_path):
    images, phis, boxes = _cofw_content(2)
    write_cofw_v73(tmp_path / "COFW_train_color.mat", images, phis, boxes, keys=("IsTr", "phisTr", "bboxesTr"))
    assert len(load_samples("cofw", tmp_path, "train")) == 2
    write_cofw_v5(tmp_path / "COFW_test_color.mat", images, phis, boxes, keys=("IsTr", "phisTr", "bboxesTr"))
    with pytest.raises(DatasetError, match="missing variables"):
        load_samples("cofw", tmp_path, "test")


# --- landmark CSV ----------------------------------------------------------------------------------

def test_landmark_csv(tmp_path):
    pts = [random_shape(68, seed=i).round(1) for i in range(2)]
    face_image(tmp_path / "training/A_0.jpg")
    face_image(tmp_path / "training/B_1.jpg")
    write_landmark_csv(tmp_path, "training", [("A_0.jpg", pts[0]), ("B_1.jpg", pts[1]), ("gone.jpg", pts[1])])
    samples = load_samples("csv", tmp_path, "training")
    assert [s.sample_id for s in samples] == ["training/A_0.jpg", "training/B_1.jpg"]
    assert samples.skipped == ["gone.jpg"]
    np.testing.assert_allclose(samples[1].landmarks, pts[1])
    assert get_info("csv").num_landmarks == 68 and get_info("csv").name == "csv"
    with pytest.raises(DatasetError, match="test_frames_keypoints.csv"):
        load_samples("csv", tmp_path, "test")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_samples("afhq", tmp_path, "test")


# --- the real data in ../shared/data -----------------------------------------------------------------

def test_shared_300w_counts_and_ids(shared_data):
    root = shared_data / "300w"
    assert len(load_samples("300w", root, "afw")) == 337
    helen = load_samples("300w", root, "helen/trainset")
    assert len(helen) == 870
    train = load_samples("300w", root, "train")
    assert len(train) == 337 + 870 and train.missing_subsets == ["lfpw/trainset"]
    dev, rest = load_samples("300w", root, "dev"), load_samples("300w", root, "train-dev")
    assert 80 <= len(dev) <= 140 and len(dev) + len(rest) == len(train)
    s = helen[0]
    assert s.sample_id.startswith("helen/trainset/") and s.sample_id.endswith(".jpg")
    assert (root / s.sample_id).is_file()
    image = load_image(s)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert np.all(s.landmarks >= -1) and np.all(s.landmarks[:, 0] < image.shape[1] + 1)


def test_shared_csv_counts(shared_data):
    root = shared_data / "p1-ytf68"
    assert len(load_samples("csv", root, "training")) == 3462
    test = load_samples("csv", root, "test")
    assert len(test) == 770 and test[0].landmarks.shape == (68, 2)


def test_video_frames_are_grouped_by_the_person_they_show(shared_data):
    """The selection rule tests video frames per person (trainer.results.by_subject): frames of one video are
    nearly the same face, and the same people appear in both splits."""
    from landmarks.datasets import subject_of
    from trainer.results import by_subject

    root = shared_data / "p1-ytf68"
    subject = subject_of("csv")
    training = {subject(s.sample_id) for s in load_samples("csv", root, "training")}
    assert subject("training/Luis_Fonsi_21.jpg") == "Luis_Fonsi" == subject("test/Luis_Fonsi_3.jpg")
    assert len(training) == 347 and {subject(s.sample_id) for s in load_samples("csv", root, "test")} == training
    assert subject_of("300w") is None
    per_image = {"training/A_B_1.jpg": 0.1, "training/A_B_2.jpg": 0.3, "training/C_10.jpg": 0.2}
    assert by_subject("csv", per_image) == pytest.approx({"A_B": 0.2, "C": 0.2})
    assert by_subject("300w", {"afw/1.jpg": 0.1}) == {"afw/1.jpg": 0.1}


def test_a_dataset_is_one_module_and_every_list_derives_from_it(tmp_path, monkeypatch):
    import landmarks.datasets as registry
    from sdhrnet.train_config import make_config

    (tmp_path / "dots5.py").write_text(
        "from landmarks.datasets.base import DatasetError, DatasetInfo, SampleList\n"
        "INFO = DatasetInfo('dots5', 5, ((0, 1),), (0, 1), 1.0, train_split='a', test_split='b')\n"
        "def load(data_root, split):\n    return SampleList()\n")
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(tmp_path)])
    with pytest.raises(RuntimeError, match="dots5 declares no check_split"):
        registry._discover()
    with (tmp_path / "dots5.py").open("a") as module:
        module.write("def check_split(split):\n    if split not in 'ab':\n        raise DatasetError('no ' + split)\n")
    monkeypatch.delitem(sys.modules, "landmarks.datasets.dots5")  # read again, as edited
    found = registry._discover()
    assert found["dots5"].INFO.num_landmarks == 5 and set(registry.DATASETS) < set(found)
    monkeypatch.setattr(registry, "_READERS", found)
    monkeypatch.setattr(registry, "DATASETS", {n: m.INFO for n, m in found.items()})
    cfg = make_config("tiny", "dots5")
    assert (cfg.train_split, cfg.val_split) == ("a", "b")
    with pytest.raises(ValueError, match="val_split: no c"):
        make_config("tiny", "dots5", {"val_split": "c"})
    assert registry.load_samples("dots5", tmp_path, "b") == []


def test_an_items_file_keeps_ids_boxes_points_and_pixels(tmp_path):
    from landmarks.datasets.base import DatasetError, load_image, make_sample
    from landmarks.datasets.items_file import ITEMS_FILE, read_items, write_items

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8) for i in range(2)]
    points = [rng.uniform(5, 35, (5, 2)) for _ in range(2)]
    samples = [make_sample(f"x{i}", p, f"a/b {i}", image=im) for i, (p, im) in enumerate(zip(points, images))]
    samples[1].box = np.array([1.0, 2.0, 30.0, 33.0])
    kept = read_items(write_items(tmp_path, samples))
    assert [s.sample_id for s in kept] == ["a/b 0", "a/b 1"]
    np.testing.assert_allclose(kept[1].box, [1, 2, 30, 33])
    np.testing.assert_allclose(kept[0].box, samples[0].box)
    for s, im, p in zip(kept, images, points):
        np.testing.assert_array_equal(load_image(s), im)
        np.testing.assert_allclose(s.landmarks, p)
    (tmp_path / ITEMS_FILE).write_text('[{"id": "x"}]')
    with pytest.raises(DatasetError, match="items file"):
        read_items(tmp_path / ITEMS_FILE)
