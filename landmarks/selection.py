"""Which model to serve, and whether one model beats another face by face.

A validation split of about a hundred faces cannot tell apart two models whose mean NME differs by a few tenths
of a percent, so the lowest mean alone picks by chance among equals. The rule: among the candidates within the
parameter budget, take the lowest validation NME; every candidate that is not shown worse than it face by face ties
with it (a paired Wilcoxon signed-rank test that the candidate's faces score higher, one-sided, p >= ALPHA), and
the tie-break sets decide among those, in order: on each set but the last, the tied candidates not shown worse than
the lowest there stay tied; on the last, the lowest mean wins. The sets are the occluded validation faces and, where
a dataset has one, labelled video frames (scored per subject, so that the frames of one person count once). For a
candidate with the higher mean the one-sided test is the stricter of the two, which narrows how far a chain of
rounds can drift upward in steps each within noise.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import wilcoxon

ALPHA = 0.05
# Below this many shared faces a one-sided Wilcoxon test can hardly reject anything, so every model would tie.
MIN_SHARED_FACES = 10
# In a model folder: each validation face's NME, clean and on the tie-break sets (occluded, video frames per person),
# so that the registry can apply the same rule to a new version and its champion.
FACE_SCORES = "face_scores.json"


class SelectionError(ValueError):
    pass


def paired(a_runs: list[Mapping[str, float]], b_runs: list[Mapping[str, float]],
           alternative: str = "two-sided") -> dict[str, float]:
    """A against B on the faces every run scored: each face's NME is averaged over its runs (replicate seeds),
    so the face, not face x seed, is the unit of the test. `wilcoxon_p` is 1 where B equals A on every face;
    alternative="greater" tests whether B's faces score higher (worse) than A's."""
    faces = sorted(set.intersection(*(set(r) for r in [*a_runs, *b_runs])))
    if not faces:
        raise SelectionError("the two sides share no scored face")
    a = np.array([[r[f] for f in faces] for r in a_runs]).mean(axis=0)
    b = np.array([[r[f] for f in faces] for r in b_runs]).mean(axis=0)
    diff = b - a
    p = float(wilcoxon(diff, alternative=alternative).pvalue) if np.any(diff != 0) else 1.0
    return {"faces": len(faces), "pairs": min(len(a_runs), len(b_runs)), "nme_a": float(a.mean()),
            "nme_b": float(b.mean()), "b_better_share": float((diff < 0).mean()),
            "relative_change": float(diff.mean() / a.mean()), "wilcoxon_p": p}


@dataclass(frozen=True)
class Choice:
    served: str
    why: str


def choose_served(rows: Mapping[str, Mapping[str, Any]], candidates: list[str], split: str, *,
                  tie_breaks: Sequence[str] = (), alpha: float = ALPHA) -> Choice:
    """`rows` are results-table rows (trainer.results.score): each set's figures with its `per_face` NMEs. The
    `candidates` are those within the cost budget (sdhrnet.budgets.within_budget). Without `tie_breaks` the lowest
    mean NME on `split` wins."""
    if not candidates:
        raise SelectionError("no candidate was given")
    fits = [c for c in candidates if _finite(rows[c][split]["nme"])]  # a diverged run scores NaN
    if not fits:
        raise SelectionError(f"no candidate has a finite {split} NME")
    best = min(fits, key=lambda c: _mean(rows, c, split))
    lowest = f"lowest {split} NME ({_mean(rows, best, split):.5f})"
    # a row of a table scored before a set existed lacks it: the rule decides on the sets every candidate has
    left_out = {name: next(c for c in fits if name not in rows[c]) for name in tie_breaks
                if any(name not in rows[c] for c in fits)}
    note = "".join(f" ({name} left out: {c!r} was not scored on it)" for name, c in left_out.items())
    tie_breaks = [name for name in tie_breaks if name not in left_out]
    if not tie_breaks:
        return Choice(best, f"{best!r}: {lowest}{note}")
    tied, tests = _tied_with(rows, best, fits, split, alpha)
    first = len(tied)
    narrowed = []  # (set, its leader, the tied that stay) for each tie-break set but the last
    for name in tie_breaks[:-1]:
        leader = min(tied, key=lambda c: _mean(rows, c, name))
        tied, kept = _tied_with(rows, leader, tied, name, alpha)
        narrowed.append((name, leader, kept))
    last = tie_breaks[-1]
    tied.sort(key=lambda c: _mean(rows, c, last))  # stable: of equal NMEs the first candidate wins
    served = tied[0]
    if served == best:
        others = (f"; of the {first} within its noise, the tie-break sets ({', then '.join(tie_breaks)}) keep it"
                  if first > 1 else "")
        return Choice(best, f"{best!r}: {lowest}{others}{note}")
    why = (f"{served!r}: {split} NME {_mean(rows, served, split):.5f}, within the noise of the {lowest}, {best!r} "
           f"(one-sided paired Wilcoxon p {tests[served]['wilcoxon_p']:.2g} >= {alpha})")
    for name, leader, kept in narrowed:
        if leader != served:
            why += (f", within the noise of the lowest {name} NME among those, {leader!r} "
                    f"({_mean(rows, served, name):.5f} against {_mean(rows, leader, name):.5f}, "
                    f"p {kept[served]['wilcoxon_p']:.2g})")
    if len(tied) > 1:
        runner = tied[1]
        why += (f", and the lowest {last} NME among the {len(tied)} so tied ({_mean(rows, served, last):.5f} "
                f"against {_mean(rows, runner, last):.5f} of {runner!r})")
    else:
        why += f", and the only one so tied after {narrowed[-1][0]}" if narrowed else ""
    return Choice(served, why + note)


def _tied_with(rows: Mapping[str, Mapping[str, Any]], leader: str, among: list[str], name: str,
               alpha: float) -> tuple[list[str], dict[str, dict[str, float]]]:
    """`leader` and those of `among` not shown worse than it face by face on set `name`, with each one's test."""
    tests = {c: paired([_faces(rows, leader, name)], [_faces(rows, c, name)], alternative="greater")
             for c in among if c != leader}
    return [leader] + [c for c, t in tests.items() if t["wilcoxon_p"] >= alpha], tests


def _mean(rows: Mapping[str, Mapping[str, Any]], name: str, split: str) -> float:
    """A row's NME on a set as the rule weighs it: the mean of its per-face values (per subject for video frames,
    trainer.results.by_subject), or the set's NME where a row carries no per-face values."""
    figures = rows[name][split]
    per_face = figures.get("per_face")
    value = float(np.mean(list(per_face.values()))) if per_face else figures.get("nme")
    return value if _finite(value) else math.inf


def _faces(rows: Mapping[str, Mapping[str, Any]], name: str, split: str) -> Mapping[str, float]:
    try:
        return rows[name][split]["per_face"]
    except KeyError:
        raise SelectionError(f"row {name!r} has no per-face {split} NMEs to test; score it again") from None


def occluded(split: str) -> str:
    """The name of the first tie-break set: `split` with every face partly covered (landmarks.occlusion)."""
    return f"{split} occluded"


def face_scores(split: str, sets: Mapping[str, Mapping[str, Any]], tie_breaks: Sequence[str] | None = None
                ) -> dict[str, Any]:
    """The FACE_SCORES document: `sets` maps `split` and each of `tie_breaks` (by default occluded(split)) to
    {"nme", ..., "per_face"}. `tie_break` names the first set for readers before the twenty-ninth round."""
    names = (split, *((occluded(split),) if tie_breaks is None else tie_breaks))
    if len(names) < 2:
        raise SelectionError("face scores need a tie-break set")
    missing = [name for name in names if "per_face" not in sets.get(name, {})]
    if missing:
        raise SelectionError(f"no per-face NMEs for {', '.join(missing)}")
    return {"split": split, "tie_breaks": list(names[1:]), "tie_break": names[1],
            "sets": {name: dict(sets[name]) for name in names}}


def tie_breaks_of(doc: Mapping[str, Any]) -> list[str]:
    """A FACE_SCORES document's tie-break sets, in order; documents written before the video set name one set
    under "tie_break"."""
    names = doc.get("tie_breaks", [doc["tie_break"]] if "tie_break" in doc else None)
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise SelectionError("a face scores document names no tie-break set")
    return names


def read_face_scores(path: Path) -> dict[str, Any] | None:
    """A FACE_SCORES file, or None where there is none (models packaged before it existed)."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise SelectionError(f"{Path(path).name} is not JSON: {e}") from None
    try:
        per_face = [doc["sets"][name]["per_face"] for name in (doc["split"], *tie_breaks_of(doc))]
    except (KeyError, TypeError, AttributeError, SelectionError):
        raise SelectionError(f"{Path(path).name} lacks per-face NMEs for its split or a tie-break set") from None
    if not all(isinstance(faces, dict) and all(_finite(v) for v in faces.values()) for faces in per_face):
        raise SelectionError(f"{Path(path).name} has a per-face NME that is not a finite number")
    return doc


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def choose_between(champion: Mapping[str, Any], candidate: Mapping[str, Any], alpha: float = ALPHA) -> Choice:
    """Promotion (served: "champion" or "candidate"): the candidate replaces the champion only where the rule picks it
    (choose_among), it is better than the champion beyond the noise on one of the sets both were scored on (clean,
    occluded, video frames: one-sided paired Wilcoxon p < alpha), and worse beyond the noise on none. A mean lower by
    chance does not replace the model users have, and a gain on clean faces does not buy a loss on covered ones (or
    the other way round)."""
    docs = {"champion": champion, "candidate": candidate}
    rows, split, tie_breaks = _on_shared_faces(docs)
    choice = choose_served(rows, list(docs), split, tie_breaks=tie_breaks, alpha=alpha)
    if choice.served != "candidate":
        return choice
    sides = {name: [_faces(rows, label, name) for label in ("champion", "candidate")] for name in (split, *tie_breaks)}
    for name, (old, new) in sides.items():
        p = paired([old], [new], alternative="greater")["wilcoxon_p"]
        if p < alpha:
            return Choice("champion", f"'champion' stays: the candidate, picked by the rule ({choice.why}), scores "
                                      f"higher on {name} face by face (one-sided paired Wilcoxon p {p:.2g} < {alpha})")
    gains = {name: paired([old], [new], alternative="less")["wilcoxon_p"] for name, (old, new) in sides.items()}
    if min(gains.values()) >= alpha:
        where = "neither set" if len(gains) == 2 else f"none of the {len(gains)} sets"
        return Choice("champion", f"'champion' stays: the candidate, picked by the rule ({choice.why}), is better "
                                  f"beyond the noise on {where} (one-sided paired Wilcoxon p "
                                  + " and ".join(f"{p:.2g} on {name}" for name, p in gains.items()) + f" >= {alpha})")
    name, p = min(gains.items(), key=lambda item: item[1])
    others = "neither" if len(gains) == 2 else "none"
    return Choice("candidate", f"{choice.why}; better than the champion on {name} face by face (one-sided paired "
                               f"Wilcoxon p {p:.2g} < {alpha}) and worse on {others}")


def choose_among(docs: Mapping[str, Mapping[str, Any]], alpha: float = ALPHA) -> Choice:
    """The rule applied to FACE_SCORES documents by label, on the faces all of them scored, so that runs validated
    on different parts of a split are still compared on equal terms; of equal NMEs the first label wins."""
    rows, split, tie_breaks = _on_shared_faces(docs)
    return choose_served(rows, list(docs), split, tie_breaks=tie_breaks, alpha=alpha)


def _on_shared_faces(docs: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, dict[str, Any]], str, list[str]]:
    """FACE_SCORES documents by label -> results-table rows on the faces all of them scored, split, and the tie-break
    sets all of them have (in the first document's order: a model scored before the video set existed is compared
    on the occluded faces alone)."""
    splits = sorted({str(d["split"]) for d in docs.values()})
    if len(splits) > 1:
        raise SelectionError(f"not comparable: split {' and '.join(map(repr, splits))}")
    orders = [tie_breaks_of(d) for d in docs.values()]
    tie_breaks = [name for name in orders[0] if all(name in order for order in orders)]
    if not tie_breaks:
        names = sorted({", ".join(order) for order in orders})
        raise SelectionError(f"not comparable: no tie-break set in common ({' and '.join(map(repr, names))})")
    split = splits[0]
    rows: dict[str, dict[str, Any]] = {label: {} for label in docs}
    for name in (split, *tie_breaks):
        faces = sorted(set.intersection(*(set(d["sets"][name]["per_face"]) for d in docs.values())))
        if len(faces) < MIN_SHARED_FACES:
            raise SelectionError(f"{len(faces)} faces scored by all of them on '{name}', fewer than "
                                 f"{MIN_SHARED_FACES}")
        for label, d in docs.items():
            per_face = {f: d["sets"][name]["per_face"][f] for f in faces}
            rows[label][name] = {"nme": float(np.mean(list(per_face.values()))), "per_face": per_face}
    return rows, split, tie_breaks
