"""Registry behaviour against a file SQLite MLflow store (no server): registration, promotion policy,
manual promote/rollback history, idempotency per job id, the bundled default model."""
import json
from pathlib import Path

import numpy as np
import pytest

from landmarks.selection import FACE_SCORES, face_scores, occluded
from registry import ModelNotFound, Registry, RegistryError
from registry.policy import PolicyError, decide, resolve_policy
from registry.store import model_version
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


def make(store, tmp_path, dataset, job, nme, split="dev", policy=None, faces=None, **kw):
    """A finished job run and its model folder, registered through a registry with `policy`; `faces` is written
    as the folder's FACE_SCORES, as a training stage writes it."""
    reg = store["registry"] if policy is None else Registry(
        tracking_uri=store["uri"], cache_dir=store["root"] / "cache", artifact_root=store["root"] / "artifacts",
        policy=policy)
    run = reg.client.create_run(store["experiment"], tags={"sdhrnet.job_id": job})
    reg.client.set_terminated(run.info.run_id)
    result = fake_result(tmp_path / job, run.info.run_id, dataset=dataset, nme=nme, split=split, **kw)
    if faces is not None:
        (result.model_dir / FACE_SCORES).write_text(json.dumps(faces))
    return reg, result, reg.register_result(result, job)


def face_doc(clean, occluded_faces, split="dev"):
    """A FACE_SCORES document from per-face NME arrays (face ids f0, f1, ...)."""
    sets = {name: {"nme": float(np.mean(v)), "per_face": {f"f{i}": float(x) for i, x in enumerate(v)}}
            for name, v in ((split, clean), (occluded(split), occluded_faces))}
    return face_scores(split, sets)


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


def test_better_nme_applies_the_served_model_rule_face_by_face(store, tmp_path):
    rng = np.random.default_rng(3)
    base, base_occ = rng.uniform(0.03, 0.07, 60), rng.uniform(0.06, 0.14, 60)

    def noise():  # zero-mean: a model whose faces scatter around the first one's
        n = rng.normal(0, 0.004, 60)
        return n - n.mean()

    reg, _, v1 = make(store, tmp_path, "reg-faces", "f1", 0.05, faces=face_doc(base, base_occ))
    assert aliases(reg, "reg-faces") == {"champion": str(v1)}

    # a lower mean NME within the champion's noise and worse occluded: the mean alone would promote it
    tied = base - 0.0005 + noise()
    _, _, v2 = make(store, tmp_path, "reg-faces", "f2", float(tied.mean()), faces=face_doc(tied, base_occ * 1.2))
    decision = reg.describe("reg-faces", v2)["decision"]
    assert tied.mean() < base.mean() and decision["promoted"] is False
    assert decision["reason"].startswith("face by face, 'champion'") and "dev occluded" in decision["reason"]
    assert aliases(reg, "reg-faces") == {"champion": str(v1), "challenger": str(v2)}

    # a higher mean NME within the noise, much better occluded: promoted by the tie-break
    level = base + 0.0005 + noise()
    _, _, v3 = make(store, tmp_path, "reg-faces", "f3", float(level.mean()), faces=face_doc(level, base_occ * 0.8))
    decision = reg.describe("reg-faces", v3)["decision"]
    assert level.mean() > base.mean() and decision["promoted"] is True and "within the noise" in decision["reason"]
    assert aliases(reg, "reg-faces") == {"champion": str(v3)}

    # clearly worse on clean faces: the occluded faces do not save it
    worse = level * 1.15
    _, _, v4 = make(store, tmp_path, "reg-faces", "f4", float(worse.mean()), faces=face_doc(worse, base_occ * 0.5))
    assert reg.describe("reg-faces", v4)["decision"]["promoted"] is False
    assert aliases(reg, "reg-faces")["champion"] == str(v3)

    # a version without face scores (logged before them) is compared on the mean NME from its tags
    _, _, v5 = make(store, tmp_path, "reg-faces", "f5", 0.001)
    decision = reg.describe("reg-faces", v5)["decision"]
    assert decision["promoted"] is True and decision["reason"].startswith("NME 0.00100 < champion's")
    inputs = {v: reg.decision_inputs("sdhrnet-reg-faces", model_version(reg.client, "sdhrnet-reg-faces", v))
              for v in (v3, v5)}
    assert inputs[v5]["faces"] is None
    assert inputs[v3]["faces"]["sets"]["dev"]["per_face"]["f0"] == level[0]


def test_promote_within_a_budget_applies_the_rule_too(store, tmp_path):
    rng = np.random.default_rng(5)
    base, occ = rng.uniform(0.03, 0.07, 50), rng.uniform(0.06, 0.14, 50)
    jitter = rng.normal(0, 0.004, 50)
    tied = base - 0.0004 + jitter - jitter.mean()  # lower mean, within the noise, worse occluded
    reg, _, v1 = make(store, tmp_path, "reg-budget", "b1", float(base.mean()), policy="manual",
                      faces=face_doc(base, occ))
    make(store, tmp_path, "reg-budget", "b2", float(tied.mean()), policy="manual", faces=face_doc(tied, occ * 1.3))
    best = reg.best_within("reg-budget", {"params": 10_000})
    assert best["version"] == str(v1) and best["why"].startswith("face by face, 'v1'")
    event = reg.promote_within("reg-budget", {"params": 10_000}, who="carol")
    assert (event["to"], event["who"]) == (str(v1), "carol") and event["reason"].endswith("within params <= 10000")


def test_face_by_face_compares_only_the_faces_both_scored():
    rng = np.random.default_rng(4)
    clean, occ = rng.uniform(0.03, 0.07, 40), rng.uniform(0.06, 0.14, 40)
    champion = face_doc(clean, occ)
    # scored on the first 20 faces only, each 10% better there; the tags' means alone would keep the champion
    part = face_doc(clean[:20] * 0.9, occ[:20] * 0.9)
    promoted, reason = decide("better-nme", {"nme": 1.0, "split": "dev", "faces": part},
                              {"nme": 0.0, "split": "dev", "faces": champion})
    assert promoted and reason.startswith("face by face, 'candidate': lowest dev NME")
    elsewhere = face_doc(clean, occ, split="test")
    promoted, reason = decide("better-nme", {"nme": 0.01, "split": "dev", "faces": elsewhere},
                              {"nme": 0.02, "split": "dev", "faces": champion})
    # falls back to the tags' means, and says why
    assert promoted and "(not comparable: split 'dev' and 'test')" in reason
    disjoint = face_doc(clean, occ)
    disjoint["sets"] = {k: {**v, "per_face": {f"g{f}": x for f, x in v["per_face"].items()}}
                        for k, v in disjoint["sets"].items()}
    promoted, reason = decide("better-nme", {"nme": 0.03, "split": "dev", "faces": disjoint},
                              {"nme": 0.02, "split": "dev", "faces": champion})
    assert not promoted and "(0 faces scored by all of them on 'dev', fewer than 10)" in reason


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
