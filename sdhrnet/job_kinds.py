"""Every kind of job, declared once. The `sdhrnet` training commands, the Celery tasks, the API's job routes and
job submission all derive from this table; a new kind is one row here plus its runner in trainer.jobs and its
request body in service.schemas.JOB_BODIES."""
from __future__ import annotations

from dataclasses import dataclass

CANCELLED = "CANCELLED"
# Celery states after which a job never changes again (CANCELLED is ours: see worker.tasks)
FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", CANCELLED})


@dataclass(frozen=True)
class JobKind:
    name: str  # the API path /jobs/<name> and the kind recorded with each job
    task: str  # Celery task name
    runner: str  # function of trainer.jobs that runs it
    summary: str
    command: str | None = None  # `sdhrnet <command>` that runs it in the foreground, if any
    registers: bool = True  # a finished job's model(s) become registry versions


JOB_KINDS = {k.name: k for k in (
    JobKind("slim", "sdhrnet.slim", "run_slim", "Train the supernet with L1 on alpha and prune it", "slim"),
    JobKind("distill", "sdhrnet.distill", "run_distill", "Triple knowledge distillation of a slimmed network",
            "distill"),
    JobKind("teacher", "sdhrnet.train_teacher", "run_teacher", "Train the HRNetV2-W18 teacher", "train-teacher"),
    JobKind("sweep", "sdhrnet.sweep", "run_sweep",
            "Prune a slim run's supernet at several budgets, fine-tune and register each (the NME-cost frontier)",
            "sweep"),
    JobKind("evaluate", "sdhrnet.evaluate", "run_evaluate", "Score a model on a split", registers=False),
)}
TRAINING_KINDS = tuple(k for k in JOB_KINDS.values() if k.command)
_BY_ALIAS = {**{k.command.replace("-", "_"): k for k in TRAINING_KINDS}, **{k.command: k for k in TRAINING_KINDS},
             **JOB_KINDS}


class UnknownJobKind(ValueError):
    pass


def job_kind(name: str) -> JobKind:
    """A kind by its name or by its command's name (train-teacher -> teacher)."""
    try:
        return _BY_ALIAS[name]
    except KeyError:
        raise UnknownJobKind(f"unknown job kind '{name}'; use one of {', '.join(JOB_KINDS)}") from None


def by_command(command: str) -> JobKind:
    return next(k for k in TRAINING_KINDS if k.command == command)
