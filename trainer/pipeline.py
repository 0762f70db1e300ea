"""`sdhrnet pipeline`: every SD-HRNet stage for one dataset, in one command that continues where it stopped.

Each stage is its own process (`sdhrnet train-teacher | slim | distill --run-name DATASET-PRESET-ROW`), scheduled
on the free cores: the teacher and slimming need nothing and run side by side, a distillation starts once what it
needs has finished. Every stage is an MLflow run found again by its name, so running the pipeline again resumes an
unfinished stage from its checkpoint and returns a finished one without training. At the end every row is scored
on the validation split and the extra test sets through the served ONNX path, the student that landmarks.selection
picks (lowest validation NME; the occluded validation faces, then any --tie-break-set, decide among those within
its noise) is packaged as
a model folder, and the results table is printed.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from landmarks.datasets import parse_source
from sdhrnet.budgets import SERVED_LIMITS, describe_limits, within_budget
from sdhrnet.settings import get_settings
from sdhrnet.train_config import make_config, parse_overrides, stage_values
from trainer.nets.spec import PRESET_DATASETS
from trainer.results import EvalSet, against_the_packaged, markdown, package, score, tie_breaks, validation_sets
from landmarks.selection import SelectionError, choose_served

log = logging.getLogger(__name__)

KD_OFF = (("use_peer", False), ("masked_inputs", False))


PUBLISHED = "published"


@dataclass(frozen=True)
class Row:
    """One stage of the pipeline. `student` is where a distillation's students come from: "published" (the paper's
    slimmed edges, from scratch), "slim" (the network the slim row pruned) or another distillation row (its best
    student, trained on). `teacher` is the row whose model teaches. `stage` names the preset's schedule for the row
    when it is not its command's (train_config.stage_values)."""
    key: str
    label: str
    command: str
    student: str | None = None
    teacher: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    stage: str | None = None

    @property
    def needs(self) -> frozenset[str]:
        return frozenset({self.student, self.teacher} - {None, PUBLISHED})

    @property
    def peer(self) -> bool:
        return dict(self.overrides).get("use_peer", True)


# In start order: a free core takes the first row whose needs are met.
ROWS = (
    Row("teacher", "HRNetV2-W18 teacher", "train-teacher"),
    Row("slim", "HRSuperNet slimming", "slim"),
    Row("published-kd-off", "published S-HRNet, supervised (KD off)", "distill", student=PUBLISHED, overrides=KD_OFF),
    Row("published-triple-kd", "published S-HRNet, triple KD", "distill", student=PUBLISHED, teacher="teacher"),
    Row("slimmed-triple-kd", "our S-HRNet, triple KD", "distill", student="slim", teacher="teacher"),
    Row("slimmed-kd-off", "our S-HRNet, KD off", "distill", student="slim", overrides=KD_OFF),
    # Triple KD with the student as its own teacher, five times: no teacher here beats the supervised student by a clear
    # margin, and these rounds gain most on occluded faces (docs/results-by-round.md: tenth, eleventh, fifteenth,
    # sixteenth and seventeenth rounds).
    Row("published-self-kd-1", "published S-HRNet, triple KD on the KD-off student", "distill",
        student="published-kd-off", teacher="published-kd-off", stage="self-kd-1"),
    Row("published-self-kd-2", "published S-HRNet, triple KD on round 1", "distill",
        student="published-self-kd-1", teacher="published-self-kd-1", stage="self-kd-2"),
    Row("published-self-kd-3", "published S-HRNet, triple KD on round 2 from a warm restart", "distill",
        student="published-self-kd-2", teacher="published-self-kd-2", stage="self-kd-3"),
    Row("published-self-kd-4", "published S-HRNet, triple KD on round 3 from a second warm restart", "distill",
        student="published-self-kd-3", teacher="published-self-kd-3", stage="self-kd-4"),
    Row("published-self-kd-5", "published S-HRNet, triple KD on round 4 from a third warm restart", "distill",
        student="published-self-kd-4", teacher="published-self-kd-4", stage="self-kd-5"),
)
# The paper's Table 6 on the published architecture (no KD and all three are rows above).
ABLATION = (
    Row("published-teacher", "published S-HRNet, teacher only", "distill", student=PUBLISHED, teacher="teacher",
        overrides=KD_OFF),
    Row("published-teacher-peer", "published S-HRNet, teacher + peer, no masks", "distill", student=PUBLISHED,
        teacher="teacher", overrides=(("masked_inputs", False),)),
    Row("published-peer-masks", "published S-HRNet, peer + masks, no teacher", "distill", student=PUBLISHED),
)


class PipelineError(RuntimeError):
    """A stage failed or could not start; the message says which and where its log is."""


def published_arch(dataset: str) -> str:
    """The paper's slimmed network for a dataset (68-point CSV data uses the 300W one)."""
    by_dataset = {d: name for name, d in PRESET_DATASETS.items()}
    return by_dataset.get(dataset, by_dataset["300w"])


def run_name(dataset: str, preset: str, row: Row) -> str:
    return f"{dataset}-{preset}-{row.key}"


RECENT_EPOCHS = 5


def eta_seconds(epochs_done: int, epochs: int, epoch_seconds: list[float]) -> float | None:
    """Remaining time from the median of the last few epochs, in epoch order (None before the first epoch): the
    load on a shared machine changes, and a run paused and resumed logs one long epoch that should not count."""
    if not epoch_seconds:
        return None
    return max(0, epochs - epochs_done) * statistics.median(epoch_seconds[-RECENT_EPOCHS:])


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "ETA after the first epoch"
    minutes = math.ceil(seconds / 60)
    return f"ETA {minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"ETA {minutes} min"


@dataclass
class Plan:
    dataset: str
    data_root: Path
    preset: str
    rows: tuple[Row, ...]
    out_dir: Path
    device: str | None = None
    overrides: list[str] = field(default_factory=list)
    jobs: int = 2
    cores: int = 1  # CPU threads shared among the running stages (share_threads)

    def command(self, row: Row, results: dict[str, dict[str, Any]]) -> list[str]:
        cmd = [sys.executable, "-m", "sdhrnet.cli", row.command, "--dataset", self.dataset,
               "--data-root", str(self.data_root), "--preset", self.preset,
               "--run-name", run_name(self.dataset, self.preset, row), "--json"]
        if self.device:
            cmd += ["--device", self.device]
        for key, value in [*stage_values(self.preset, row.stage).items(), *row.overrides]:
            cmd += ["--set", f"{key}={json.dumps(value)}"]
        for item in self.overrides:
            cmd += ["--set", item]
        if row.command == "distill":
            cmd += ["--from-slim", self._students_from(row, results)]
            cmd += ["--teacher", results[row.teacher]["run_id"]] if row.teacher else ["--set", "use_teacher=false"]
        return cmd

    def _students_from(self, row: Row, results: dict[str, dict[str, Any]]) -> str:
        """A slim run id is pruned into the students; another row's model is trained on."""
        if row.student == PUBLISHED:
            return published_arch(self.dataset)
        run = results[row.student]["run_id"]
        source = next(r for r in self.rows if r.key == row.student)
        return run if source.command == "slim" else f"runs:/{run}/model_files"


def share_threads(running: list[str], cores: int) -> dict[str, int]:
    """Threads per running stage, in start order: an equal share of the cores, the remainder to the earliest
    (the teacher, on whose end the distillations wait). A stage left alone takes every core."""
    if not running:
        return {}
    base, extra = divmod(max(cores, len(running)), len(running))
    return {key: base + (i < extra) for i, key in enumerate(running)}


@dataclass
class Running:
    row: Row
    process: subprocess.Popen
    stdout: Path
    log: Path


def _progress_line(row: Row, name: str) -> str:
    """One line per running stage from what its run has logged: epoch, validation NME, ETA."""
    from trainer.run_store import run_progress

    progress = run_progress(name)
    if progress is None:
        return f"{row.key}: starting"
    done, epochs, nme = len(progress.epoch_seconds), progress.epochs, progress.val_nme
    nme_text = f", val NME {nme:.4f}" if nme is not None else ""
    return (f"{row.key}: epoch {done}/{epochs}{nme_text}, "
            f"{format_duration(eta_seconds(done, epochs, [progress.epoch_seconds[k] for k in sorted(progress.epoch_seconds)]))}")


def run_stages(plan: Plan, say: Callable[[str], None] = print, progress_every: float = 60.0) -> dict[str, dict[str, Any]]:
    """Run every row of the plan (finished runs return at once) -> row key -> the stage's JSON result."""
    from trainer.run_store import prepare

    prepare(plan.dataset)  # create the store once, before processes race to create it
    logs = plan.out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fixed = get_settings().threads  # SDHRNET_THREADS set by the user: every stage keeps that many
    pending = start_order(plan.rows, {row.key for row in plan.rows if _has_run(plan, row)})
    running, results, failed = {}, {}, {}
    last_progress = time.monotonic()

    def threads_file(key: str) -> Path:
        return logs / f"{key}.threads"

    def rebalance(starting: str | None = None) -> dict[str, int]:
        """Each stage follows its threads file (trainer.engine), so the cores of a finished stage go to the
        ones still running instead of idling until the next start."""
        order = [row.key for row in plan.rows if row.key in running or row.key == starting]
        shares = {key: fixed for key in order} if fixed else share_threads(order, plan.cores)
        for key, n in shares.items():
            tmp = threads_file(key).with_suffix(".tmp")
            tmp.write_text(f"{n}\n")
            os.replace(tmp, threads_file(key))
        return shares

    def stop_children(signum, frame):
        for r in running.values():
            r.process.send_signal(signal.SIGINT)  # a stage stops cleanly and resumes on the next run
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop_children) if _main_thread() else None
    try:
        while pending or running:
            for row in list(pending):
                if len(running) >= plan.jobs:
                    break
                if row.needs & failed.keys():
                    pending.remove(row)
                    failed[row.key] = f"not started: {', '.join(sorted(row.needs & failed.keys()))} failed"
                elif row.needs <= results.keys():
                    pending.remove(row)
                    stdout, log_path = logs / f"{row.key}.json", logs / f"{row.key}.log"
                    shares = rebalance(starting=row.key)
                    env = {**os.environ, "SDHRNET_THREADS": str(shares[row.key]),
                           "SDHRNET_THREADS_FILE": str(threads_file(row.key))}
                    with open(stdout, "w") as out, open(log_path, "a") as err:
                        proc = subprocess.Popen(plan.command(row, results), stdout=out, stderr=err, env=env,
                                                stdin=subprocess.DEVNULL)
                    running[row.key] = Running(row, proc, stdout, log_path)
                    say(f"pipeline: started {row.key} ({row.label}); log {log_path}")
            for key, r in list(running.items()):
                code = r.process.poll()
                if code is None:
                    continue
                del running[key]
                rebalance()
                if code == 0:
                    results[key] = json.loads(r.stdout.read_text())
                    m = results[key]["metrics"]
                    say(f"pipeline: finished {key}: run {results[key]['run_id']}, {m['split']} NME {m['nme']:.4f}")
                else:
                    failed[key] = f"exit code {code}; see {r.log}"
                    say(f"pipeline: {key} failed ({failed[key]})")
            if running and time.monotonic() - last_progress >= progress_every:
                last_progress = time.monotonic()
                for key, r in running.items():
                    try:
                        say("pipeline: " + _progress_line(r.row, run_name(plan.dataset, plan.preset, r.row)))
                    except Exception as exc:  # progress is informative only; the stage itself decides success
                        say(f"pipeline: {key}: progress unavailable ({type(exc).__name__})")
            if pending and not running and not any(row.needs <= results.keys() for row in pending):
                raise PipelineError("no stage can start: " + ", ".join(r.key for r in pending))
            time.sleep(0.5)
    except KeyboardInterrupt:
        for r in running.values():
            r.process.send_signal(signal.SIGINT)
        for r in running.values():
            r.process.wait()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if failed:
        raise PipelineError("; ".join(f"{k}: {why}" for k, why in failed.items()))
    return results


def start_order(rows: tuple[Row, ...], started: set[str]) -> list[Row]:
    """Rows that already have a run go first (a finished one returns at once, an unfinished one resumes), so a
    continued pipeline finishes the work it holds before it opens new stages; otherwise the table's order."""
    return sorted(rows, key=lambda row: row.key not in started)


def _has_run(plan: Plan, row: Row) -> bool:
    from trainer.run_store import run_progress

    return run_progress(run_name(plan.dataset, plan.preset, row)) is not None


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def table_rows(rows: tuple[Row, ...], results: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """Results-table label -> (model URI, row key when the model is a candidate to serve)."""
    out: dict[str, tuple[str, str | None]] = {}
    for row in rows:
        run = results[row.key]["run_id"]
        if row.command == "slim":
            out["HRSuperNet after slimming"] = (f"runs:/{run}/models/supernet", None)
            out["our S-HRNet, pruned, not retrained"] = (f"runs:/{run}/model_files", None)
        elif row.command == "distill":
            out[f"{row.label} (best student)"] = (f"runs:/{run}/model_files", row.key)
            if row.peer:
                for i in (1, 2):
                    out[f"{row.label}, student {i} (last epoch)"] = (f"runs:/{run}/models/s{i}", None)
        else:
            out[row.label] = (f"runs:/{run}/model_files", None)
    return out


def soup_rows(rows: tuple[Row, ...], results: dict[str, dict[str, Any]], into: Path) -> dict[str, tuple[str, str]]:
    """A soup of the two peer students of each self-distillation row (both fine-tuned from one distilled start, the
    condition for averaging weights): results-table label -> (model folder written under `into`, row key). It runs
    at one network's cost, so it is a candidate to serve like the row's best student."""
    from trainer.soup import write_soup

    keys = {r.key: r for r in rows}
    out: dict[str, tuple[str, str]] = {}
    for row in rows:
        start = keys.get(row.student)
        if row.command == "distill" and row.peer and start is not None and start.command == "distill":
            run = results[row.key]["run_id"]
            write_soup([f"runs:/{run}/models/s1", f"runs:/{run}/models/s2"], into / row.key)
            out[f"{row.label}, soup of its two students"] = (str(into / row.key), row.key)
    return out


def table_sets(validation: list[EvalSet], test_sets: list[EvalSet], detected_boxes: bool) -> list[EvalSet]:
    """The results table's columns: the validation split clean and occluded, the extra test sets, then with
    `detected_boxes` each set without occlusion again at the face detector's boxes (an occluder would hide the face
    from the detector as well as from the landmarks)."""
    sets = [*validation, *test_sets]
    return sets + [t.at_detected_boxes() for t in sets if detected_boxes and t.occlusion is None]


def run_pipeline(dataset: str, data_root: Path, preset: str, *, out_dir: Path, ablation: bool = False,
                 device: str | None = None, overrides: list[str] | None = None, jobs: int = 2,
                 test_sets: list[EvalSet] | None = None, detected_boxes: bool = False,
                 package_into: Path | None = None, replace: bool = False,
                 limits: Mapping[str, float] = SERVED_LIMITS, say: Callable[[str], None] = print,
                 progress_every: float = 60.0, command: list[str] | None = None) -> dict[str, Any]:
    cfg = make_config(preset, dataset, parse_overrides(overrides))  # the validation split can be overridden
    trained_on = {(d, Path(root).resolve(), split) for d, root, split in map(parse_source, cfg.extra_train)}
    for t in test_sets or []:
        if t.tie_break and (t.dataset, Path(t.root).resolve(), t.split) in trained_on:
            raise PipelineError(f"--tie-break-set {t.name!r} is also in extra_train: the students learn from it, so "
                                f"it cannot judge them; give a set they never train on")
    rows = ROWS + (ABLATION if ablation else ())
    plan = Plan(dataset, data_root, preset, rows, out_dir, device, list(overrides or []), jobs,
                cores=os.cpu_count() or 1)
    results = run_stages(plan, say, progress_every)
    clean, occluded = validation_sets(dataset, data_root, cfg.val_split)
    sets = table_sets([clean, occluded], test_sets or [], detected_boxes)
    labelled = table_rows(rows, results) | soup_rows(rows, results, out_dir / "soups")
    scored = {}
    for label, (uri, _) in labelled.items():
        scored[label] = score(uri, sets)
        say(f"pipeline: scored {label}: " + ", ".join(f"{t.name} NME {scored[label][t.name]['nme']:.4f}" for t in sets))
    candidates = [label for label, (_, key) in labelled.items() if key]
    try:
        fits = within_budget(scored, candidates, limits)
        choice = choose_served(scored, fits, cfg.val_split, tie_breaks=tie_breaks(sets))
    except (ValueError, SelectionError) as e:
        raise PipelineError(str(e)) from None
    served = choice.served
    folder = package_into or out_dir / "model"
    try:  # a model users have is replaced only as the registry would promote: better beyond the noise
        packaged = None if replace else against_the_packaged(folder, scored[served], sets)
    except SelectionError as e:
        raise PipelineError(f"--package-into: {e}") from None
    kept = packaged is not None and packaged.kept
    if packaged is not None:
        scored[packaged.label] = packaged.row
        say(f"pipeline: {'kept' if kept else 'replacing'} the model in {folder}: {packaged.choice.why}")
    table = markdown(scored, sets)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps({"rows": scored, "served": served, "packaged": not kept},
                                                     indent=1) + "\n")
    (out_dir / "results.md").write_text(table + "\n")
    budget = f" within {describe_limits(limits)}" if limits else ""
    extra = {"pipeline": {"command": command, "runs": {r.key: results[r.key]["run_id"] for r in rows},
                          "selection": f"among the distilled students{budget}, by landmarks.selection: {choice.why}"}}
    if not kept:
        package(scored, served, folder, extra, sets)
    say(table)
    say(f"pipeline: {'chose' if kept else 'served'} {choice.why} -> " + (f"not packaged, {folder} kept" if kept
                                                                         else str(folder)))
    return {"rows": scored, "served": served, "packaged": not kept, "model_dir": str(folder),
            "runs": extra["pipeline"]["runs"]}
