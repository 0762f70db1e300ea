"""Fabricated model folders and JobResult-like objects for registry and worker tests.

The ONNX model is a single strided Conv2d exported by torch, so it has the served contract (input
"image" N,3,S,S -> output "heatmaps" N,M,S/4,S/4) at a few kilobytes."""
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FakeResult:
    run_id: str | None
    dataset: str
    num_landmarks: int
    input_size: int
    metrics: dict
    model_dir: Path
    params: int = 1000
    macs: int = 20000
    job_id: str | None = None
    card: dict = field(default_factory=dict)


def write_model_dir(folder: Path, *, dataset: str = "300w", num_landmarks: int = 68, input_size: int = 32,
                    nme: float = 0.1, split: str = "dev", seed: int = 0, with_training_files: bool = True) -> Path:
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = torch.nn.Conv2d(3, num_landmarks, kernel_size=4, stride=4).eval()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and 20x quicker for one conv
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, input_size, input_size),), str(folder / "model.onnx"),
                          input_names=["image"], output_names=["heatmaps"], dynamo=False,
                          dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}})
    metrics = {"nme": nme, "fr": 0.05, "auc": 0.5, "split": split}
    card = {"format": "sdhrnet-model", "version": 1, "dataset": dataset, "num_landmarks": num_landmarks,
            "input_size": input_size, "heatmap_size": input_size // 4, "arch": "sdhrnet",
            "flip_pairs": [], "metrics": metrics, "params": 1000, "macs": 20000, "kind": "slim"}
    (folder / "model_card.json").write_text(json.dumps(card))
    (folder / "spec.json").write_text(json.dumps({"num_landmarks": num_landmarks, "stages": {}}))
    if with_training_files:
        torch.save(net.state_dict(), folder / "weights.pt")
        (folder / "config.json").write_text(json.dumps({"preset": "fake"}))
    return folder


def fake_result(folder: Path, run_id: str | None, job_id: str | None = None, **kwargs) -> FakeResult:
    write_model_dir(folder, **kwargs)
    card = json.loads((Path(folder) / "model_card.json").read_text())
    return FakeResult(run_id=run_id, dataset=card["dataset"], num_landmarks=card["num_landmarks"],
                      input_size=card["input_size"], metrics=card["metrics"], model_dir=Path(folder),
                      job_id=job_id, card=card)
