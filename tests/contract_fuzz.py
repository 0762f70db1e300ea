"""Contract fuzzing of the API (issue 12 item 14): the app, the hostile dictionary and the oracles that
tests/test_service_contract.py runs in the suite and bench/fuzz_contract.py runs for many thousands of cases.

Generation from openapi.yaml alone never produces a PNG whose header declares 20000x20000 pixels, a 5000-digit
box coordinate or a zip whose CSV names ../../etc/passwd: three in four positive cases for /align, /evaluate,
/jobs/* and /models/*/promote|rollback therefore take their body (and dataset) from a dictionary of such fragments,
the way byte fuzzers use dictionaries; the others, and every negative case, stay as schemathesis made them. The
dictionary pass sends each fragment once more, so that every run tries every item whatever Hypothesis draws.
Oracles beyond schemathesis' own checks (no 5xx, responses as documented):
  item 1   an image declaring more than SDHRNET_MAX_IMAGE_PIXELS is refused (4xx), never decoded first;
  item 2   boxes that are not a list of [x1, y1, x2, y2] numbers are a 4xx; no error names Python internals;
  item 3   an /evaluate archive whose rows or members name files outside it is a 4xx; no error names a path
           of the server;
  item 10  a dataset the trainer does not know is a 4xx (404/422) on /align, /evaluate and /jobs/*, never 503.
The app's fake registry has a champion (the same tiny 68-point model) for each dataset the trainer knows and
for no other name, so any 503 is a finding: there is no outage to excuse it."""
from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import re
import struct
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from tests.service_support import FakeJobs, FakeRegistry, b64, build_tiny_model, png_bomb, png_bytes

REPO = Path(__file__).resolve().parents[1]
KEY = "fuzz-key"
HEADERS = {"X-API-Key": KEY}
EXAMPLES_ENV = "SDHRNET_FUZZ_EXAMPLES"
# cases per operation (and stateful scenarios) in the suite: about 40 s for the whole file on 2 busy cores
DEFAULT_EXAMPLES = 25
MAX_IMAGE_PIXELS = 40_000_000  # ServiceSettings' default, which the contract app keeps
MAX_FACES = 4
EVALUATE_SYNC_LIMIT = 4  # more JSON items or archive rows than this become an evaluate job (202)
KNOWN_DATASETS = ("300w", "wflw", "cofw", "csv")  # landmarks.datasets.DATASETS, checked in the tests
BOX = [20, 10, 140, 110]


def findings() -> tuple:
    """What a failed case raises: schemathesis' FailureGroup is a BaseExceptionGroup, not an Exception."""
    from schemathesis.core.failures import FailureGroup

    return Exception, FailureGroup


def fuzz_examples(default: int = DEFAULT_EXAMPLES) -> int:
    return int(os.environ.get(EXAMPLES_ENV) or default)


# --- the app under test ---------------------------------------------------------------------------------------

class Contract:
    """The app (fake registry with two versions per known dataset, in-memory jobs, API key KEY), its schemas,
    the oracles and the runners. Uploads go to `home`, which the caller makes SDHRNET_HOME while requests run."""

    def __init__(self, home: Path):
        from service.app import create_app
        from sdhrnet.settings import ServiceSettings

        self.home = Path(home)
        self.outside_image = self.home / "outside.png"  # a real image next to, not inside, the upload folders
        self.home.mkdir(parents=True, exist_ok=True)
        self.outside_image.write_bytes(png_bytes(seed=3))
        models = [build_tiny_model(self.home / "models" / f"v{v}", seed=v) for v in (1, 2)]
        # every dataset the trainer knows has a champion (so a 503 is always a finding), no other name has
        self.registry = ContractRegistry({dataset: models for dataset in KNOWN_DATASETS})
        self.jobs = FakeJobs()
        settings = ServiceSettings(model_poll_seconds=0, preload_datasets="", batch_wait_ms=0, max_faces=MAX_FACES,
                                   evaluate_sync_limit=EVALUATE_SYNC_LIMIT, max_image_pixels=MAX_IMAGE_PIXELS)
        self.app = create_app(settings, registry=self.registry, jobs=self.jobs, api_keys=frozenset({KEY}))
        self.seeds = Seeds(self)
        self.forbidden_in_errors = sorted({str(self.home), str(self.home.resolve()), str(REPO), "passwd",
                                           "Traceback", 'File "', "int_max_str_digits", "Exceeds the limit",
                                           "OverflowError", "RecursionError", "errors.pydantic.dev", "input_value"})

    def stateless_schema(self):
        """The schema as the app serves it (GET /openapi.json), with the dictionary hooked in."""
        import schemathesis

        schema = schemathesis.openapi.from_asgi("/openapi.json", self.app)
        self.seeds.hook_into(schema)
        return schema

    def stateful_schema(self):
        """The served schema plus the OpenAPI links it lacks, for the state machine. Schemathesis infers
        POST /jobs/<kind> and POST /evaluate (202, job_id) -> GET and DELETE /jobs/{job_id} by itself."""
        import schemathesis

        raw = copy.deepcopy(self.app.openapi())
        add_links(raw)
        schema = schemathesis.openapi.from_dict(raw)
        schema.app = self.app
        schema.location = "/openapi.json"
        self.seeds.hook_into(schema)
        return schema

    def checks(self) -> list:
        return [self.image_bombs_are_refused_from_the_header, self.hostile_boxes_are_client_errors,
                self.archives_cannot_reach_other_files, self.unknown_dataset_is_a_client_error,
                self.errors_name_no_internals_or_server_paths]

    # --- running cases ------------------------------------------------------------------------------------------

    def validate(self, case, response=None):
        """Send `case` (unless its response is given) and run schemathesis' checks plus the oracles above;
        raises schemathesis' FailureGroup (with a curl line to reproduce) on any finding. -> the response."""
        from schemathesis import checks

        if response is None:
            response = case.call(headers=HEADERS)
        # a valid-by-schema body (random base64, a random zip) may rightly be refused with a 4xx
        excluded = [checks.positive_data_acceptance]
        if case.path == "/readyz":  # its documented 503 means "no model loaded yet", which is no server error
            excluded.append(checks.not_a_server_error)
        case.validate_response(response, headers=HEADERS, excluded_checks=excluded, additional_checks=self.checks())
        return response

    def dictionary_pass(self, schema, on_case=None) -> list[str]:
        """Every fragment of the dictionary once, on each operation that takes it (about 200 cases): the
        explicit examples that make sure items 1-3 and 10 are tried in every run, whatever Hypothesis draws.
        -> the failure reports (empty when all pass). `on_case(case, response, failure)` sees each case."""
        failures = []
        for case in self.seeds.explicit_cases(schema):
            response, failure = None, None
            try:
                response = case.call(headers=HEADERS)
                self.validate(case, response)
            except findings() as exc:  # every finding is reported, the run goes on
                failure = exc
                failures.append(f"{case.method} {case.path}: {exc}")
            if on_case:
                on_case(case, response, failure)
        return failures

    def fuzz_operation(self, operation, examples: int, *, seed: int | None = None, on_case=None):
        """`examples` generated cases (positive and negative, three in four positive ones from the dictionary)
        for one operation, as schema.parametrize() draws them. Without `on_case`, the first finding is raised
        (derandomized unless `seed`); with it, every case goes to on_case(case, response, failure) and the
        run goes on."""
        import hypothesis
        import hypothesis.strategies as st
        from hypothesis import HealthCheck, Phase
        from schemathesis.generation import GenerationMode

        strategy = st.one_of([operation.as_strategy(generation_mode=mode) for mode in GenerationMode])

        @hypothesis.given(case=strategy)
        @hypothesis.settings(max_examples=examples, deadline=None, derandomize=seed is None, database=None,
                             phases=[Phase.generate] if on_case else [Phase.generate, Phase.shrink],
                             suppress_health_check=list(HealthCheck))
        def run(case):
            if on_case is None:
                self.validate(case)
                return
            response, failure = None, None
            try:
                response = case.call(headers=HEADERS)
                self.validate(case, response)
            except findings() as exc:
                failure = exc
            on_case(case, response, failure)
        if seed is not None:
            run = hypothesis.seed(seed)(run)
        run()

    def state_machine(self, on_step=None, on_scenario=None):
        """The schemathesis state machine over stateful_schema(); each step is validated like a stateless case
        (findings raise), or handed to on_step(case, response, failure) when given; on_scenario() is called
        at the start of each scenario."""
        contract = self

        class ContractStateMachine(self.stateful_schema().as_state_machine()):
            def setup(self):
                # every scenario starts from the same jobs and champions: otherwise a replayed scenario meets
                # other answers (a rollback that worked before has no history left) and Hypothesis calls it flaky
                contract.jobs.jobs.clear()
                contract.registry.reset()
                if on_scenario is not None:
                    on_scenario()

            def get_call_kwargs(self, case):
                return {"headers": HEADERS}

            def validate_response(self, response, case, additional_checks=None, **kwargs):
                if on_step is None:
                    contract.validate(case, response)
                    return
                try:
                    contract.validate(case, response)
                except findings() as exc:
                    on_step(case, response, exc)
                else:
                    on_step(case, response, None)
        return ContractStateMachine

    # --- oracles: schemathesis checks, (ctx, response, case) -> raise AssertionError -------------------------

    def image_bombs_are_refused_from_the_header(self, ctx, response, case):
        """Item 1: an image that declares more pixels than allowed must be refused before it is decoded;
        a 2xx, a 5xx or 'could not be decoded' means a decoder saw it."""
        if case.path not in ("/align", "/evaluate"):
            return
        declared = max((declared_pixels(data) for data in request_images(case)), default=0)
        if declared <= MAX_IMAGE_PIXELS:
            return
        detail = problem_detail(response)
        if not 400 <= response.status_code < 500 or "decoded" in detail:
            raise AssertionError(f"an image declaring {declared} pixels (more than {MAX_IMAGE_PIXELS}) got "
                                 f"{response.status_code} {detail[:300]!r}: it must be refused (413) from its header")

    def hostile_boxes_are_client_errors(self, ctx, response, case):
        """Item 2: boxes that are not a JSON list of [x1, y1, x2, y2] numbers are a 4xx, however encoded."""
        if case.path != "/align":
            return
        wrong = malformed_boxes(case)
        if wrong and not 400 <= response.status_code < 500:
            raise AssertionError(f"{wrong} got {response.status_code}: must be a 4xx that says what to send "
                                 f"({problem_detail(response)[:300]!r})")

    def archives_cannot_reach_other_files(self, ctx, response, case):
        """Item 3: an archive whose rows or members name a file outside it is refused, whatever exists there."""
        if case.path != "/evaluate" or not isinstance(case.body, dict):
            return
        archive = as_bytes(case.body.get("archive"))
        if archive is None or not names_outside(archive):
            return
        if not 400 <= response.status_code < 500:
            raise AssertionError(f"an archive naming files outside itself ({names_outside(archive)[:3]}) got "
                                 f"{response.status_code}: it must be a 4xx ({problem_detail(response)[:300]!r})")

    def unknown_dataset_is_a_client_error(self, ctx, response, case):
        """Item 10: a dataset the trainer has no reader for is the client's mistake (404/422), not a 503."""
        dataset = request_dataset(case)
        if dataset is None or dataset in KNOWN_DATASETS:
            return
        if not 400 <= response.status_code < 500:
            raise AssertionError(f"unknown dataset {dataset!r} on {case.method} {case.path} got "
                                 f"{response.status_code} {problem_detail(response)[:300]!r}: it must be 404 or 422")

    def errors_name_no_internals_or_server_paths(self, ctx, response, case):
        """Items 2-4: every problem detail says what to fix in the client's terms: no Python internals, no
        path of this server (uploads, models, the repository, files an archive row pointed at)."""
        if response.status_code < 400:
            return
        detail = problem_detail(response)
        found = [word for word in self.forbidden_in_errors if word in detail]
        if found:
            raise AssertionError(f"{response.status_code} detail names {found}: {detail[:400]!r}")


class ContractRegistry(FakeRegistry):
    def reset(self) -> None:
        """Back to each dataset's last version as champion, with no promotion history."""
        with self.lock:
            self.champions = {d: len(dirs) for d, dirs in self.versions.items()}
            self.history = {d: [] for d in self.versions}

    def promote_within(self, dataset, limits, who=None):
        """Promotion by budget (POST /models/{dataset}/promote {"budget": ...}): the fake's costs all fit."""
        if dataset not in self.versions:
            raise LookupError(f"no model is registered for dataset {dataset}")
        return self.promote(dataset, len(self.versions[dataset]), who)


def add_links(raw: dict) -> None:
    """Links for the stateful run: a promoted (or rolled back) dataset is then rolled back, promoted again,
    aligned with and listed; a queued job is listed. Only between operations the schema has."""
    operations = {(method.upper(), path): spec for path, item in raw.get("paths", {}).items()
                  for method, spec in item.items() if isinstance(spec, dict) and "responses" in spec}

    def link(source, code, target, parameters, name):
        if source not in operations or target not in operations or code not in operations[source]["responses"]:
            return
        response = operations[source]["responses"][code]
        response.setdefault("links", {})[name] = {"operationId": operations[target]["operationId"],
                                                  "parameters": parameters}
    same_dataset = {"path.dataset": "$request.path.dataset"}
    for verb, other in (("promote", "rollback"), ("rollback", "promote")):
        source = ("POST", f"/models/{{dataset}}/{verb}")
        link(source, "200", ("POST", f"/models/{{dataset}}/{other}"), same_dataset, f"{other.title()}Again")
        link(source, "200", ("POST", "/align"), {"query.dataset": "$request.path.dataset"}, "AlignWithIt")
        link(source, "200", ("GET", "/models"), {}, "ListModels")
    for (method, path), spec in operations.items():
        if method == "POST" and path.startswith("/jobs/"):
            link((method, path), "202", ("GET", "/jobs"), {}, "ListJobs")


# --- what a request carries, read independently of the service's own parsers ----------------------------------

def as_bytes(value) -> bytes | None:
    data = getattr(value, "data", value)  # schemathesis wraps generated binary strings
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return None


def body_json(case):
    """The JSON body as an object, or None (raw bytes that do not parse, e.g. 100000 nested lists)."""
    if isinstance(case.body, (dict, list)):
        return case.body
    raw = as_bytes(case.body)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _b64_image(text) -> bytes | None:
    if not isinstance(text, str):
        return None
    if text.startswith("data:") and "," in text[:100]:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def request_images(case) -> list[bytes]:
    """Every image in the request: the upload, base64 fields, and the files inside an uploaded archive."""
    if case.media_type == "multipart/form-data" and isinstance(case.body, dict):
        images = [as_bytes(case.body.get("image"))]
        archive = as_bytes(case.body.get("archive"))
        if archive is not None:
            images += list(archive_files(archive).values())
        return [i for i in images if i]
    body = body_json(case)
    if body is None and as_bytes(case.body) is not None:  # not JSON: find the image string by eye
        found = re.search(rb'"image"\s*:\s*"([^"]*)"', as_bytes(case.body))
        return [i for i in [_b64_image(found.group(1).decode("ascii", "replace"))] if i] if found else []
    if not isinstance(body, dict):
        return []
    items = body.get("items") if isinstance(body.get("items"), list) else []
    texts = [body.get("image")] + [item.get("image") for item in items if isinstance(item, dict)]
    return [i for i in map(_b64_image, texts) if i]


def declared_pixels(data: bytes) -> int:
    """width * height from a PNG, BMP or JPEG header (0 when there is none): what a decoder would allocate."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width * height
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width) * abs(height)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 <= len(data) and data[i] == 0xFF:
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width * height
            i += 2 + length
    return 0


def archive_files(archive: bytes) -> dict[str, bytes]:
    """name -> bytes of the regular files in a zip or tar (empty when it is neither)."""
    files = {}
    try:
        if zipfile.is_zipfile(io.BytesIO(archive)):
            with zipfile.ZipFile(io.BytesIO(archive)) as zf:
                files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        else:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tf:
                files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError):
        pass
    return files


def _leaves(name: str) -> bool:
    path = PurePosixPath(name)
    return path.is_absolute() or ".." in path.parts


def names_outside(archive: bytes) -> list[str]:
    """Member names and annotation rows (first CSV column) that point outside the archive."""
    outside = [name for name in archive_member_names(archive) if _leaves(name)]
    for name, data in archive_files(archive).items():
        if name.endswith(".csv"):
            for row in data.decode("utf-8", "replace").splitlines()[1:]:
                first = row.split(",", 1)[0].strip()
                if first and _leaves(first):
                    outside.append(first)
    return outside


def archive_member_names(archive: bytes) -> list[str]:
    try:
        if zipfile.is_zipfile(io.BytesIO(archive)):
            with zipfile.ZipFile(io.BytesIO(archive)) as zf:
                return zf.namelist()
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tf:
            return tf.getnames()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError):
        return []


def malformed_boxes(case) -> str | None:
    """What is wrong with the request's boxes (None when they are absent or a list of [x1, y1, x2, y2]
    numbers; whether they fit the image is the service's business). A JSON body that Python's json cannot
    read (too deep, too many digits) counts as malformed."""
    if case.media_type == "multipart/form-data" and isinstance(case.body, dict):
        boxes = case.body.get("boxes")
        if not isinstance(boxes, str):
            return None
        try:
            parsed = json.loads(boxes)
        except (ValueError, RecursionError) as exc:
            return f"a boxes field Python's json cannot read ({type(exc).__name__}, {len(boxes)} characters)"
        return None if boxes_are_well_formed(parsed) else f"boxes field {boxes[:60]!r}"
    raw = as_bytes(case.body)
    if raw is not None:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return f"a JSON body Python's json cannot read ({type(exc).__name__}, {len(raw)} bytes)"
    else:
        body = case.body
    if not isinstance(body, dict) or body.get("boxes") is None:
        return None  # absent or null: the faces are detected
    return None if boxes_are_well_formed(body["boxes"]) else f"boxes {str(body['boxes'])[:60]}"


def boxes_are_well_formed(boxes) -> bool:
    """A non-empty list of [x1, y1, x2, y2] lists of finite JSON numbers (not true for 1, not "20" for 20)."""
    def number(v):
        return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and math.isfinite(v)
    return (isinstance(boxes, list) and len(boxes) > 0
            and all(isinstance(b, list) and len(b) == 4 and all(map(number, b)) for b in boxes))


def request_dataset(case) -> str | None:
    """The dataset the request names: ?dataset= on /align and /evaluate, the body's on /jobs/<kind>."""
    if case.path in ("/align", "/evaluate"):
        value = (case.query or {}).get("dataset")
        return value if isinstance(value, str) else None
    if case.method.upper() == "POST" and case.path.startswith("/jobs/"):
        body = body_json(case)
        if isinstance(body, dict) and isinstance(body.get("dataset"), str):
            return body["dataset"]
    return None


def problem_detail(response) -> str:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return response.content[:2000].decode("utf-8", "replace")
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


# --- the dictionary ---------------------------------------------------------------------------------------------

def jpeg_header(width: int, height: int) -> bytes:
    """SOI + SOF0 declaring width x height + EOI: a header with no pixels."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + info + bytes(64)


def csv_zip(names: list[str], images: dict[str, bytes], seed: int = 0) -> bytes:
    """A CSV-layout set (`set/test_frames_keypoints.csv` + `set/test/`), one row per name."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        rows = ["," + ",".join(f"c{i}" for i in range(136))]
        rows += [f"{name}," + ",".join(f"{v:.2f}" for v in rng.uniform(30, 110, 136)) for name in names]
        for name, data in images.items():
            zf.writestr(f"set/test/{name}", data)
        zf.writestr("set/test_frames_keypoints.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


class Seeds:
    """Hostile and valid fragments, for three in four positive cases of the operations that take images, boxes,
    archives or dataset names (drawn with a Random that Hypothesis seeds, so that findings replay), and each once
    in explicit_cases(). Each list starts with its valid entry, which the other parts of a case keep."""

    def __init__(self, contract: Contract):
        face = png_bytes()
        self.images = {
            "face.png": face,
            "face.jpg": _jpeg(face),
            "bomb png 20000x20000": png_bomb(20000, 20000, rows=50),
            "bomb png 32769x32769 (over Pillow's own limit)": png_bomb(32769, 32769, rows=50),
            "bomb png 7000x7000": png_bomb(7000, 7000, rows=50),
            "bomb png 6325x6325 (just over 40 Mpx)": png_bomb(6325, 6325, rows=50),
            "bomb jpeg 30000x30000": jpeg_header(30000, 30000),
            "bomb bmp 7000x7000": bmp_header(7000, 7000),
            "truncated png": face[:len(face) // 2],
            "png signature only": b"\x89PNG\r\n\x1a\n",
            "gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            "empty": b"",
        }
        self.boxes = [
            json.dumps([BOX]), json.dumps([BOX, [0, 0, 60, 60]]), json.dumps([BOX] * (MAX_FACES + 1)),
            "[20, 10, 140, 110]", "[]", "[[]]", "null", "{}", "", "[[20, 10, 140]]", '[["20", 10, 140, 110]]',
            "[[true, 10, 140, 110]]", "[[NaN, 10, 140, 110]]", "[[1e999, 10, 140, 110]]", "[[-1e999, 0, 1, 1]]",
            "[[%s, 1, 50, 60]]" % ("9" * 400), "[[%s, 1, 50, 60]]" % ("9" * 5000),
            "[[1%s, 1, 50, 60]]" % ("0" * 400), "[" * 100_000 + "]" * 100_000, "[" * 1000 + "]" * 1000,
            "[[20, 10, 140, 110]", "[[1, 2, 3, 4]] trailing",
        ]
        outside = contract.outside_image
        ok = {"ok.png": face}
        csv_file = archive_files(csv_zip(["ok.png"], ok))["set/test_frames_keypoints.csv"]
        # archive -> the layout it is in (None: not a set in any layout)
        self.archives = {
            "csv set": (csv_zip(["ok.png"], ok), "csv"),
            "csv set, five rows (a job)": (csv_zip([f"f{i}.png" for i in range(5)],
                                                   {f"f{i}.png": png_bytes(seed=i) for i in range(5)}), "csv"),
            "csv set with a png bomb": (csv_zip(["ok.png", "bomb.png"], {**ok, "bomb.png": png_bomb(rows=50)}), "csv"),
            "csv set with a jpeg bomb": (csv_zip(["ok.png", "bomb.jpg"], {**ok, "bomb.jpg": jpeg_header(30000, 30000)}),
                                         "csv"),
            "csv set with a corrupt image": (csv_zip(["ok.png", "bad.png"], {**ok, "bad.png": b"\x89PNG\r\n\x1a\nbad"}),
                                             "csv"),
            "row naming /etc/passwd": (csv_zip(["ok.png", "/etc/passwd"], ok), "csv"),
            "row naming ../../etc/passwd": (csv_zip(["ok.png", "../" * 12 + "etc/passwd"], ok), "csv"),
            "row naming a real image outside": (csv_zip(["ok.png", "../../../../" + outside.name], ok), "csv"),
            "row naming a real image by absolute path": (csv_zip(["ok.png", str(outside)], ok), "csv"),
            "row naming the repository README": (csv_zip(["ok.png", str(REPO / "README.md")], ok), "csv"),
            "tar.gz csv set": (_tar_gz({"set/test/ok.png": face, "set/test_frames_keypoints.csv": csv_file}), "csv"),
            "tar.gz with a symlink out": (_tar_gz({"set/test/ok.png": face, "set/test_frames_keypoints.csv": csv_file},
                                                  {"set/test/link.png": str(outside)}), "csv"),
            "tar.gz with a ../ member": (_tar_gz({"set/../../evil.png": face}), "csv"),
            "zip slip member": (_zip({"set/test/ok.png": face, "../../evil.png": face}), "csv"),
            "absolute member": (_zip({"/tmp/sdhrnet-fuzz-evil.png": face}), "csv"),
            "empty zip": (_zip({}), None),
            "not an archive": (b"plain text, neither zip nor tar", None),
        }
        self.datasets = [None, "300w", "wflw", "cofw", "csv", "foo", "300", "w300", "300w-v2", "x" * 32]
        self.unknown_datasets = [d for d in self.datasets if d and d not in KNOWN_DATASETS]

    # -- Hypothesis strategies, through the flatmap_case hook ---------------------------------------------------

    def hook_into(self, schema) -> None:
        def flatmap_case(ctx, case):  # schemathesis sets attributes on hook functions: no bound method
            return self.flatmap_case(ctx, case)
        schema.hook(flatmap_case)

    def flatmap_case(self, ctx, case):
        import hypothesis.strategies as st
        from schemathesis.generation import GenerationMode

        meta = getattr(case, "meta", None)
        generation = getattr(meta, "generation", None)
        if getattr(generation, "mode", GenerationMode.POSITIVE) != GenerationMode.POSITIVE:
            return st.just(case)  # negative cases are checked for rejection; leave them as generated
        seeded = self.strategy_for(case)
        if seeded is None:
            return st.just(case)
        # three in four: a random base64 string or zip is refused at its first byte and tests little else
        return st.sampled_from((True, True, True, False)).flatmap(lambda seed: seeded if seed else st.just(case))

    def strategy_for(self, case):
        """A strategy for the dictionary version of `case`, or None when its operation takes no fragment. The
        choices come from one Random that Hypothesis seeds (reproducible, uniform: Hypothesis' own draws favour
        the first entries); mostly one part at a time is hostile and the rest valid, so that it reaches its
        oracle, sometimes all parts at once."""
        import hypothesis.strategies as st

        method, path = case.method.upper(), case.path
        # in the state machine a dataset may come from a link (promote -> rollback, -> /align?dataset=): one of
        # the dictionary's (earlier steps drew it) is kept; a generated one (a root step's) is drawn anew
        phase = getattr(getattr(getattr(case, "meta", None), "phase", None), "name", None)
        linked = (case.query or {}).get("dataset") or (case.path_parameters or {}).get("dataset")
        linked = linked if phase == "stateful" and linked in self.datasets else None
        datasets = lambda r, first=None: ([linked] if linked  # noqa: E731
                                          else self.datasets if first is None else self.datasets[first:])
        mostly_known = KNOWN_DATASETS * 3 + tuple(self.unknown_datasets)
        build = None
        if (method, path) == ("POST", "/align"):
            build = lambda case, r: self._random_align(case, r, datasets(r))  # noqa: E731
        elif (method, path) == ("POST", "/evaluate"):
            build = lambda case, r: self._random_evaluate(case, r, datasets(r))  # noqa: E731
        elif method == "POST" and path.startswith("/jobs/") and isinstance(case.body, dict):
            # mostly jobs that are queued, so that the state machine has job ids to follow
            build = lambda case, r: self._job(case, r.choice(mostly_known),  # noqa: E731
                                             r.choice([{}, {}, {"epochs": 1}, {"epoch": 1}]))
        elif method == "POST" and path.endswith("/promote") and isinstance(case.body, dict):
            build = lambda case, r: self._promote(case, r.choice([1, 2, 1, 2, 3]),  # noqa: E731
                                                  r.choice(datasets(r, 1) if linked else mostly_known))
        elif method == "POST" and path.endswith("/rollback"):
            build = lambda case, r: _with(case, path_parameters={"dataset": r.choice(datasets(r, 1))})  # noqa: E731
        if build is None:
            return None
        return st.randoms(use_true_random=True).map(lambda r: build(case, r))

    def _vary(self, r, options: dict) -> dict:
        """One entry per part: its valid value, except for one part drawn from its list (seven in ten), or
        every part drawn (three in ten)."""
        if r.random() < 0.7:
            hostile = r.choice(list(options))
            return {name: r.choice(values) if name == hostile else values[0] for name, values in options.items()}
        return {name: r.choice(values) for name, values in options.items()}

    def _random_align(self, case, r, datasets):
        parts = self._vary(r, {"image_name": list(self.images), "boxes": [json.dumps([BOX]), None, *self.boxes[1:]],
                               "dataset": datasets, "max_faces": [None, 1, MAX_FACES, MAX_FACES + 1]})
        return self._align(case, as_multipart=r.random() < 0.5, **parts)

    def _random_evaluate(self, case, r, datasets):
        if r.random() < 0.6:
            return self._evaluate_archive(case, **self._vary(r, {
                "archive_name": list(self.archives), "layout": ["natural", None, "300w", "wflw", "nope"],
                "split": [None, "test", "training", "common"], "dataset": datasets}))
        return self._evaluate_items(case, **self._vary(r, {
            "image_name": list(self.images), "count": list(range(1, EVALUATE_SYNC_LIMIT + 3)), "points": [68, 98, 3],
            "dataset": datasets}))

    # -- explicit examples: each fragment once --------------------------------------------------------------

    def explicit_cases(self, schema) -> list:
        """Cases built from the dictionary, each fragment once with otherwise valid parts: every image in both
        encodings, every boxes text in both, every archive in its layout, every dataset name on every
        operation that takes one."""
        operations = {(op.method.upper(), op.path): op for op in _operations(schema)}
        cases = []
        align = operations.get(("POST", "/align"))
        if align is not None:
            base = align.Case(body={}, media_type="application/json")
            for name in self.images:
                cases += [self._align(base, name, json.dumps([BOX]), None, multipart, None) for multipart in (0, 1)]
            for boxes in [None, *self.boxes]:
                cases += [self._align(base, "face.png", boxes, None, multipart, None) for multipart in (0, 1)]
            for dataset in self.datasets[1:]:
                cases += [self._align(base, "face.png", json.dumps([BOX]), dataset, multipart, None)
                          for multipart in (0, 1)]
        evaluate = operations.get(("POST", "/evaluate"))
        if evaluate is not None:
            base = evaluate.Case(body={}, media_type="application/json")
            cases += [self._evaluate_archive(base, name, "natural", None, None) for name in self.archives]
            cases += [self._evaluate_items(base, name, 1, 68, None) for name in self.images]
            cases += [self._evaluate_items(base, "face.png", EVALUATE_SYNC_LIMIT + 1, 68, None),
                      self._evaluate_items(base, "face.png", 1, 98, None)]
            for dataset in self.datasets[1:]:
                cases += [self._evaluate_archive(base, "csv set", "natural", None, dataset),
                          self._evaluate_items(base, "face.png", 1, 68, dataset)]
        for (method, path), op in operations.items():
            if method == "POST" and path.startswith("/jobs/"):
                body = _required_example(schema, op)
                if body is not None:
                    base = op.Case(body=body, media_type="application/json")
                    cases += [self._job(base, dataset, {}) for dataset in self.datasets[1:]]
            elif method == "POST" and path.endswith("/promote"):
                base = op.Case(body={}, media_type="application/json", path_parameters={"dataset": "300w"})
                cases += [self._promote(base, 1, dataset) for dataset in self.datasets[1:]]
            elif method == "POST" and path.endswith("/rollback"):
                base = op.Case(path_parameters={"dataset": "300w"})
                cases += [_with(base, path_parameters={"dataset": dataset}) for dataset in self.datasets[1:]]
        return cases

    # -- building one case ----------------------------------------------------------------------------------

    def _align(self, case, image_name, boxes, dataset, as_multipart, max_faces):
        image = self.images[image_name]
        query = {k: v for k, v in _query(case, dataset).items() if k != "max_faces"}
        query |= {} if max_faces is None else {"max_faces": max_faces}
        if as_multipart:
            body = {"image": image} | ({} if boxes is None else {"boxes": boxes})
            return _with(case, body=body, query=query, media_type="multipart/form-data")
        try:  # as an object where Python can write it, so that schemathesis validates it against the schema
            body = {"image": b64(image)} | ({} if boxes is None else {"boxes": json.loads(boxes or "null")})
            json.dumps(body, allow_nan=False)
        except (ValueError, RecursionError):  # 5000 digits, 100000 levels, NaN: sent as the client wrote them
            body = ('{"image": "%s", "boxes": %s}' % (b64(image), boxes)).encode()
        return _with(case, body=body, query=query, media_type="application/json")

    def _evaluate_archive(self, case, archive_name, layout, split, dataset):
        archive, natural = self.archives[archive_name]
        layout = natural if layout == "natural" else layout
        body = {"archive": archive} | ({} if layout is None else {"layout": layout})
        body |= {} if split is None else {"split": split}
        return _with(case, body=body, query=_query(case, dataset), media_type="multipart/form-data")

    def _evaluate_items(self, case, image_name, count, points, dataset):
        item = {"image": b64(self.images[image_name]), "box": BOX, "landmarks": [[60.0, 60.0]] * points}
        body = {"items": [dict(item, id=f"i{i}") for i in range(count)]}
        return _with(case, body=body, query=_query(case, dataset), media_type="application/json")

    def _job(self, case, dataset, overrides):
        return _with(case, body={**case.body, "dataset": dataset, "overrides": overrides, "preset": "tiny"})

    def _promote(self, case, version, dataset):
        return _with(case, body={"version": version}, path_parameters={"dataset": dataset})


def _operations(schema) -> list:
    from schemathesis.core.result import Ok

    return [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]


def _required_example(schema, operation) -> dict | None:
    """A minimal valid JSON body for a POST /jobs/<kind>: its required fields from their examples, or a
    placeholder string."""
    try:
        body_schema = operation.definition.raw["requestBody"]["content"]["application/json"]["schema"]
        while "$ref" in body_schema:
            body_schema = schema.raw_schema["components"]["schemas"][body_schema["$ref"].rsplit("/", 1)[1]]
    except (KeyError, TypeError, AttributeError):
        return None
    body = {}
    for name in body_schema.get("required", []):
        prop = body_schema.get("properties", {}).get(name, {})
        body[name] = prop["examples"][0] if prop.get("examples") else f"{name}-1"
    return body


def _jpeg(png: bytes) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR))
    assert ok
    return buf.tobytes()


def _query(case, dataset):
    query = dict(case.query or {})
    query.pop("dataset", None)
    return query | ({} if dataset is None else {"dataset": dataset})


def _with(case, **changes):
    """A case built from the dictionary: the generated case's parts, some replaced. Made with operation.Case,
    as explicit examples are, it carries no generation metadata: schemathesis' checks for negative cases
    (which count any body holding raw bytes as schema-violating) leave it to the oracles above."""
    parts = {"path_parameters": dict(case.path_parameters or {}), "query": dict(case.query or {}),
             "body": case.body, "media_type": case.media_type}
    for name, value in changes.items():
        parts[name] = {**parts[name], **value} if name == "path_parameters" else value
    return case.operation.Case(**parts)
