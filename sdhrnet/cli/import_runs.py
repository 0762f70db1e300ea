"""`sdhrnet import-runs FOLDER`: log the runs recorded offline (SDHRNET_OFFLINE_RUNS=FOLDER) into MLflow."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("folder", type=Path, help="the offline run folder (what SDHRNET_OFFLINE_RUNS pointed to)")
    p.add_argument("--json", action="store_true", help="print what was imported as JSON")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sdhrnet.settings import get_settings

    if get_settings().offline_runs is not None:
        print("sdhrnet import-runs: SDHRNET_OFFLINE_RUNS is set; unset it to import into MLflow", file=sys.stderr)
        return 2
    from trainer.import_runs import import_runs

    try:
        done = import_runs(args.folder)
    except ValueError as exc:
        print(f"sdhrnet import-runs: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(d) for d in done], indent=1))
    else:
        for d in done:
            print(f"{d.action:8s} {d.run_name} ({d.status}): offline {d.offline_id} -> MLflow run {d.run_id}")
        print(f"{sum(d.action != 'skipped' for d in done)} of {len(done)} runs logged into {get_settings().mlflow_uri}")
    return 0
