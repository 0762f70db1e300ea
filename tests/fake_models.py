"""JobResult-like objects for registry and worker tests; the model folder is tests.service_support's
build_tiny_model (the tests' one fake model)."""
import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.service_support import build_tiny_model


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


def fake_result(folder: Path, run_id: str | None, job_id: str | None = None, **kwargs) -> FakeResult:
    """A registrable result over a fresh build_tiny_model folder (with training files); kwargs go to it."""
    build_tiny_model(Path(folder), **{"with_training_files": True, **kwargs})
    card = json.loads((Path(folder) / "model_card.json").read_text())
    return FakeResult(run_id=run_id, dataset=card["dataset"], num_landmarks=card["num_landmarks"],
                      input_size=card["input_size"], metrics=card["metrics"], model_dir=Path(folder),
                      job_id=job_id, card=card)
