"""Scoring a labelled set with the served model; the metrics themselves come from landmarks.scoring."""
import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landmarks.datasets.items_file import write_items
from landmarks.jsonsafe import to_jsonable
from sdhrnet.uploads import new_upload_folder, remove_upload

from .archives import extract_archive, inside_archive
from .errors import InputError
from .images import check_boxes, check_declared_size, decode_base64_image, undecodable
from .inference import align_faces

MAX_CONCURRENT_IMAGES = 8  # bounds memory of decoded images in flight; the batcher does the batching


@dataclass(frozen=True)
class EvaluateJob:
    """A set too large to score inline: the evaluate job's params, and the upload folder it reads (removed if
    the job cannot be queued)."""
    params: dict
    folder: Path


def job_params(model, upload: Path, **where) -> dict:
    """The evaluate job's params (trainer.jobs.run_evaluate) for a set `where` it is on disk, in the `upload` folder
    that the worker removes when the job ends (sdhrnet.uploads). recrop null: the job answers each box with the
    passes /align runs on a box sent, as `score` does inline. `model_ref`: what the inline report says under
    `model`, so that the job's result reads the same."""
    return {**where, "upload": str(upload), "model": f"models:/{model.name}/{model.version}",
            "model_ref": model.describe(), "recrop": None}


async def evaluate_items(model, items, settings, tilt_at=None) -> dict | EvaluateJob:
    """JSON items: the report, or above SDHRNET_EVALUATE_SYNC_LIMIT the items kept for a job with their ids and
    boxes (landmarks.datasets.items_file)."""
    info = dataset_info(model.dataset)
    samples = await asyncio.to_thread(samples_from_items, items, settings, model.num_landmarks)
    if len(items) > settings.evaluate_sync_limit:
        check_labels(samples, info)  # a job would fail on them later; the caller hears it now
        folder = new_upload_folder()
        try:
            path = await asyncio.to_thread(write_items, folder, samples)
        except BaseException:
            remove_upload(folder)
            raise
        return EvaluateJob(job_params(model, folder, dataset=model.dataset, items=str(path)), folder)
    report = await score(model, samples, info, tilt_at)
    report["model"] = model.describe()
    return report


async def evaluate_archive(model, source, layout: str, split: str | None, settings,
                           tilt_at=None) -> dict | EvaluateJob:
    """An uploaded archive in `layout`: the report (with the split scored), or above SDHRNET_EVALUATE_SYNC_LIMIT
    samples the unpacked set for a job."""
    info = dataset_info(layout)
    if info.num_landmarks != model.num_landmarks:
        raise InputError(f"layout '{layout}' has {info.num_landmarks} landmarks but the {model.dataset} model "
                         f"predicts {model.num_landmarks}; score it with ?dataset= of a model for that layout")
    samples, root, split, folder = await asyncio.to_thread(samples_from_archive, source, layout, split, settings)
    if len(samples) > settings.evaluate_sync_limit:
        return EvaluateJob(job_params(model, folder, dataset=layout, data_root=str(root), split=split), folder)
    try:
        report = await score(model, samples, info, tilt_at)
    finally:
        remove_upload(folder)
    report["model"] = model.describe()
    report["split"] = split
    return report


def dataset_info(name: str):
    from landmarks.datasets import DATASETS

    info = DATASETS.get(name)
    if info is None:
        raise InputError(f"unknown dataset layout '{name}'; use one of {sorted(DATASETS)}")
    return info


def samples_from_items(items, settings, num_landmarks: int) -> list:
    from landmarks.datasets import Sample

    samples, seen = [], set()
    for i, item in enumerate(items):
        try:
            image = decode_base64_image(item.image, settings.max_image_pixels)
            box = check_boxes([item.box], image.shape, 1)[0]
        except InputError as exc:  # in a set of hundreds, say which item to fix
            raise InputError(f"item {i}: {exc.detail}", status=exc.status) from None
        landmarks = np.asarray(item.landmarks, dtype=np.float64)
        if landmarks.shape != (num_landmarks, 2) or not np.isfinite(landmarks).all():
            raise InputError(f"item {i}: landmarks must be {num_landmarks} finite [x, y] pairs for this model, "
                             f"got shape {list(landmarks.shape)}")
        sample_id = item.id or f"item-{i}"
        if sample_id in seen:
            raise InputError(f"item {i}: id '{sample_id}' is used twice; ids must be unique")
        seen.add(sample_id)
        samples.append(Sample(image_path=Path(sample_id), landmarks=landmarks, box=box, sample_id=sample_id,
                              attributes={"subsets": []}, image=image))
    return samples


def samples_from_archive(source, layout: str, split: str | None, settings) -> tuple[list, Path, str, Path]:
    """-> (samples, data_root, split scored, temp folder). The caller removes the temp folder (or hands it to a
    job). The archive may hold the dataset root (`300w/afw/...`, or `afw/` + `helen/` at its top) or, for 300W,
    one subset folder (`afw/`, `helen/trainset/`); without a split, a 300W archive that lacks the default split's
    subsets is scored on the subsets it holds."""
    from landmarks.datasets import load_samples

    folder = new_upload_folder()
    try:
        root = extract_archive(source, folder, max_unpacked_bytes=settings.max_archive_bytes * 20)
        root, split = locate_set(layout, root, folder, split)
        try:
            samples = load_samples(layout, root, split)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise InputError(f"the archive is not a '{layout}' set with split '{split}': "
                             f"{inside_archive(str(exc), folder)}. {split_hint(layout)}") from None
        if not samples:
            raise InputError(f"no labelled images found for layout '{layout}' split '{split}'; check the folder "
                             f"structure. {split_hint(layout)}")
        for sample in samples:
            if sample.image is None:  # COFW ships its images decoded inside the .mat
                check_declared_size(sample.image_path, settings.max_image_pixels,
                                    f"the image of sample '{sample.sample_id}'")
        return samples, root, split, folder
    except BaseException:
        remove_upload(folder)
        raise


def split_hint(layout: str) -> str:
    default = f"'{default_split(layout)}'"
    if layout == "300w":
        from landmarks.datasets.w300 import SPLITS

        default += f" = {' + '.join(SPLITS[default_split(layout)])}"
    hint = f"Pick the layout with the 'layout' field and the split with 'split' (default for '{layout}': {default})"
    if layout == "300w":
        hint += ("; zip the 300W root or one subset folder such as afw/, whose subsets are scored when the default "
                 "split is not in the archive")
    return hint


def locate_set(layout: str, root: Path, folder: Path, split: str | None) -> tuple[Path, str]:
    """(data root, split) of an unpacked archive. Only 300W needs a look: its subsets are folders, so an archive
    of `afw/` unpacks to a single top folder that is a subset, not the dataset root."""
    from landmarks.datasets import split_to_score

    if layout == "300w":
        from landmarks.datasets.w300 import present_subsets

        # the single top folder first (`zip -r 300w.zip 300w`)
        root = next((c for c in dict.fromkeys((root, folder)) if present_subsets(c)), root)
    return root, split_to_score(layout, root, split)


def default_split(layout: str) -> str:
    from landmarks.datasets import DEFAULT_TEST_SPLIT

    return DEFAULT_TEST_SPLIT.get(layout, "test")


def check_labels(samples, info) -> None:
    """Labels the scoring cannot use are the client's labelling, not a failure of ours: points of another layout,
    or the two points the NME divides by (outer eye corners / pupils) on one spot."""
    from landmarks.metrics import normalizer

    for s in samples:
        shape = np.shape(s.landmarks)
        if shape != (info.num_landmarks, 2):
            raise InputError(f"image {s.sample_id} is labelled with {shape[0] if shape else 0} points, but the "
                             f"'{info.name}' layout has {info.num_landmarks}: label every point as [x, y]")
    bad = [s.sample_id for s in samples if not normalizer(np.asarray(s.landmarks, dtype=np.float64)[None], info)[0] > 0]
    if bad:
        a, b = info.norm_indices
        raise InputError(f"{len(bad)} image(s) have coincident normalisation points {(a, b)} (landmarks {a} and "
                         f"{b} must differ to normalise the error), e.g. {', '.join(map(str, bad[:3]))}")


async def score(model, samples, info, tilt_at=None) -> dict:
    """`tilt_at`: the face detector's tilt (passes.FaceTurn) for a face box (service.detection.tilt_checker), so that
    each box is answered as /align answers it."""
    from landmarks.datasets import DatasetError, load_image
    from landmarks.scoring import score_predictions

    check_labels(samples, info)
    semaphore = asyncio.Semaphore(MAX_CONCURRENT_IMAGES)

    async def predict(sample):
        async with semaphore:
            try:
                image = sample.image if getattr(sample, "image", None) is not None \
                    else await asyncio.to_thread(load_image, sample)
            except DatasetError:
                raise InputError(undecodable(f"the image of sample '{sample.sample_id}'")) from None
            box = np.asarray(sample.box, dtype=np.float32).reshape(1, 4)
            # as /align answers a box sent: one pass, and more on a face the first finds tilted or is unsure of
            landmarks, *_ = await align_faces(model, image, box, recrop=None, tilt_at=tilt_at)
            return sample.sample_id, landmarks[0]

    predictions = dict(await asyncio.gather(*(predict(s) for s in samples)))
    report = await asyncio.to_thread(score_predictions, samples, info, predictions)
    return to_jsonable(report)
