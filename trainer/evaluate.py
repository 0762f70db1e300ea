"""Scoring: predictions (sample id -> (M, 2) landmarks in image px) against a split's ground truth."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from trainer import metrics
from trainer.datasets.base import DatasetInfo, Sample, load_image


class PredictionError(ValueError):
    """A predictions file that cannot be scored."""


def _as_points(sample_id: str, value, num_landmarks: int) -> np.ndarray:
    try:
        p = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PredictionError(f"prediction for {sample_id!r} is not a list of [x, y] numbers") from None
    if p.shape != (num_landmarks, 2):
        raise PredictionError(f"prediction for {sample_id!r} has shape {p.shape}, expected ({num_landmarks}, 2): "
                              f"a list of {num_landmarks} [x, y] pairs")
    if not np.all(np.isfinite(p)):
        raise PredictionError(f"prediction for {sample_id!r} contains NaN or infinity")
    return p


def score_predictions(samples: list[Sample], info: DatasetInfo, predictions: dict,
                      threshold: float = metrics.THRESHOLD) -> dict:
    """-> {n, nme, fr, auc, missing, unexpected, per_image, ced, subsets}; images without a prediction are
    listed in `missing` and left out of the scores."""
    if not isinstance(predictions, dict):
        raise PredictionError("predictions must be a JSON object: sample id -> list of [x, y]")
    scored, missing = [], []
    for s in samples:
        if s.sample_id in predictions:
            scored.append((s, _as_points(s.sample_id, predictions[s.sample_id], info.num_landmarks)))
        else:
            missing.append(s.sample_id)
    known = {s.sample_id for s in samples}
    unexpected = sorted(k for k in predictions if k not in known)
    if scored:
        nmes = metrics.nme_per_image(np.stack([p for _, p in scored]), np.stack([s.landmarks for s, _ in scored]), info)
    else:
        nmes = np.zeros(0)
    by_subset = defaultdict(list)
    for (s, _), e in zip(scored, nmes):
        for name in s.attributes.get("subsets", []):
            by_subset[name].append(e)
    x, y = metrics.ced(nmes, threshold)
    report = metrics.summarize(nmes, threshold)
    report.update({
        "threshold": threshold,
        "missing": missing,
        "unexpected": unexpected,
        "per_image": {s.sample_id: float(e) for (s, _), e in zip(scored, nmes)},
        "ced": {"x": x.tolist(), "y": y.tolist()},
        "subsets": {name: metrics.summarize(v, threshold) for name, v in sorted(by_subset.items())},
    })
    return report


def predict_with_landmarker(landmarker, samples: list[Sample], flip_test: bool = False, progress=None,
                            occlusion=None) -> dict:
    """Run a landmarker (anything with .predict(image_rgb, boxes, flip_test=...)) on every sample's ground-truth
    box -> {sample id: (M, 2) landmarks}. Faces sharing a photo are predicted in one batch. `occlusion` (a
    trainer.occlusion.Occlusion) covers part of each face before prediction."""
    groups = defaultdict(list)
    for s in samples:
        key = (str(s.image_path), id(s.image) if s.image is not None else None)
        groups[key].append(s)
    out, done = {}, 0
    for group in groups.values():
        image = load_image(group[0])
        boxes = np.stack([s.box for s in group])
        if occlusion is not None:
            image = occlusion.apply(image, boxes, [s.sample_id for s in group])
        landmarks, _ = landmarker.predict(image, boxes, flip_test=flip_test)
        for s, pts in zip(group, landmarks):
            out[s.sample_id] = pts
        done += len(group)
        if progress is not None:
            progress(done, len(samples))
    return out


def resolve_model(uri: str) -> tuple[Path, dict]:
    """Model reference -> (local model.onnx, model card). A bare .onnx file needs no card; anything else
    (model folder, run id, runs:/, models:/) goes through trainer.model_uri."""
    path = Path(str(uri))
    if path.suffix == ".onnx" and path.is_file() and not path.with_name("model_card.json").is_file():
        return path, {}
    from trainer.model_uri import resolve_model_dir

    folder = resolve_model_dir(uri)
    try:
        card = json.loads((folder / "model_card.json").read_text())
    except json.JSONDecodeError as exc:
        raise PredictionError(f"{folder / 'model_card.json'} is not valid JSON: {exc}") from None
    if not (folder / "model.onnx").is_file():
        raise PredictionError(f"{folder} has no model.onnx")
    return folder / "model.onnx", card


def predict_with_model(uri: str, info: DatasetInfo, samples: list[Sample], flip_test: bool,
                       occlusion=None) -> tuple[dict, dict]:
    from trainer.landmarker import OnnxLandmarker

    onnx_path, card = resolve_model(uri)
    if card.get("num_landmarks") not in (None, info.num_landmarks):
        raise PredictionError(f"model {uri} predicts {card['num_landmarks']} landmarks, {info.name} has {info.num_landmarks}")
    flip_pairs = card.get("flip_pairs") or [list(p) for p in info.flip_pairs]
    landmarker = OnnxLandmarker(onnx_path, input_size=card.get("input_size"), flip_pairs=flip_pairs)
    predictions = predict_with_landmarker(landmarker, samples, flip_test=flip_test, occlusion=occlusion)
    extra = {"model": str(uri), "onnx": str(onnx_path), "input_size": landmarker.input_size, "flip_test": flip_test}
    if occlusion is not None:
        extra["occlusion"] = {"seed": occlusion.seed, "area": list(occlusion.area)}
    return predictions, extra


def evaluate_split(dataset: str, data_root, split: str | None = None, *, model: str | None = None,
                   predictions: dict | None = None, flip_test: bool = False, threshold: float = metrics.THRESHOLD,
                   occlusion=None) -> dict:
    """Score a predictions dict or a model (ONNX, through the serving code path) on a dataset split; with
    `occlusion` (trainer.occlusion.Occlusion) the model sees every face partly covered."""
    from trainer.datasets import DEFAULT_TEST_SPLIT, get_info, load_samples

    if (model is None) == (predictions is None):
        raise PredictionError("give exactly one of a model or predictions")
    if occlusion is not None and model is None:
        raise PredictionError("occlusion needs a model to run on the occluded faces, not a predictions file")
    info = get_info(dataset)
    split = split or DEFAULT_TEST_SPLIT[info.name]
    samples = load_samples(info.name, data_root, split)
    extra = {}
    if predictions is None:
        predictions, extra = predict_with_model(model, info, samples, flip_test, occlusion)
    report = score_predictions(samples, info, predictions, threshold=threshold)
    report.update({"dataset": info.name, "split": split, "found_subsets": samples.found_subsets,
                   "missing_subsets": samples.missing_subsets, **extra})
    return report
