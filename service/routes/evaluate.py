"""POST /evaluate: NME/FR/AUC of the served model on a labelled set (inline, or as a job when large)."""
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from sdhrnet.uploads import remove_upload

from .. import evaluation
from ..deps import Jobs, Models, Settings
from ..detection import tilt_checker
from ..requests import read_evaluate_body
from ..schemas import DATASET_PATTERN, EvaluateReport, EvaluateRequest, problem_responses
from ..security import ApiKey
from .jobs import ACCEPTED, start_job

router = APIRouter(tags=["evaluate"])

EVALUATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": EvaluateRequest.model_json_schema(ref_template="#/components/schemas/{model}")},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["archive"],
        "properties": {
            "archive": {"type": "string", "format": "binary",
                        "description": "zip or tar(.gz) of a set in a supported layout (300w, wflw, cofw, csv)"},
            "layout": {"type": "string", "description": "the archive's dataset layout (default: the model's dataset)"},
            "split": {"type": "string", "description": "which split of the layout to score (default: the layout's "
                      "test split, 300w 'common' = helen/testset + lfpw/testset; a 300w archive of other subsets, "
                      "e.g. afw/ alone, is scored on the subsets it holds)"},
        }}},
}}}


async def _start_evaluate_job(jobs, params: dict, folder) -> JSONResponse:
    """The unpacked set stays for the worker, which removes it when the job ends (sdhrnet.uploads); if the job
    cannot be queued it goes now."""
    try:
        return await start_job(jobs, "evaluate", params)
    except BaseException:
        remove_upload(folder)
        raise


@router.post("/evaluate", response_model=EvaluateReport, openapi_extra=EVALUATE_BODY, dependencies=[ApiKey],
             summary="Score the served model on a labelled set",
             responses={202: {**ACCEPTED[202], "description": "the set is large: it runs as an evaluate job"},
                        **problem_responses(401, 404, 413, 415, 422, 503)})
async def evaluate(request: Request, settings: Settings, models: Models, jobs: Jobs,
                   dataset: str | None = Query(None, pattern=DATASET_PATTERN,
                                               description="which dataset's champion model to score (default 300w)")):
    dataset = dataset or settings.default_dataset
    body = await read_evaluate_body(request, default_layout=dataset)
    tilt_at = tilt_checker(request.app)
    async with models.use(dataset) as model:
        if isinstance(body, EvaluateRequest):
            outcome = await evaluation.evaluate_items(model, body.items, settings, tilt_at)
        else:
            outcome = await evaluation.evaluate_archive(model, body.file, body.layout, body.split, settings, tilt_at)
    if isinstance(outcome, evaluation.EvaluateJob):
        return await _start_evaluate_job(jobs, outcome.params, outcome.folder)
    return outcome
