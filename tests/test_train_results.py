import json
import shutil
from pathlib import Path

import pytest

from landmarks.occlusion import Occlusion
from landmarks.selection import FACE_SCORES, read_face_scores
from trainer.results import EvalSet, package

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "sdhrnet" / "default_model"


def test_a_packaged_card_heads_with_the_served_rows_validation_score(tmp_path):
    sets = [EvalSet("dev occluded", "300w", tmp_path, "dev", Occlusion(), tie_break=True),
            EvalSet("dev", "300w", tmp_path, "dev"),
            EvalSet("p1-ytf68 test", "csv", tmp_path, "test")]

    def figures(nme):
        return {"nme": nme, "fr": 0.0, "auc": 0.6, "n": 107, "split": "dev", "dataset": "300w",
                "per_face": {"a": nme, "b": nme}}

    rows = {"served": {"model": str(DEFAULT_MODEL), "dev": figures(0.0311), "dev occluded": figures(0.12),
                       "p1-ytf68 test": figures(0.06)},
            "other": {"model": "elsewhere", "dev": figures(0.05), "dev occluded": figures(0.2),
                      "p1-ytf68 test": figures(0.07)}}
    into = package(rows, "served", tmp_path / "pkg", {"seed": 7}, sets)
    card = json.loads((into / "model_card.json").read_text())
    assert (into / "model.onnx").read_bytes() == (DEFAULT_MODEL / "model.onnx").read_bytes()
    # the first set without occlusion, not the first set, and not the training run's own figure
    assert card["metrics"] == {"nme": 0.0311, "fr": 0.0, "auc": 0.6, "split": "dev", "n": 107}
    assert card["served_row"] == "served" and card["seed"] == 7
    assert card["evaluation"]["other"]["p1-ytf68 test"]["nme"] == 0.07
    # each face's NME is for choosing among the rows, not for the card
    assert all("per_face" not in s for r in card["evaluation"].values() for s in r.values())
    # ... it goes beside the card, for the registry's promotion rule
    faces = read_face_scores(into / FACE_SCORES)
    assert (faces["split"], faces["tie_breaks"]) == ("dev", ["dev occluded"])
    assert faces["sets"]["dev occluded"]["per_face"] == {"a": 0.12, "b": 0.12}
    assert "p1-ytf68 test" not in faces["sets"]

    # without the occluded validation set there is nothing to write, and no stale file stays behind
    again = package(rows, "served", into, {}, [s for s in sets if s.name != "dev occluded"])
    assert not (again / FACE_SCORES).exists()


def test_the_bundled_models_face_scores_match_its_card():
    faces = read_face_scores(DEFAULT_MODEL / FACE_SCORES)
    card = json.loads((DEFAULT_MODEL / "model_card.json").read_text())
    assert faces["split"] == card["metrics"]["split"] and len(faces["sets"]["dev"]["per_face"]) == card["metrics"]["n"]
    assert faces["sets"]["dev"]["nme"] == card["metrics"]["nme"]
    assert faces["sets"]["dev occluded"]["nme"] == card["evaluation"][card["served_row"]]["dev occluded"]["nme"]
    # the video frames the rule decides on last, per person, for the registry to compare a new version on
    frames = faces["sets"]["p1-ytf68 training"]
    assert faces["tie_breaks"] == ["dev occluded", "p1-ytf68 training"] and faces["tie_break"] == "dev occluded"
    assert frames["unit"] == "subject" and len(frames["per_face"]) == 347 and frames["n"] == 3462
    assert frames["nme"] == card["evaluation"][card["served_row"]]["p1-ytf68 training"]["nme"]


def test_a_set_where_the_detector_found_no_face_gets_blank_cells(tmp_path):
    """Photos without a detectable face (synthetic data, tiny crops) score nothing at detected boxes: the row keeps
    its other figures and the table shows dashes, instead of failing on a missing mean."""
    from trainer.results import _figures, markdown

    dev = EvalSet("dev", "300w", tmp_path, "dev")
    detected = dev.at_detected_boxes()
    assert (detected.name, detected.detected_boxes, detected.root) == ("dev, detected boxes", True, tmp_path)
    empty = {"n": 0, "nme": None, "fr": None, "auc": None, "per_image": {}}
    scored = {"n": 1, "nme": 0.04, "fr": 0.0, "auc": 0.6, "per_image": {"a": 0.04}}
    row = {"params": 961_000, "macs": 243_000_000, "input_size": 128,
           "dev": _figures(scored, "dev", "300w"), detected.name: _figures(empty, "dev", "300w")}
    assert row[detected.name]["nme"] is None and row["dev"]["nme"] == 0.04
    line = markdown({"m": row}, [dev, detected]).splitlines()[-1]
    assert line == "| m | 0.961 M | 0.243 G | 0.0400 | 0.000 | 0.600 | - | - | - |"


def test_packaging_replaces_a_model_only_where_the_promotion_rule_would(tmp_path, shared_data):
    """`sdhrnet pipeline --package-into` and bench/results_table.py ask what the registry asks before they overwrite
    a packaged model: the served model replaces an untrained one, an untrained one does not replace it, and the
    same model or an empty folder is no question at all."""
    from landmarks.selection import SelectionError
    from tests.service_support import build_tiny_model
    from trainer.results import against_the_packaged, score, validation_sets

    sets = validation_sets("300w", shared_data / "300w", "dev")
    untrained = build_tiny_model(tmp_path / "untrained")
    rows = {"served": score(str(DEFAULT_MODEL), sets), "untrained": score(str(untrained), sets)}
    assert rows["served"]["dev"]["nme"] < rows["untrained"]["dev"]["nme"]

    label, packaged, choice = against_the_packaged(untrained, rows["served"], sets)
    assert label == "already in untrained" and choice.served == "candidate"
    assert packaged["dev"]["per_face"] == rows["untrained"]["dev"]["per_face"]
    bundled = shutil.copytree(DEFAULT_MODEL, tmp_path / "bundled")
    label, packaged, choice = against_the_packaged(bundled, rows["untrained"], sets)
    assert choice.served == "champion", choice.why

    assert against_the_packaged(bundled, rows["served"], sets) is None, "the same model: package it again"
    assert against_the_packaged(tmp_path / "empty", rows["served"], sets) is None
    other = build_tiny_model(tmp_path / "cofw", 29, dataset="cofw")
    with pytest.raises(SelectionError, match="cofw model with 29 points"):
        against_the_packaged(other, rows["served"], sets)


def test_video_frames_are_tested_per_person_and_photos_per_face():
    from trainer.results import _figures

    report = {"nme": 0.2, "fr": 0.0, "auc": 0.5, "n": 3,
              "per_image": {"training/Ann_Lee_10.jpg": 0.1, "training/Ann_Lee_11.jpg": 0.3, "training/Bo_2.jpg": 0.2}}
    frames = _figures(report, "training", "csv")
    assert frames["per_face"] == pytest.approx({"Ann_Lee": 0.2, "Bo": 0.2}) and frames["unit"] == "subject"
    assert frames["nme"] == 0.2 and frames["n"] == 3, "the table's figures stay per frame"
    photos = _figures(report | {"per_image": {"afw/1.jpg": 0.1}}, "dev", "300w")
    assert photos["per_face"] == {"afw/1.jpg": 0.1} and "unit" not in photos
