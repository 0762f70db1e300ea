"""Every kind of job, declared once. The `sdhrnet` training commands, the Celery tasks, the API's job routes and
job submission all derive from this table; a new kind is one row here plus its runner in trainer.jobs and its
request body in service.schemas.JOB_BODIES."""
from __future__ import annotations

import re
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


class JobFailed(Exception):
    """What a failed job is stored as (worker.tasks): its message is the job's `error` as users read it. The worker
    log keeps the original exception's type and traceback."""


def failure_message(exc: BaseException) -> str:
    """The message of a job's failure without its Python type: what went wrong, in the words of whoever raised it."""
    message = str(exc).strip()
    code = getattr(exc, "error_code", None)  # MLflow's REST errors begin with their code, a name users cannot act on
    if isinstance(code, str):
        message = message.removeprefix(f"{code}: ")
    if message and isinstance(exc, (KeyError, IndexError, AttributeError, TypeError)):
        message = f"{type(exc).__name__}: {message}"  # a bare "'x'" says nothing without it
    return message or "the job failed without saying why; the worker log has the details"


# A model reference names an MLflow run as `runs:/ID[/PATH]` or as a bare run id: 32 hex digits, as MLflow makes them
# (and trainer.offline_runs names its folders). Its other forms (a folder or .onnx file on the worker,
# models:/NAME@ALIAS, a published architecture) name no run.
_RUN_ID = "[0-9a-f]{32}"
RUN_ID = re.compile(f"^{_RUN_ID}$")
RUNS_URI = "runs:/"
RUN_REF_PATTERN = f"^({RUNS_URI}[^/]+(/.*)?|{_RUN_ID})$"  # a reference that names a run, for request schemas
RUN_REFS = ("slim_run", "teacher_run")  # the job parameters that name the models a job starts from


def run_of_ref(ref: str) -> str | None:
    """The run id a model reference names, or None when it names no run."""
    ref = str(ref)
    if ref.startswith(RUNS_URI):
        return ref[len(RUNS_URI):].split("/")[0] or None
    return ref if RUN_ID.match(ref) else None


def supernet_run(slim_run: str) -> str:
    """The run of a sweep's `slim_run`: a sweep prunes the supernet that a slim run keeps beside its result, so the
    reference must name a run; ValueError otherwise."""
    run_id = run_of_ref(slim_run)
    if run_id is None:
        raise ValueError(f"'{str(slim_run)[:80]}' names no run: a sweep prunes the supernet a slim job's run keeps, "
                         "so give that run's id (32 hex digits, the slim job's run_id) or runs:/RUN_ID")
    return run_id
