"""Request and response bodies (they become the OpenAPI contract in openapi.yaml)."""
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model, model_validator

from landmarks.answers import NOT_A_FACE
from landmarks.datasets import NAME_PATTERN
from landmarks.face_detector import MAX_TILES
from sdhrnet.budgets import BUDGET_KINDS, BUDGET_PATTERN
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


class JobAccepted(BaseModel):
    job_id: str
    kind: str
    state: str
    location: str


class JobParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(pattern=DATASET_PATTERN, examples=["300w"])
    data_root: str = Field(min_length=1, description="the data folder as the worker sees it")
    preset: Preset = "cpu"
    overrides: dict[str, Any] = Field(default_factory=dict)
    split: str | None = None
    run_name: str | None = None
    device: str | None = None


class DistillParams(JobParams):
    slim_run: str = Field(min_length=1, description="MLflow run id or model URI of the slimmed network")
    teacher_run: str = Field(min_length=1, description="MLflow run id or model URI of the HRNetV2 teacher")


class SweepParams(JobParams):
    slim_run: str = Field(min_length=1, description="MLflow run id or URI of the slim run whose supernet is pruned")
    budgets: list[Annotated[str, Field(pattern=BUDGET_PATTERN)]] = Field(min_length=1, max_length=16, examples=[["params=900000", "params=600000", "ms=4"]],
                               description="one network per budget, KIND=VALUE with KIND one of "
                                           + ", ".join(BUDGET_KINDS))


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


Budget = create_model("Budget", __config__=ConfigDict(extra="forbid"),
                      **{kind: (float | None, Field(None, gt=0, description=f"at most this many {what}"))
                         for kind, what in BUDGET_KINDS.items()})


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(None, ge=1, description="the version to promote")
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
    models: Any
    served: dict[str, ModelRef]


class ProblemDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem_responses(*codes: int) -> dict:
    descriptions = {401: "missing or unknown X-API-Key", 404: "unknown dataset, job or version", 409: "conflict",
                    413: "request too large", 415: "unsupported image type",
                    422: "invalid input (the detail says what to fix)",
                    503: "no model promoted for the dataset, or a backend is down (the detail says what to do)"}
    return {c: {"model": ProblemDetails, "description": descriptions.get(c, "error"),
                "content": {"application/problem+json": {}}} for c in codes}
