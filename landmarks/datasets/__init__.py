"""Face landmark datasets: `load_samples(dataset, data_root, split)` and `load_image(sample)` (no torch here;
the torch Dataset lives in trainer.torch_data).

The registry: every module of this package that declares `INFO` (a DatasetInfo: name, landmarks, flip pairs,
normaliser, heatmap sigma, default splits), `load(data_root, split)` and `check_split(split)` (the split names it
reads, judged without the data) is a dataset. Adding one is adding a
module; the CLI choices, the config presets, the API's checks and the registry's names all derive from here."""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Callable

from landmarks.datasets.base import DatasetError, DatasetInfo, Sample, SampleList, load_image

# a dataset's name is also a registered model's name (sdhrnet-<name>) and a URL path segment
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


def _discover() -> dict[str, ModuleType]:
    readers = {}
    for found in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{found.name}")
        info = getattr(module, "INFO", None)
        if isinstance(info, DatasetInfo) and callable(getattr(module, "load", None)):
            if not callable(getattr(module, "check_split", None)):
                raise RuntimeError(f"dataset module {module.__name__} declares no check_split(split)")
            if info.name in readers:
                raise RuntimeError(f"dataset {info.name!r} is declared twice: {readers[info.name].__name__}, {module.__name__}")
            readers[info.name] = module
    return dict(sorted(readers.items()))


_READERS = _discover()
DATASETS: dict[str, DatasetInfo] = {name: reader.INFO for name, reader in _READERS.items()}
DEFAULT_TEST_SPLIT = {name: info.test_split for name, info in DATASETS.items()}
DEFAULT_TRAIN_SPLIT = {name: info.train_split for name, info in DATASETS.items()}


def get_info(dataset: str) -> DatasetInfo:
    try:
        return DATASETS[dataset.lower()]
    except (KeyError, AttributeError):
        raise DatasetError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}") from None


def load_samples(dataset: str, data_root, split: str) -> SampleList:
    return _READERS[get_info(dataset).name].load(data_root, split)


def check_split(dataset: str, split: str) -> None:
    """DatasetError unless the dataset's layout has a split of that name (the data itself is not needed)."""
    _READERS[get_info(dataset).name].check_split(split)


def split_to_score(dataset: str, data_root, split: str | None = None) -> str:
    """The split named, else the layout's test split; a reader that can tell what a folder holds (300W's
    `split_present`) scores the subsets there when its test split is not."""
    if split:
        return split
    reader = _READERS[get_info(dataset).name]
    present = getattr(reader, "split_present", None)
    return present(data_root, reader.INFO.test_split) if present else reader.INFO.test_split


def subject_of(dataset: str) -> Callable[[str], str] | None:
    """sample id -> who it shows, where the layout says (a reader's `subject`: the person of a video frame)."""
    return getattr(_READERS[get_info(dataset).name], "subject", None)


def parse_source(text: str) -> tuple[str, str, str]:
    """`DATASET:ROOT:SPLIT` (e.g. `csv:../shared/data/p1-ytf68:training`) -> (dataset, root, split); the root may
    itself contain colons, the dataset and split may not."""
    dataset, _, rest = text.partition(":")
    root, _, split = rest.rpartition(":")
    if not (dataset and root and split):
        raise ValueError(f"{text!r} is not DATASET:ROOT:SPLIT")
    check_split(dataset, split)
    return dataset, root, split


__all__ = ["DATASETS", "NAME_PATTERN", "parse_source", "DatasetError", "DatasetInfo", "Sample", "SampleList",
           "check_split", "get_info", "load_image", "load_samples", "split_to_score", "subject_of", "DEFAULT_TEST_SPLIT", "DEFAULT_TRAIN_SPLIT"]
