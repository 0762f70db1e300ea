"""Is model B better than model A face by face, or only on average? Paired per-face NME on the results table's
test sets (bench/results_table.py), for one or more pairs of the same kind (e.g. a control and a candidate
trained from the same start with different seeds).

A difference of 1% in a split's mean NME is within the noise of 107 faces; what says more is whether the same
faces get better across replicate pairs. Video frames are compared per person (each person's frames averaged, as
the selection rule does): before the twenty-ninth round they were compared per frame, which overstates how sure a
difference is. For each face the per-pair differences (B - A) are averaged over the pairs, and the table gives
the mean NME of A and B, the share of faces that B improves, the mean relative change and a Wilcoxon signed-rank
p-value over those per-face differences (the face is the unit, not face x seed).

    SDHRNET_HOME=... .venv/bin/python bench/paired_nme.py --pair "seed 1=<KD-off run>,<triple run>" \\
        --pair "seed 2=<KD-off run>,<triple run>" [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from results_table import TEST_SETS
from trainer.evaluate import evaluate_split
from trainer.results import by_subject
from landmarks.selection import paired


def per_face(uri: str, test_set) -> dict[str, float]:
    """Each face's NME, or each person's mean where the layout names them (video frames: trainer.results)."""
    report = evaluate_split(test_set.dataset, test_set.root, test_set.split, model=uri, occlusion=test_set.occlusion,
                            detected_boxes=test_set.detected_boxes, low_resolution=test_set.low_resolution)
    return by_subject(test_set.dataset, report["per_image"])


def compare(pairs: list[tuple[str, str]], test_set) -> dict[str, float]:
    return paired([per_face(a, test_set) for a, _ in pairs], [per_face(b, test_set) for _, b in pairs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", action="append", required=True, help="NAME=A,B: two models (anything evaluate takes)")
    names = [t.name for t in TEST_SETS]
    ap.add_argument("--sets", nargs="+", default=names, choices=names, help="results-table test sets (default: all)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    pairs = []
    for text in args.pair:
        name, sep, models = text.partition("=")
        a, comma, b = models.partition(",")
        if not (sep and comma and name and a and b):
            ap.error(f"--pair takes NAME=A,B, got {text!r}")
        pairs.append((a, b))
    print(f"pairs: {', '.join(p.partition('=')[0] for p in args.pair)} (A, then B)")
    print("| set | faces | NME A | NME B | faces B improves | mean change | Wilcoxon p |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    out = {}
    for t in (t for t in TEST_SETS if t.name in args.sets):
        r = out[t.name] = compare(pairs, t)
        print(f"| {t.name} | {r['faces']} | {r['nme_a']:.4f} | {r['nme_b']:.4f} | {r['b_better_share']:.0%} | "
              f"{r['relative_change']:+.1%} | {r['wilcoxon_p']:.2g} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
