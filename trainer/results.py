"""A results table: models scored through the served ONNX path on named test sets, and the packaging of the
chosen one as a model folder whose card carries every row's figures.

Used by `sdhrnet pipeline` (its rows) and bench/results_table.py (rows named on the command line).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from landmarks.datasets import parse_source, subject_of
from landmarks.datasets.base import DatasetInfo, Sample
from landmarks.low_resolution import LowResolution
from landmarks.occlusion import Occlusion
from landmarks.selection import FACE_SCORES, Choice, SelectionError, choose_between, face_scores, occluded
from trainer.evaluate import evaluate_split, resolve_model, score_model

PACKAGED = ("model.onnx", "spec.json", "model_card.json")
SCORES = ("nme", "fr", "auc")


@dataclass(frozen=True)
class EvalSet:
    """A split to score on, named by its column in the table (e.g. "dev", "p1-ytf68 test"); with `occlusion`
    every face is partly covered (the robustness column); with `detected_boxes` each face is cropped where the
    service's detector finds it (what `/align` without boxes does), not at the box of its true points; with
    `low_resolution` every photo is shrunk until its faces have that few pixels (video frames, small faces). A
    `tie_break` set is one the selection rule decides on (landmarks.selection), in the order of the table's columns.
    Where the layout names who each image shows (landmarks.datasets.subject_of), a set's per-face NMEs are each
    person's mean (by_subject), so that a person seen in many video frames counts once in a paired test."""
    name: str
    dataset: str
    root: Path
    split: str
    occlusion: Occlusion | None = None
    detected_boxes: bool = False
    low_resolution: LowResolution | None = None
    tie_break: bool = False

    @property
    def plain(self) -> bool:
        """Faces as they are, at the boxes of their points: the kind of set a validation split is scored on."""
        return self.occlusion is None and not self.detected_boxes and self.low_resolution is None

    @classmethod
    def parse(cls, text: str, tie_break: bool = False) -> "EvalSet":
        """NAME=DATASET:ROOT:SPLIT, e.g. `p1-ytf68 test=csv:../shared/data/p1-ytf68:test`."""
        name, sep, rest = text.partition("=")
        try:
            dataset, root, split = parse_source(rest)
        except ValueError:
            raise ValueError(f"set {text!r} is not NAME=DATASET:ROOT:SPLIT") from None
        if not (sep and name):
            raise ValueError(f"set {text!r} is not NAME=DATASET:ROOT:SPLIT")
        return cls(name, dataset, Path(root), split, tie_break=tie_break)

    def at_detected_boxes(self) -> "EvalSet":
        """The same faces cropped where the service's face detector finds them: a column beside this one."""
        return replace(self, name=f"{self.name}, detected boxes", detected_boxes=True, tie_break=False)

    def at_face_size(self, face_px: int) -> "EvalSet":
        """The same faces with `face_px` pixels across (landmarks.low_resolution): a column beside this one."""
        return replace(self, name=f"{self.name}, {face_px} px faces", low_resolution=LowResolution(face_px),
                       tie_break=False)


def tie_breaks(test_sets: list[EvalSet], *rows: dict[str, Any]) -> list[str]:
    """The names of the sets the selection rule breaks ties on, in order; with `rows`, those every one of them was
    scored on (a row of an earlier table may lack a set)."""
    return [t.name for t in test_sets if t.tie_break and all(t.name in r for r in rows)]


def headline(test_sets: list[EvalSet]) -> EvalSet:
    """The validation split: the first set of plain faces."""
    return next(t for t in test_sets if t.plain)


def score(uri: str, test_sets: list[EvalSet]) -> dict[str, Any]:
    """One row: the model's size from its card and NME / FR / AUC on each test set, with each face's NME
    (`per_face`, what landmarks.selection tests models on)."""
    _, card = resolve_model(uri)
    row: dict[str, Any] = {"model": uri, "params": card.get("params"), "macs": card.get("macs"),
                           "input_size": card.get("input_size"), "run_id": card.get("run_id")}
    for t in test_sets:
        r = evaluate_split(t.dataset, t.root, t.split, model=uri, occlusion=t.occlusion,
                           detected_boxes=t.detected_boxes, low_resolution=t.low_resolution)
        row[t.name] = _figures(r, t.split, t.dataset)
        if t.detected_boxes:
            row[t.name]["missed"] = len(r["missing"])
    return row


def validation_sets(dataset: str, data_root: Path, split: str) -> list[EvalSet]:
    """The validation split, clean and with every face occluded: what the served model is chosen on."""
    return [EvalSet(split, dataset, Path(data_root), split),
            EvalSet(occluded(split), dataset, Path(data_root), split, Occlusion(), tie_break=True)]


def write_face_scores(folder: Path, info: DatasetInfo, samples: list[Sample], split: str,
                      threads: int | None = None) -> Path:
    """FACE_SCORES of the model in `folder` on `samples` (what its run validated on), clean and occluded."""
    sets = {name: _figures(score_model(str(folder), info, samples, occlusion=occlusion, threads=threads), split,
                           info.name)
            for name, occlusion in ((split, None), (occluded(split), Occlusion()))}
    path = Path(folder) / FACE_SCORES
    path.write_text(json.dumps(face_scores(split, sets), indent=1) + "\n")
    return path


def _figures(report: dict[str, Any], split: str, dataset: str) -> dict[str, Any]:
    # no figures where no face was scored (a detector that found none of them)
    figures = ({k: None if report[k] is None else round(float(report[k]), 5) for k in SCORES}
               | {"n": report["n"], "split": split, "dataset": dataset, "per_face": report["per_image"]})
    if subject_of(dataset):  # a person's video frames are nearly one face: paired tests count the person once
        figures |= {"per_face": by_subject(dataset, report["per_image"]), "unit": "subject"}
    return figures


def by_subject(dataset: str, per_image: dict[str, float]) -> dict[str, float]:
    """Each subject's mean NME over its images; `per_image` itself where the layout names no subjects."""
    subject = subject_of(dataset)
    if subject is None:
        return per_image
    groups: dict[str, list[float]] = {}
    for sample_id, nme in per_image.items():
        groups.setdefault(subject(sample_id), []).append(nme)
    return {name: float(sum(v) / len(v)) for name, v in sorted(groups.items())}


def markdown(rows: dict[str, dict[str, Any]], test_sets: list[EvalSet]) -> str:
    sizes = "/".join(str(s) for s in sorted({r["input_size"] for r in rows.values()}))
    head = ["model", "params", f"MACs @{sizes}"] + [f"{t.name} {k.upper()}" for t in test_sets for k in SCORES]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in rows.items():
        cells = [name, f"{r['params'] / 1e6:.3f} M", f"{r['macs'] / 1e9:.3f} G"]
        for t in test_sets:
            s = r.get(t.name) or {}  # a row from a table scored before this set existed has no figures for it
            cells += [_cell(s.get(k), 4 if k == "nme" else 3) for k in SCORES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def package(rows: dict[str, dict[str, Any]], served: str, into: Path, extra: dict[str, Any],
            test_sets: list[EvalSet]) -> Path:
    """Copy the `served` row's model files into `into`; its card gains every row's figures and `extra`. The card's
    headline `metrics` become the served row's score on the first clean set (the validation split) through the
    served path, so they match what `sdhrnet evaluate` reproduces with today's decoder rather than what the
    training run measured with the decoder of its day."""
    onnx, _ = resolve_model(rows[served]["model"])
    into.mkdir(parents=True, exist_ok=True)
    for name in PACKAGED:
        shutil.copyfile(onnx.parent / name, into / name)
    card = json.loads((into / "model_card.json").read_text())
    card.update(extra)
    card["evaluation"] = {name: {t.name: _summary(r[t.name]) for t in test_sets if t.name in r}
                          for name, r in rows.items()}
    card["served_row"] = served
    split = headline(test_sets).name
    card["metrics"] = {k: rows[served][split][k] for k in ("nme", "fr", "auc", "split", "n")}
    (into / "model_card.json").write_text(json.dumps(card, indent=1) + "\n")
    (into / FACE_SCORES).unlink(missing_ok=True)
    scored = tie_breaks(test_sets, rows[served])
    if scored:
        try:
            (into / FACE_SCORES).write_text(json.dumps(face_scores(split, rows[served], scored), indent=1) + "\n")
        except SelectionError:  # rows scored before per-face NMEs: the registry compares this model's mean NME
            pass
    return into


class Packaged(NamedTuple):
    """The model already in a --package-into folder, scored: its row label and row, and the promotion rule's choice
    between it (the champion) and the candidate row."""
    label: str
    row: dict[str, Any]
    choice: Choice

    @property
    def kept(self) -> bool:
        return self.choice.served == "champion"


def against_the_packaged(into: Path, row: dict[str, Any], test_sets: list[EvalSet]) -> Packaged | None:
    """Whether `row` may replace the model already packaged in `into`: that model scored on `test_sets` and the
    registry's promotion rule (landmarks.selection.choose_between: better beyond the noise on the clean validation
    faces or a tie-break set, worse on none) -> Packaged, or None where `into`
    holds no model or exactly this one. Packaging is how the served default changes, so it asks what promotion
    asks."""
    card_path = into / "model_card.json"
    if not card_path.is_file():
        return None
    onnx, mine = resolve_model(row["model"])
    if (into / "model.onnx").is_file() and (into / "model.onnx").read_bytes() == onnx.read_bytes():
        return None
    try:
        card = json.loads(card_path.read_text())
    except ValueError:
        raise SelectionError(f"{card_path} is not JSON: give another folder to package into") from None
    if (card.get("dataset"), card.get("num_landmarks")) != (mine.get("dataset"), mine.get("num_landmarks")):
        raise SelectionError(f"{into} holds a {card.get('dataset')} model with {card.get('num_landmarks')} points, "
                             f"not a {mine.get('dataset')} one: give another folder to package into")
    label = f"already in {into.name}"
    packaged = score(str(into), test_sets)
    split, sets = headline(test_sets).name, tie_breaks(test_sets, row)
    choice = choose_between(face_scores(split, packaged, sets), face_scores(split, row, sets))
    return Packaged(label, packaged, choice)


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in figures.items() if k != "per_face"}
