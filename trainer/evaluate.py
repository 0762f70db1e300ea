"""Scoring a model given by folder, .onnx file, run id or registry URI on a dataset split (the served ONNX path)."""
from __future__ import annotations

from pathlib import Path

from landmarks.datasets.base import DatasetInfo, Sample
from landmarks import metrics
from landmarks.scoring import PredictionError, predict_with_landmarker, score_predictions

__all__ = ["PredictionError", "evaluate_items_file", "evaluate_split", "predict_with_model", "resolve_model",
           "score_model", "score_predictions"]


def resolve_model(uri: str) -> tuple[Path, dict]:
    """Model reference -> (local model.onnx, model card). A bare .onnx file needs no card; anything else
    (model folder, run id, runs:/, models:/) goes through trainer.model_uri."""
    path = Path(str(uri))
    if path.suffix == ".onnx" and path.is_file() and not path.with_name("model_card.json").is_file():
        return path, {}
    from trainer.model_uri import read_card, resolve_model_dir

    folder = resolve_model_dir(uri)
    card = read_card(folder)
    if not (folder / "model.onnx").is_file():
        raise PredictionError(f"{folder} has no model.onnx")
    return folder / "model.onnx", card


def onnx_landmarker(onnx_path, **kwargs):
    """landmarks.landmarker.OnnxLandmarker(onnx_path, **kwargs); a file ONNX Runtime cannot load is a ValueError."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    from landmarks.landmarker import OnnxLandmarker
    from trainer.model_uri import not_an_onnx_model

    try:
        return OnnxLandmarker(onnx_path, **kwargs)
    except (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidGraph, ort_errors.InvalidProtobuf,
            ort_errors.NotImplemented) as exc:
        # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from PATH failed:Protobuf parsing failed."
        why = str(exc).rpartition("failed:")[2].strip().rstrip(".") or str(exc)
        raise not_an_onnx_model(onnx_path, f"ONNX Runtime: {why}") from None


def predict_with_model(uri: str, info: DatasetInfo, samples: list[Sample], flip_test: bool,
                       occlusion=None, threads: int | None = None, detected_boxes: bool = False,
                       recrop: bool | None = False, low_resolution=None,
                       small_faces: bool = False) -> tuple[dict, dict]:
    onnx_path, card = resolve_model(uri)
    if card.get("num_landmarks") not in (None, info.num_landmarks):
        raise PredictionError(f"model {uri} predicts {card['num_landmarks']} landmarks, {info.name} has {info.num_landmarks}")
    flip_pairs = card.get("flip_pairs") or [list(p) for p in info.flip_pairs]
    landmarker = onnx_landmarker(onnx_path, input_size=card.get("input_size"), flip_pairs=flip_pairs, threads=threads,
                                 eye_indices=info.norm_indices)
    detector = None
    if detected_boxes or recrop is not False:
        from landmarks.face_detector import FaceDetector

        detector = FaceDetector()
    # unless recrop is False the passes are /align's: the detector also gives the tilt of faces the first pass is
    # unsure of
    predictions = predict_with_landmarker(landmarker, samples, flip_test=flip_test, occlusion=occlusion,
                                          detector=detector if detected_boxes else None, recrop=recrop,
                                          low_resolution=low_resolution, small_faces=small_faces,
                                          tilt_at=detector.tilt_at if recrop is not False else None)
    extra = {"model": str(uri), "onnx": str(onnx_path), "input_size": landmarker.input_size, "flip_test": flip_test,
             "boxes": "detected" if detected_boxes else "ground truth", "recrop": recrop}
    if detected_boxes:
        extra["small_faces"] = small_faces
    if occlusion is not None:
        extra["occlusion"] = {"seed": occlusion.seed, "area": list(occlusion.area)}
    if low_resolution is not None:
        extra["face_px"] = low_resolution.face_px
    return predictions, extra


def evaluate_split(dataset: str, data_root, split: str | None = None, *, model: str | None = None,
                   predictions: dict | None = None, flip_test: bool = False, threshold: float = metrics.THRESHOLD,
                   occlusion=None, detected_boxes: bool = False, recrop: bool | None = False,
                   low_resolution=None, small_faces: bool = False) -> dict:
    """Score a predictions dict or a model (ONNX, through the serving code path) on a dataset split; with
    `occlusion` (landmarks.occlusion.Occlusion) the model sees every face partly covered; with `detected_boxes`
    it crops each face where the service's face detector boxes it; with `recrop` each face gets a second pass at the
    box of its first-pass points, and with `recrop=None` the passes /align runs on a box sent (one, and more on a
    face the first finds tilted or is unsure of); with `low_resolution` (landmarks.low_resolution.LowResolution)
    every photo is shrunk until its faces are that many pixels across; with `small_faces` the detector also scans
    tiles of each photo (see landmarks.scoring)."""
    from landmarks.datasets import get_info, load_samples, split_to_score

    if (model is None) == (predictions is None):
        raise PredictionError("give exactly one of a model or predictions")
    if occlusion is not None and model is None:
        raise PredictionError("occlusion needs a model to run on the occluded faces, not a predictions file")
    if detected_boxes and model is None:
        raise PredictionError("detected boxes need a model to run on them, not a predictions file")
    if small_faces and not detected_boxes:
        raise PredictionError("small faces are a way of detecting faces: they need detected boxes")
    if recrop is not False and model is None:
        raise PredictionError("a second pass needs a model to run, not a predictions file")
    if low_resolution is not None and model is None:
        raise PredictionError("low resolution needs a model to run on the shrunk photos, not a predictions file")
    info = get_info(dataset)
    split = split_to_score(info.name, data_root, split)
    samples = load_samples(info.name, data_root, split)
    if predictions is None:
        report = score_model(model, info, samples, flip_test=flip_test, threshold=threshold, occlusion=occlusion,
                             detected_boxes=detected_boxes, recrop=recrop, low_resolution=low_resolution,
                             small_faces=small_faces)
    else:
        report = score_predictions(samples, info, predictions, threshold=threshold)
    report.update({"dataset": info.name, "split": split, "found_subsets": samples.found_subsets,
                   "missing_subsets": samples.missing_subsets})
    return report


def evaluate_items_file(dataset: str, items_path, *, model: str, flip_test: bool = False,
                        recrop: bool | None = False) -> dict:
    """Score a model on the items an evaluate job keeps (landmarks.datasets.items_file): each face at its caller's
    box, reported under its caller's id; `dataset` names the landmark layout (the served model's)."""
    from landmarks.datasets import get_info
    from landmarks.datasets.items_file import read_items

    info = get_info(dataset)
    report = score_model(model, info, read_items(items_path), flip_test=flip_test, recrop=recrop)
    report["dataset"] = info.name
    return report


def score_model(model: str, info: DatasetInfo, samples: list[Sample], *, flip_test: bool = False,
                threshold: float = metrics.THRESHOLD, occlusion=None, threads: int | None = None,
                detected_boxes: bool = False, recrop: bool | None = False, low_resolution=None,
                small_faces: bool = False) -> dict:
    """Score a model on given samples (a split, or the part of it a training run validates on); `threads` caps
    ONNX Runtime's (a training process has its share of the cores)."""
    predictions, extra = predict_with_model(model, info, samples, flip_test, occlusion, threads, detected_boxes, recrop,
                                            low_resolution, small_faces)
    return score_predictions(samples, info, predictions, threshold=threshold) | extra
