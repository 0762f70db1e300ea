"""End to end with real processes: `sdhrnet serve` (uvicorn), a `sdhrnet worker`, an `mlflow server` and
Redis (fixtures from tests/services.py). Every endpoint, the error cases, champion following and a job
that the worker really runs (an evaluate job, which needs no training)."""
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.fake_models import FakeResult
from tests.service_support import b64, build_tiny_model, png_bytes
from tests.services import free_port, wait_api_ready, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[1]
DATASET = "csv"  # a layout the evaluator knows, and a registered model no other test uses
KEY = {"X-API-Key": "e2e-key"}
BOX = [20, 10, 140, 110]




def register_versions(tmp_path: Path, tracking_uri: str) -> None:
    """v1 comes from a run that carries model_files/ like a training job's; v2 is worse and stays challenger."""
    from mlflow.tracking import MlflowClient

    from registry import Registry

    registry = Registry(tracking_uri=tracking_uri, cache_dir=tmp_path / "registry-cache")
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("service-e2e") or client.get_experiment(
        client.create_experiment("service-e2e"))
    for version, nme in ((1, 0.2), (2, 0.9)):
        folder = build_tiny_model(tmp_path / f"v{version}", dataset=DATASET, seed=version)
        card = json.loads((folder / "model_card.json").read_text())
        card["metrics"] = {"nme": nme, "fr": 0.1, "auc": 0.3, "split": "test"}
        (folder / "model_card.json").write_text(json.dumps(card))
        run = client.create_run(experiment.experiment_id, run_name=f"service-e2e-v{version}")
        client.log_artifacts(run.info.run_id, str(folder), "model_files")
        client.set_terminated(run.info.run_id)
        registry.register_result(FakeResult(run.info.run_id, DATASET, 68, 64, card["metrics"], folder,
                                            params=100, macs=1000, job_id=f"service-e2e-{version}", card=card))


@pytest.fixture()
def stack(tmp_path, redis_url, mlflow_server, worker_factory, monkeypatch):
    home = tmp_path / "home"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url, "REDIS_URL": redis_url, "SDHRNET_HOME": str(home),
           "SDHRNET_API_KEYS": "e2e-key", "SDHRNET_MODEL_POLL_SECONDS": "0.5", "SDHRNET_PRELOAD_DATASETS": DATASET,
           "SDHRNET_DEFAULT_DATASET": DATASET, "SDHRNET_EVALUATE_SYNC_LIMIT": "2", "SDHRNET_MAX_FACES": "4",
           "SDHRNET_MAX_REQUEST_BYTES": "2000000", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "SDHRNET_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from sdhrnet.settings import get_settings
    get_settings.cache_clear()
    register_versions(tmp_path, mlflow_server.url)
    worker = worker_factory(env, tmp_path / "worker.log")
    port = free_port()
    log = tmp_path / "api.log"
    api = subprocess.Popen([sys.executable, "-m", "sdhrnet.cli", "serve", "--port", str(port)], cwd=tmp_path,
                           env={**os.environ, **env}, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_api_ready(base, api, log, 120, "the API to load the champion", interval=0.3)
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client, worker, log
    finally:
        api.terminate()
        api.wait(30)
        get_settings.cache_clear()


def problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def csv_zip(n: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        rows = ["," + ",".join(f"c{i}" for i in range(136))]
        for i in range(n):
            zf.writestr(f"test/f{i}.png", png_bytes(seed=i))
            rows.append(f"f{i}.png," + ",".join(f"{v:.2f}" for v in rng.uniform(30, 110, 136)))
        zf.writestr("test_frames_keypoints.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def wait_job(client, job_id, states, timeout=240):
    def done():
        status = client.get(f"/jobs/{job_id}", headers=KEY).json()
        return status if status["state"] in states else None
    return wait_until(done, timeout, f"job {job_id} to reach {states}", interval=0.5)


def test_every_endpoint_against_real_processes(stack):
    from registry import promote

    client, worker, log = stack
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/readyz").json()["models"][DATASET]["version"] == "1"
    assert client.get("/").status_code == 200 and client.get("/openapi.json").status_code == 200

    # /align, both forms, and what a client gets wrong
    image = png_bytes()
    r = client.post("/align", files={"image": ("f.png", image, "image/png")}, data={"boxes": json.dumps([BOX])})
    assert r.status_code == 200, r.text
    assert r.json()["model"]["name"] == f"sdhrnet-{DATASET}" and r.json()["model"]["version"] == "1"
    assert len(r.json()["faces"][0]["landmarks"]) == 68
    assert client.post("/align", json={"image": b64(image), "boxes": [BOX, BOX]}).status_code == 200
    problem(client.post("/align", files={"image": ("f.gif", b"GIF89a....", "image/gif")}, data={"boxes": "[[1,1,9,9]]"}), 415)
    problem(client.post("/align", json={"image": "@@", "boxes": [BOX]}), 422)
    problem(client.post("/align", json={"image": b64(image), "boxes": [[10, 10, 5, 50]]}), 422)
    problem(client.post("/align", json={"image": b64(image), "boxes": [[900, 900, 990, 990]]}), 422)
    problem(client.post("/align", json={"image": b64(image), "boxes": [BOX] * 5}), 422)
    problem(client.post("/align", content=b'{"image": "x", "boxes": [[NaN, 1, 5, 5]]}',
                        headers={"content-type": "application/json"}), 422)
    problem(client.post("/align", files={"image": ("f.png", bytes(2_100_000), "image/png")}, data={"boxes": "[]"}), 413)
    assert "/jobs/slim" in problem(client.post("/align?dataset=wflw", json={"image": b64(image), "boxes": [BOX]}),
                                   503)["detail"]
    problem(client.post("/align?dataset=no-such-layout", json={"image": b64(image), "boxes": [BOX]}), 404)

    # models: list, promote through the API, a promotion made elsewhere is followed, rollback
    listed = client.get("/models").json()
    ours = next(m for m in listed["models"] if m["name"] == f"sdhrnet-{DATASET}")
    assert {v["version"] for v in ours["versions"]} == {"1", "2"} and ours["challenger"] == "2"
    problem(client.post(f"/models/{DATASET}/promote", json={"version": 2}), 401)
    r = client.post(f"/models/{DATASET}/promote", json={"version": 2}, headers=KEY)
    assert r.status_code == 200 and r.json()["served"][DATASET]["version"] == "2"
    assert client.post("/align", json={"image": b64(image), "boxes": [BOX]}).json()["model"]["version"] == "2"
    promote(DATASET, 1, who="another-replica")
    wait_until(lambda: client.post("/align", json={"image": b64(image), "boxes": [BOX]}).json()["model"]["version"] == "1",
               30, "the API to follow the champion alias")
    r = client.post(f"/models/{DATASET}/rollback", headers=KEY)
    assert r.status_code == 200 and r.json()["served"][DATASET]["version"] == "2", r.text
    problem(client.post(f"/models/{DATASET}/promote", json={"version": 99}, headers=KEY), 404)
    client.post(f"/models/{DATASET}/promote", json={"version": 1}, headers=KEY)

    # evaluate: inline, and as a job run by the real worker
    rng = np.random.default_rng(1)
    items = [{"image": b64(png_bytes(seed=i)), "box": BOX, "landmarks": rng.uniform(30, 110, (68, 2)).tolist()}
             for i in range(2)]
    problem(client.post("/evaluate", json={"items": items}), 401)
    r = client.post("/evaluate", json={"items": items}, headers=KEY)
    assert r.status_code == 200 and r.json()["n"] == 2, r.text
    inline_model = r.json()["model"]
    r = client.post("/evaluate", files={"archive": ("set.zip", csv_zip(3), "application/zip")},
                    data={"layout": "csv", "split": "test"}, headers=KEY)
    assert r.status_code == 202, r.text
    status = wait_job(client, r.json()["job_id"], {"SUCCESS", "FAILURE"})
    assert status["state"] == "SUCCESS", json.dumps(status)[:2000] + worker.tail()
    assert status["result"]["n"] == 3 and status["result"]["nme"] > 0
    assert status["result"]["model"] == inline_model and "onnx" not in status["result"], "reads as the inline report"
    many = [{**item, "id": f"face-{i}"} for i, item in enumerate(items + items[:1])]  # over the inline limit
    r = client.post("/evaluate", json={"items": many}, headers=KEY)
    assert r.status_code == 202, r.text
    status = wait_job(client, r.json()["job_id"], {"SUCCESS", "FAILURE"})
    assert status["state"] == "SUCCESS", json.dumps(status)[:2000] + worker.tail()
    assert sorted(status["result"]["per_image"]) == ["face-0", "face-1", "face-2"], "the job keeps the items' ids"
    from sdhrnet.uploads import uploads_dir
    assert uploads_dir().is_dir()
    wait_until(lambda: not any(uploads_dir().iterdir()), 30, "the worker to remove the sets of the ended jobs")

    # training jobs: keys, validation, queue, status, cancel
    spec = {"dataset": DATASET, "data_root": "/nonexistent", "preset": "tiny"}
    problem(client.post("/jobs/slim", json=spec), 401)
    problem(client.post("/jobs/distill", json=spec, headers=KEY), 422)
    accepted = [client.post(f"/jobs/{kind}", json={**spec, "slim_run": "a", "teacher_run": "b"} if kind == "distill"
                            else spec, headers=KEY) for kind in ("slim", "teacher", "distill")]
    assert all(r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['job_id']}" for r in accepted)
    ids = [r.json()["job_id"] for r in accepted]
    for job_id in ids:  # 409 once the worker has already failed the job (its data_root does not exist)
        assert client.delete(f"/jobs/{job_id}", headers=KEY).status_code in (202, 409)
    listed_ids = {j["job_id"] for j in client.get("/jobs", headers=KEY).json()["jobs"]}
    assert set(ids) <= listed_ids
    for job_id in ids:
        final = wait_job(client, job_id, {"CANCELLED", "FAILURE", "SUCCESS", "REVOKED"}, timeout=120)
        assert final["state"] in {"CANCELLED", "FAILURE"}, final
    problem(client.get("/jobs/not-a-job", headers=KEY), 404)

    metrics = client.get("/metrics").text
    assert f'sdhrnet_model_swaps_total{{dataset="{DATASET}"}}' in metrics
    assert 'route="/align",status="413"' in metrics and 'route="/jobs/slim",status="202"' in metrics
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
