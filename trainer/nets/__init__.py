"""Networks: SD-HRNet built from an ArchSpec, its pruning, and the HRNetV2-W18 teacher."""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from .hrnet import HRNetV2
from .prune import build, prune
from .sdhrnet import SDHRNet
from .spec import SPEC_PRESETS, ArchSpec, ArchSpecError, preset_spec, supernet_spec

TEACHER = "hrnetv2-w18"
PRESETS = (*SPEC_PRESETS, TEACHER)


def resolve_spec(arch, num_landmarks: int | None = None) -> ArchSpec:
    """ArchSpec for a preset name, an ArchSpec or a spec JSON path (not for the teacher)."""
    if isinstance(arch, ArchSpec):
        spec = arch
    elif isinstance(arch, str) and arch in SPEC_PRESETS:
        return preset_spec(arch, num_landmarks)
    elif isinstance(arch, (str, Path)) and (Path(arch).suffix == ".json" or Path(arch).is_file()):
        spec = ArchSpec.load(arch)
    else:
        raise ArchSpecError(f"unknown architecture {arch!r}: use one of {', '.join(PRESETS)} or a spec JSON file")
    return spec.with_landmarks(num_landmarks) if num_landmarks and num_landmarks != spec.num_landmarks else spec


def _teacher_landmarks(arch) -> int | None:
    """Landmark count if `arch` names the teacher: the name itself, or a dict / JSON file of the
    form {"arch": "hrnetv2-w18", "num_landmarks": M} (what a model folder's spec.json holds)."""
    if isinstance(arch, str) and arch == TEACHER:
        return 68
    data = arch
    if isinstance(arch, (str, Path)) and Path(arch).is_file():
        try:
            data = json.loads(Path(arch).read_text())
        except (OSError, json.JSONDecodeError):
            return None  # ArchSpec.load reports the problem
    if isinstance(data, dict) and data.get("arch") == TEACHER:
        return int(data.get("num_landmarks", 68))
    return None


def build_network(arch, num_landmarks: int | None = None) -> nn.Module:
    """arch: preset name | "hrnetv2-w18" | ArchSpec | spec dict | path to a spec JSON
    (a JSON/dict {"arch": "hrnetv2-w18", "num_landmarks": M} builds the teacher)."""
    teacher_m = _teacher_landmarks(arch)
    if teacher_m is not None:
        return HRNetV2(num_landmarks or teacher_m)
    if isinstance(arch, dict):
        arch = ArchSpec.from_dict(arch)
    return SDHRNet(resolve_spec(arch, num_landmarks))


__all__ = ["ArchSpec", "ArchSpecError", "HRNetV2", "PRESETS", "SDHRNet", "TEACHER", "build", "build_network",
           "preset_spec", "prune", "resolve_spec", "supernet_spec"]
