"""The `sdhrnet` command. Each subcommand's module is imported lazily, by name, so that `sdhrnet run` on the API
image does not import torch."""
import argparse
import importlib
import sys

from sdhrnet.job_kinds import TRAINING_KINDS

# subcommand -> module exposing `add_arguments(parser, command)` and `main(args) -> int`: the modules of this package,
# except `serve` and `run`, which stay beside the API they start
SUBCOMMANDS = {
    "complexity": ("sdhrnet.cli.complexity", "parameter and MAC counts of an architecture"),
    "export": ("sdhrnet.cli.export", "export a network or checkpoint to ONNX"),
    "quantize": ("sdhrnet.cli.quantize", "an INT8 copy of a model folder (ONNX Runtime static quantization)"),
    "ensemble": ("sdhrnet.cli.combine", "a teacher that averages the heatmaps of several trained models"),
    "soup": ("sdhrnet.cli.combine", "one network whose weights average several fine-tuned from one start"),
    "align": ("sdhrnet.cli.align", "landmarks for the faces in image files and folders, as /align answers"),
    "evaluate": ("sdhrnet.cli.evaluate", "score predictions or a model with NME/FR/AUC"),
    "show": ("sdhrnet.cli.show", "draw samples with their landmarks"),
    **{k.command: ("sdhrnet.cli.train", k.summary[0].lower() + k.summary[1:]) for k in TRAINING_KINDS},
    "pipeline": ("sdhrnet.cli.pipeline", "every stage for a dataset, scored and packaged; re-run to continue"),
    "import-runs": ("sdhrnet.cli.import_runs", "log runs recorded offline (SDHRNET_OFFLINE_RUNS) into MLflow"),
    "worker": ("sdhrnet.cli.worker", "start a Celery worker"),
    "serve": ("service.cli_serve", "start the REST API only"),
    "run": ("service.cli_run", "start MLflow, a worker and the API on one machine"),
}


def cannot_write(option: str, path, exc: OSError) -> str:
    """The message for an output the command cannot write: the option and path the user gave, not an errno."""
    return f"cannot write {option} {path}: {exc.strerror or exc}"


def positive_int(text: str) -> int:
    """argparse type of counts and sizes: 0 or a negative one would not fail before the work started, or at all."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text}")
    return value


def multiple_of(step: int):
    """argparse type of an input side, which the network divides by `step`."""
    def parse(text: str) -> int:
        value = int(text)
        if value < step or value % step:
            raise argparse.ArgumentTypeError(f"must be a positive multiple of {step}, not {text}")
        return value

    parse.__name__ = f"multiple of {step}"  # what argparse names a value that is not a number at all
    return parse


DESCRIPTION = ("SD-HRNet facial landmarks: align faces in photos, train and distill models, score them, and serve "
               "them over HTTP. `sdhrnet COMMAND --help` describes a command.")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="sdhrnet", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        # argument definitions are tiny; import only the command that is asked for in full
        if argv and argv[0] == name:
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(p, name)
    args = parser.parse_args(argv)
    return int(modules[args.command].main(args) or 0)
