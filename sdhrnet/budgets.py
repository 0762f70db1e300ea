"""Cost budgets as users state them (KIND=VALUE): the kinds, and the model-card and registry-tag key of each.

Torch-free, because the API validates budgets at submit time and the registry picks versions by them."""
from __future__ import annotations

from typing import Mapping

# kind -> what it limits; each kind is also the key of the cost in a model card and in a registered version's tags
BUDGET_KINDS = {
    "params": "parameters",
    "macs": "multiply-adds at the model's input size",
    "ms": "milliseconds per face, ONNX Runtime at batch 1 on the machine that ran the job",
}
# the paper's bound on a slimmed landmark network; the served model is chosen among those within it
SERVED_MAX_PARAMS = 1_000_000
SERVED_LIMITS = {"params": SERVED_MAX_PARAMS}

BUDGET_PATTERN = r"^\s*(" + "|".join(BUDGET_KINDS) + r")\s*=\s*[0-9.eE+]+\s*$"


def parse_budget(text: str) -> tuple[str, float]:
    """`kind=value` (params=800000, macs=150000000, ms=6) -> (kind, value); ValueError when malformed."""
    kind, sep, raw = str(text).partition("=")
    kind = kind.strip()
    if not sep or kind not in BUDGET_KINDS:
        raise ValueError(f"budget {text!r} is not KIND=VALUE with KIND one of {', '.join(BUDGET_KINDS)}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"budget {text!r}: {raw.strip()!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"budget {text!r} must be a positive finite number")
    return kind, value


def parse_budgets(texts) -> list[tuple[str, float]]:
    """Several budgets, each once (their labels name model folders, so two equal budgets would collide)."""
    budgets = [parse_budget(t) for t in texts or ()]
    if not budgets:
        raise ValueError("give at least one budget (params=..., macs=... or ms=...)")
    labels = [budget_label(*b) for b in budgets]
    if len(set(labels)) != len(labels):
        raise ValueError(f"the same budget is given twice: {', '.join(labels)}")
    return budgets


def budget_label(kind: str, value: float) -> str:
    # the label names the model folder (models/<label>) and prefixes metric keys, so no '=', '.' or exponent
    return f"{kind}_{int(value)}" if float(value).is_integer() else f"{kind}_{value:f}".rstrip("0").replace(".", "p")


def over_budget(costs: Mapping[str, object], limits: Mapping[str, float]) -> list[str]:
    """Why `costs` (a card or a version's tags) break `limits` (kind -> maximum): one reason per limit that is
    exceeded or that the costs do not record. Empty when every limit holds."""
    reasons = []
    for kind, limit in limits.items():
        try:
            cost = float(costs.get(kind))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            reasons.append(f"{kind} not recorded")
            continue
        if cost > limit:
            reasons.append(f"{kind} {cost:g} > {limit:g}")
    return reasons


def within_budget(rows: Mapping[str, Mapping[str, object]], names, limits: Mapping[str, float]) -> list[str]:
    """The `names` whose row (a results-table row or a card, with `params` and `macs`) keeps every limit; ValueError
    naming the limits when none does, since choosing among nothing is the caller's mistake to fix."""
    fits = [name for name in names if not over_budget(rows[name], limits)]
    if names and not fits:
        raise ValueError(f"no candidate is within {describe_limits(limits)}")
    return fits


def describe_limits(limits: Mapping[str, float]) -> str:
    return ", ".join(f"{kind} <= {v:,.0f}" if v >= 1000 else f"{kind} <= {v:g}" for kind, v in limits.items())
