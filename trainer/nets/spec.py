"""Architecture specs: which LSFF edges an SD-HRNet keeps, with their alpha values.

JSON layout (version 1)::

    {"format": "sdhrnet-archspec", "version": 1, "name": "s-hrnet-300w", "num_landmarks": 68,
     "stages": {"s2": {"b0": {"stem": 1.0}, ...}, "s3": {"b1": {"s2b0": 0.73, "s2b1": 1.0}}, ...}}

Stage i (2..10) maps each kept output branch to its kept inputs; an input is "stem" in stage 2 and
"s{i-1}b{j}" (branch j of the previous stage) afterwards. Every input must be a kept output of the
previous stage. Stage 10's branches feed the head. Presets carry alpha = DEFAULT_ALPHA on every
edge because the published networks come without alpha values.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

SPEC_FORMAT = "sdhrnet-archspec"
SPEC_VERSION = 1
FIRST_STAGE, LAST_STAGE = 2, 10
STAGES = tuple(f"s{i}" for i in range(FIRST_STAGE, LAST_STAGE + 1))
BRANCHES = ("b0", "b1", "b2", "b3")
WIDTHS = (18, 36, 72, 144)
STEM = "stem"
STEM_CHANNELS = 64
MBCONV_BLOCKS = 4  # per kept branch in stages 2..9; stage 10 is fusion only
# alpha starts at 1.0: the supernet then begins as a plain HRNet-style sum fusion, and the L1 term
# with Adam has ample room (thousands of steps) to drive unneeded edges below the pruning threshold.
DEFAULT_ALPHA = 1.0

PRESET_DATASETS = {"s-hrnet-300w": "300w", "s-hrnet-wflw": "wflw", "s-hrnet-cofw": "cofw"}
SUPERNET = "hrsupernet"
SPEC_PRESETS = (SUPERNET, *PRESET_DATASETS)
DEFAULT_LANDMARKS = 68
_INPUT_RE = re.compile(r"^s(\d+)b([0-3])$")


class ArchSpecError(ValueError):
    """A spec file or dict that does not describe a buildable network."""


def stage_index(stage: str) -> int:
    return int(stage[1:])


def branch_index(branch: str) -> int:
    return int(branch[1:])


def input_name(stage: int, branch: int) -> str:
    return f"s{stage}b{branch}"


def parse_input(name: str) -> tuple[int, int] | None:
    """(stage, branch) of an input name, or None for the stem."""
    if name == STEM:
        return None
    m = _INPUT_RE.match(name)
    if not m:
        raise ArchSpecError(f"bad input name {name!r}: use 'stem' or 's<stage>b<branch>' such as 's3b1'")
    return int(m.group(1)), int(m.group(2))


def _input_order(name: str) -> int:
    parsed = parse_input(name)
    return -1 if parsed is None else parsed[1]


@dataclass
class ArchSpec:
    num_landmarks: int
    stages: dict[str, dict[str, dict[str, float]]]
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.num_landmarks = int(self.num_landmarks)
        if self.num_landmarks < 1:
            raise ArchSpecError(f"num_landmarks must be positive, got {self.num_landmarks}")
        self.stages = self._canonical(self.stages)
        self._validate()

    @staticmethod
    def _canonical(stages) -> dict[str, dict[str, dict[str, float]]]:
        if not isinstance(stages, dict):
            raise ArchSpecError("'stages' must be an object mapping 's2'..'s10' to branches")
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ArchSpecError(f"unknown stages {sorted(unknown)}; stages are {', '.join(STAGES)}")
        out: dict[str, dict[str, dict[str, float]]] = {}
        for stage in STAGES:
            branches = stages.get(stage) or {}
            bad = set(branches) - set(BRANCHES)
            if bad:
                raise ArchSpecError(f"{stage}: unknown branches {sorted(bad)}; branches are b0..b3")
            out[stage] = {}
            for branch in BRANCHES:
                inputs = branches.get(branch)
                if not inputs:
                    continue  # a branch without inputs does not exist
                if not isinstance(inputs, dict):
                    raise ArchSpecError(f"{stage}.{branch}: inputs must map input names to alpha values")
                out[stage][branch] = {k: float(inputs[k]) for k in sorted(inputs, key=_input_order)}
        return out

    def _validate(self) -> None:
        for stage in STAGES:
            i = stage_index(stage)
            for branch, inputs in self.stages[stage].items():
                for name in inputs:
                    parsed = parse_input(name)
                    if i == FIRST_STAGE:
                        if parsed is not None:
                            raise ArchSpecError(f"{stage}.{branch}: stage 2 takes only 'stem' as input, got {name!r}")
                        continue
                    if parsed is None or parsed[0] != i - 1:
                        raise ArchSpecError(f"{stage}.{branch}: input {name!r} must come from stage {i - 1} (s{i - 1}bJ)")
                    if f"b{parsed[1]}" not in self.stages[f"s{i - 1}"]:
                        raise ArchSpecError(
                            f"{stage}.{branch}: input {name!r} is not a kept branch of s{i - 1}; "
                            "remove the edge or add the branch")
        for stage in STAGES:
            if not self.stages[stage]:
                raise ArchSpecError(f"{stage} has no branches: the network would be disconnected")

    # ---- queries ---------------------------------------------------------------------------
    def branches(self, stage: str) -> list[str]:
        return list(self.stages[stage])

    def final_branches(self) -> list[str]:
        return self.branches(STAGES[-1])

    def edges(self) -> Iterator[tuple[str, str, str, float]]:
        for stage in STAGES:
            for branch, inputs in self.stages[stage].items():
                for name, alpha in inputs.items():
                    yield stage, branch, name, alpha

    @property
    def num_edges(self) -> int:
        return sum(1 for _ in self.edges())

    def edge_set(self) -> set[tuple[str, str, str]]:
        return {(s, b, n) for s, b, n, _ in self.edges()}

    # ---- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"format": SPEC_FORMAT, "version": SPEC_VERSION}
        if self.name:
            d["name"] = self.name
        d["num_landmarks"] = self.num_landmarks
        d["stages"] = {s: {b: dict(inp) for b, inp in br.items()} for s, br in self.stages.items() if br}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArchSpec":
        if not isinstance(d, dict):
            raise ArchSpecError("an architecture spec must be a JSON object")
        fmt = d.get("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise ArchSpecError(f"not an architecture spec (format {fmt!r}, expected {SPEC_FORMAT!r})")
        version = d.get("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise ArchSpecError(f"spec version {version} is not supported (this code reads version {SPEC_VERSION})")
        if "num_landmarks" not in d or "stages" not in d:
            raise ArchSpecError("a spec needs 'num_landmarks' and 'stages'")
        return cls(num_landmarks=d["num_landmarks"], stages=d["stages"], name=d.get("name"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path) -> "ArchSpec":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ArchSpecError(f"spec file {path} does not exist") from None
        except json.JSONDecodeError as e:
            raise ArchSpecError(f"spec file {path} is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def with_landmarks(self, num_landmarks: int) -> "ArchSpec":
        return ArchSpec(num_landmarks, self.stages, name=self.name)


def supernet_spec(num_landmarks: int = DEFAULT_LANDMARKS, alpha: float = DEFAULT_ALPHA) -> ArchSpec:
    """HRSuperNet: every stage's four branches fed by every input (4 + 8 x 16 = 132 edges)."""
    stages = {STAGES[0]: {b: {STEM: alpha} for b in BRANCHES}}
    for i in range(FIRST_STAGE + 1, LAST_STAGE + 1):
        stages[f"s{i}"] = {b: {input_name(i - 1, j): alpha for j in range(4)} for b in BRANCHES}
    return ArchSpec(num_landmarks, stages, name=SUPERNET)


def retained_edges() -> dict:
    """The published slimmed architectures (stage -> branch -> kept inputs) per dataset."""
    text = resources.files("trainer").joinpath("presets", "s-hrnet-retained-edges.json").read_text()
    return json.loads(text)


def preset_spec(name: str, num_landmarks: int | None = None, alpha: float = DEFAULT_ALPHA) -> ArchSpec:
    if name == SUPERNET:
        return supernet_spec(num_landmarks or DEFAULT_LANDMARKS, alpha)
    if name not in PRESET_DATASETS:
        raise ArchSpecError(f"unknown preset {name!r}; choose one of {', '.join(SPEC_PRESETS)}")
    entry = retained_edges()[PRESET_DATASETS[name]]
    stages = {
        stage: {branch: {inp: alpha for inp in info["inputs"]} for branch, info in branches.items()}
        for stage, branches in entry["stages"].items()
    }
    return ArchSpec(num_landmarks or entry["num_landmarks"], stages, name=name)
