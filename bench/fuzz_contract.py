"""A long run of the suite's contract fuzzing (tests/contract_fuzz.py, issue 12 item 14): the same app, dictionary
and oracles as tests/test_service_contract.py, for minutes instead of seconds, without stopping at a finding.

Each round: every operation gets --examples generated cases (positive and negative, three in four positive ones
for /align, /evaluate, /jobs/*, /models/*/promote|rollback from the dictionary) with a fresh seed, then the state
machine runs --scenarios scenarios of up to --steps calls; the dictionary pass (each hostile fragment once) runs
first. Findings are grouped by operation, check and message (numbers masked) and printed with one example.

    nice -n 10 .venv/bin/python bench/fuzz_contract.py --minutes 10
    nice -n 10 .venv/bin/python bench/fuzz_contract.py --planted --seeds 5   # cases until each planted
        regression of items 1-3 and 10 is found by generation alone (no dictionary pass)
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Tally:
    def __init__(self):
        self.cases = collections.Counter()  # phase -> cases
        # phase -> "METHOD path" -> status -> count
        self.statuses = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
        self.findings: dict[tuple, dict] = {}
        self.scenarios = 0
        self.harness_errors = collections.Counter()

    def recorder(self, phase: str):
        def on_case(case, response, failure):
            self.cases[phase] += 1
            label = f"{case.method.upper()} {case.path}"
            self.statuses[phase][label][response.status_code if response is not None else "no response"] += 1
            if failure is not None:
                for title, message in describe(failure):
                    key = (label, title, re.sub(r"\d+", "N", message.splitlines()[0] if message else "")[:160])
                    entry = self.findings.setdefault(key, {"count": 0, "phase": phase, "example": message[:1500]})
                    entry["count"] += 1
        return on_case

    def total(self) -> int:
        return sum(self.cases.values())


def describe(failure) -> list[tuple[str, str]]:
    """(title, message) of each check that failed (schemathesis groups them), or of a plain exception."""
    inner = getattr(failure, "exceptions", None)
    if inner:
        return [(getattr(f, "title", type(f).__name__), str(getattr(f, "message", f))) for f in inner]
    return [(type(failure).__name__, str(failure))]


def long_run(contract, schema, args) -> dict:
    import hypothesis
    from hypothesis import HealthCheck

    from tests.contract_fuzz import _operations

    tally = Tally()
    start = time.monotonic()
    deadline = start + args.minutes * 60
    contract.dictionary_pass(schema, on_case=tally.recorder("dictionary"))
    operations = _operations(schema)
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        for i, operation in enumerate(operations):
            if time.monotonic() >= deadline:
                break
            try:
                contract.fuzz_operation(operation, args.examples, seed=rounds * 1000 + i,
                                        on_case=tally.recorder("stateless"))
            except BaseException as exc:  # Hypothesis itself (health, unsatisfiable): noted, the run goes on
                if isinstance(exc, KeyboardInterrupt):
                    raise
                tally.harness_errors[f"{operation.method.upper()} {operation.path}: {type(exc).__name__}"] += 1
        if time.monotonic() >= deadline:
            break

        def on_scenario():
            tally.scenarios += 1
        machine = contract.state_machine(on_step=tally.recorder("stateful"), on_scenario=on_scenario)
        try:  # not derandomized: each round's scenarios are new
            machine.run(settings=hypothesis.settings(
                max_examples=args.scenarios, stateful_step_count=args.steps, deadline=None, database=None,
                suppress_health_check=list(HealthCheck)))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            tally.harness_errors[f"state machine: {type(exc).__name__}: {str(exc)[:200]}"] += 1
    return {"rounds": rounds, "seconds": round(time.monotonic() - start, 1), "tally": tally}


def planted_run(contract, schema, args) -> dict:
    """For each planted regression of tests/test_service_contract.py: generated cases until the first finding,
    per seed (no dictionary pass), on each operation that item concerns."""
    from _pytest.monkeypatch import MonkeyPatch

    from tests.test_service_contract import PLANTED

    results = {}
    for item, (target, replacement, paths) in PLANTED.items():
        patch = MonkeyPatch()
        patch.setattr(target, replacement)
        try:
            per_path = {}
            for path in paths:
                found_at = []
                for seed in range(args.seeds):
                    counter = {"n": 0, "found": None}

                    def on_case(case, response, failure, counter=counter):
                        counter["n"] += 1
                        if failure is not None and counter["found"] is None:
                            counter["found"] = counter["n"]
                    contract.fuzz_operation(schema[path]["POST"], args.max_cases, seed=seed, on_case=on_case)
                    found_at.append(counter["found"])
                per_path[path] = found_at
            results[item] = per_path
        finally:
            patch.undo()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--examples", type=int, default=200, help="generated cases per operation and round")
    parser.add_argument("--scenarios", type=int, default=100, help="state machine scenarios per round")
    parser.add_argument("--steps", type=int, default=10, help="at most this many calls per scenario")
    parser.add_argument("--planted", action="store_true", help="count cases until each planted regression is found")
    parser.add_argument("--seeds", type=int, default=5, help="--planted: seeds per regression and operation")
    parser.add_argument("--max-cases", type=int, default=400, help="--planted: give up after this many cases")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sdhrnet-fuzz-"))
    os.environ["SDHRNET_HOME"] = str(home)  # /evaluate unpacks uploads there
    import logging

    logging.disable(logging.WARNING)  # the service logs every refused archive; the tally is the output
    import hypothesis
    import schemathesis

    from sdhrnet.settings import get_settings
    from tests.contract_fuzz import Contract

    get_settings.cache_clear()
    contract = Contract(home)
    schema = contract.stateless_schema()
    versions = {"schemathesis": schemathesis.__version__, "hypothesis": hypothesis.__version__}
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    if args.planted:
        results = planted_run(contract, schema, args)
        print(json.dumps({"started": started, **versions, "max_cases": args.max_cases,
                          "cases_until_found_per_seed": results}, indent=1))
        return 0
    run = long_run(contract, schema, args)
    tally: Tally = run.pop("tally")
    figures = {
        "started": started, **versions, "command": "bench/fuzz_contract.py " + " ".join(sys.argv[1:]),
        "seconds": run["seconds"], "rounds": run["rounds"],
        "cases": {"total": tally.total(), **tally.cases, "stateful_scenarios": tally.scenarios},
        "findings": {"distinct": len(tally.findings), "cases": sum(f["count"] for f in tally.findings.values())},
        "harness_errors": dict(tally.harness_errors),
        "statuses": {phase: {label: dict(sorted(c.items(), key=str)) for label, c in sorted(labels.items())}
                     for phase, labels in tally.statuses.items()},
    }
    print(json.dumps(figures, indent=1))
    for (label, title, message), entry in sorted(tally.findings.items(), key=lambda kv: -kv[1]["count"]):
        print(f"\n== {entry['count']} x {label}: {title} ({entry['phase']})\n{entry['example']}")
    if args.json:
        args.json.write_text(json.dumps({**figures, "findings_detail": [
            {"operation": k[0], "check": k[1], "message": k[2], **v} for k, v in tally.findings.items()]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
