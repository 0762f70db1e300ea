"""POST /evaluate: NME/FR/AUC of the served model on a labelled set (inline, or as a job when large)."""
import asyncio
import shutil

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from .. import evaluation
from ..deps import Jobs, Models, Settings
from ..errors import InputError, first_error
from ..requests import media_type
from ..schemas import DATASET_PATTERN, EvaluateReport, EvaluateRequest, JobAccepted, problem_responses
from ..security import ApiKey

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
    """The unpacked set stays under SDHRNET_HOME/uploads for the worker (removed after
    SDHRNET_UPLOAD_RETENTION_HOURS); if the job cannot be queued it goes now."""
    from .jobs import start_job

    try:
        return await start_job(jobs, "evaluate", params)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@router.post("/evaluate", response_model=EvaluateReport, openapi_extra=EVALUATE_BODY, dependencies=[ApiKey],
             summary="Score the served model on a labelled set",
             responses={202: {"model": JobAccepted, "description": "the set is large: it runs as an evaluate job"},
                        **problem_responses(401, 404, 413, 415, 422, 503)})
async def evaluate(request: Request, settings: Settings, models: Models, jobs: Jobs,
                   dataset: str | None = Query(None, pattern=DATASET_PATTERN,
                                               description="which dataset's champion model to score (default 300w)")):
    dataset = dataset or settings.default_dataset
    content_type = media_type(request)
    if content_type == "application/json":
        try:
            body = EvaluateRequest.model_validate_json(await request.body())
        except ValueError as exc:
            raise InputError(f'the JSON body must be {{"items": [{{"image": "<base64>", "box": [x1, y1, x2, y2], '
                             f'"landmarks": [[x, y], ...]}}]}}: {first_error(exc)}') from None
        if len(body.items) > settings.evaluate_sync_limit:
            async with models.use(dataset) as model:
                folder = await asyncio.to_thread(evaluation.write_items_as_csv_set, body.items, settings,
                                                 model.num_landmarks)
                params = {"dataset": "csv", "data_root": str(folder), "split": "test",
                          "model": f"models:/{model.name}/{model.version}"}
            return await _start_evaluate_job(jobs, params, folder)
        async with models.use(dataset) as model:
            info = evaluation.dataset_info(model.dataset)
            samples = await asyncio.to_thread(evaluation.samples_from_items, body.items, settings, model.num_landmarks)
            report = await evaluation.score(model, samples, info)
            report["model"] = model.describe()
        return report
    if content_type != "multipart/form-data":
        raise InputError("send JSON items (application/json) or an archive (multipart/form-data field 'archive')",
                         status=415)
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:
        if getattr(exc, "status_code", None) in (408, 413):  # body limits (service.limits)
            raise
        raise InputError(f"the multipart body could not be parsed ({exc})") from None
    archive = form.get("archive")
    if not isinstance(archive, UploadFile):
        raise InputError("multipart field 'archive' is missing or not a file; attach a zip or tar of the set")
    layout = str(form.get("layout") or dataset)
    split = form.get("split")
    split = str(split) if split and not isinstance(split, UploadFile) else None
    async with models.use(dataset) as model:
        info = evaluation.dataset_info(layout)
        if info.num_landmarks != model.num_landmarks:
            raise InputError(f"layout '{layout}' has {info.num_landmarks} landmarks but the {dataset} model predicts "
                             f"{model.num_landmarks}; score it with ?dataset= of a model for that layout")
        samples, root, split, folder = await asyncio.to_thread(evaluation.samples_from_archive, archive.file, layout,
                                                               split, settings)
        if len(samples) > settings.evaluate_sync_limit:
            params = {"dataset": layout, "data_root": str(root), "split": split,
                      "model": f"models:/{model.name}/{model.version}"}
            return await _start_evaluate_job(jobs, params, folder)
        try:
            report = await evaluation.score(model, samples, info)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        report["model"] = model.describe()
        report["split"] = split
    return report
