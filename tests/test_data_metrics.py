import json

import numpy as np
import pytest

from sdhrnet.cli import main as cli
from tests.data_helpers import face_image, tiny_onnx, write_pts
from tests.service_support import build_tiny_model
from landmarks import metrics
from landmarks.datasets import get_info, load_samples
from landmarks.scoring import PredictionError, score_predictions


def test_nme_hand_computed():
    gt = np.array([[[0, 0], [10, 0], [5, 5]], [[0, 0], [0, 20], [5, 5]]], float)
    pred = gt.copy()
    pred[0, 0] += [1, 0]  # errors 1, 0, 2 -> mean 1, normaliser 10
    pred[0, 2] += [0, 2]
    pred[1] += [3, 4]  # every point off by 5, normaliser 20
    np.testing.assert_allclose(metrics.nme_per_image(pred, gt, (0, 1)), [0.1, 0.25])
    with pytest.raises(ValueError, match="coincident"):
        metrics.nme_per_image(pred, np.zeros_like(gt), (0, 1))
    with pytest.raises(ValueError, match="N, M, 2"):
        metrics.nme_per_image(pred[:, :2], gt, (0, 1))


def test_fr_auc_ced_hand_computed():
    nmes = [0.02, 0.05, 0.2, 0.1]
    assert metrics.failure_rate(nmes) == pytest.approx(0.25)  # 0.10 itself is not a failure
    # area under the step CED on [0, 0.1]: (0.08 + 0.05 + 0 + 0) / 4 images / 0.1
    assert metrics.auc(nmes) == pytest.approx(0.325)
    x, y = metrics.ced(nmes, steps=100001)
    assert np.trapezoid(y, x) / 0.1 == pytest.approx(0.325, abs=1e-4)
    assert y[0] == 0 and y[-1] == pytest.approx(0.75)  # 0.10 counts as reached
    assert metrics.auc([0.0, 0.0]) == 1.0 and metrics.auc([0.5]) == 0.0
    s = metrics.summarize(nmes)
    assert s == {"n": 4, "nme": pytest.approx(0.0925), "fr": 0.25, "auc": pytest.approx(0.325)}
    assert metrics.summarize([])["nme"] is None


def _tiny_300w(root):
    rng = np.random.default_rng(0)
    for i, subset in enumerate(["helen/testset", "helen/testset", "lfpw/testset"]):
        face_image(root / subset / f"img{i}_1.jpg", size=(100, 100), seed=i)
        write_pts(root / subset / f"img{i}_1.pts", rng.uniform(20, 80, (68, 2)))
    return load_samples("300w", root, "common")


def test_score_predictions_subsets_missing_and_errors(tmp_path):
    info = get_info("300w")
    samples = _tiny_300w(tmp_path)
    preds = {s.sample_id: s.landmarks.tolist() for s in samples[1:]}
    preds["ghost.jpg"] = samples[0].landmarks.tolist()
    preds[samples[2].sample_id] = (samples[2].landmarks + [3, 4]).tolist()
    r = score_predictions(samples, info, preds)
    iod = np.linalg.norm(samples[2].landmarks[36] - samples[2].landmarks[45])
    assert r["n"] == 2 and r["missing"] == [samples[0].sample_id] and r["unexpected"] == ["ghost.jpg"]
    assert r["nme"] == pytest.approx((0 + 5 / iod) / 2)
    assert r["subsets"]["lfpw/testset"]["nme"] == pytest.approx(5 / iod)
    assert r["subsets"]["helen/testset"] == {"n": 1, "nme": 0.0, "fr": 0.0, "auc": 1.0}
    assert r["subsets"]["common"]["n"] == 2
    with pytest.raises(PredictionError, match=r"\(68, 2\)"):
        score_predictions(samples, info, {samples[0].sample_id: [[1, 2]] * 67})
    with pytest.raises(PredictionError, match="NaN"):
        score_predictions(samples, info, {samples[0].sample_id: [[np.nan, 2]] * 68})


def _run(capsys, *argv):
    code = cli(["evaluate", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_evaluate_predictions(tmp_path, capsys):
    samples = _tiny_300w(tmp_path / "300w")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({s.sample_id: s.landmarks.tolist() for s in samples[1:]}))
    code, out, _ = _run(capsys, "--dataset", "300w", "--data-root", tmp_path / "300w", "--split", "common",
                        "--predictions", pred, "--json")
    report = json.loads(out)
    assert code == 0 and report["n"] == 2 and report["nme"] == 0 and report["fr"] == 0 and report["auc"] == 1
    assert report["missing"] == [samples[0].sample_id]
    code, out, _ = _run(capsys, "--dataset", "300w", "--data-root", tmp_path / "300w", "--predictions", pred)
    assert code == 0 and "n=2" in out and "without a prediction" in out


def test_cli_evaluate_without_a_split_scores_the_subsets_a_300w_folder_holds(tmp_path, capsys):
    """As /evaluate does with an archive: a folder without the test split's subsets is scored on those it has."""
    rng = np.random.default_rng(1)
    for i, subset in enumerate(["afw", "afw", "ibug"]):
        face_image(tmp_path / "300w" / subset / f"img{i}_1.jpg", size=(100, 100), seed=i)
        write_pts(tmp_path / "300w" / subset / f"img{i}_1.pts", rng.uniform(20, 80, (68, 2)))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({s.sample_id: s.landmarks.tolist()
                                for s in load_samples("300w", tmp_path / "300w", "afw+ibug")}))
    code, out, err = _run(capsys, "--dataset", "300w", "--data-root", tmp_path / "300w", "--predictions", pred,
                          "--json")
    report = json.loads(out)
    assert code == 0, err
    assert report["split"] == "afw+ibug" and report["n"] == 3 and {"afw", "ibug"} <= set(report["subsets"])
    _tiny_300w(tmp_path / "300w")  # with the test split's subsets there, the test split it is
    code, out, err = _run(capsys, "--dataset", "300w", "--data-root", tmp_path / "300w", "--predictions", pred,
                          "--json")  # the predictions are of other faces: none is scored, and that is an error
    assert code == 2 and "none of the 3 predictions names a face of 300w common" in err


@pytest.mark.parametrize("case", ["missing_dir", "bad_json", "wrong_count", "not_object", "no_file", "bad_model",
                                  "corrupt_model", "card_not_object", "zero_threshold", "negative_threshold",
                                  "nan_threshold", "out_is_a_folder", "out_in_no_folder", "no_id_matches",
                                  "face_px_too_small", "empty_predictions"])
def test_cli_evaluate_bad_input_exit_2(tmp_path, capsys, case):
    samples = _tiny_300w(tmp_path / "300w")
    root, pred = tmp_path / "300w", tmp_path / "pred.json"
    if case != "no_file":
        pred.write_text(json.dumps({s.sample_id: s.landmarks.tolist() for s in samples}))
    source = ["--predictions", pred]
    messages = {"corrupt_model": "is not an ONNX model that can be loaded", "card_not_object": "must hold a model card",
                "zero_threshold": "--threshold must be a positive NME", "negative_threshold": "--threshold must be",
                "nan_threshold": "--threshold must be", "out_is_a_folder": "cannot write --out",
                "out_in_no_folder": "cannot write --out",
                "no_id_matches": f"none of the 3 predictions names a face of 300w common (its ids look like "
                                 f"'{samples[0].sample_id}')",
                "face_px_too_small": "--face-px must be at least 8 pixels, got 0",
                "empty_predictions": "the predictions file holds no prediction"}
    if case == "missing_dir":
        root = tmp_path / "nowhere"
        pred.write_text("{}")
    elif case == "bad_json":
        pred.write_text("{not json")
    elif case == "wrong_count":
        pred.write_text(json.dumps({samples[0].sample_id: [[1.0, 2.0]] * 5}))
    elif case == "not_object":
        pred.write_text("[1, 2]")
    elif case == "bad_model":
        source = ["--model", tmp_path / "absent.onnx"]
    elif case in ("corrupt_model", "card_not_object"):
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        tiny_onnx(model_dir / "model.onnx", 68, 64)
        (model_dir / "model_card.json").write_text(json.dumps({"dataset": "300w", "num_landmarks": 68,
                                                               "input_size": 64}))
        if case == "corrupt_model":
            (model_dir / "model.onnx").write_text("not a protobuf")
        else:
            (model_dir / "model_card.json").write_text("[68]")
        source = ["--model", model_dir]
    elif case.endswith("_threshold"):
        source += ["--threshold", {"zero": "0", "negative": "-0.1", "nan": "nan"}[case.split("_")[0]]]
    elif case == "out_is_a_folder":
        source += ["--out", tmp_path]
    elif case == "out_in_no_folder":
        source += ["--out", tmp_path / "nowhere" / "report.json"]
    elif case == "no_id_matches":  # an NME of no face is no result: ids keyed by file name, not by sample id
        pred.write_text(json.dumps({f"other/{s.sample_id}": s.landmarks.tolist() for s in samples}))
        source += ["--out", tmp_path / "report.json"]
    elif case == "empty_predictions":
        pred.write_text("{}")
    elif case == "face_px_too_small":
        model_dir = build_tiny_model(tmp_path / "model")
        source = ["--model", model_dir, "--face-px", "0"]
    code, out, err = _run(capsys, "--dataset", "300w", "--data-root", root, *source, "--json")
    assert code == 2 and out == "" and "error:" in err and "Traceback" not in err
    assert messages.get(case, "error:") in err
    assert not (tmp_path / "report.json").exists()  # a failed command leaves no report behind


def test_cli_evaluate_model(tmp_path, capsys):
    samples = _tiny_300w(tmp_path / "300w")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    tiny_onnx(model_dir / "model.onnx", 68, 64)
    (model_dir / "model_card.json").write_text(json.dumps({"dataset": "300w", "num_landmarks": 68, "input_size": 64}))
    code, out, err = _run(capsys, "--dataset", "300w", "--data-root", tmp_path / "300w", "--model",
                          model_dir / "model.onnx", "--json", "--flip-test", "--out", tmp_path / "r.json")
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == len(samples) and report["missing"] == [] and report["nme"] > 0
    assert report["input_size"] == 64 and report["flip_test"] is True
    assert len(json.loads((tmp_path / "r.json").read_text())["per_image"]) == len(samples)
    (model_dir / "model_card.json").write_text(json.dumps({"num_landmarks": 98}))
    code, _, err = _run(capsys, "--dataset", "300w", "--data-root", tmp_path / "300w", "--model", model_dir, "--json")
    assert code == 2 and "98 landmarks" in err


def test_cli_evaluate_on_shared_data(shared_data, tmp_path, capsys):
    samples = load_samples("300w", shared_data / "300w", "afw")
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps({s.sample_id: (s.landmarks + 1).tolist() for s in samples[:-1]}))
    code, out, _ = _run(capsys, "--dataset", "300w", "--data-root", shared_data / "300w", "--split", "afw",
                        "--predictions", pred, "--json")
    report = json.loads(out)
    assert code == 0 and report["n"] == 336 and report["missing"] == [samples[-1].sample_id]
    assert 0 < report["nme"] < 0.05 and report["subsets"]["afw"]["n"] == 336


def test_cli_show(shared_data, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = cli(["show", "--dataset", "300w", "--data-root", str(shared_data / "300w"), "--split", "afw",
                "--augment", "--n", "4", "--input-size", "64", "--out", str(out)])
    assert code == 0 and out.stat().st_size > 1000


def test_cli_show_writes_the_file_it_names(tmp_path, capsys):
    _tiny_300w(tmp_path / "300w")
    common = ["show", "--dataset", "300w", "--data-root", str(tmp_path / "300w"), "--split", "common", "--n", "2",
              "--input-size", "64"]
    # without a suffix matplotlib would write grid.png and the command would print grid
    assert cli([*common, "--out", str(tmp_path / "grid")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "grid")
    assert (tmp_path / "grid").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "grid.png").exists()
    (tmp_path / "folder").mkdir()
    assert cli([*common, "--out", str(tmp_path / "folder")]) == 2
    err = capsys.readouterr().err
    assert "cannot write --out" in err and "it is a folder" in err and not (tmp_path / "folder.png").exists()


@pytest.mark.parametrize("size", ["0", "-8", "6"])
def test_cli_show_input_size_must_be_a_positive_multiple_of_the_stride(tmp_path, capsys, size):
    with pytest.raises(SystemExit) as exit_:
        cli(["show", "--dataset", "300w", "--data-root", str(tmp_path), "--input-size", size, "--out",
             str(tmp_path / "grid.png")])
    assert exit_.value.code == 2 and "--input-size: must be a positive multiple of 4" in capsys.readouterr().err


def test_cli_evaluate_recrop_takes_off_on_and_auto():
    import argparse

    from sdhrnet.cli.evaluate import add_arguments, recrop_of

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--dataset", "300w", "--data-root", "d", "--model", "m"]
    resolved = {tuple(extra): recrop_of(parser.parse_args(base + extra)) for extra in (
        [], ["--recrop"], ["--recrop", "on"], ["--recrop", "off"], ["--recrop", "auto"],
        ["--recrop", "auto", "--detected-boxes"])}
    assert list(resolved.values()) == [False, True, True, False, None, True]
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--recrop", "twice"])


def test_cli_evaluate_recrop_auto_answers_boxes_as_align_does(shared_data, tmp_path, capsys):
    from tests.test_default_model import MODEL
    from trainer.evaluate import evaluate_split

    args = ["--dataset", "300w", "--data-root", shared_data / "300w", "--split", "dev", "--model", MODEL]
    code, out, err = _run(capsys, *args, "--recrop", "auto", "--json", "--out", tmp_path / "r.json")
    assert code == 0, err
    report = json.loads(out)
    assert report["recrop"] is None and report["n"] == 107
    inline = evaluate_split("300w", shared_data / "300w", "dev", model=str(MODEL), recrop=None)
    saved = json.loads((tmp_path / "r.json").read_text())["per_image"]
    assert saved == pytest.approx(inline["per_image"], abs=1e-9)
    code, out, _ = _run(capsys, *args, "--recrop", "auto")
    assert code == 0 and "the passes /align runs on a box sent" in out
    pred = tmp_path / "p.json"
    pred.write_text("{}")
    code, _, err = _run(capsys, *args[:-2], "--predictions", pred, "--recrop", "auto")
    assert code == 2 and "--recrop needs --model" in err


def test_cli_evaluate_small_faces_needs_detected_boxes(tmp_path, capsys):
    code, out, err = _run(capsys, "--dataset", "300w", "--data-root", tmp_path, "--model", tmp_path / "m.onnx",
                          "--small-faces")
    assert code == 2 and out == "" and "--small-faces needs --detected-boxes" in err
