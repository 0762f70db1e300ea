"""Training and evaluation jobs, run by the Celery worker."""
import asyncio
import logging

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from sdhrnet.budgets import parse_budgets
from sdhrnet.job_kinds import FINAL_STATES, RUN_REFS, TRAINING_KINDS, JobKind, run_of_ref

from ..deps import Jobs, MlflowUiUrl, Registry
from ..errors import InputError, Problem, first_error
from landmarks.jsonsafe import to_jsonable
from ..redact import redact_all
from ..schemas import JOB_BODIES, JobAccepted, JobList, JobParams, JobStatus, problem_responses
from ..security import ApiKey

log = logging.getLogger("sdhrnet.service.jobs")
router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[ApiKey])
JOB_ID = Path(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="the id returned when the job was started")
ACCEPTED = {202: {"model": JobAccepted, "description": "job queued; poll the Location", "headers": {
    "Location": {"schema": {"type": "string"}, "description": "URL of the job status"}}}}


async def _backend(jobs, method: str, *args):
    try:
        return await asyncio.to_thread(getattr(jobs, method), *args)
    except (Problem, LookupError):
        raise
    except ValueError as exc:  # the job store's answer that the request is wrong (e.g. a malformed job id)
        raise InputError(str(exc)) from None
    except Exception as exc:  # broker or result store down: tell the operator, not a bare 500
        log.warning("job backend %s failed", method, exc_info=True)
        raise Problem(503, "the job queue is not reachable; check that the worker broker (REDIS_URL, or the "
                           "embedded filesystem broker under SDHRNET_HOME) is up and retry",
                      headers={"Retry-After": "10"}) from None


def _with_links(ui: str | None, status: dict) -> dict:
    status = redact_all(to_jsonable(dict(status)))
    run_id = status.get("run_id") or (status.get("progress") or {}).get("run_id")
    if run_id:
        status["run_id"] = run_id
        if ui:
            experiment = status.get("experiment_id")
            status["mlflow_run_url"] = f"{ui}/#/experiments/{experiment}/runs/{run_id}" if experiment \
                else f"{ui}/#/runs/{run_id}"
    return status


def training_params(kind: str, params: JobParams) -> dict:
    """Judged now by the trainer's own config model, so that a job that cannot train is a 422 at submit
    rather than a 202 and a FAILURE later."""
    from pydantic import ValidationError

    from sdhrnet.train_config import make_config

    try:
        make_config(params.preset, params.dataset, params.overrides, kind)
        if "budgets" in type(params).model_fields:
            parse_budgets(params.budgets)
    except ValidationError as exc:
        raise InputError(f"overrides.{first_error(exc)}; fix the value or drop the key to keep the preset's") from None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return params.model_dump(exclude_none=True)


async def check_runs(registry, params: JobParams) -> None:
    """A run the job starts from that MLflow does not have is a 422 now, not a FAILURE once the worker has loaded
    the data. Only references that name a run are looked up: a folder on the worker or a published architecture is
    for the trainer to find."""
    for field in RUN_REFS:
        run_id = run_of_ref(getattr(params, field, None) or "")
        if run_id and not await registry.call("run_exists", run_id):
            raise InputError(f"{field}: run {run_id[:64]} was not found in MLflow; GET /jobs shows the run_id of "
                             "each job")


async def start_job(jobs, kind: str, params: dict) -> JSONResponse:
    job_id = str(await _backend(jobs, "submit", kind, params))
    location = f"/jobs/{job_id}"
    return JSONResponse({"job_id": job_id, "kind": kind, "state": "PENDING", "location": location},
                        status_code=202, headers={"Location": location})


def _add_start_route(kind: JobKind, body: type[JobParams]) -> None:
    async def start(jobs: Jobs, registry: Registry, params: body):  # type: ignore[valid-type]
        checked = training_params(kind.name, params)
        await check_runs(registry, params)
        return await start_job(jobs, kind.name, checked)

    router.add_api_route(f"/{kind.name}", start, methods=["POST"], name=f"start_{kind.name}", status_code=202,
                         response_model=JobAccepted, responses={**ACCEPTED, **problem_responses(401, 422, 503)},
                         summary=kind.summary)


for _kind in TRAINING_KINDS:
    _add_start_route(_kind, JOB_BODIES[_kind.name])


@router.get("", response_model=JobList, responses=problem_responses(401, 503), summary="Recent jobs")
async def list_jobs(jobs: Jobs, ui: MlflowUiUrl):
    listed = await _backend(jobs, "list")
    return {"jobs": [_with_links(ui, j) for j in listed]}


@router.get("/{job_id}", response_model=JobStatus, responses=problem_responses(401, 404, 422, 503),
            summary="State, progress and MLflow run of a job")
async def get_job(jobs: Jobs, ui: MlflowUiUrl, job_id: str = JOB_ID):
    status = await _backend(jobs, "status", job_id)
    if not status:
        raise Problem(404, f"no job with id '{job_id}'; GET /jobs lists the known jobs")
    return _with_links(ui, status)


@router.delete("/{job_id}", status_code=202, response_model=JobStatus,
               responses=problem_responses(401, 404, 409, 422, 503),
               summary="Ask a job to stop (it ends CANCELLED at its next check); 409 when it has already ended")
async def cancel_job(jobs: Jobs, ui: MlflowUiUrl, job_id: str = JOB_ID):
    status = await _backend(jobs, "status", job_id)
    if not status:
        raise Problem(404, f"no job with id '{job_id}'; GET /jobs lists the known jobs")
    if status.get("state") in FINAL_STATES:
        raise Problem(409, f"job '{job_id}' has already ended ({status['state']}); there is nothing to cancel",
                      state=status["state"])
    await _backend(jobs, "cancel", job_id)
    status = await _backend(jobs, "status", job_id) or status
    return JSONResponse(_with_links(ui, status), status_code=202)
