"""`sdhrnet pipeline`: teacher and slimming side by side, then the distillations, scoring and packaging."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from landmarks.datasets import DATASETS
from sdhrnet.budgets import SERVED_MAX_PARAMS
from sdhrnet.cli.train import device_argument
from sdhrnet.train_config import PRESETS


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--dataset", required=True, choices=list(DATASETS))
    p.add_argument("--data-root", required=True, type=Path, help="dataset folder")
    p.add_argument("--preset", default="cpu", choices=PRESETS)
    p.add_argument("--device", default=None, type=device_argument, help="cpu, cuda, cuda:1 ... for every stage")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every stage (repeatable)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="stages run at once (default: 2 where there are 2 cores); CPU threads are shared among them")
    p.add_argument("--ablation", action="store_true", help="also the paper's Table 6 rows (teacher only, teacher + "
                   "peer without masks, peer + masks without teacher)")
    p.add_argument("--test-set", action="append", default=[], metavar="NAME=DATASET:ROOT:SPLIT",
                   help="an extra column of the results table, e.g. 'p1-ytf68 test=csv:../shared/data/p1-ytf68:test'")
    p.add_argument("--tie-break-set", action="append", default=[], metavar="NAME=DATASET:ROOT:SPLIT",
                   help="a labelled set the selection decides on after the occluded validation faces, scored per "
                   "subject where the layout names them, e.g. video frames: 'p1-ytf68 training=csv:"
                   "../shared/data/p1-ytf68:training' (frames a 300W model never trains on)")
    p.add_argument("--detected-boxes", action="store_true", help="also score the validation split and every "
                   "--test-set where the service's face detector finds each face (as /align without boxes), in "
                   "columns of their own; the selection still looks at the true boxes")
    p.add_argument("--max-params", type=int, default=SERVED_MAX_PARAMS,
                   help="parameter budget of the served student")
    p.add_argument("--max-macs", type=int, default=None,
                   help="multiply-add budget of the served student at its input size (default: none)")
    p.add_argument("--out", type=Path, default=None,
                   help="logs, results.json, results.md and the chosen model (default SDHRNET_HOME/pipeline/DATASET-PRESET)")
    p.add_argument("--package-into", type=Path, default=None,
                   help="put the chosen model here instead of OUT/model (e.g. sdhrnet/default_model); a model "
                   "already there stays unless the chosen one beats it as the registry's promotion asks")
    p.add_argument("--replace", action="store_true",
                   help="package the chosen model even where the folder's model is not beaten")
    p.add_argument("--progress-every", type=float, default=60.0, help="seconds between progress lines")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sdhrnet.settings import get_settings
    from trainer.pipeline import PipelineError, run_pipeline
    from trainer.results import EvalSet

    if args.jobs < 1:
        print("sdhrnet pipeline: --jobs must be at least 1", file=sys.stderr)
        return 2
    out = args.out or get_settings().home / "pipeline" / f"{args.dataset}-{args.preset}"
    try:
        test_sets = ([EvalSet.parse(t, tie_break=True) for t in args.tie_break_set]
                     + [EvalSet.parse(t) for t in args.test_set])
        result = run_pipeline(args.dataset, args.data_root, args.preset, out_dir=out, ablation=args.ablation,
                              device=args.device, overrides=args.overrides, jobs=args.jobs, test_sets=test_sets,
                              detected_boxes=args.detected_boxes,
                              package_into=args.package_into, replace=args.replace,
                              limits={"params": args.max_params} | ({"macs": args.max_macs} if args.max_macs else {}),
                              progress_every=args.progress_every,
                              say=lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True),
                              command=["sdhrnet", "pipeline", *sys.argv[2:]])
    except (ValueError, PipelineError) as exc:
        print(f"sdhrnet pipeline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sdhrnet pipeline: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, indent=1))
    return 0
