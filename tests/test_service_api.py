"""The API in-process (ASGI) with a tiny ONNX model and in-memory registry/job backends."""
import io
import json
import zipfile

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sdhrnet.settings import ServiceSettings
from service.app import create_app
from tests.service_support import FakeJobs, FakeRegistry, b64, build_tiny_model, png_bytes

KEY = {"X-API-Key": "secret-key"}
BOX = [20, 10, 140, 110]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return [build_tiny_model(root / "v1", seed=1), build_tiny_model(root / "v2", seed=2)]


@pytest.fixture()
def registry(model_dirs):
    return FakeRegistry({"300w": model_dirs})


@pytest.fixture()
def jobs():
    return FakeJobs()


@pytest.fixture()
def client(registry, jobs):
    settings = ServiceSettings(model_poll_seconds=0, max_request_bytes=300_000, evaluate_sync_limit=4, max_faces=4)
    app = create_app(settings, registry=registry, jobs=jobs, api_keys=frozenset({"secret-key"}))
    with TestClient(app) as c:
        yield c


def assert_problem(response, status, *words):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    for word in words:
        assert word.lower() in body["detail"].lower(), body["detail"]
    return body


def test_align_multipart_and_json_agree(client):
    image = png_bytes()
    r1 = client.post("/align", files={"image": ("face.png", image, "image/png")}, data={"boxes": json.dumps([BOX])})
    r2 = client.post("/align", json={"image": b64(image), "boxes": [BOX]})
    assert r1.status_code == r2.status_code == 200, r1.text
    a, b = r1.json(), r2.json()
    assert a["faces"] == b["faces"]
    face = a["faces"][0]
    assert face["box"] == [float(v) for v in BOX]
    assert np.asarray(face["landmarks"]).shape == (68, 2) and len(face["confidence"]) == 68
    assert all(isinstance(v, float) for v in face["landmarks"][0])
    assert a["model"] == {"name": "sdhrnet-300w", "version": "2", "alias": "champion", "run_id": "run2",
                          "dataset": "300w", "num_landmarks": 68}
    assert {"decode", "inference", "total"} <= set(a["timing_ms"])


def test_align_matches_the_shared_landmarker(client, model_dirs):
    from landmarks.landmarker import OnnxLandmarker
    from landmarks.passes import eye_indices_for

    image = png_bytes()
    boxes = [BOX, [30, 20, 100, 100]]
    r = client.post("/align", json={"image": b64(image), "boxes": boxes})
    card = json.loads((model_dirs[1] / "model_card.json").read_text())
    # boxes sent: one pass, and a second on the faces whose points look tilted (the service's default)
    expected, conf = OnnxLandmarker(model_dirs[1] / "model.onnx", 64, eye_indices=eye_indices_for(card)).predict(
        cv2.cvtColor(cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), boxes,
        recrop=None)
    got = np.asarray([f["landmarks"] for f in r.json()["faces"]])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose([f["confidence"] for f in r.json()["faces"]], conf, atol=1e-5)


@pytest.mark.parametrize("body, status, words", [
    ({"image": "%%%not base64", "boxes": [BOX]}, 422, ["base64"]),
    ({"image": b64(b"GIF89a-not-supported"), "boxes": [BOX]}, 415, ["supported"]),
    ({"image": b64(b"\x89PNG\r\n\x1a\ntruncated"), "boxes": [BOX]}, 422, ["decoded"]),
    ({"image": b64(png_bytes()), "boxes": [[50, 50, 40, 60]]}, 422, ["degenerate"]),
    ({"image": b64(png_bytes()), "boxes": [[500, 500, 600, 600]]}, 422, ["outside"]),
    ({"image": b64(png_bytes()), "boxes": [BOX] * 5}, 422, ["at most 4", "SDHRNET_MAX_FACES"]),
    ({"image": b64(png_bytes()), "boxes": []}, 422, ["boxes"]),
    ({"boxes": [BOX]}, 422, ["image"]),
    ({"image": b64(png_bytes()), "boxes": [[1, 2, 3]]}, 422, ["boxes"]),
])
def test_align_rejects_bad_input_with_problem_json(client, body, status, words):
    assert_problem(client.post("/align", json=body), status, *words)


def test_align_rejects_nan_boxes_and_bad_forms(client):
    nan_body = '{"image": "%s", "boxes": [[NaN, 1, 50, 60]]}' % b64(png_bytes())
    assert_problem(client.post("/align", content=nan_body, headers={"content-type": "application/json"}), 422, "NaN")
    assert_problem(client.post("/align", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert_problem(client.post("/align", content=b"hello", headers={"content-type": "text/plain"}), 415)
    assert_problem(client.post("/align", files={"image": ("a.txt", b"hello", "text/plain")},
                               data={"boxes": json.dumps([BOX])}), 415)
    assert_problem(client.post("/align", files={"image": ("a.png", png_bytes(), "image/png")},
                               data={"boxes": "[[1, 2"}), 422, "JSON")
    assert_problem(client.post("/align", data={"boxes": json.dumps([BOX])},
                               files={"other": ("a.png", png_bytes(), "image/png")}), 422, "image")
    assert_problem(client.post("/align", files={"image": ("a.png", png_bytes(), "image/png"),
                                                "boxes": ("boxes.json", json.dumps([BOX]).encode(), "application/json")}),
                   422, "'boxes' is a file", "text field")
    # the multipart form says where in 'boxes' the mistake is, as the JSON body does
    assert_problem(client.post("/align", files={"image": ("a.png", png_bytes(), "image/png")},
                               data={"boxes": '[[1, 2, 3, "x"]]'}), 422, "boxes.0.3")


def test_align_accepts_base64_wrapped_in_lines(client):
    """`base64 face.jpg` (no -w0) and MIME wrap the text every 76 characters."""
    text = b64(png_bytes())
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76)) + "\n"
    assert "\n" in wrapped
    one_line = client.post("/align", json={"image": text, "boxes": [BOX]})
    in_lines = client.post("/align", json={"image": wrapped, "boxes": [BOX]})
    assert in_lines.status_code == one_line.status_code == 200, in_lines.text
    assert in_lines.json()["faces"][0]["landmarks"] == one_line.json()["faces"][0]["landmarks"]
    assert_problem(client.post("/align", json={"image": text[:40] + "*" + text[40:], "boxes": [BOX]}), 422, "base64")
    assert_problem(client.post("/align?dataset=NOT%20VALID", json={"image": b64(png_bytes()), "boxes": [BOX]}), 422)


def test_request_size_limit(client):
    big = b"\x89PNG\r\n\x1a\n" + bytes(400_000)
    assert_problem(client.post("/align", files={"image": ("a.png", big, "image/png")}, data={"boxes": "[[1,1,9,9]]"}),
                   413, "SDHRNET_MAX_REQUEST_BYTES")
    # /align has no archive limit: its message names only the setting that applies
    assert "ARCHIVE" not in client.post("/align", files={"image": ("a.png", big, "image/png")}).json()["detail"]

    def chunks():  # no Content-Length: the streamed body is counted
        for _ in range(40):
            yield bytes(10_000)
    assert_problem(client.post("/align", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert 'route="/align",status="413"' in client.get("/metrics").text


def test_no_model_for_dataset_is_503_with_instructions(client):
    body = assert_problem(client.post("/align?dataset=wflw", json={"image": b64(png_bytes()), "boxes": [BOX]}), 503,
                          "promote", "/jobs/slim")
    assert body["dataset"] == "wflw"


def test_align_key_is_configurable(registry, jobs):
    settings = ServiceSettings(model_poll_seconds=0, align_requires_key=True)
    with TestClient(create_app(settings, registry=registry, jobs=jobs, api_keys=frozenset({"k"}))) as c:
        body = {"image": b64(png_bytes()), "boxes": [BOX]}
        assert_problem(c.post("/align", json=body), 401, "X-API-Key")
        assert_problem(c.post("/align", json=body, headers={"X-API-Key": "wrong"}), 401, "unknown")
        assert c.post("/align", json=body, headers={"X-API-Key": "k"}).status_code == 200
    with TestClient(create_app(ServiceSettings(model_poll_seconds=0), registry=registry, jobs=jobs,
                               api_keys=frozenset({"k"}))) as c:  # open /align: no key is fine, a wrong one is not
        assert c.post("/align", json=body).status_code == 200
        assert c.post("/align", json=body, headers={"X-API-Key": "k"}).status_code == 200
        assert_problem(c.post("/align", json=body, headers={"X-API-Key": "wrong"}), 401, "unknown")


def test_jobs_lifecycle_and_keys(client, jobs, registry):
    spec = {"dataset": "300w", "data_root": "/data/300w", "preset": "tiny", "overrides": {"epochs": 1}}
    assert_problem(client.post("/jobs/slim", json=spec), 401, "X-API-Key")
    r = client.post("/jobs/slim", json=spec, headers=KEY)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert r.headers["location"] == f"/jobs/{job_id}"
    assert jobs.jobs[job_id]["params"]["overrides"] == {"epochs": 1}
    assert client.post("/jobs/teacher", json=spec, headers=KEY).status_code == 202
    assert_problem(client.post("/jobs/distill", json=spec, headers=KEY), 422, "slim_run")
    r = client.post("/jobs/distill", json={**spec, "slim_run": "abc", "teacher_run": "def"}, headers=KEY)
    assert r.status_code == 202 and jobs.jobs[r.json()["job_id"]]["kind"] == "distill"
    assert_problem(client.post("/jobs/slim", json={**spec, "preset": "huge"}, headers=KEY), 422, "preset")
    registry.runs.add("a" * 32)  # a sweep's slim run is looked up in MLflow when the sweep is submitted
    sweep = {**spec, "slim_run": "a" * 32, "budgets": ["params=800000", "ms=4.5"]}
    r = client.post("/jobs/sweep", json=sweep, headers=KEY)
    assert r.status_code == 202 and jobs.jobs[r.json()["job_id"]]["params"]["budgets"] == sweep["budgets"]
    for budgets, words in ((["flops=3"], "budgets"), ([], "budgets"), (["params=5", "params=5"], "twice")):
        assert_problem(client.post("/jobs/sweep", json={**sweep, "budgets": budgets}, headers=KEY), 422, words)
    listed = client.get("/jobs", headers=KEY).json()["jobs"]
    assert {j["kind"] for j in listed} == {"slim", "teacher", "distill", "sweep"}
    assert client.get(f"/jobs/{job_id}", headers=KEY).json()["state"] == "PENDING"
    r = client.delete(f"/jobs/{job_id}", headers=KEY)
    assert r.status_code == 202 and r.json()["state"] == "CANCELLING"
    assert_problem(client.get("/jobs/nope", headers=KEY), 404, "GET /jobs")
    assert_problem(client.delete("/jobs/nope", headers=KEY), 404)


def test_job_backend_down_is_503(registry):
    class DownJobs:
        def submit(self, kind, params):
            raise ConnectionError("redis refused")

    with TestClient(create_app(ServiceSettings(model_poll_seconds=0), registry=registry, jobs=DownJobs(),
                               api_keys=frozenset())) as c:
        assert_problem(c.post("/jobs/slim", json={"dataset": "300w", "data_root": "/d"}), 503, "broker")


def test_models_promote_and_rollback_swap_the_served_model(client):
    listed = client.get("/models").json()
    assert listed["models"][0]["name"] == "sdhrnet-300w"
    align = {"image": b64(png_bytes()), "boxes": [BOX]}
    assert client.post("/align", json=align).json()["model"]["version"] == "2"
    assert_problem(client.post("/models/300w/promote", json={"version": 1}), 401)
    r = client.post("/models/300w/promote", json={"version": 1}, headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json()["served"]["300w"]["version"] == "1"
    assert client.post("/align", json=align).json()["model"]["version"] == "1"
    assert_problem(client.post("/models/300w/promote", json={"version": 9}, headers=KEY), 404, "not registered")
    assert_problem(client.post("/models/300w/promote", json={"version": "x"}, headers=KEY), 422)
    for body in ({}, {"version": 1, "budget": {"params": 5}}, {"budget": {}}, {"budget": {"flops": 5}},
                 {"budget": {"ms": -1}}):
        assert_problem(client.post("/models/300w/promote", json=body, headers=KEY), 422)
    for raw in ('{"budget": {"ms": Infinity}}', '{"budget": {"params": 1e999}}', '{"budget": {"ms": NaN}}'):
        assert_problem(client.post("/models/300w/promote", content=raw,
                                   headers={**KEY, "content-type": "application/json"}), 422, "finite")
    assert client.post("/models/300w/rollback", headers=KEY).json()["served"]["300w"]["version"] == "2"
    assert_problem(client.post("/models/300w/rollback", headers=KEY), 409, "roll back")


def test_health_and_metrics(client):
    assert client.get("/livez").json() == {"status": "ok"}
    ready = client.get("/readyz")  # the preload of 300w may still be running; it is ready after an /align
    client.post("/align", json={"image": b64(png_bytes()), "boxes": [BOX, BOX]})
    assert client.get("/readyz").status_code == 200, ready.text
    text = client.get("/metrics").text
    assert 'sdhrnet_http_requests_total{method="POST",route="/align",status="200"}' in text
    assert 'sdhrnet_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/align",status="200"}' in text
    assert 'sdhrnet_faces_aligned_total{dataset="300w"} 2.0' in text
    assert 'sdhrnet_inference_batch_size_count{dataset="300w"}' in text
    assert 'sdhrnet_model_loaded{dataset="300w",name="sdhrnet-300w",run_id="run2",version="2"} 1.0' in text


def test_readyz_is_503_without_a_model(jobs):
    with TestClient(create_app(ServiceSettings(model_poll_seconds=0), registry=FakeRegistry({}), jobs=jobs,
                               api_keys=frozenset())) as c:
        assert_problem(c.get("/readyz"), 503, "promote")


def _items(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": b64(png_bytes(seed=i)), "box": BOX, "id": f"img{i}",
             "landmarks": (rng.uniform(30, 110, (68, 2))).round(2).tolist()} for i in range(n)]


def test_evaluate_json_items_inline(client):
    assert_problem(client.post("/evaluate", json={"items": _items(2)}), 401)
    r = client.post("/evaluate", json={"items": _items(3)}, headers=KEY)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["n"] == 3 and report["nme"] > 0 and set(report["per_image"]) == {"img0", "img1", "img2"}
    assert "x" in report["ced"] and report["model"]["version"] == "2"
    bad = _items(1)
    bad[0]["landmarks"] = bad[0]["landmarks"][:5]
    assert_problem(client.post("/evaluate", json={"items": bad}, headers=KEY), 422, "68")
    assert_problem(client.post("/evaluate", json={"items": _items(1) * 2}, headers=KEY), 422, "unique")


def test_evaluate_large_json_set_becomes_a_job_that_keeps_ids_and_boxes(client, jobs, tmp_path, settings_env):
    import base64

    import cv2

    from landmarks.datasets.base import load_image
    from landmarks.datasets.items_file import read_items

    settings_env(SDHRNET_HOME=tmp_path)
    items = _items(5)
    items[3]["box"] = [40, 35, 100, 110]
    r = client.post("/evaluate", json={"items": items}, headers=KEY)
    assert r.status_code == 202, r.text
    params = jobs.jobs[r.json()["job_id"]]["params"]
    assert params["dataset"] == "300w" and params["model"] == "models:/sdhrnet-300w/2" and params["recrop"] is None
    kept = read_items(params["items"])
    assert [s.sample_id for s in kept] == [f"img{i}" for i in range(5)]
    assert kept[3].box.tolist() == [40, 35, 100, 110] and kept[0].box.tolist() == BOX
    np.testing.assert_allclose(kept[2].landmarks, items[2]["landmarks"])
    sent = cv2.imdecode(np.frombuffer(base64.b64decode(items[1]["image"]), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(load_image(kept[1]), cv2.cvtColor(sent, cv2.COLOR_BGR2RGB), "kept losslessly")
    coincident = _items(5)
    coincident[4]["landmarks"][45] = coincident[4]["landmarks"][36]
    assert_problem(client.post("/evaluate", json={"items": coincident}, headers=KEY), 422, "img4")


def _csv_zip(n):
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        rows = ["," + ",".join(f"c{i}" for i in range(136))]
        for i in range(n):
            zf.writestr(f"set/test/f{i}.png", png_bytes(seed=i))
            rows.append(f"f{i}.png," + ",".join(f"{v:.2f}" for v in rng.uniform(30, 110, 136)))
        zf.writestr("set/test_frames_keypoints.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def _as_tgz(zip_bytes: bytes) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf, tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in zf.namelist():
            data = zf.read(name)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_evaluate_archive_inline_and_as_job(client, jobs, tmp_path, settings_env):
    settings_env(SDHRNET_HOME=tmp_path)
    r = client.post("/evaluate", files={"archive": ("set.zip", _csv_zip(3), "application/zip")},
                    data={"layout": "csv", "split": "test"}, headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json()["n"] == 3 and set(r.json()["per_image"]) == {"test/f0.png", "test/f1.png", "test/f2.png"}
    big = _csv_zip(8)
    assert len(big) > 300_000  # above the request limit, below the archive limit
    r = client.post("/evaluate", files={"archive": ("set.zip", big, "application/zip")},
                    data={"layout": "csv"}, headers=KEY)
    assert r.status_code == 202, r.text
    job = jobs.jobs[r.json()["job_id"]]
    assert job["kind"] == "evaluate" and job["params"]["recrop"] is None, "a job scores boxes as inline does"
    r = client.post("/evaluate", files={"archive": ("set.tgz", _as_tgz(_csv_zip(2)), "application/gzip")},
                    data={"layout": "csv"}, headers=KEY)
    assert r.status_code == 200 and r.json()["n"] == 2, r.text
    assert_problem(client.post("/evaluate", files={"archive": ("x.zip", b"not an archive", "application/zip")},
                               headers=KEY), 415, "zip")
    assert_problem(client.post("/evaluate", files={"archive": ("set.zip", _csv_zip(2), "application/zip")},
                               data={"layout": "300w"}, headers=KEY), 422, "layout")


def _300w_zip(prefix: str, subsets=("afw",), n=2) -> bytes:
    """A 300W set zipped as `zip -r`: `prefix` is the top folder ('' for subsets at the top)."""
    rng = np.random.default_rng(4)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for subset in subsets:
            for i in range(n):
                pts = rng.uniform(30, 110, (68, 2)) + 1.0
                zf.writestr(f"{prefix}{subset}/f{i}.png", png_bytes(seed=i))
                zf.writestr(f"{prefix}{subset}/f{i}.pts", "version: 1\nn_points: 68\n{\n"
                            + "\n".join(f"{x:.2f} {y:.2f}" for x, y in pts) + "\n}\n")
    return buf.getvalue()


def test_evaluate_accepts_a_300w_subset_folder_or_the_dataset_root(client, tmp_path, settings_env):
    settings_env(SDHRNET_HOME=tmp_path)

    def post(archive: bytes, **fields):
        return client.post("/evaluate", files={"archive": ("set.zip", archive, "application/zip")}, data=fields,
                           headers=KEY)
    # `zip -r afw.zip afw`: the top folder is a subset, not the dataset root; scored as split 'afw'
    for fields in ({}, {"split": "afw"}, {"layout": "300w"}):
        r = post(_300w_zip(""), **fields)
        assert r.status_code == 200, r.text
        assert r.json()["n"] == 2 and set(r.json()["per_image"]) == {"afw/f0.png", "afw/f1.png"}
        assert r.json()["split"] == "afw"
    r = post(_300w_zip("", subsets=("helen/trainset",)))  # a nested subset folder
    assert r.status_code == 200 and r.json()["split"] == "helen/trainset", r.text
    # the dataset root, with or without its own top folder: the default split 'common' when it is there
    for prefix in ("300w/", ""):
        r = post(_300w_zip(prefix, subsets=("afw", "helen/testset", "lfpw/testset")))
        assert r.status_code == 200, r.text
        assert r.json()["split"] == "common" and r.json()["n"] == 4, r.text
    # a split the archive lacks: the error names the default split and how to zip the set, no server paths
    body = assert_problem(post(_300w_zip(""), split="challenge"), 422, "challenge", "default", "common",
                          "afw/", "split")
    assert str(tmp_path) not in body["detail"]


def test_web_page_and_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert_problem(client.get("/no/such/page"), 404)
    assert_problem(client.put("/align"), 405)
    allowed = client.put("/jobs/abc", headers=KEY)
    assert_problem(allowed, 405)
    assert allowed.headers["allow"] == "DELETE, GET, HEAD"


def test_registry_down_or_broken_model_is_503(tmp_path, jobs):
    class DownRegistry(FakeRegistry):
        def champion(self, dataset):
            raise ConnectionError("mlflow refused")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not onnx")
    (broken / "model_card.json").write_text(json.dumps({"num_landmarks": 68, "input_size": 64}))
    body = {"image": b64(png_bytes()), "boxes": [BOX]}
    for registry, words in ((DownRegistry({}), ["registry"]), (FakeRegistry({"300w": [broken]}), ["promote"])):
        with TestClient(create_app(ServiceSettings(model_poll_seconds=0), registry=registry, jobs=jobs,
                                   api_keys=frozenset())) as c:
            assert_problem(c.post("/align", json=body), 503, *words)


def test_archives_cannot_escape_their_folder(tmp_path):
    from service.archives import extract_archive
    from service.errors import InputError

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(InputError, match="outside"):
        extract_archive(buf.getvalue(), tmp_path / "out", max_unpacked_bytes=10_000)
    assert not (tmp_path / "evil.txt").exists()
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", bytes(200_000))
    with pytest.raises(InputError, match="more than"):
        extract_archive(bomb.getvalue(), tmp_path / "out2", max_unpacked_bytes=100_000)


def test_api_docs_are_served_without_internet(client):
    """/docs and /redoc load their scripts and styles from the API itself, not from a CDN."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200, page
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html.text)
        assert assets, f"{page} names its scripts"
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert client.get("/openapi.json").json()["info"]["title"] == "SD-HRNet landmarks"
