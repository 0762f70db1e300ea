"""A labelled set as POST /evaluate receives it in JSON (each item: an image, its face box, its points, an id), kept
on disk for an evaluate job: `items.json` beside the decoded images, written as lossless PNG. The job then crops each
face at the caller's box and reports it under the caller's id, as the inline scoring does; no dataset layout keeps
both (the 68-point CSV and 300W layouts derive the box from the points and name samples by file)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from landmarks.datasets.base import DatasetError, Sample, SampleList

ITEMS_FILE = "items.json"
IMAGES = "images"


def write_items(folder: Path, samples: list[Sample]) -> Path:
    """Samples with decoded RGB images (`Sample.image`) -> the items file in `folder`."""
    folder = Path(folder)
    (folder / IMAGES).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sample in enumerate(samples):
        name = f"{IMAGES}/{i:06d}.png"
        if not cv2.imwrite(str(folder / name), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {folder / name}")
        rows.append({"id": sample.sample_id, "image": name, "box": np.asarray(sample.box, float).tolist(),
                     "landmarks": np.asarray(sample.landmarks, float).tolist()})
    path = folder / ITEMS_FILE
    path.write_text(json.dumps(rows))
    return path


def read_items(path) -> SampleList:
    """The items file -> samples whose images are read when scored (landmarks.datasets.base.load_image)."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text())
        samples = [Sample(path.parent / row["image"], np.asarray(row["landmarks"], dtype=np.float64),
                          np.asarray(row["box"], dtype=np.float64), str(row["id"]), {"subsets": []})
                   for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path.name} is not an evaluate job's items file: {exc}") from None
    return SampleList(samples)
