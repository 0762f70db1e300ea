"""Registry behaviour against a file SQLite MLflow store (no server): registration, promotion policy,
manual promote/rollback history, idempotency per job id, the bundled default model."""
import json
from pathlib import Path

import pytest

from registry import ModelNotFound, Registry, RegistryError
from registry.policy import PolicyError, decide, resolve_policy
from registry.tracking import mlflow  # imported through the registry so that telemetry is off
from tests.fake_models import fake_result
from tests.service_support import build_tiny_model

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    reg = Registry(tracking_uri=uri, cache_dir=root / "cache", artifact_root=root / "artifacts")
    experiment = reg.client.create_experiment("jobs", artifact_location=(root / "artifacts" / "jobs").as_uri())
    return {"root": root, "uri": uri, "registry": reg, "experiment": experiment}


def make(store, tmp_path, dataset, job, nme, split="dev", policy=None, **kw):
    """A finished job run and its model folder, registered through a registry with `policy`."""
    reg = store["registry"] if policy is None else Registry(
        tracking_uri=store["uri"], cache_dir=store["root"] / "cache", artifact_root=store["root"] / "artifacts",
        policy=policy)
    run = reg.client.create_run(store["experiment"], tags={"sdhrnet.job_id": job})
    reg.client.set_terminated(run.info.run_id)
    result = fake_result(tmp_path / job, run.info.run_id, dataset=dataset, nme=nme, split=split, **kw)
    return reg, result, reg.register_result(result, job)


def aliases(reg, dataset):
    (model,) = reg.list_models(dataset)
    return model["aliases"]


def test_first_version_is_champion_with_tags_files_and_local_onnx(store, tmp_path):
    reg, result, version = make(store, tmp_path, "reg-first", "job-a", 0.08, input_size=32, num_landmarks=68)
    assert version == 1
    assert aliases(reg, "reg-first") == {"champion": "1"}
    info = reg.describe("reg-first", 1)
    assert info["metrics"] == {"nme": 0.08, "fr": 0.05, "auc": 0.5, "split": "dev"}
    assert (info["job_id"], info["num_landmarks"], info["input_size"], info["params"], info["macs"]) == \
        ("job-a", 68, 32, 1000, 20000)
    assert info["run_id"] == result.run_id and info["decision"]["promoted"] is True

    served = reg.champion("reg-first")
    assert (served.name, served.version, served.alias, served.run_id) == ("sdhrnet-reg-first", "1", "champion",
                                                                         result.run_id)
    assert served.onnx_path.read_bytes() == (result.model_dir / "model.onnx").read_bytes()
    assert served.card["num_landmarks"] == 68 and served.input_size == 32
    assert reg.champion("reg-first").onnx_path == served.onnx_path  # cached per version

    # the version is a full MLflow model: training files ride along, requirements are the pinned ones
    model_dir = Path(mlflow.artifacts.download_artifacts("models:/sdhrnet-reg-first/1", dst_path=str(tmp_path / "dl"),
                                                         tracking_uri=store["uri"]))
    files = {p.name for p in model_dir.rglob("*") if p.is_file()}
    assert {"MLmodel", "model.onnx", "weights.pt", "spec.json", "config.json", "model_card.json"} <= files
    requirements = (model_dir / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "torch" not in requirements


def test_better_model_promotes_worse_or_other_split_stays_challenger(store, tmp_path):
    reg, _, v1 = make(store, tmp_path, "reg-policy", "p1", 0.10)
    _, _, v2 = make(store, tmp_path, "reg-policy", "p2", 0.20)
    assert aliases(reg, "reg-policy") == {"champion": str(v1), "challenger": str(v2)}
    assert "0.20000 >= champion's 0.10000" in reg.describe("reg-policy", v2)["decision"]["reason"]
    _, _, v3 = make(store, tmp_path, "reg-policy", "p3", 0.01, split="common")
    assert aliases(reg, "reg-policy") == {"champion": str(v1), "challenger": str(v3)}
    assert "not comparable" in reg.describe("reg-policy", v3)["decision"]["reason"]
    _, _, v4 = make(store, tmp_path, "reg-policy", "p4", 0.05)
    assert aliases(reg, "reg-policy") == {"champion": str(v4)}
    (model,) = reg.list_models("reg-policy")
    assert [e["action"] for e in model["history"]] == ["auto-promote", "auto-promote"]
    assert (model["history"][-1]["from"], model["history"][-1]["to"]) == (str(v1), str(v4))


def test_same_job_registers_once_and_finishes_an_interrupted_decision(store, tmp_path):
    reg, result, v1 = make(store, tmp_path, "reg-idem", "same-job", 0.1)
    assert reg.register_result(result, "same-job") == v1
    (model,) = reg.list_models("reg-idem")
    assert [v["version"] for v in model["versions"]] == [str(v1)]
    # a worker died after creating the version but before deciding: the redelivery decides
    reg.client.delete_registered_model_alias("sdhrnet-reg-idem", "champion")
    reg.client.delete_model_version_tag("sdhrnet-reg-idem", str(v1), "promotion")
    assert reg.register_result(result, "same-job") == v1
    assert aliases(reg, "reg-idem") == {"champion": str(v1)}
    assert len(reg.list_models("reg-idem")[0]["versions"]) == 1


def test_manual_promote_and_rollback_are_recorded(store, tmp_path):
    reg, _, v1 = make(store, tmp_path, "reg-manual", "m1", 0.1)
    _, _, v2 = make(store, tmp_path, "reg-manual", "m2", 0.3)
    event = reg.promote("reg-manual", v2, who="alice")
    assert (event["from"], event["to"], event["who"]) == (str(v1), str(v2), "alice")
    assert aliases(reg, "reg-manual") == {"champion": str(v2)}
    assert reg.describe("reg-manual", v2)["tags"]["promoted_by"] == "alice"
    event = reg.rollback("reg-manual", who="bob")
    assert (event["action"], event["from"], event["to"], event["who"]) == ("rollback", str(v2), str(v1), "bob")
    assert aliases(reg, "reg-manual")["champion"] == str(v1)
    with pytest.raises(RegistryError, match="no earlier champion"):
        reg.rollback("reg-manual", who="bob")
    with pytest.raises(ModelNotFound, match="no version '99'"):
        reg.promote("reg-manual", 99, who="alice")
    with pytest.raises(ModelNotFound, match="no models registered"):
        reg.rollback("reg-nothing", who="bob")
    history = reg.list_models("reg-manual")[0]["history"]
    assert [(e["action"], e["who"]) for e in history] == [("auto-promote", "policy"), ("promote", "alice"),
                                                          ("rollback", "bob")]
    assert all(e["when"].endswith("+00:00") for e in history)


def test_policies(store, tmp_path):
    assert decide("better-nme", {"nme": 0.1, "split": "a"}, None)[0]
    assert not decide("better-nme", {"nme": 0.1, "split": "a"}, {"nme": 0.1, "split": "a"})[0]
    assert decide("always", {"nme": 0.9, "split": "a"}, {"nme": 0.1, "split": "a"})[0]
    assert not decide("manual", {"nme": 0.01, "split": "a"}, None)[0]
    with pytest.raises(PolicyError, match="use one of"):
        resolve_policy("sometimes")
    reg, _, v1 = make(store, tmp_path, "reg-handoff", "h1", 0.1, policy="manual")
    assert aliases(reg, "reg-handoff") == {"challenger": str(v1)}
    reg, _, v2 = make(store, tmp_path, "reg-handoff", "h2", 0.5, policy="always")
    assert aliases(reg, "reg-handoff") == {"champion": str(v2)}


def test_bundled_default_registers_only_into_an_empty_dataset(store, tmp_path):
    folder = build_tiny_model(tmp_path / "default_model", dataset="reg-default", nme=0.07, split="full")
    reg = Registry(tracking_uri=store["uri"], cache_dir=store["root"] / "cache",
                   artifact_root=store["root"] / "artifacts", policy="manual")
    version = reg.register_default_if_empty(folder)
    assert version == 1
    assert reg.register_default_if_empty(folder) == 1  # the same bundled model, not a second version
    served = reg.champion("reg-default")
    assert served.version == "1" and served.run_id and json.loads((folder / "model_card.json").read_text()) == served.card
    info = reg.describe("reg-default", 1)
    assert info["source"] == "bundled-default" and info["tags"]["promoted_by"] == "system"

    make(store, tmp_path, "reg-busy", "b1", 0.1)
    other = build_tiny_model(tmp_path / "default_busy", dataset="reg-busy")
    assert reg.register_default_if_empty(other) is None
    assert reg.champion("reg-nobody") is None


def test_the_start_banner_says_registered_now_then_already_registered_on_a_restart(store, tmp_path, capsys):
    from service.cli_run import register_default_model

    folder = build_tiny_model(tmp_path / "default_model", dataset="reg-banner", nme=0.07, split="full")
    reg = Registry(tracking_uri=store["uri"], cache_dir=store["root"] / "cache",
                   artifact_root=store["root"] / "artifacts", policy="manual")
    register_default_model(folder, registry=reg)
    first = capsys.readouterr().out
    assert "registered now as sdhrnet-reg-banner version 1" in first and "already" not in first, first
    register_default_model(folder, registry=reg)  # what `sdhrnet run` prints on a restart
    again = capsys.readouterr().out
    assert "already registered as sdhrnet-reg-banner version 1" in again and "registered now" not in again, again
    assert len(reg.client.search_model_versions("name = 'sdhrnet-reg-banner'")) == 1

    make(store, tmp_path, "reg-banner-busy", "bb1", 0.1)
    other = build_tiny_model(tmp_path / "default_busy", dataset="reg-banner-busy")
    register_default_model(other, registry=reg)
    busy = capsys.readouterr().out
    assert "already holds trained models" in busy and "not registered" in busy, busy


def test_stages_started_together_on_a_fresh_home_share_one_new_store(tmp_path):
    """Teacher and slimming started at the same moment on a fresh SDHRNET_HOME both create the SQLite store: one
    used to fail on the schema migration ("duplicate column name")."""
    import subprocess
    import sys
    import time

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    script = ("import pathlib, sys, time\n"
              "from registry.tracking import client, dataset_experiment\n"
              "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.005)\n"
              "c = client(sys.argv[1])\n"
              "print(c.create_run(dataset_experiment(c, '300w')).info.run_id)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, uri, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
             for _ in range(4)]
    time.sleep(3)  # every process has imported mlflow and waits for the start signal
    go.touch()
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-600:] for _, err in outcomes]
    assert len({out.strip() for out, _ in outcomes}) == 4
