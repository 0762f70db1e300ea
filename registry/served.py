"""What the API needs to serve a registered version."""
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    alias: str
    run_id: str | None
    dataset: str
    num_landmarks: int
    input_size: int
    onnx_path: Path  # local copy, cached per version
    card: dict = field(default_factory=dict)
