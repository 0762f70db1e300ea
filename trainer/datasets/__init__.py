"""Face landmark datasets: `load_samples(dataset, data_root, split)` and `load_image(sample)` (no torch here;
the torch Dataset lives in trainer.datasets.torch_data)."""
from __future__ import annotations

from trainer.datasets.base import (COFW_INFO, CSV_INFO, W300_INFO, WFLW_INFO, DatasetError, DatasetInfo, Sample,
                                   SampleList, load_image)

DATASETS: dict[str, DatasetInfo] = {"300w": W300_INFO, "wflw": WFLW_INFO, "cofw": COFW_INFO, "csv": CSV_INFO}
DEFAULT_TEST_SPLIT = {"300w": "common", "wflw": "test", "cofw": "test", "csv": "test"}
DEFAULT_TRAIN_SPLIT = {"300w": "train", "wflw": "train", "cofw": "train", "csv": "training"}


def get_info(dataset: str) -> DatasetInfo:
    try:
        return DATASETS[dataset.lower()]
    except (KeyError, AttributeError):
        raise DatasetError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}") from None


def load_samples(dataset: str, data_root, split: str) -> SampleList:
    name = get_info(dataset).name
    if name == "300w":
        from trainer.datasets import w300 as reader
    elif name == "wflw":
        from trainer.datasets import wflw as reader
    elif name == "cofw":
        from trainer.datasets import cofw as reader
    else:
        from trainer.datasets import csv_landmarks as reader
    return reader.load(data_root, split)


def parse_source(text: str) -> tuple[str, str, str]:
    """`DATASET:ROOT:SPLIT` (e.g. `csv:../shared/data/p1-ytf68:training`) -> (dataset, root, split); the root may
    itself contain colons, the dataset and split may not."""
    dataset, _, rest = text.partition(":")
    root, _, split = rest.rpartition(":")
    if not (dataset and root and split):
        raise ValueError(f"{text!r} is not DATASET:ROOT:SPLIT")
    get_info(dataset)
    return dataset, root, split


__all__ = ["DATASETS", "parse_source", "DatasetError", "DatasetInfo", "Sample", "SampleList", "get_info", "load_image",
           "load_samples", "DEFAULT_TEST_SPLIT", "DEFAULT_TRAIN_SPLIT"]
