"""`sdhrnet pipeline`: the stage plan, its scheduling rules, and the tiny preset end to end through the real CLI
(stages as processes, a SQLite MLflow store), run twice to show that the second run trains nothing."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdhrnet.train_config import make_config
from trainer.pipeline import ABLATION, KD_OFF, ROWS, Plan, Row, eta_seconds, \
    format_duration, published_arch, share_threads, start_order, table_rows, table_sets
from landmarks.selection import FACE_SCORES, read_face_scores
from trainer.results import EvalSet

REPO = Path(__file__).resolve().parents[1]


def _plan(rows=ROWS):
    return Plan("300w", Path("/data/300w"), "cpu", rows, Path("/tmp/out"), device="cuda", overrides=["epochs=3"])


def test_distillations_get_their_students_and_teacher_from_the_finished_stages():
    results = {"slim": {"run_id": "s" * 32}, "teacher": {"run_id": "t" * 32}}
    by_key = {r.key: r for r in ROWS + ABLATION}
    ours = _plan().command(by_key["slimmed-triple-kd"], results)
    assert ours[ours.index("--from-slim") + 1] == "s" * 32 and ours[ours.index("--teacher") + 1] == "t" * 32
    assert ours[ours.index("--run-name") + 1] == "300w-cpu-slimmed-triple-kd"
    assert ours[ours.index("--device") + 1] == "cuda" and "epochs=3" in ours
    control = _plan().command(by_key["published-kd-off"], {})
    assert control[control.index("--from-slim") + 1] == "s-hrnet-300w"
    assert {"use_teacher=false", "use_peer=false", "masked_inputs=false"} <= set(control)
    assert "--teacher" not in control
    peer_only = _plan().command(by_key["published-peer-masks"], {})
    assert "use_teacher=false" in peer_only and "use_peer=false" not in peer_only


def test_self_distillation_rounds_train_on_the_previous_student_with_it_as_teacher():
    by_key = {r.key: r for r in ROWS}
    results = {"published-kd-off": {"run_id": "k" * 32}, "published-self-kd-1": {"run_id": "r" * 32}}
    first = _plan().command(by_key["published-self-kd-1"], results)
    assert first[first.index("--from-slim") + 1] == f"runs:/{'k' * 32}/model_files"
    assert first[first.index("--teacher") + 1] == "k" * 32
    second = _plan().command(by_key["published-self-kd-2"], results)
    assert second[second.index("--from-slim") + 1] == f"runs:/{'r' * 32}/model_files"
    # the cpu preset's schedule for the round, then the user's overrides, which win
    cfg = make_config("cpu", "300w", kind="distill")
    schedule = [second[i + 1] for i, arg in enumerate(second) if arg == "--set"]
    assert schedule.index("lr=0.0001") < schedule.index("epochs=3")
    assert "epochs=12" in schedule and cfg.lr != 1e-4 and cfg.epochs != 12
    # the rounds keep the teacher weight they were measured with, not the heavier one for a teacher from scratch
    assert "lambda_teacher=1.0" in schedule and cfg.lambda_teacher != 1.0
    assert cfg.use_teacher and cfg.use_peer and cfg.masked_inputs, "the rounds are triple KD"
    tiny = Plan("300w", Path("/d"), "tiny", ROWS, Path("/o")).command(by_key["published-self-kd-2"], results)
    assert "epochs=12" not in tiny, "the tiny preset keeps its own schedule"
    # the third round restarts at the from-scratch learning rate, with the heavier teacher term it was measured with
    third = _plan().command(by_key["published-self-kd-3"], {**results, "published-self-kd-2": {"run_id": "t" * 32}})
    assert third[third.index("--from-slim") + 1] == f"runs:/{'t' * 32}/model_files"
    assert third[third.index("--teacher") + 1] == "t" * 32
    schedule = [third[i + 1] for i, arg in enumerate(third) if arg == "--set"]
    assert {"lr=0.001", "epochs=24", "lambda_teacher=4.0"} <= set(schedule)
    # and the fourth and fifth restart the same way on the round before
    for key, before in (("published-self-kd-4", "published-self-kd-3"), ("published-self-kd-5", "published-self-kd-4")):
        later = _plan().command(by_key[key], {**results, before: {"run_id": "f" * 32}})
        assert later[later.index("--from-slim") + 1] == f"runs:/{'f' * 32}/model_files"
        assert later[later.index("--teacher") + 1] == "f" * 32
        assert [later[i + 1] for i, arg in enumerate(later) if arg == "--set"] == schedule


def test_rows_need_only_what_they_use_and_the_first_two_need_nothing():
    by_key = {r.key: r for r in ROWS}
    assert by_key["teacher"].needs == by_key["slim"].needs == frozenset()
    assert by_key["published-kd-off"].needs == frozenset()
    assert by_key["slimmed-triple-kd"].needs == {"slim", "teacher"}
    assert by_key["published-triple-kd"].needs == {"teacher"}
    assert by_key["published-self-kd-1"].needs == {"published-kd-off"}
    assert by_key["published-self-kd-2"].needs == {"published-self-kd-1"}
    assert by_key["published-self-kd-3"].needs == {"published-self-kd-2"}
    assert by_key["published-self-kd-4"].needs == {"published-self-kd-3"}
    assert by_key["published-self-kd-5"].needs == {"published-self-kd-4"}
    assert not by_key["slimmed-kd-off"].peer and by_key["slimmed-triple-kd"].peer
    assert published_arch("csv") == "s-hrnet-300w" and published_arch("wflw") == "s-hrnet-wflw"


def test_a_continued_pipeline_resumes_the_stages_it_holds_before_opening_new_ones():
    order = [r.key for r in start_order(ROWS, {"teacher", "published-kd-off"})]
    assert order[:2] == ["teacher", "published-kd-off"]
    assert order[2:] == [r.key for r in ROWS if r.key not in ("teacher", "published-kd-off")]
    assert start_order(ROWS, set()) == list(ROWS)


def test_eta_is_the_recent_epoch_time_times_the_epochs_left():
    assert eta_seconds(0, 60, []) is None
    assert eta_seconds(2, 10, [100.0, 140.0]) == pytest.approx(8 * 120.0)
    # a paused epoch and the slow start do not count once five recent epochs are known
    assert eta_seconds(7, 10, [900.0, 100.0, 5000.0, 100.0, 110.0, 90.0, 100.0]) == pytest.approx(3 * 100.0)
    assert eta_seconds(12, 10, [5.0]) == 0
    assert format_duration(None).startswith("ETA after")
    assert format_duration(125 * 60) == "ETA 2 h 05 min" and format_duration(59) == "ETA 1 min"


def test_table_rows_list_side_models_and_mark_only_students_as_candidates():
    rows = (ROWS[0], ROWS[1], Row("x", "X", "distill", student="published", overrides=KD_OFF),
            Row("y", "Y", "distill", student="published"))
    results = {r.key: {"run_id": r.key * 2} for r in rows}
    labelled = table_rows(rows, results)
    assert labelled["HRSuperNet after slimming"] == ("runs:/slimslim/models/supernet", None)
    assert labelled["X (best student)"] == ("runs:/xx/model_files", "x")
    assert "X, student 2 (last epoch)" not in labelled, "a run without the peer term trains one student"
    assert labelled["Y, student 2 (last epoch)"] == ("runs:/yy/models/s2", None)
    assert [k for _, k in labelled.values() if k] == ["x", "y"]


def test_test_sets_parse_and_refuse_what_they_cannot_read():
    t = EvalSet.parse("p1-ytf68 test=csv:../data/p1-ytf68:test")
    assert (t.name, t.dataset, t.root, t.split) == ("p1-ytf68 test", "csv", Path("../data/p1-ytf68"), "test")
    with pytest.raises(ValueError, match="NAME=DATASET:ROOT:SPLIT"):
        EvalSet.parse("csv:../data")


def test_tie_break_sets_follow_the_occluded_faces_in_order_and_their_other_columns_do_not_decide():
    from trainer.results import headline, tie_breaks, validation_sets

    video = EvalSet.parse("video=csv:p:training", tie_break=True)
    sets = table_sets(validation_sets("300w", Path("d"), "dev"), [video, EvalSet.parse("p1 test=csv:p:test")],
                      detected_boxes=True)
    assert tie_breaks(sets) == ["dev occluded", "video"] and headline(sets).name == "dev"
    assert [t.name for t in sets if t.detected_boxes] == ["dev, detected boxes", "video, detected boxes",
                                                          "p1 test, detected boxes"]


def test_detected_boxes_add_a_column_for_each_set_a_detector_can_see():
    from landmarks.occlusion import Occlusion

    dev, p1 = EvalSet("dev", "300w", Path("d"), "dev"), EvalSet.parse("p1 test=csv:p:test")
    validation = [dev, EvalSet("dev occluded", "300w", Path("d"), "dev", Occlusion())]
    assert table_sets(validation, [p1], detected_boxes=False) == [*validation, p1]
    sets = table_sets(validation, [p1], detected_boxes=True)
    assert [t.name for t in sets] == ["dev", "dev occluded", "p1 test", "dev, detected boxes", "p1 test, detected boxes"]
    assert [t.detected_boxes for t in sets] == [False] * 3 + [True] * 2
    assert (sets[4].dataset, sets[4].root, sets[4].split) == ("csv", Path("p"), "test")


def test_cpu_preset_trains_students_and_teacher_longer_than_slimming():
    distill, slim = make_config("cpu", "300w", kind="distill"), make_config("cpu", "300w", kind="slim")
    assert distill.epochs >= make_config("cpu", "300w", kind="teacher").epochs > slim.epochs
    assert max(slim.lr_steps) < slim.epochs and max(distill.lr_steps) < distill.epochs


def test_running_stages_share_the_cores_and_the_earliest_gets_the_remainder():
    assert share_threads(["teacher"], 2) == {"teacher": 2}, "a stage left alone takes every core"
    assert share_threads(["teacher", "slim"], 2) == {"teacher": 1, "slim": 1}
    assert share_threads(["teacher", "slim"], 5) == {"teacher": 3, "slim": 2}
    assert share_threads(["a", "b", "c"], 2) == {"a": 1, "b": 1, "c": 1}, "never zero threads"
    assert share_threads([], 4) == {}


def test_a_training_follows_its_threads_file(tmp_path):
    import torch
    from trainer.engine import ThreadsFile

    before = torch.get_num_threads()
    path = tmp_path / "stage.threads"
    follower = ThreadsFile(path)
    try:
        follower.follow()  # no file yet: nothing changes
        assert torch.get_num_threads() == before
        for n in (1, 2, 1):
            path.write_text(f"{n}\n")
            os.utime(path, ns=(time.time_ns() + n, time.time_ns() + n))  # a new stamp even within one clock tick
            follower.follow()
            assert torch.get_num_threads() == n
        path.write_text("many\n")
        os.utime(path, ns=(time.time_ns() + 9, time.time_ns() + 9))
        follower.follow()
        assert torch.get_num_threads() == 1, "an unreadable number leaves the threads as they are"
    finally:
        torch.set_num_threads(before)


FRAMES, PERSONS = 120, 109


def _some_frames(shared_data, tmp_path) -> Path:
    """The first FRAMES labelled p1-ytf68 test frames as a CSV set of their own (a tie-break set to score quickly)."""
    source = shared_data / "p1-ytf68"
    lines = (source / "test_frames_keypoints.csv").read_text().splitlines(keepends=True)[:FRAMES + 1]
    root = tmp_path / "frames"
    root.mkdir()
    (root / "test_frames_keypoints.csv").write_text("".join(lines))
    (root / "test").symlink_to(source / "test", target_is_directory=True)
    return root


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two pipeline runs of every stage, each run bounded by its own 900 s below
def test_tiny_pipeline_end_to_end_then_again_without_training(tmp_path, shared_data):
    env = {**os.environ, "SDHRNET_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SDHRNET_THREADS", None)  # the pipeline shares the cores among its stages
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sdhrnet.cli", "pipeline", "--dataset", "300w", "--data-root",
           str(shared_data / "300w"), "--preset", "tiny", "--out", str(out), "--json", "--progress-every", "2",
           "--max-params", "2000000", "--tie-break-set", f"frames=csv:{_some_frames(shared_data, tmp_path)}:test"]
    first = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout)
    assert set(result["runs"]) == {r.key for r in ROWS}
    rows = result["rows"]
    soups = [label for label in rows if label.endswith("soup of its two students")]
    # one soup per self-distillation round, whose two students share their start
    assert len(soups) == sum(r.stage is not None and r.stage.startswith("self-kd") for r in ROWS) == 5
    for label in soups:
        folder = Path(rows[label]["model"])
        assert folder.parent == out / "soups" and (folder / "model.onnx").exists()
    candidates = [label for label, r in rows.items()
                  if (label.endswith("(best student)") or label in soups) and r["params"] <= 2_000_000]
    assert result["served"] in candidates
    lowest = min(candidates, key=lambda label: rows[label]["dev"]["nme"])
    card = json.loads((Path(result["model_dir"]) / "model_card.json").read_text())
    # the lowest dev NME, or one within its noise that does better on a tie-break set
    served = rows[result["served"]]
    if result["served"] != lowest:
        assert "within the noise" in card["pipeline"]["selection"]
        assert any(served[name]["nme"] < rows[lowest][name]["nme"] for name in ("dev occluded", "frames"))
    assert all(len(rows[label]["dev"]["per_face"]) == rows[label]["dev"]["n"] for label in candidates)
    # the tie-break set is scored per person and packaged for the registry's rule
    assert all(rows[label]["frames"]["n"] == FRAMES and len(rows[label]["frames"]["per_face"]) == PERSONS
               for label in candidates)
    faces = read_face_scores(Path(result["model_dir"]) / FACE_SCORES)
    assert faces["tie_breaks"] == ["dev occluded", "frames"] and faces["sets"]["frames"]["unit"] == "subject"
    assert card["served_row"] == result["served"] and card["pipeline"]["runs"] == result["runs"]
    assert set(card["evaluation"]) == set(result["rows"])
    assert (Path(result["model_dir"]) / "model.onnx").stat().st_size > 0
    assert (out / "results.md").read_text().count("\n") == len(result["rows"]) + 2
    assert "pipeline: started teacher" in first.stderr and "pipeline: started slim" in first.stderr
    # the teacher and slimming were started before either finished: they ran side by side
    log = first.stderr
    assert max(log.index("started teacher"), log.index("started slim")) < log.index("finished teacher")
    for row in ROWS:
        assert 1 <= int((out / "logs" / f"{row.key}.threads").read_text()) <= (os.cpu_count() or 1)
    if (os.cpu_count() or 1) >= 2:  # started alone with every core, the teacher gave one up when slimming started
        assert "threads 2 -> 1" in (out / "logs" / "teacher.log").read_text()

    t0 = time.monotonic()
    second = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert again["runs"] == result["runs"], "finished stages are found again by name, not trained again"
    assert again["served"] == result["served"]
    for row in ROWS:
        assert "already finished" in (out / "logs" / f"{row.key}.log").read_text()
    print(f"second pipeline run: {time.monotonic() - t0:.0f} s")


def test_a_tie_break_set_the_students_train_on_is_refused(tmp_path):
    from trainer.pipeline import PipelineError, run_pipeline

    frames = EvalSet.parse(f"frames=csv:{tmp_path}:training", tie_break=True)
    with pytest.raises(PipelineError, match="also in extra_train"):
        run_pipeline("300w", tmp_path, "tiny", out_dir=tmp_path / "out", test_sets=[frames],
                     overrides=[f'extra_train=["csv:{tmp_path}/.:training"]'])
    assert not (tmp_path / "out").exists(), "refused before any stage started"
