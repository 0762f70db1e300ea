"""`sdhrnet align`: image files and folders -> one JSON line per image, the answer /align gives for the same image."""
import json

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sdhrnet.cli import main as cli
from sdhrnet.settings import ServiceSettings
from service.app import create_app
from tests.service_support import FakeJobs, FakeRegistry, b64, build_tiny_model
from tests.test_default_model import MODEL

PHOTO = "helen/trainset/100040721_1.jpg"  # a dev face (not trained on)


@pytest.fixture(scope="module")
def photo(shared_data):
    return shared_data / "300w" / PHOTO


@pytest.fixture(scope="module")
def client():
    app = create_app(ServiceSettings(model_poll_seconds=0, preload_datasets=""),
                     registry=FakeRegistry({"300w": [MODEL]}), jobs=FakeJobs(), api_keys=frozenset())
    with TestClient(app) as c:
        yield c


def _align(tmp_path, *argv) -> tuple[int, list[dict]]:
    out = tmp_path / "lines.jsonl"
    code = cli(["align", *map(str, argv), "--out", str(out)])
    return code, [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def _same_faces(mine: list[dict], served: list[dict]) -> None:
    assert len(mine) == len(served) > 0
    for a, b in zip(mine, served):
        assert a.keys() == b.keys() and a["passes"] == b["passes"]
        # the service's detector and ONNX sessions run on other threads, which moves turns by thousandths of a degree
        for key in ("box", "landmarks", "detection_box"):
            if b[key] is not None or a[key] is not None:
                np.testing.assert_allclose(np.asarray(a[key], float), np.asarray(b[key], float), atol=0.1,
                                           err_msg=key)
        assert a["box_roll"] == pytest.approx(b["box_roll"], abs=0.05)


def test_a_photo_is_answered_as_align_answers_it_with_and_without_boxes(client, photo, tmp_path):
    code, (line,) = _align(tmp_path, photo)
    served = client.post("/align", json={"image": b64(photo.read_bytes())}).json()
    assert code == 0 and line["image"] == str(photo)
    _same_faces(line["faces"], served["faces"])
    assert line["recrop"] is served["recrop"] is True and line["detection"] == served["detection"]
    assert line["model"]["path"] == str(MODEL / "model.onnx")
    assert (line["model"]["dataset"], line["model"]["num_landmarks"]) == ("300w", 68) == (
        served["model"]["dataset"], served["model"]["num_landmarks"])
    box = [[100, 120, 320, 330]]
    code, (line,) = _align(tmp_path, photo, "--boxes", json.dumps(box), "--flip")
    served = client.post("/align?flip=true", json={"image": b64(photo.read_bytes()), "boxes": box}).json()
    assert code == 0 and line["detection"] is None and line["recrop"] is False
    _same_faces(line["faces"], served["faces"])
    assert line["faces"][0]["box"] == box[0] and line["faces"][0]["detection_score"] is None


def test_small_faces_scans_tiles(shared_data, tmp_path):
    from bench.group_photos import group_photo
    from landmarks.datasets import load_image, load_samples
    from landmarks.face_detector import match_faces

    dev = [(s, load_image(s)) for s in load_samples("300w", shared_data / "300w", "dev")[:4]]
    canvas, boxes, _ = group_photo(dev, 70, 700, 200, np.random.default_rng(0))
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    _, (whole,) = _align(tmp_path, path)
    _, (tiled,) = _align(tmp_path, path, "--small-faces", "--min-face-size", 50, "--recrop", "off")
    assert len(whole["faces"]) < 4 and whole["detection"]["looks"] == 1 + whole["detection"]["upside_down_look"]
    assert sorted(match_faces(np.array([f["box"] for f in tiled["faces"]]), boxes)) == [0, 1, 2, 3]
    assert tiled["detection"]["looks"] > 1 and {f["passes"] for f in tiled["faces"]} == {1}


def test_a_folder_keeps_going_past_a_bad_file_and_draws_the_points(photo, tmp_path):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    (folder / "more" / "face.jpg").write_bytes(photo.read_bytes())
    (folder / "face.jpg").write_bytes(photo.read_bytes())  # the same name in two folders: two drawings
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not looked at")
    code, lines = _align(tmp_path, folder, "--draw", tmp_path / "drawn")
    assert code == 1 and [line["image"] for line in lines] == [str(folder / "broken.png"), str(folder / "face.jpg"),
                                                                  str(folder / "more" / "face.jpg")]
    assert lines[1]["drawn"] != lines[2]["drawn"] and sorted(p.name for p in (tmp_path / "drawn").iterdir()) == [
        "face-1.png", "face.png"]
    lines = [lines[0], lines[2]]
    assert "not an image" in lines[0]["error"] and "faces" not in lines[0]
    assert len(lines[1]["faces"]) == 1 and "error" not in lines[1]
    drawn = cv2.imread(lines[1]["drawn"])
    original = cv2.imread(str(photo))
    assert drawn.shape == original.shape
    x, y = np.round(lines[1]["faces"][0]["landmarks"][30]).astype(int)  # the nose tip is painted over
    assert np.abs(drawn[y, x].astype(int) - original[y, x].astype(int)).sum() > 60


@pytest.mark.parametrize("argv,message", [
    (["PHOTO", "--boxes", "[[1, 2, 3]]"], "list of [x1, y1, x2, y2]"),
    (["PHOTO", "--boxes", "not json"], "--boxes must be JSON"),
    (["PHOTO", "PHOTO", "--boxes", "[[10, 10, 50, 50]]"], "boxes of one image"),
    (["PHOTO", "--boxes", "[[-100, -100, -10, -10]]"], "mostly outside"),  # the rules of /align's boxes
    (["PHOTO", "--boxes", "[[10, 10, 10.5, 50]]"], "degenerate"),
    (["PHOTO", "--max-faces", "0"], "at least 1"),
    (["PHOTO", "--out", "NOWHERE/lines.jsonl"], "cannot write --out"),
    (["PHOTO", "--flip", "--model", "TINY"], "no flip pairs"),
    (["PHOTO", "--model", "CORRUPT"], "is not an ONNX model that can be loaded (ONNX Runtime: Protobuf parsing"),
    (["PHOTO", "--model", "NOT_A_CARD"], "model_card.json must hold a model card (a JSON object), not a JSON list"),
    (["PHOTO", "--draw", "A_FILE"], "cannot write --draw"),
    (["PHOTO", "--draw", "A_FILE/drawn"], "cannot write --draw"),
])
def test_usage_errors_exit_2_with_a_message(photo, tmp_path, capsys, argv, message):
    tiny = build_tiny_model(tmp_path / "tiny", 29, dataset="cofw")
    corrupt = tmp_path / "corrupt"  # a model folder whose model.onnx is not ONNX
    corrupt.mkdir()
    (corrupt / "model_card.json").write_text((tiny / "model_card.json").read_text())
    (corrupt / "model.onnx").write_text("not a protobuf")
    not_a_card = tmp_path / "not-a-card"
    not_a_card.mkdir()
    (not_a_card / "model_card.json").write_text("[1, 2]")
    (not_a_card / "model.onnx").write_bytes((tiny / "model.onnx").read_bytes())
    (tmp_path / "a-file").write_text("")
    named = {"PHOTO": photo, "TINY": tiny, "CORRUPT": corrupt, "NOT_A_CARD": not_a_card}
    argv = [str(named[a]) if a in named else
            a.replace("NOWHERE", str(tmp_path / "no")).replace("A_FILE", str(tmp_path / "a-file")) for a in argv]
    code = cli(["align", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_a_registered_name_that_is_not_there_is_a_message(photo, capsys, monkeypatch, settings_env):
    import registry.store

    settings_env(SDHRNET_OFFLINE_RUNS=None)

    def not_registered(uri):
        raise registry.store.ModelNotFound(f"{uri}: no registered model nosuch with the alias 'champion'")

    monkeypatch.setattr(registry.store, "run_of_model_uri", not_registered)
    assert cli(["align", str(photo), "--model", "models:/nosuch@champion"]) == 2
    err = capsys.readouterr().err
    assert "no registered model nosuch" in err and "Traceback" not in err


@pytest.mark.parametrize("threads", ["0", "-3"])
def test_threads_below_one_are_refused_by_the_parser(photo, capsys, threads):
    with pytest.raises(SystemExit) as exit_:
        cli(["align", str(photo), "--threads", threads])
    assert exit_.value.code == 2 and "--threads: must be a whole number of at least 1" in capsys.readouterr().err


def test_no_images_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["align", str(tmp_path / "empty")]) == 2
    assert "no images in" in capsys.readouterr().err


def test_help_describes_the_commands_for_a_user(capsys):
    with pytest.raises(SystemExit):
        cli(["--help"])
    text = capsys.readouterr().out
    assert "align faces" in text and "lazily" not in text and "torch" not in text  # no notes for developers
