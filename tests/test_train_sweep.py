"""`sdhrnet sweep` on the tiny preset: one slim run's supernet pruned at two parameter budgets, tracked in a real
(SQLite) MLflow store."""
import json
import math

import pytest

from landmarks.selection import FACE_SCORES, choose_among, read_face_scores
from trainer.tracking import client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(tracking_home, shared_data):
    from trainer import jobs
    from trainer.complexity import count_params
    from trainer.model_files import load_model
    from trainer.model_uri import resolve_model_dir
    from trainer.nets.prune import build, prune, threshold_for_budget

    root = str(shared_data / "300w")
    slim = jobs.run_slim({"dataset": "300w", "data_root": root, "preset": "tiny", "run_name": "s"})
    supernet_params = slim.card["supernet"]["params"]
    # two budgets between the smallest network that keeps a path through every stage and the supernet: after two
    # tiny epochs the alphas have hardly separated, so that smallest network is still over half the supernet
    supernet, _ = load_model(resolve_model_dir(f"runs:/{slim.run_id}/models/supernet"))
    smallest = count_params(build(prune(supernet, threshold_for_budget(supernet, 0))))
    assert smallest < supernet_params
    loose, tight = (int(smallest + (supernet_params - smallest) * f) for f in (0.75, 0.25))
    params = {"dataset": "300w", "data_root": root, "preset": "tiny", "run_name": "sw", "slim_run": slim.run_id,
              "budgets": [f"params={loose}", f"params={tight}"], "overrides": {"sweep_int8": True}}
    return {"params": params, "result": jobs.run_sweep(params), "loose": loose, "tight": tight,
            "supernet_params": supernet_params}


def _artifacts(run_id, path=""):
    out = []
    for f in client().list_artifacts(run_id, path):
        out.extend(_artifacts(run_id, f.path) if f.is_dir else [f.path])
    return set(out)


def test_each_budget_is_met_and_the_tighter_one_is_smaller(sweep, tmp_path):
    result = sweep["result"]
    rows = {r["limit"]: r for r in json.loads(open(client().download_artifacts(
        result.run_id, "sweep/frontier.json", str(tmp_path))).read())}
    loose, tight = rows[sweep["loose"]], rows[sweep["tight"]]
    for row, limit in ((loose, sweep["loose"]), (tight, sweep["tight"])):
        assert row["met"] and row["params"] <= limit
        assert row["macs"] > 0 and row["ms"] > 0 and math.isfinite(row["nme"]) and row["nme"] > 0  # tiny: barely trained
    assert tight["params"] < loose["params"] < sweep["supernet_params"]
    assert tight["macs"] <= loose["macs"]


def test_the_run_keeps_each_network_the_table_and_the_plot(sweep, tmp_path):
    from trainer.model_files import load_model
    from trainer.model_uri import resolve_model_dir
    from trainer.complexity import count_params

    result = sweep["result"]
    run = client().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["sdhrnet.kind"] == "sweep"
    files = _artifacts(result.run_id)
    assert {"sweep/frontier.json", "sweep/frontier.csv", "sweep/frontier.png", "model_files/model.onnx"} <= files
    assert client().download_artifacts(result.run_id, "sweep/frontier.png", str(tmp_path)).endswith(".png")
    rows = result.card["sweep"]
    for row in rows:
        assert f"models/{row['label']}/model.onnx" in files
        net, card = load_model(resolve_model_dir(f"runs:/{result.run_id}/models/{row['label']}"))
        assert count_params(net) == row["params"] and card["metrics"]["nme"] == pytest.approx(row["nme"])
    best = min(rows, key=lambda r: r["nme"])
    assert result.card["best_budget"] == best["label"] and result.params == best["params"]
    assert result.metrics["nme"] == pytest.approx(best["nme"], abs=1e-6), "the stage's model is the most accurate one"
    # each budget's fine-tune has its own curve in the one run
    assert {f"{r['label']}/val_nme" for r in rows} <= set(run.data.metrics)


def test_every_network_has_an_int8_point_kept_only_where_it_loses_little(sweep, tmp_path):
    result = sweep["result"]
    files = _artifacts(result.run_id)
    for row in result.card["sweep"]:
        assert row["int8_ms"] > 0 and math.isfinite(row["int8_nme"]) and math.isfinite(row["onnx_nme"])
        assert row["int8_kept"] == (row["int8_nme"] - row["onnx_nme"] <= 0.001)
        folder = f"models/{row['label']}-int8"
        assert (f"{folder}/model.onnx" in files) == row["int8_kept"]
        if row["int8_kept"]:
            card = json.loads(open(client().download_artifacts(result.run_id, f"{folder}/model_card.json",
                                                               str(tmp_path))).read())
            assert card["quantized"]["calibration_faces"] > 0
    csv_header = open(client().download_artifacts(result.run_id, "sweep/frontier.csv", str(tmp_path))).readline()
    assert {"int8_nme", "int8_ms", "int8_kept"} <= set(csv_header.strip().split(","))


def test_rerunning_the_sweep_returns_the_finished_run_without_training(sweep):
    from trainer import jobs

    def no_training(info):
        raise AssertionError(f"trained again: {info}")

    again = jobs.run_sweep(sweep["params"], jobs.JobHooks(progress=no_training))
    assert again.run_id == sweep["result"].run_id and again.metrics == sweep["result"].metrics


def test_a_malformed_budget_is_refused_before_a_run_exists(sweep):
    from trainer import jobs

    for bad in (["flops=3"], ["params=-1"], ["params=1000", "params=1000"], []):
        with pytest.raises(ValueError):
            jobs.run_sweep({**sweep["params"], "run_name": "bad", "budgets": bad})
    # a slim_run that names no run (the supernet is a slim run's artifact): the API refuses it with the same words
    with pytest.raises(ValueError, match="'deadbeef' names no run"):
        jobs.run_sweep({**sweep["params"], "run_name": "bad", "slim_run": "deadbeef"})
    assert not client().search_runs([e.experiment_id for e in client().search_experiments()],
                                     "tags.mlflow.runName = 'bad'")


def test_every_budget_becomes_a_version_tagged_with_its_costs_and_a_budget_promotes_the_best_that_fits(sweep):
    from registry import NothingWithinBudget
    from registry.store import Registry

    result, rows = sweep["result"], sweep["result"].card["sweep"]
    assert sorted(m.card["budget"] for m in [result, *result.members]) == sorted(r["label"] for r in rows)
    reg = Registry(policy="manual")  # nothing promoted by the policy: only the budget decides
    versions = {m.card["budget"]: reg.describe("300w", reg.register_result(m, f"sweep-job.{m.card['budget']}"))
                for m in [result, *result.members]}
    for row in rows:
        v = versions[row["label"]]
        assert v["params"] == row["params"] and v["macs"] == row["macs"] and v["budget"] == row["label"]
        assert v["ms"] == pytest.approx(row["ms"], abs=1e-3) and v["metrics"]["nme"] == pytest.approx(row["nme"])

    faces = {m.card["budget"]: read_face_scores(m.model_dir / FACE_SCORES) for m in [result, *result.members]}

    def expected(limit):  # the served-model rule on the members' own face scores, oldest version first
        fits = sorted((r["label"] for r in rows if r["params"] <= limit), key=lambda b: int(versions[b]["version"]))
        if len(fits) == 1:
            return versions[fits[0]]["version"]
        return versions[choose_among({b: faces[b] for b in fits}).served]["version"]

    for limit in (sweep["tight"], sweep["loose"]):
        event = reg.promote_within("300w", {"params": limit}, who="test")
        assert reg.list_models("300w")[0]["champion"] == expected(limit)
        if sum(r["params"] <= limit for r in rows) > 1:  # the members' face scores were found and compared
            # no event when the pick already was the champion: promoting it again records nothing
            why = event["reason"] if event is not None else reg.best_within("300w", {"params": limit})["why"]
            assert why.startswith("face by face, "), why
    with pytest.raises(NothingWithinBudget, match="params"):
        reg.promote_within("300w", {"params": min(r["params"] for r in rows) - 1})
    with pytest.raises(NothingWithinBudget, match="ms"):
        reg.promote_within("300w", {"ms": min(r["ms"] for r in rows) / 10})
