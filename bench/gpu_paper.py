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

   `--no-ablation` leaves out the Table 6 rows. Measured on one H200 (2026-11-26, 256 px, 50 epochs, three stages
   sharing the GPU): seconds per epoch 9.7 (teacher), 11.3 (slimming), 6.9 (one student), 15.3 (triple KD), so
   the six main rows need about 22 minutes: teacher and slimming first, then the distillations.

   Copy OUT back whole (the teacher's model files alone are ~77 MB), or where only a few files of limited size
   come back, in parts (checkpoints stay behind; the largest models are left out first and listed):

       python3 bench/gpu_paper.py bundle --from OUT --to DIR --max-mb 60 --part-mb 15
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
# import name -> what provides it, for the message when the GPU machine lacks one
NEEDED = {"torch": "torch", "cv2": "opencv-python-headless", "onnx": "onnx", "onnxruntime": "onnxruntime",
          "onnxscript": "onnxscript", "numpy": "numpy", "scipy": "scipy", "h5py": "h5py", "matplotlib": "matplotlib",
          "tqdm": "tqdm", "pydantic": "pydantic", "pydantic_settings": "pydantic-settings"}


def pipeline_args(data_root: Path, extra: list[str], ablation: bool = True) -> list[str]:
    """The `sdhrnet pipeline` arguments both machines use: the same run names, so the import finds the runs."""
    args = ["pipeline", "--dataset", "300w", "--data-root", str(data_root), "--preset", "paper",
            *(["--ablation"] if ablation else []), "--set", f"input_size={INPUT_SIZE}"]
    for item in SPLITS:
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
    env = {**os.environ, "SDHRNET_OFFLINE_RUNS": str(out / "runs"), "SDHRNET_HOME": str(out / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    extra = ["--device", "cuda", "--jobs", str(args.jobs), "--set", f"num_workers={args.workers}",
             "--out", str(out / "pipeline")] + [a for item in args.overrides for a in ("--set", item)]
    t0 = time.time()
    code = sdhrnet(pipeline_args(args.pack.resolve(), extra, args.ablation), env)
    record = {"command": [sys.executable, "bench/gpu_paper.py", *sys.argv[1:]], "exit_code": code,
              "wall_seconds": round(time.time() - t0, 1), "gpu": torch.cuda.get_device_name(0),
              "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
              "pack": json.loads((args.pack / "pack.json").read_text())}
    (out / "gpu_paper.json").write_text(json.dumps(record, indent=1) + "\n")
    return code


def unfinished_stages(ablation: bool) -> list[str]:
    """Run names of the pipeline that MLflow here does not hold as FINISHED (the pipeline would train them)."""
    from trainer.pipeline import ABLATION, ROWS, run_name
    from trainer.tracking import FINISHED, RESUME_TAG, client

    c = client()
    exp = c.get_experiment_by_name("sdhrnet-300w")
    names = [run_name("300w", "paper", row) for row in ROWS + (ABLATION if ablation else ())]
    if exp is None:
        return names
    return [n for n in names if not c.search_runs([exp.experiment_id], max_results=1, filter_string=(
        f"tags.`{RESUME_TAG}` = '{n}' and attributes.status = '{FINISHED}'"))]


def cmd_bundle(args: argparse.Namespace) -> int:
    """The run step's output in gzipped tar parts of at most --part-mb each and --max-mb together, for a channel
    that carries only a few files of limited size. The checkpoints (home/) stay behind; the other files go in
    ascending size until the cap, so the run records, logs, results and the small students come first and what
    is left out is the largest models (the teacher's, the supernet's), listed in bundle.json."""
    import tarfile

    src, dest = args.source.resolve(), args.to.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted((p for p in src.rglob("*") if p.is_file() and p.relative_to(src).parts[0] != "home"),
                   key=lambda p: p.stat().st_size)
    cap, total, kept, left = args.max_mb * 1e6, 0, [], []
    for path in files:
        size = path.stat().st_size
        (kept if total + size <= cap else left).append(path)
        total += size if total + size <= cap else 0
    whole = dest / "bundle.tgz"
    with tarfile.open(whole, "w:gz", compresslevel=1) as tar:
        for path in kept:
            tar.add(path, arcname=str(path.relative_to(src)))
    part, index = int(args.part_mb * 1e6), 0
    with open(whole, "rb") as f:
        while chunk := f.read(part):
            (dest / f"bundle.tgz.{index:02d}").write_bytes(chunk)
            index += 1
    whole.unlink()
    summary = {"files": len(kept), "bytes": total, "parts": index,
               "left_out": {str(p.relative_to(src)): p.stat().st_size for p in left}}
    (dest / "bundle.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"bundle: {len(kept)} files, {total / 1e6:.1f} MB in {index} parts; {len(left)} left out "
          f"({sum(summary['left_out'].values()) / 1e6:.1f} MB); unpack with `cat bundle.tgz.* | tar xz`")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    runs = args.source / "runs"
    env = {k: v for k, v in os.environ.items() if k != "SDHRNET_OFFLINE_RUNS"}
    code = sdhrnet(["import-runs", str(runs)], env)
    if code:
        return code
    missing = unfinished_stages(args.ablation)
    if missing:  # the pipeline would train these here, on the CPU, at the paper's schedule
        print("gpu_paper import: not finished on the GPU machine: " + ", ".join(missing) +
              "; run the `run` step there again to finish them", file=sys.stderr)
        return 2
    extra = ["--test-set", TEST_SET, "--out", str(args.out)] + [a for item in args.overrides for a in ("--set", item)]
    if args.package_into:
        extra += ["--package-into", str(args.package_into)]
    return sdhrnet(pipeline_args(args.data_root, extra, args.ablation), env)


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
    b.add_argument("--max-mb", type=float, default=60.0, help="at most this many MB of files (before compression)")
    b.add_argument("--part-mb", type=float, default=15.0, help="size of each part")
    for step in (r, i):  # the two must agree: the import looks for the rows the run trained
        step.add_argument("--no-ablation", dest="ablation", action="store_false",
                          help="only the main rows, not the paper's Table 6 ablation (less GPU time)")
    args = ap.parse_args(argv)
    if args.step == "import" and args.out is None:
        args.out = args.source / "results-here"
    return {"pack": cmd_pack, "run": cmd_run, "bundle": cmd_bundle, "import": cmd_import}[args.step](args)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
