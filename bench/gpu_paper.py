"""The `paper` preset pipeline on a CUDA machine at 256 px, on the shared 300W data; its runs logged here after.

A GPU machine may have PyTorch with CUDA, onnx and onnxruntime but neither MLflow nor a package index, and not
the shared data. So the work is split in three steps:

1. `pack`, here (CPU): a pre-cropped copy of the 300W data in the 300W layout (landmarks/datasets/w300_pack.py),
   JPEG crops wide enough for the training augmentation, in the ignored folder gpu_pack/ of the checkout so it
   travels with the working tree. Same sample ids, so dev / train-dev are the same faces as on the raw data.

       .venv/bin/python bench/gpu_paper.py pack            # -> gpu_pack/300w (pack.json says size and settings)

2. `run`, on the GPU machine, from the repository root (the project need not be installed; python3 must hold
   torch, opencv, onnx, onnxruntime, onnxscript, numpy, scipy, h5py, matplotlib, tqdm, pydantic and
   pydantic-settings: the step lists what is missing before it starts). It runs

       sdhrnet pipeline --dataset 300w --data-root gpu_pack/300w --preset paper --device cuda --ablation \\
           --set train_split=train-dev --set val_split=dev --set input_size=256 --set num_workers=4 --jobs 3

   with SDHRNET_OFFLINE_RUNS=OUT/runs (every run recorded in a folder, no MLflow) and SDHRNET_HOME=OUT/home
   (checkpoints), logs and results in OUT/pipeline, the chosen model in OUT/pipeline/model, and what ran where
   and how long in OUT/gpu_paper.json. Interrupted, the same command continues from the checkpoints.

       python3 bench/gpu_paper.py run --out OUT

   `--no-ablation` leaves out the Table 6 rows (the README's "Training on a GPU" has the measured GPU times);
   `--preset cpu` runs the recipe of the served model instead (128 px, Adaptive Wing, its own schedules and
   splits), which beat 256 px on this data. The run's options are kept in OUT/run_options.json, so the import
   looks for the same rows.

   Copy OUT back whole (the teacher's model files alone are ~77 MB), or where only a few files of limited size
   come back, in parts (checkpoints stay behind; whole model folders are left out, largest first, and listed):

       python3 bench/gpu_paper.py bundle --from OUT --to DIR
       cat DIR/bundle.tgz.* | tar xz                       # here, in an empty folder

   A machine without pydantic takes it as wheels
   for its Python (pydantic, pydantic-core, pydantic-settings, annotated-types, typing-inspection, python-dotenv;
   `pip download --only-binary=:all: --python-version 3.12 ...` where an index is reachable, then
   `pip install --no-index --target DIR *.whl` there and PYTHONPATH=DIR).

3. `import`, here: log OUT/runs into this machine's MLflow store (`sdhrnet import-runs`, idempotent), then run the
   same pipeline on the raw data: every stage is found finished by its name, so nothing trains; each row is scored
   through the served ONNX path on 300W dev and p1-ytf68 test, and the results table is printed.

       .venv/bin/python bench/gpu_paper.py import --from OUT [--package-into sdhrnet/default_model]

The `paper` preset's own splits (train / common) need 300W's LFPW and IBUG subsets, which the shared data lacks;
the overrides above train on train-dev and select on dev, as the `cpu` preset does.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PACK = REPO / "gpu_pack" / "300w"
INPUT_SIZE = 256
# the paper preset's 300W splits are not in the shared data (see the docstring)
SPLITS = ["train_split=train-dev", "val_split=dev"]
TEST_SET = f"p1-ytf68 test=csv:{DATA / 'p1-ytf68'}:test"
RUN_OPTIONS = "run_options.json"  # what `run` was given, for `import`
# a model folder travels whole or not at all (its model_card.json marks it)
MODEL_CARD = "model_card.json"
# import name -> what provides it, for the message when the GPU machine lacks one
NEEDED = {"torch": "torch", "cv2": "opencv-python-headless", "onnx": "onnx", "onnxruntime": "onnxruntime",
          "onnxscript": "onnxscript", "numpy": "numpy", "scipy": "scipy", "h5py": "h5py", "matplotlib": "matplotlib",
          "tqdm": "tqdm", "pydantic": "pydantic", "pydantic_settings": "pydantic-settings"}


def pipeline_args(data_root: Path, extra: list[str], ablation: bool = True, preset: str = "paper") -> list[str]:
    """The `sdhrnet pipeline` arguments both machines use: the same run names, so the import finds the runs.
    The `cpu` preset keeps its own input size (128) and splits; `paper` runs at 256 on train-dev / dev."""
    args = ["pipeline", "--dataset", "300w", "--data-root", str(data_root), "--preset", preset,
            *(["--ablation"] if ablation else [])]
    if preset == "paper":
        for item in [f"input_size={INPUT_SIZE}", *SPLITS]:
            args += ["--set", item]
    return args + extra


def sdhrnet(args: list[str], env: dict[str, str]) -> int:
    """`sdhrnet ARGS` through this interpreter, so it runs from the checkout without installing it."""
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))}
    print("+ sdhrnet " + " ".join(args), flush=True)
    return subprocess.call([sys.executable, "-m", "sdhrnet.cli", *args], cwd=REPO, env=env)


def cmd_pack(args: argparse.Namespace) -> int:
    from landmarks.datasets.w300_pack import pack_300w

    summary = pack_300w(args.data_root, args.out, input_size=args.input_size, quality=args.quality)
    print(json.dumps(summary, indent=1))
    print(f"packed {sum(summary['faces'].values())} faces into {args.out}: {summary['bytes'] / 1e6:.1f} MB "
          f"in {summary['seconds']:.0f} s")
    return 0


def missing_modules() -> list[str]:
    return [f"{name} ({dist})" for name, dist in NEEDED.items() if importlib.util.find_spec(name) is None]


def cmd_run(args: argparse.Namespace) -> int:
    missing = missing_modules()
    if missing:
        print("gpu_paper run: missing Python packages: " + ", ".join(missing) +
              "\n  bring them as wheels (pip download ... on a machine with an index, then pip install --no-index)",
              file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print("gpu_paper run: torch sees no CUDA device", file=sys.stderr)
        return 2
    if not (args.pack / "pack.json").exists():
        print(f"gpu_paper run: no pack at {args.pack}; run `bench/gpu_paper.py pack` first (on the CPU machine)",
              file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_OPTIONS).write_text(json.dumps({"ablation": args.ablation, "overrides": args.overrides,
                                               "preset": args.preset}) + "\n")
    env = {**os.environ, "SDHRNET_OFFLINE_RUNS": str(out / "runs"), "SDHRNET_HOME": str(out / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    extra = ["--device", "cuda", "--jobs", str(args.jobs), "--set", f"num_workers={args.workers}",
             "--out", str(out / "pipeline")] + [a for item in args.overrides for a in ("--set", item)]
    t0 = time.time()
    code = sdhrnet(pipeline_args(args.pack.resolve(), extra, args.ablation, args.preset), env)
    record = {"command": [sys.executable, "bench/gpu_paper.py", *sys.argv[1:]], "exit_code": code,
              "wall_seconds": round(time.time() - t0, 1), "gpu": torch.cuda.get_device_name(0),
              "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
              "pack": json.loads((args.pack / "pack.json").read_text())}
    (out / "gpu_paper.json").write_text(json.dumps(record, indent=1) + "\n")
    return code


def unfinished_stages(ablation: bool, preset: str = "paper") -> list[str]:
    """Run names of the pipeline that MLflow here does not hold as FINISHED (the pipeline would train them)."""
    from trainer.pipeline import ABLATION, ROWS, run_name
    from trainer.tracking import FINISHED, RESUME_TAG, client

    c = client()
    exp = c.get_experiment_by_name("sdhrnet-300w")
    names = [run_name("300w", preset, row) for row in ROWS + (ABLATION if ablation else ())]
    if exp is None:
        return names
    return [n for n in names if not c.search_runs([exp.experiment_id], max_results=1, filter_string=(
        f"tags.`{RESUME_TAG}` = '{n}' and attributes.status = '{FINISHED}'"))]


def _bundle_units(src: Path, skip: Path) -> list[tuple[list[tuple[Path, int]], int]]:
    """The run step's files as units with their sizes, smallest first: each model folder is one unit, every other
    file its own. Checkpoints (home/), files mid-write and files that vanish while listed are skipped: the run may
    still be writing."""
    files: dict[Path, int] = {}
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if rel.parts[0] == "home" or path.name.startswith(".") or path.is_relative_to(skip):
            continue
        try:
            if path.is_file():
                files[path] = path.stat().st_size
        except OSError:
            continue
    folders = {p.parent for p in files if p.name == MODEL_CARD}
    units: dict[Path, list[tuple[Path, int]]] = {}
    for path, size in files.items():
        units.setdefault(path.parent if path.parent in folders else path, []).append((path, size))
    return sorted(((members, sum(size for _, size in members)) for members in units.values()), key=lambda u: u[1])


def cmd_bundle(args: argparse.Namespace) -> int:
    """The run step's output in gzipped tar parts, for a channel that carries only a few files of limited size.
    Files go in by ascending size until --max-mb (before compression), so the run records, logs, results and the
    small students come first; what is left out (the largest model folders, e.g. the teacher's) is listed in
    bundle.json. A file that vanishes before it is read is skipped and listed too (the run may still be going)."""
    import tarfile

    if args.part_mb <= 0 or args.max_mb <= 0:
        print("gpu_paper bundle: --part-mb and --max-mb must be positive", file=sys.stderr)
        return 2
    src, dest = args.source.resolve(), args.to.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("bundle.tgz*"):
        old.unlink()
    cap, total, left, skipped = args.max_mb * 1e6, 0, {}, []
    whole = dest / "bundle.tgz"
    with tarfile.open(whole, "w:gz", compresslevel=1) as tar:
        for members, size in _bundle_units(src, dest):
            if total + size > cap:
                left.update({str(p.relative_to(src)): n for p, n in members})
                continue
            total += size
            for path, _ in members:
                name = str(path.relative_to(src))
                try:  # read whole first: a read that fails half-way through tar.add would leave a broken member
                    data = path.read_bytes()
                except OSError:
                    skipped.append(name)
                    continue
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), int(time.time())
                tar.addfile(info, io.BytesIO(data))
    part, index = int(args.part_mb * 1e6), 0
    with open(whole, "rb") as f:
        while chunk := f.read(part):
            (dest / f"bundle.tgz.{index:02d}").write_bytes(chunk)
            index += 1
    whole.unlink()
    summary = {"bytes": total, "parts": index, "left_out": left, "skipped": skipped}
    (dest / "bundle.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"bundle: {total / 1e6:.1f} MB of files in {index} parts; left out {len(left)} files "
          f"({sum(left.values()) / 1e6:.1f} MB), skipped {len(skipped)}; unpack with `cat bundle.tgz.* | tar xz`")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    options = args.source / RUN_OPTIONS
    if options.exists():  # the same rows and overrides as the run, unless given here
        ran = json.loads(options.read_text())
        args.ablation = args.ablation and ran["ablation"]
        args.overrides = args.overrides or ran["overrides"]
        args.preset = ran.get("preset", "paper")
    runs = args.source / "runs"
    env = {k: v for k, v in os.environ.items() if k != "SDHRNET_OFFLINE_RUNS"}
    code = sdhrnet(["import-runs", str(runs)], env)
    if code:
        return code
    missing = unfinished_stages(args.ablation, args.preset)
    if missing:  # the pipeline would train these here, on the CPU, at the paper's schedule
        print("gpu_paper import: not finished on the GPU machine: " + ", ".join(missing) +
              "; run the `run` step there again to finish them", file=sys.stderr)
        return 2
    extra = ["--test-set", TEST_SET, "--out", str(args.out)] + [a for item in args.overrides for a in ("--set", item)]
    if args.package_into:
        extra += ["--package-into", str(args.package_into)]
    return sdhrnet(pipeline_args(args.data_root, extra, args.ablation, args.preset), env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack", help="pre-crop the 300W data into gpu_pack/ (here, on the CPU machine)")
    p.add_argument("--data-root", type=Path, default=DATA / "300w")
    p.add_argument("--out", type=Path, default=PACK)
    p.add_argument("--input-size", type=int, default=INPUT_SIZE, help="largest training input the pack serves")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the crops")
    r = sub.add_parser("run", help="the paper pipeline with offline runs (on the GPU machine)")
    r.add_argument("--out", type=Path, required=True, help="output folder: runs/, home/, pipeline/, gpu_paper.json")
    r.add_argument("--pack", type=Path, default=PACK)
    r.add_argument("--jobs", type=int, default=3, help="stages at once on the one GPU")
    r.add_argument("--workers", type=int, default=4, help="data-loading processes per stage")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every stage (repeatable), e.g. epochs=2 for a smoke test")
    i = sub.add_parser("import", help="log the GPU runs into MLflow here and score them on the raw data")
    i.add_argument("--from", dest="source", type=Path, required=True, help="the run step's output folder")
    i.add_argument("--data-root", type=Path, default=DATA / "300w")
    i.add_argument("--out", type=Path, default=None, help="results folder (default: FROM/results-here)")
    i.add_argument("--package-into", type=Path, default=None, help="put the chosen model here (e.g. sdhrnet/default_model)")
    i.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="the same extra overrides as the run step")
    b = sub.add_parser("bundle", help="the run step's output in a few size-capped parts (on the GPU machine)")
    b.add_argument("--from", dest="source", type=Path, required=True, help="the run step's output folder")
    b.add_argument("--to", type=Path, required=True, help="folder for bundle.tgz.NN and bundle.json")
    # the defaults fit a return channel of 8 files of 16 MiB, 64 MiB in all, with room for a log and bundle.json
    b.add_argument("--max-mb", type=float, default=60.0, help="at most this many MB of files, before compression")
    b.add_argument("--part-mb", type=float, default=15.0, help="size of each part")
    r.add_argument("--preset", choices=("paper", "cpu"), default="paper",
                   help="paper: 256 px, MSE / KL, 60 epochs; cpu: the recipe of the served model (128 px, Adaptive "
                        "Wing, students 120 epochs); the import takes it from the run's options")
    i.set_defaults(preset="paper")
    for step in (r, i):  # the two must agree: the import looks for the rows the run trained
        step.add_argument("--no-ablation", dest="ablation", action="store_false",
                          help="only the main rows, not the paper's Table 6 ablation (less GPU time); the import "
                               "takes it from the run's options")
    args = ap.parse_args(argv)
    if args.step == "import" and args.out is None:
        args.out = args.source / "results-here"
    return {"pack": cmd_pack, "run": cmd_run, "bundle": cmd_bundle, "import": cmd_import}[args.step](args)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
