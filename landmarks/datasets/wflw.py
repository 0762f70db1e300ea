"""WFLW: `list_98pt_rect_attr_{train,test}.txt` lines of 196 coordinates, a rectangle x_min y_min x_max
y_max, six 0/1 attribute flags and the image path (relative to `WFLW_images/`).

Sample id = the image path of the list; when one photo holds several annotated faces, `_N` (1-based, in
list order) is inserted before the suffix of every one of them.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np

from landmarks.datasets.base import DatasetError, DatasetInfo, pairs, SampleList, image_in, log, make_sample, require_dir

# WFLW 98: contour 0-32, brows 33-41 / 42-50, nose 51-59, eyes 60-67 / 68-75, mouth 76-95, pupils 96/97
PAIRS = pairs(
    *[(i, 32 - i) for i in range(16)],
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
    (55, 59), (56, 58),
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
    (76, 82), (77, 81), (78, 80), (83, 87), (84, 86),
    (88, 92), (89, 91), (93, 95),
    (96, 97),
)

INFO = DatasetInfo("wflw", 98, PAIRS, (60, 72), 1.5)

ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
NUM_LANDMARKS = INFO.num_landmarks
LIST_DIRS = (".", "WFLW_annotations/list_98pt_rect_attr_train_test", "list_98pt_rect_attr_train_test",
             "WFLW_annotations")
IMAGE_DIRS = ("WFLW_images", "images", ".")


def find_list(root: Path, part: str) -> Path:
    name = f"list_98pt_rect_attr_{part}.txt"
    for d in LIST_DIRS:
        if (root / d / name).is_file():
            return root / d / name
    raise DatasetError(f"WFLW: {name} not found under {root} (looked in {', '.join(LIST_DIRS)})")


def parse_line(line: str, where: str):
    tokens = line.split()
    expected = 2 * NUM_LANDMARKS + 4 + len(ATTRIBUTES) + 1
    if len(tokens) != expected:
        raise DatasetError(f"{where}: {len(tokens)} fields, expected {expected} "
                           "(196 coordinates, 4 box values, 6 attribute flags, image path)")
    try:
        values = np.array(tokens[:-1], dtype=np.float64)
    except ValueError:
        raise DatasetError(f"{where}: non-numeric coordinate, box or attribute field") from None
    pts = values[:2 * NUM_LANDMARKS].reshape(NUM_LANDMARKS, 2)
    rect = values[2 * NUM_LANDMARKS:2 * NUM_LANDMARKS + 4]
    flags = values[2 * NUM_LANDMARKS + 4:].astype(int)
    return pts, rect, flags, tokens[-1]


def check_split(split: str) -> None:
    if split not in ("train", "test") and split not in ATTRIBUTES:
        raise DatasetError(f"unknown WFLW split {split!r}; use train, test or a test subset: {', '.join(ATTRIBUTES)}")


def load(data_root, split: str) -> SampleList:
    check_split(split)
    root = require_dir(data_root, "WFLW")
    part, only = (split, None) if split in ("train", "test") else ("test", split)
    list_path = find_list(root, part)
    rows = [parse_line(line, f"{list_path}:{n + 1}")
            for n, line in enumerate(list_path.read_text(encoding="utf-8").splitlines()) if line.strip()]
    if not rows:
        raise DatasetError(f"{list_path} is empty")
    image_dir = next((root / d for d in IMAGE_DIRS if (root / d / rows[0][3]).is_file()), root / IMAGE_DIRS[0])
    counts = Counter(r[3] for r in rows)
    seen: Counter = Counter()
    samples, skipped = [], []
    for face, (pts, rect, flags, rel) in enumerate(rows, start=1):
        seen[rel] += 1
        p = PurePosixPath(rel)
        sample_id = rel if counts[rel] == 1 else str(p.with_name(f"{p.stem}_{seen[rel]}{p.suffix}"))
        image_path = image_in(image_dir, rel, f"{list_path.name} face {face}")
        if not image_path.is_file():
            skipped.append(sample_id)
            continue
        attrs = {name: int(f) for name, f in zip(ATTRIBUTES, flags)}
        attrs["rect"] = rect
        attrs["subsets"] = [name for name, f in zip(ATTRIBUTES, flags) if f]
        if only is None or attrs[only]:
            samples.append(make_sample(image_path, pts, sample_id, attrs))
    if skipped:
        log.warning("WFLW %s: %d faces skipped, their image is missing under %s (e.g. %s)",
                    split, len(skipped), image_dir, skipped[0])
    if not samples:
        raise DatasetError(f"WFLW {split}: no face with an existing image (images expected under {image_dir})")
    return SampleList(samples, [part], [], skipped)
