"""Turn a trained supernet (or any spec with alpha values) into a slimmed spec, and build a
network from a spec with the weights of every kept part carried over from a bigger one.

Pruning rules, applied until nothing changes:
1. drop every edge with |alpha| < threshold (so threshold 0 keeps everything);
2. drop a branch left without inputs, together with its MBConv blocks;
3. drop every edge that starts from a dropped branch;
4. (drop_dead_ends, on by default) drop a branch of stages 2..9 that feeds no edge of the next
   stage. Its output could never reach the heatmaps, so removing it leaves the network's function
   unchanged and only saves computation; the published networks have no such branch.
Stage 10's branches always count as used: they feed the head.
"""
from __future__ import annotations

import bisect

import torch

from .sdhrnet import SDHRNet
from .spec import STAGES, WIDTHS, ArchSpec, branch_index, input_name, parse_input, stage_index


class PruneError(ValueError):
    """Pruning or weight carry-over that cannot produce a valid network."""


def _as_spec(model_or_spec) -> ArchSpec:
    if isinstance(model_or_spec, ArchSpec):
        return model_or_spec
    if isinstance(model_or_spec, SDHRNet):
        return model_or_spec.current_spec()
    raise TypeError(f"prune() takes an SDHRNet or an ArchSpec, not {type(model_or_spec).__name__}")


def _drop_orphans(stages: dict) -> bool:
    changed = False
    for stage in STAGES:
        i = stage_index(stage)
        for branch in list(stages[stage]):
            inputs = stages[stage][branch]
            for name in list(inputs):
                src = parse_input(name)
                if src is not None and f"b{src[1]}" not in stages[f"s{i - 1}"]:
                    del inputs[name]
                    changed = True
            if not inputs:
                del stages[stage][branch]
                changed = True
    return changed


def _drop_dead_ends(stages: dict) -> bool:
    changed = False
    for stage in reversed(STAGES[:-1]):
        i = stage_index(stage)
        used = {name for inputs in stages[f"s{i + 1}"].values() for name in inputs}
        for branch in list(stages[stage]):
            if input_name(i, branch_index(branch)) not in used:
                del stages[stage][branch]
                changed = True
    return changed


def prune(model_or_spec, threshold: float, drop_dead_ends: bool = True) -> ArchSpec:
    """Spec of the network left after removing edges with |alpha| < threshold (see module doc)."""
    if threshold < 0:
        raise PruneError(f"the pruning threshold must be >= 0, got {threshold}")
    spec = _as_spec(model_or_spec)
    stages = {
        stage: {b: {n: a for n, a in inputs.items() if abs(a) >= threshold} for b, inputs in branches.items()}
        for stage, branches in spec.stages.items()
    }
    while True:
        changed = _drop_orphans(stages)
        if drop_dead_ends:
            changed = _drop_dead_ends(stages) or changed
        if not changed:
            break
    empty = [s for s in STAGES if not stages[s]]
    if empty:
        raise PruneError(
            f"threshold {threshold} removes every path through {', '.join(empty)}; use a smaller threshold")
    return ArchSpec(spec.num_landmarks, stages)


def threshold_for_budget(model_or_spec, budget, floor: float = 0.0) -> float:
    """Smallest threshold >= floor whose pruned network meets `budget`, or, when no network that keeps a path
    through every stage meets it, the threshold of the smallest such network. `budget` is a parameter count or
    a predicate on the built network (trainer.budget.Budget.fits: parameters, MACs, measured latency).

    Candidates are the |alpha| values themselves (a threshold equal to one prunes every smaller edge); "a path
    is left" and the cost of the network fall monotonically as the threshold rises (a measured latency does
    so up to its noise), so two bisections need ~2 log2(edges) builds.
    """
    from trainer.complexity import count_params

    spec = _as_spec(model_or_spec)
    fits = (lambda net: count_params(net) <= budget) if isinstance(budget, int) else budget

    def built(t: float):
        try:
            return build(prune(spec, t))
        except PruneError:
            return None

    if (net := built(floor)) is None or fits(net):
        return floor
    candidates = sorted({abs(a) for br in spec.stages.values() for inputs in br.values() for a in inputs.values()
                         if abs(a) > floor})
    # both predicates go False -> True as t rises, so bisect finds the first True
    valid = candidates[:bisect.bisect_left(candidates, True, key=lambda t: built(t) is None)]
    if not valid:
        return floor
    i = bisect.bisect_left(valid, True, key=lambda t: fits(built(t)))
    return valid[min(i, len(valid) - 1)]


def _head_channel_index(source: SDHRNet, target: SDHRNet) -> torch.Tensor:
    """Positions, in the source head's concatenated channels, of the target's final branches."""
    offsets, start = {}, 0
    for name in source.final_names:
        width = WIDTHS[int(name.rsplit("b", 1)[1])]
        offsets[name] = range(start, start + width)
        start += width
    return torch.tensor([c for name in target.final_names for c in offsets[name]], dtype=torch.long)


def _head_state(source: SDHRNet, target: SDHRNet) -> dict[str, torch.Tensor]:
    """The head's first 1x1 conv mixes all final branches; the slim head keeps the rows and
    columns of the kept branches (an identity selection when the final branches agree)."""
    idx = _head_channel_index(source, target)
    src = {k[len("head."):]: v for k, v in source.state_dict().items() if k.startswith("head.")}
    out = {}
    for key, value in src.items():
        if key == "fuse.0.weight":
            out[key] = value[idx][:, idx]
        elif key.startswith("fuse.") and value.ndim == 1:
            out[key] = value[idx]
        elif key == "classifier.weight":
            out[key] = value[:, idx]
        else:
            out[key] = value
    return {f"head.{k}": v for k, v in out.items()}


def build(spec: ArchSpec, source: SDHRNet | None = None) -> SDHRNet:
    """SDHRNet for `spec`; with `source`, every kept part (stem, transforms, blocks, BN statistics,
    head rows/columns of kept branches) gets the source's weights. Alpha values come from the
    spec, which for a spec made by prune(source) are the source's trained values."""
    net = SDHRNet(spec)
    if source is None:
        return net
    if not isinstance(source, SDHRNet):
        raise PruneError(f"weights can only be carried over from an SDHRNet, not {type(source).__name__}")
    if source.num_landmarks != spec.num_landmarks:
        raise PruneError(f"source predicts {source.num_landmarks} landmarks but the spec wants {spec.num_landmarks}")
    missing = spec.edge_set() - source.spec.edge_set()
    if missing:
        raise PruneError(f"the spec has edges the source lacks, e.g. {sorted(missing)[:3]}; "
                         "build from a network whose spec contains this one")
    src_state = source.state_dict()
    state = net.state_dict()
    alpha_keys = {k for k in state if ".alpha." in k}
    for key in state:
        if key.startswith("head.") or key in alpha_keys:
            continue
        state[key] = src_state[key].detach().clone()
    state.update({k: v.detach().clone() for k, v in _head_state(source, net).items()})
    net.load_state_dict(state)
    return net
