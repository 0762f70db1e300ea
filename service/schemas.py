"""Request and response bodies (they become the OpenAPI contract in openapi.yaml)."""
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from landmarks.answers import NOT_A_FACE
from landmarks.datasets import NAME_PATTERN
from landmarks.face_detector import MAX_TILES
from sdhrnet.budgets import BUDGET_KINDS, BUDGET_PATTERN
from sdhrnet.job_kinds import RUN_REF_PATTERN, supernet_run
from sdhrnet.settings import DEVICE_FORMS, Device
from sdhrnet.train_config import Preset

DATASET_PATTERN = NAME_PATTERN
Box = list[Annotated[float, Strict()]]  # numbers only: no true for 1 or "20" for 20, as the schema says
Boxes = list[Box]  # JSON bodies and multipart 'boxes' fields are validated as this one type


class AlignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(description="the image file (JPEG, PNG, BMP, WebP, TIFF) base64-encoded; data URLs accepted")
    boxes: Boxes | None = Field(None, description="face boxes [x1, y1, x2, y2] in image pixels; leave out to have "
                                "the faces detected", min_length=1)


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str
    run_id: str
    dataset: str
    num_landmarks: int


class Face(BaseModel):
    box: Box = Field(description="the box the landmarks were cropped around: the one sent, or the detected face "
                     "mapped onto the landmark box convention (sending it back with the same recrop gives the same "
                     "landmarks when box_roll is 0)")
    box_roll: float = Field(0.0, description="degrees the crop at the box was turned by about its centre (positive: "
                            "clockwise on screen): 0 for upright faces; for a face the detector finds tilted by 20 "
                            "degrees or more, its tilt, and the box is then the face's box in its own upright frame "
                            "(turn it by box_roll to draw it); where the first pass was unsure of a face turned far, "
                            "the turn the network was surest of (a detected face's box moves with it, a box sent "
                            "stays as sent)")
    detection_score: float | None = Field(None, description="detector confidence in (0, 1]; only for detected faces")
    detection_box: Box | None = Field(None, description="the face detector's own box; only for detected faces")
    landmarks: list[list[float]] = Field(description="(x, y) per landmark, 0-based pixels of the original image")
    confidence: list[float] = Field(description="heatmap peak value per landmark")
    roll: float | None = Field(None, description="the face's in-plane tilt in degrees from its landmarks: the line "
                               "through the outer eye corners, 0 upright, positive clockwise on screen, in (-180, "
                               "180]; null for a landmark layout without known eye corners")
    passes: int = Field(1, description="network passes this face went through: 1, 2 where the second pass ran (see "
                        "recrop), more where the first pass was unsure of the face and it was cropped again turned "
                        "by the detector's tilt")


class DetectionSearch(BaseModel):
    looks: int = Field(description="detector runs over the photo: 1 for the whole photo, plus one per tile scanned "
                       "for faces smaller than that look can see (small_faces), plus the upside-down look")
    upside_down_look: bool = Field(False, description="the whole photo was also looked at turned by 180 degrees, as "
                                   "no face was found or one was found unsure (the detector misses or doubts faces "
                                   "upside down, which that look sees upright); faces found there carry their tilt")
    smallest_face: float = Field(description="pixels: the smallest face (longer side of its box) those looks find "
                                 "reliably; with small_faces, a smaller min_face_size than this was not searched "
                                 f"for in full, as the tiles it needs would pass the limit of {MAX_TILES} or be "
                                 "smaller than the detector's input")
    not_faces: int = Field(0, description="detections that only the small_faces tiles found and that the landmark "
                           f"network saw no face in (mean heatmap peak under {NOT_A_FACE}: a forehead, an earring), "
                           "left out of faces; 0 without small_faces")


class AlignResponse(BaseModel):
    faces: list[Face]
    model: ModelRef
    detection: DetectionSearch | None = Field(None, description="how the faces were searched for; only when the "
                                              "request sent no boxes")
    recrop: bool = Field(description="whether every face got the second pass (the recrop query parameter, or its "
                         "default: on for detected faces, off for boxes sent); without recrop=false a face tilted by "
                         "20 degrees or more gets it anyway, and a face the first pass is unsure of gets the "
                         "detector's tilt (each face's passes)")
    timing_ms: dict[str, float]


class EvaluateItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(description="base64 image file")
    box: Box
    landmarks: list[list[float]] = Field(description="ground-truth (x, y) points, as many as the model predicts")
    id: str | None = None


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[EvaluateItem] = Field(min_length=1)


class EvaluateReport(BaseModel):
    model_config = ConfigDict(extra="allow")
    n: int
    nme: float | None
    fr: float | None
    auc: float | None
    per_image: Any = None
    ced: Any = None
    model: ModelRef
    split: str | None = Field(None, description="the split scored, for an uploaded set")


class JobAccepted(BaseModel):
    job_id: str
    kind: str
    state: str
    location: str


class JobParams(BaseModel):
    """A training job; what shapes the training itself (epochs, the splits, ...) is an override of the preset."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"dataset": "300w", "data_root": "/data/300w", "preset": "cpu", "overrides": {"epochs": 10}}]})
    dataset: str = Field(pattern=DATASET_PATTERN, examples=["300w"])
    data_root: str = Field(min_length=1, description="the data folder as the worker sees it")
    preset: Preset = "cpu"
    overrides: dict[str, Any] = Field(default_factory=dict, description="config values over the preset's, e.g. "
                                      '{"epochs": 10, "train_split": "train-dev", "val_split": "dev"} (numbers finite: '
                                      "no NaN or Infinity)")
    run_name: str | None = None
    device: Device | None = Field(None, description=f"where the worker trains: {DEVICE_FORMS}; default its "
                                  "SDHRNET_DEVICE")

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data):
        # a field that no training reads is refused, never ignored; extra="forbid" alone would say only "Extra inputs
        # are not permitted", this says what the body takes instead
        unknown = sorted(set(data) - set(cls.model_fields)) if isinstance(data, dict) else []
        if unknown:
            raise PydanticCustomError(
                "extra_forbidden", "unknown field(s) {unknown}: this job takes {known}; what shapes the training (its "
                "epochs, the splits it trains and validates on: train_split, val_split) goes in overrides",
                {"unknown": ", ".join(str(k)[:40] for k in unknown[:5]), "known": ", ".join(cls.model_fields)})
        return data


class DistillParams(JobParams):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"dataset": "300w", "data_root": "/data/300w", "slim_run": "0123456789abcdef0123456789abcdef",
         "teacher_run": "fedcba9876543210fedcba9876543210"}]})
    slim_run: str = Field(min_length=1, description="MLflow run id or model URI of the slimmed network")
    teacher_run: str = Field(min_length=1, description="MLflow run id or model URI of the HRNetV2 teacher")


class SweepParams(JobParams):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"dataset": "300w", "data_root": "/data/300w", "slim_run": "0123456789abcdef0123456789abcdef",
         "budgets": ["params=800000", "ms=4"]}]})
    slim_run: str = Field(min_length=1, description="the slim run whose supernet is pruned: its MLflow run id or "
                          "runs:/RUN_ID", json_schema_extra={"pattern": RUN_REF_PATTERN})
    budgets: list[Annotated[str, Field(pattern=BUDGET_PATTERN)]] = Field(min_length=1, max_length=16, examples=[["params=900000", "params=600000", "ms=4"]],
                               description="one network per budget, KIND=VALUE with KIND one of "
                                           + ", ".join(BUDGET_KINDS))

    @field_validator("slim_run")
    @classmethod
    def _names_a_run(cls, value: str) -> str:
        try:
            supernet_run(value)
        except ValueError as exc:
            raise PydanticCustomError("run_reference", str(exc)) from None
        return value


# the request body of POST /jobs/<kind> for each kind of sdhrnet.job_kinds that has a route
JOB_BODIES: dict[str, type[JobParams]] = {"slim": JobParams, "distill": DistillParams, "teacher": JobParams,
                                          "sweep": SweepParams}


class JobStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    job_id: str
    state: str
    kind: str | None = None
    progress: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    run_id: str | None = None
    mlflow_run_url: str | None = None


class JobList(BaseModel):
    jobs: list[JobStatus]


# allow_inf_nan: a limit of Infinity is no limit, which the request can say by leaving the kind out
Budget = create_model("Budget", __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
                      **{kind: (float | None, Field(None, gt=0, description=f"at most this many {what}"))
                         for kind, what in BUDGET_KINDS.items()})


# MLflow's SQL store keeps model versions in an INTEGER column: 32-bit signed on PostgreSQL and MySQL. A larger
# number is no version anywhere, and sent on it made MLflow fail with a 500 instead of answering "no such version"
MAX_MODEL_VERSION = 2**31 - 1


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"version": 3}, {"budget": {"params": 900000, "ms": 4}}]})
    version: int | None = Field(None, ge=1, le=MAX_MODEL_VERSION, description="the version to promote")
    budget: Budget | None = Field(None, description="instead of a version: promote the most accurate version whose "
                                  "recorded costs fit every limit given (params, macs, ms per face)")

    @model_validator(mode="after")
    def _one_choice(self):
        if (self.version is None) == (self.budget is None):
            raise ValueError("give either 'version' or 'budget', not both and not neither")
        if self.budget is not None and not self.limits():
            raise ValueError(f"'budget' needs at least one of {', '.join(BUDGET_KINDS)}")
        return self

    def limits(self) -> dict[str, float]:
        return {k: v for k, v in self.budget.model_dump().items() if v is not None} if self.budget else {}


class ModelsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    models: list[dict[str, Any]] = Field(description="one entry per registered model (dataset): its versions with "
                                         "their metrics and tags, aliases, champion, challenger and the history of "
                                         "champion changes")
    served: dict[str, ModelRef]


class ChampionChange(BaseModel):
    """One change of a dataset's champion, as the `history` of GET /models records it."""
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    action: str = Field(description="promote, rollback or auto-promote (by the promotion policy)")
    from_: str | None = Field(alias="from", description="the champion before; null when there was none")
    to: str = Field(description="the champion after")
    who: str = Field(description="the API key's name (api-key:NAME), or api when the server runs without keys")
    when: str = Field(description="ISO 8601 time, UTC")
    reason: str = ""


class ChampionChangeResponse(BaseModel):
    change: ChampionChange | None = Field(description="the change made; null when the version asked for already "
                                          "was the champion: nothing changed and nothing was recorded")
    served: dict[str, ModelRef] = Field(description="what this server serves now, per dataset")
    models: ChampionChange | None = Field(None, description="the same as change, under its name in the first "
                                          "release of this response", json_schema_extra={"deprecated": True})


class ProblemDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


PROBLEM_DESCRIPTIONS = {
    401: "missing or unknown X-API-Key", 404: "unknown dataset, job or version",
    408: "the request body stalled (send it without pauses)", 409: "conflict", 413: "request too large",
    415: "unsupported media type (of the request body, an image or an archive)",
    422: "invalid input (the detail says what to fix)", 431: "request headers too large",
    503: "no model promoted for the dataset, or a backend is down (the detail says what to do)"}


def problem_responses(*codes: int) -> dict:
    """FastAPI files `model` under application/json; service.openapi_defs moves it to application/problem+json,
    the type every error is sent as."""
    return {c: {"model": ProblemDetails, "description": PROBLEM_DESCRIPTIONS.get(c, "error"),
                "content": {"application/problem+json": {}}} for c in codes}
