"""Helpers for the service tests: a tiny ONNX landmark model and in-memory registry/job backends."""
import base64
import json
import threading
import uuid
from pathlib import Path

import cv2
import numpy as np

FLIP_PAIRS_68 = [[i, 16 - i] for i in range(8)]


def build_tiny_model(folder: Path, num_landmarks: int = 68, input_size: int = 64, dataset: str = "300w",
                     seed: int = 0, *, nme: float = 0.5, split: str = "test", with_training_files: bool = False) -> Path:
    """The tests' one fake model: a conv net emitting M heatmaps at 1/4 resolution (the served contract, input
    "image" N,3,S,S -> "heatmaps" N,M,S/4,S/4), with model_card.json and spec.json beside it; built with
    onnx.helper so that no torch import is needed. `nme`/`split` are the card's metrics (what the registry's
    promotion compares); `with_training_files` adds weights.pt and config.json as a training job's folder has
    them (stand-ins: nothing in the tests loads them)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.2, (8, 3, 4, 4)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (num_landmarks, 8, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], strides=[4, 4], kernel_shape=[4, 4]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Sigmoid", ["c2"], ["heatmaps"]),
    ]
    s = input_size
    graph = helper.make_graph(
        nodes, "tiny_landmarker",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, s, s])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["N", num_landmarks, s // 4, s // 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "model.onnx")
    metrics = {"nme": nme, "fr": 0.05, "auc": 0.5, "split": split}
    card = {"dataset": dataset, "num_landmarks": num_landmarks, "input_size": input_size, "arch": "tiny-test",
            "flip_pairs": FLIP_PAIRS_68 if num_landmarks == 68 else [], "metrics": metrics,
            "params": int(w1.size + w2.size), "macs": 0, "created_by": "tests/service_support.py"}
    (folder / "model_card.json").write_text(json.dumps(card, indent=1))
    (folder / "spec.json").write_text(json.dumps({"version": 1, "num_landmarks": num_landmarks, "stages": {}}))
    if with_training_files:
        (folder / "weights.pt").write_bytes(w1.tobytes() + w2.tobytes())
        (folder / "config.json").write_text(json.dumps({"preset": "fake"}))
    return folder


def png_bytes(width: int = 160, height: int = 120, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(width, height) // 3, (200, 170, 150), -1)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def png_bomb(width: int = 20000, height: int = 20000, rows: int = 800) -> bytes:
    """A valid-looking PNG declaring width x height RGB pixels whose data stops after `rows` rows of zeros:
    about 48 KB for the default 20000x20000 (1.2 GB once decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(bytes((3 * width + 1) * rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeRegistry:
    """In-memory stand-in for registry.champion/list_models/promote/rollback."""

    def __init__(self, model_dirs: dict[str, list[Path]]):
        # imported here, not on the first lookup: a cold MLflow import can outlast the service's 3 s registry
        # timeout on a busy machine, and the preload then finds "no model" (seen running a web test alone)
        import registry.served  # noqa: F401

        self.versions = {d: list(dirs) for d, dirs in model_dirs.items()}
        self.champions = {d: len(dirs) for d, dirs in model_dirs.items()}
        self.history: dict[str, list[int]] = {d: [] for d in model_dirs}
        self.lock = threading.Lock()
        self.runs: set[str] = set()  # the MLflow runs that exist (jobs' slim_run, teacher_run)

    def champion(self, dataset):
        from registry.served import ServedModel

        with self.lock:
            version = self.champions.get(dataset)
            if not version:
                return None
            folder = self.versions[dataset][version - 1]
        card = json.loads((folder / "model_card.json").read_text())
        return ServedModel(name=f"sdhrnet-{dataset}", version=str(version), alias="champion",
                           run_id=f"run{version}", dataset=dataset, num_landmarks=card["num_landmarks"],
                           input_size=card["input_size"], onnx_path=folder / "model.onnx", card=card)

    def run_exists(self, run_id):
        return run_id in self.runs

    def list_models(self):
        return [{"dataset": d, "name": f"sdhrnet-{d}",
                 "versions": [{"version": str(i + 1), "aliases": ["champion"] if self.champions.get(d) == i + 1 else []}
                              for i in range(len(dirs))]} for d, dirs in self.versions.items()]

    def promote(self, dataset, version, who=None):
        """The history event as registry.promote returns it; None when `version` already is the champion."""
        with self.lock:
            if dataset not in self.versions or not 1 <= version <= len(self.versions[dataset]):
                raise LookupError(f"version {version} of dataset {dataset} is not registered")
            old = self.champions.get(dataset)
            if old == version:
                return None
            self.history[dataset].append(old)
            self.champions[dataset] = version
        return _event("promote", old, version, who)

    def rollback(self, dataset, who=None):
        from service.errors import Problem

        with self.lock:
            if not self.history.get(dataset):
                # what service.backends makes of the registry's RegistryConflict
                raise Problem(409, f"dataset {dataset} has no earlier champion to roll back to")
            old, self.champions[dataset] = self.champions[dataset], self.history[dataset].pop()
        return _event("rollback", old, self.champions[dataset], who)


def _event(action, old, new, who) -> dict:
    from registry.history import make_event

    return make_event(action, None if old is None else str(old), str(new), who or "unknown")


class FakeJobs:
    def __init__(self):
        self.jobs: dict[str, dict] = {}

    def submit(self, kind, params):
        job_id = uuid.uuid4().hex
        self.jobs[job_id] = {"job_id": job_id, "kind": kind, "state": "PENDING", "params": params, "progress": None}
        return job_id

    def status(self, job_id):
        return self.jobs.get(job_id)

    def cancel(self, job_id):
        self.jobs[job_id]["state"] = "CANCELLING"

    def list(self):
        return list(self.jobs.values())
