"""numpy values, paths, dataclasses and NaN made JSON-safe: one sanitiser for API responses, job results and
reports (JSON has no NaN; Starlette refuses to emit it, so a NaN becomes null); and JSON files read back with a
message that names the file."""
import json
import math
from pathlib import Path

import numpy as np


def to_jsonable(value):
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return to_jsonable({k: getattr(value, k) for k in value.__dataclass_fields__})
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def read_json_object(path, what: str) -> dict:
    """The JSON object in the file at `path`; a ValueError naming the file when it is not valid JSON or holds another
    value (`what` says what the file should hold, for that message)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold {what}, not a JSON {type(data).__name__}")
    return data
