import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "sdhrnet" / "default_model"


def _set(per_face: dict[str, float]) -> dict:
    nme = sum(per_face.values()) / len(per_face)
    return {"nme": nme, "fr": 0.0, "auc": 0.6, "n": len(per_face), "split": "dev", "dataset": "300w",
            "per_face": per_face}


def _row(dev: list[float], occluded: float, params: int = 961_000) -> dict:
    faces = {f"f{i}": v for i, v in enumerate(dev)}
    return {"model": str(DEFAULT_MODEL), "params": params, "macs": 243_000_000, "input_size": 128, "run_id": None,
            "dev": _set(faces), "dev occluded": _set({f: occluded for f in faces}),
            "p1-ytf68 test": _set({f: 0.063 for f in faces})}


def test_served_auto_packages_the_rules_pick_from_earlier_tables(tmp_path):
    base = [0.02 + 0.0005 * i for i in range(40)]
    rows = {"start": _row(base, 0.088),
            # above the start on average, below it on half the faces: within the noise, and more robust
            "soup": _row([v + (0.0004 + 0.00002 * (i // 2)) * (1 if i % 2 else -1) + 1e-5 for i, v in enumerate(base)],
                         0.078),
            "worse": _row([v * 1.1 for v in base], 0.070),
            "ensemble": _row(base, 0.060, params=3_800_000)}
    table = tmp_path / "table.json"
    table.write_text(json.dumps(rows))
    done = subprocess.run([sys.executable, "bench/results_table.py", "--rows-from", str(table), "--served", "auto",
                           "--package-into", str(tmp_path / "pkg")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "selection rule picks 'soup'" in done.stdout
    assert "(p1-ytf68 training left out: 'start' was not scored on it)" in done.stdout
    # these rows predate the detected-box columns: their cells are blank, not an error
    assert "dev, detected boxes NME" in done.stdout and "| - | - | - |" in done.stdout
    card = json.loads((tmp_path / "pkg" / "model_card.json").read_text())
    assert card["served_row"] == "soup" and "within the noise" in card["selection"]
    assert set(card["evaluation"]) == set(rows) and "per_face" not in card["evaluation"]["soup"]["dev"]
    # naming no row at all, or a row that is not there, is a usage error
    bad = subprocess.run([sys.executable, "bench/results_table.py", "--rows-from", str(table), "--served", "nope",
                          "--package-into", str(tmp_path / "pkg2")], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "--served" in bad.stderr
    # a budget the rows do not keep leaves nothing to pick, and says which budget
    tight = subprocess.run([sys.executable, "bench/results_table.py", "--rows-from", str(table), "--served", "auto",
                            "--budget", "macs=200000000"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert tight.returncode == 2 and "no candidate is within macs <= 200,000,000" in tight.stderr
    # a table from before rows carried each face's NME cannot be tested face by face: it says to score again
    for row in rows.values():
        del row["dev"]["per_face"]
    table.write_text(json.dumps(rows))
    old = subprocess.run([sys.executable, "bench/results_table.py", "--rows-from", str(table), "--served", "auto"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert old.returncode == 2 and "no per-face dev NMEs" in old.stderr and "score it again" in old.stderr


def test_served_auto_lets_the_video_frames_decide_among_rows_tied_on_dev_and_occluded_faces(tmp_path):
    base = [0.02 + 0.0005 * i for i in range(40)]
    covered = [0.07 + 0.004 * (i % 7) for i in range(40)]

    def row(dev, occluded, video):
        r = _row(dev, 0.0)
        r["dev occluded"] = _set({f"f{i}": v for i, v in enumerate(occluded)})
        r["p1-ytf68 training"] = _set({f"person{i}": video + 0.001 * (i % 5) for i in range(30)})
        return r

    def level(values, step):  # each face moved up or down by a different amount: within the noise
        return [v + (step + step / 20 * (i // 2)) * (1 if i % 2 else -1) + 1e-6 for i, v in enumerate(values)]

    rows = {"start": row(base, covered, 0.064),
            "noise": row(level(base, 0.0004), level(covered, 0.002), 0.062),
            "covered worse": row(level(base, 0.0004), [v * 1.2 for v in covered], 0.055)}
    table = tmp_path / "table.json"
    table.write_text(json.dumps(rows))
    done = subprocess.run([sys.executable, "bench/results_table.py", "--rows-from", str(table), "--served", "auto",
                           "--package-into", str(tmp_path / "pkg"), "--replace"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "selection rule picks 'noise'" in done.stdout and "lowest p1-ytf68 training NME" in done.stdout
    faces = json.loads((tmp_path / "pkg" / "face_scores.json").read_text())
    assert faces["tie_breaks"] == ["dev occluded", "p1-ytf68 training"]
    assert len(faces["sets"]["p1-ytf68 training"]["per_face"]) == 30
