"""`sdhrnet train-teacher | slim | distill | sweep`: run a training stage in this process, tracked in MLflow."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from landmarks.datasets import DATASETS
from sdhrnet.job_kinds import by_command
from sdhrnet.train_config import PRESETS


def device_argument(value: str) -> str:
    """--device: refused while the arguments are read, before a run is started or data is loaded."""
    from sdhrnet.settings import device_problem

    problem = device_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--dataset", required=True, choices=list(DATASETS))
    p.add_argument("--data-root", required=True, help="dataset folder (300W layout, WFLW, COFW .mat, or landmark CSV)")
    p.add_argument("--preset", default="cpu", choices=PRESETS, help="paper settings, a 2-core CPU budget, or a smoke test")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set epochs=5 --set input_size=128")
    p.add_argument("--device", default=None, type=device_argument, help="cpu, cuda, cuda:1 ... (default from SDHRNET_DEVICE, else cpu)")
    p.add_argument("--run-name", default=None, help="MLflow run name and resume key; the same name resumes (default KIND-DATASET-PRESET)")
    if command == "sweep":
        p.add_argument("--from-slim", dest="slim_run", required=True, help="slim run id (its models/supernet is pruned)")
        p.add_argument("--budget", dest="budgets", action="append", required=True, metavar="KIND=VALUE",
                       help="one network per budget (repeatable): params=800000, macs=150000000 or ms=6 (ONNX Runtime, "
                            "batch 1, prune_latency_threads threads)")
    if command == "distill":
        p.add_argument("--from-slim", dest="slim_run", required=True,
                       help="what the students start from: a slim run id, runs:/ID, models:/NAME@ALIAS, a model "
                            "folder (sdhrnet/default_model: the served model, trained on) or a published "
                            "architecture (s-hrnet-300w, ...)")
        p.add_argument("--teacher", dest="teacher_run", default=None, help="teacher run id, model URI or model folder (omit with --set use_teacher=false)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """SIGINT and SIGTERM stop a stage the same way (checkpoint, then exit 130): a stage started in the background
    by a shell or `setsid` inherits an ignored SIGINT, and kill / the pipeline send SIGTERM or SIGINT."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop_on_signals()
    from trainer import jobs
    from sdhrnet.train_config import parse_overrides

    params = {"dataset": args.dataset, "data_root": args.data_root, "preset": args.preset, "device": args.device,
              "run_name": args.run_name}
    if args.command == "distill":
        params.update(slim_run=args.slim_run, teacher_run=args.teacher_run)
    if args.command == "sweep":
        params.update(slim_run=args.slim_run, budgets=args.budgets)
    try:
        params["overrides"] = parse_overrides(args.overrides)
        result = getattr(jobs, by_command(args.command).runner)(params)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sdhrnet {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sdhrnet {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        m = result.metrics
        print(f"run {result.run_id}: {result.kind} {result.dataset} NME {m['nme']:.4f} FR {m['fr']:.4f} AUC {m['auc']:.4f} "
              f"on {m['split']} | {result.params / 1e6:.3f} M params, {result.macs / 1e9:.3f} G MACs @{result.input_size}")
        print(f"model files: {result.model_dir}")
    return 0
