import json

import numpy as np
import pytest

from sdhrnet.budgets import within_budget
from landmarks.selection import (FACE_SCORES, SelectionError, choose_among, choose_served, face_scores, paired,
                                 read_face_scores)

FACES = [f"face{i}" for i in range(60)]


def _faces(rng, scale, noise=0.002):
    return {f: float(scale + rng.normal(0, noise)) for f in FACES}


def _row(params, dev, occluded, macs=243_000_000):
    return {"params": params, "macs": macs, "dev": {"nme": float(np.mean(list(dev.values()))), "per_face": dev},
            "dev occluded": {"nme": float(np.mean(list(occluded.values()))), "per_face": occluded}}


def test_paired_figures_and_identical_models():
    rng = np.random.default_rng(0)
    a = _faces(rng, 0.05)
    same = paired([a], [dict(a)])
    assert same["wilcoxon_p"] == 1.0 and same["b_better_share"] == 0.0 and same["relative_change"] == 0.0
    better = paired([a], [{f: v * 0.9 for f, v in a.items()}])
    assert better["b_better_share"] == 1.0 and better["relative_change"] == pytest.approx(-0.1)
    assert better["wilcoxon_p"] < 1e-6 and better["faces"] == len(FACES)
    # one-sided: "B scores higher" is the question the selection rule asks
    assert paired([a], [{f: v * 0.9 for f, v in a.items()}], alternative="greater")["wilcoxon_p"] > 0.99
    assert paired([a], [{f: v * 1.1 for f, v in a.items()}], alternative="greater")["wilcoxon_p"] < 1e-6
    # replicate seeds are averaged per face before the test; faces one side lacks are left out
    two = paired([a, a], [{f: v * 0.9 for f, v in a.items()}, {f: v * 1.1 for f, v in a.items() if f != "face0"}])
    assert two["faces"] == len(FACES) - 1 and two["pairs"] == 2
    assert two["relative_change"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(SelectionError, match="no scored face"):
        paired([{"x": 1.0}], [{"y": 1.0}])


def test_a_model_within_the_dev_noise_wins_on_occluded_faces_and_a_worse_one_does_not():
    rng = np.random.default_rng(1)
    base = _faces(rng, 0.0315)
    # higher on average, but better on every other face by nearly as much: within the noise
    tied_dev = {f: v + (0.0005 + 0.00005 * (i // 2)) * (1 if i % 2 else -1) + 1e-5
                for i, (f, v) in enumerate(base.items())}
    worse_dev = {f: v * 1.08 for f, v in base.items()}  # 8% worse on every face
    rows = {"lowest": _row(900_000, base, _faces(rng, 0.088)),
            "tied": _row(900_000, tied_dev, _faces(rng, 0.078)),
            "worse": _row(900_000, worse_dev, _faces(rng, 0.070)),
            "large": _row(3_800_000, tied_dev, _faces(rng, 0.060))}
    assert rows["tied"]["dev"]["nme"] > rows["lowest"]["dev"]["nme"]
    fits = within_budget(rows, list(rows), {"params": 1_000_000})
    choice = choose_served(rows, fits, "dev", tie_breaks=["dev occluded"])
    assert choice.served == "tied" and "within the noise" in choice.why and "'lowest'" in choice.why
    # without a tie-break set, or when the occluded faces favour the lowest, the lowest mean wins
    assert choose_served(rows, fits, "dev").served == "lowest"
    assert choose_served(rows, ["lowest", "worse"], "dev", tie_breaks=["dev occluded"]).served == "lowest"
    # over the budget a row is no candidate, however good
    assert choose_served(rows, list(rows), "dev", tie_breaks=["dev occluded"]).served == "large"


def test_selection_errors_say_what_is_missing():
    rng = np.random.default_rng(2)
    rows = {"a": _row(2_000_000, _faces(rng, 0.03), _faces(rng, 0.08)),
            "b": {"params": 900_000, "dev": {"nme": 0.03}, "dev occluded": {"nme": 0.07}},
            "c": {"params": 900_000, "dev": {"nme": 0.031}, "dev occluded": {"nme": 0.06}}}
    with pytest.raises(ValueError, match="within params <= 1,000,000"):
        within_budget(rows, ["a"], {"params": 1_000_000})
    with pytest.raises(SelectionError, match="no candidate was given"):
        choose_served(rows, [], "dev")
    with pytest.raises(SelectionError, match="no per-face dev NMEs"):
        choose_served(rows, ["b", "c"], "dev", tie_breaks=["dev occluded"])


def test_face_scores_files_are_checked_when_read(tmp_path):
    doc = face_scores("dev", {"dev": {"nme": 0.1, "per_face": {"a": 0.1}}, "dev occluded": {"per_face": {"a": 0.2}}})
    path = tmp_path / FACE_SCORES
    assert read_face_scores(path) is None  # a model packaged before face scores existed
    path.write_text(json.dumps(doc))
    assert read_face_scores(path) == doc
    for broken in ("{", json.dumps({**doc, "tie_breaks": ["test occluded"]}), json.dumps([doc])):
        path.write_text(broken)
        with pytest.raises(SelectionError, match=FACE_SCORES):
            read_face_scores(path)
    with pytest.raises(SelectionError, match="no per-face NMEs for dev occluded"):
        face_scores("dev", {"dev": {"per_face": {}}})


def test_a_diverged_candidate_is_never_served(tmp_path):
    rng = np.random.default_rng(9)
    diverged = {f: float("nan") for f in FACES}
    rows = {"nan": _row(1, diverged, _faces(rng, 0.01)), "ok": _row(1, _faces(rng, 0.05), _faces(rng, 0.1))}
    assert choose_served(rows, ["nan", "ok"], "dev", tie_breaks=["dev occluded"]).served == "ok"
    with pytest.raises(SelectionError, match="no candidate has a finite dev NME"):
        choose_served(rows, ["nan"], "dev")
    doc = face_scores("dev", {"dev": {"per_face": {"a": float("nan")}}, "dev occluded": {"per_face": {"a": 0.2}}})
    path = tmp_path / FACE_SCORES
    for value in (float("nan"), "0.1", None):
        doc["sets"]["dev"]["per_face"]["a"] = value
        path.write_text(json.dumps(doc))
        with pytest.raises(SelectionError, match="not a finite number"):
            read_face_scores(path)


def _doc(dev, occluded):
    return face_scores("dev", {name: {"nme": float(np.mean(list(v.values()))), "per_face": v}
                               for name, v in (("dev", dev), ("dev occluded", occluded))})


def test_promotion_needs_a_gain_beyond_the_noise_and_no_loss_beyond_it():
    """What the registry promotes by (choose_between): the rule's pick replaces the champion only when it is better
    face by face on the clean or the occluded faces, and worse on neither."""
    from landmarks.selection import choose_between

    rng = np.random.default_rng(7)
    dev, occ = _faces(rng, 0.0315, 0.004), _faces(rng, 0.067, 0.01)
    champion = _doc(dev, occ)

    def jitter(faces, scale):
        n = rng.normal(0, scale, len(faces))
        return {f: v + d for (f, v), d in zip(faces.items(), n - n.mean())}

    # a lower mean by chance on both sets: the rule alone would pick it, promotion does not
    chance = _doc(jitter({f: v - 0.00002 for f, v in dev.items()}, 0.0005),
                  jitter({f: v - 0.0002 for f, v in occ.items()}, 0.004))
    assert choose_among({"champion": champion, "candidate": chance}).served == "candidate"
    kept = choose_between(champion, chance)
    assert kept.served == "champion" and "beyond the noise on neither set" in kept.why
    # better on clean faces, clearly worse on covered ones (a model at a larger input, twentieth round)
    traded = _doc({f: v * 0.97 for f, v in dev.items()}, {f: v * 1.5 for f, v in occ.items()})
    kept = choose_between(champion, traded)
    assert kept.served == "champion" and "scores higher on dev occluded" in kept.why
    # level on clean faces, better on every covered one: promoted, and the reason says where it gained
    gained = _doc(jitter(dev, 0.0005), {f: v * 0.95 for f, v in occ.items()})
    promoted = choose_between(champion, gained)
    assert promoted.served == "candidate" and "better than the champion on dev occluded" in promoted.why


def test_a_macs_budget_leaves_out_a_larger_input_however_good():
    """The twentieth round's 160 px model (1.56x the MACs of the 128 px ones) competed with them on NME alone; a MACs
    budget keeps the pick to what the service can afford, and a row that records no MACs is over any MACs budget."""
    rng = np.random.default_rng(3)
    rows = {"128 px": _row(961_134, _faces(rng, 0.0315), _faces(rng, 0.067)),
            "160 px": _row(961_134, _faces(rng, 0.0300), _faces(rng, 0.060), macs=379_000_000),
            "no MACs": {**_row(961_134, _faces(rng, 0.0290), _faces(rng, 0.050)), "macs": None}}
    assert choose_served(rows, list(rows), "dev", tie_breaks=["dev occluded"]).served == "no MACs"
    fits = within_budget(rows, list(rows), {"params": 1_000_000, "macs": 250_000_000})
    assert fits == ["128 px"]
    assert choose_served(rows, fits, "dev", tie_breaks=["dev occluded"]).served == "128 px"
    assert within_budget(rows, [], {"macs": 1}) == []


def _video_row(dev, occluded, video):
    return {**_row(900_000, dev, occluded),
            "video": {"nme": float(np.mean(list(video.values()))), "per_face": video}}


def test_video_frames_decide_among_the_models_tied_on_clean_and_occluded_faces():
    """The tie-break sets are taken in order: on the occluded faces the tied models not worse than the lowest stay
    tied, and the video frames pick among those; a model shown worse on the occluded faces is out, however good on
    video."""
    rng = np.random.default_rng(11)
    dev = _faces(rng, 0.0315)
    occ = _faces(rng, 0.067, 0.01)
    video = _faces(rng, 0.063, 0.01)

    def level(faces, scale):  # the same mean, or a hair above it
        n = rng.normal(0, scale, len(faces))
        return {f: v + d + 1e-6 for (f, v), d in zip(faces.items(), n - n.mean())}

    rows = {"served": _video_row(dev, occ, video),
            "noisy": _video_row(level(dev, 0.0003), level(occ, 0.002), {f: v * 0.98 for f, v in video.items()}),
            "covered worse": _video_row(level(dev, 0.0003), {f: v * 1.1 for f, v in occ.items()},
                                        {f: v * 0.9 for f, v in video.items()})}
    choice = choose_served(rows, list(rows), "dev", tie_breaks=["dev occluded", "video"])
    assert choice.served == "noisy"
    assert "lowest video NME among the 2 so tied" in choice.why
    # with the occluded faces alone the lowest occluded mean wins, as before the video set
    alone = choose_served(rows, list(rows), "dev", tie_breaks=["dev occluded"]).served
    assert alone == min(("served", "noisy"), key=lambda r: rows[r]["dev occluded"]["nme"])
    # a set named last decides alone among the rows tied on dev
    assert choose_served(rows, list(rows), "dev", tie_breaks=["video"]).served == "covered worse"


def _video_doc(dev, occluded, video):
    return face_scores("dev", {name: {"nme": float(np.mean(list(v.values()))), "per_face": v}
                               for name, v in (("dev", dev), ("dev occluded", occluded), ("video", video))},
                       ["dev occluded", "video"])


def test_promotion_counts_a_gain_on_video_frames_and_compares_older_documents_on_the_sets_they_have(tmp_path):
    from landmarks.selection import choose_between

    rng = np.random.default_rng(12)
    dev, occ, video = _faces(rng, 0.0315, 0.004), _faces(rng, 0.067, 0.01), _faces(rng, 0.063, 0.01)
    champion = _video_doc(dev, occ, video)
    assert champion["tie_breaks"] == ["dev occluded", "video"]
    gained = _video_doc(dict(dev), dict(occ), {f: v * 0.97 for f, v in video.items()})
    promoted = choose_between(champion, gained)
    assert promoted.served == "candidate" and "better than the champion on video" in promoted.why
    lost = _video_doc({f: v * 0.97 for f, v in dev.items()}, dict(occ), {f: v * 1.1 for f, v in video.items()})
    kept = choose_between(champion, lost)
    assert kept.served == "champion" and "scores higher on video" in kept.why
    # a model packaged before the video set: one tie-break set under "tie_break"; compared on what both have
    older = _doc(dev, occ)
    older["tie_break"] = older.pop("tie_breaks")[0]
    path = tmp_path / FACE_SCORES
    path.write_text(json.dumps(older))
    older = read_face_scores(path)
    kept = choose_between(older, gained)  # equal on both sets it shares: the video gain does not count
    assert kept.served == "champion" and "video" not in kept.why
    with pytest.raises(SelectionError, match="no tie-break set in common"):
        choose_between(_video_doc(dev, occ, video) | {"tie_breaks": ["video"]}, older)
