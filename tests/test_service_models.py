"""Promote, rollback and GET /models over HTTP against a real `mlflow server` (tests/services.py): the API in
process with the registry backend it runs with in production. Found by an audit of the running service: a huge
version took the registry "down" (MLflow answered 500, the API 503 and /readyz "unreachable"), promote and
rollback answered a history entry as `models`, promoting the champion recorded "1 -> 1", a rollback with nothing
to go back to was a 422, and the public history named clients by their address."""
import logging
import uuid

import pytest
from fastapi.testclient import TestClient

from sdhrnet.settings import ServiceSettings
from service.app import create_app
from tests.fake_models import fake_result
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def problem(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


@pytest.fixture()
def mlflow_env(tmp_path, mlflow_server, settings_env, monkeypatch):
    # RegistryBackend sets these with setdefault: set here, they are restored after the test; 30 s, as the
    # machine may be busy training
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings_env(MLFLOW_TRACKING_URI=mlflow_server.url, SDHRNET_HOME=tmp_path / "home", SDHRNET_API_KEYS=None,
                 SDHRNET_PROMOTION_POLICY=None)
    return mlflow_server.url


@pytest.fixture()
def dataset(tmp_path, mlflow_env) -> str:
    """A dataset of its own on the shared server: v1 champion (the better NME), v2 challenger."""
    from registry import get_registry

    name = f"models-{uuid.uuid4().hex[:8]}"
    for version, nme in ((1, 0.2), (2, 0.9)):
        result = fake_result(tmp_path / f"v{version}", None, dataset=name, nme=nme, split="test")
        get_registry().register_result(result, f"{name}-{version}")
    return name


def app(registry=None, api_keys=frozenset()):
    settings = ServiceSettings(model_poll_seconds=0, preload_datasets="", registry_timeout_seconds=30)
    return create_app(settings, registry=registry, api_keys=api_keys)


def registered(client, dataset: str) -> dict:
    listed = client.get("/models")
    assert listed.status_code == 200, listed.text
    assert isinstance(listed.json()["models"], list)
    return next(m for m in listed.json()["models"] if m["dataset"] == dataset)


def test_a_version_beyond_mlflows_range_is_a_client_error_and_the_registry_stays_up(dataset):
    with TestClient(app()) as client:
        body = problem(client.post(f"/models/{dataset}/promote", json={"version": 99999999999999999999999999}),
                       422, "version", "2147483647")
        assert "unreachable" not in body["detail"]
        problem(client.post(f"/models/{dataset}/promote", json={"version": 2**31}), 422, "2147483647")
        assert client.get("/readyz").json()["registry"] == "reachable"
        # the largest version MLflow can hold is asked of MLflow, which answers that there is none
        problem(client.post(f"/models/{dataset}/promote", json={"version": 2**31 - 1}), 404, "2147483647")
        assert client.get("/readyz").json()["registry"] == "reachable"
        assert registered(client, dataset)["champion"] == "1"


class MlflowCalls:
    """A registry backend whose promote makes the MLflow call a test sets: MLflow's own answers, unmapped by
    registry.store, reach the registry client as they would from any call the store does not foresee."""

    call = None

    def champion(self, dataset):
        return None

    def promote(self, dataset, version, who):
        return self.call()


def test_mlflow_answers_about_the_request_are_not_outages(mlflow_env, caplog):
    from mlflow import MlflowClient

    mlflow = MlflowClient(mlflow_env, registry_uri=mlflow_env)
    backend = MlflowCalls()
    with TestClient(app(backend)) as client:
        def promote():
            return client.post("/models/300w/promote", json={"version": 1})

        def registry_state():
            return client.get("/readyz").json()["registry"]

        backend.call = lambda: mlflow.get_registered_model("sdhrnet-no-such-model")
        body = problem(promote(), 404, "no-such-model")
        assert "RESOURCE_DOES_NOT_EXIST" not in body["detail"]
        assert registry_state() == "reachable"
        backend.call = lambda: mlflow.get_model_version("sdhrnet-no-such-model", "one")
        problem(promote(), 422)
        assert registry_state() == "reachable"

        # MLflow failing (its 500 for a version its database cannot hold) and MLflow away are outages
        backend.call = lambda: mlflow.get_model_version("sdhrnet-no-such-model", "99999999999999999999999999")
        with caplog.at_level(logging.WARNING, logger="sdhrnet.service.registry"):
            response = promote()
        problem(response, 503, "unreachable")
        assert response.headers["retry-after"] == "10" and registry_state() == "unreachable"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("500 error" in w for w in warnings), warnings  # the cause, not only "it failed"

        backend.call = lambda: mlflow.get_registered_model("sdhrnet-no-such-model")
        problem(promote(), 404)
        assert registry_state() == "reachable", "an answer from MLflow ends the outage"

        nobody = f"http://127.0.0.1:{free_port()}"
        nobody = MlflowClient(nobody, registry_uri=nobody)
        backend.call = lambda: nobody.get_registered_model("sdhrnet-no-such-model")
        problem(promote(), 503, "unreachable")
        assert registry_state() == "unreachable"


def test_promote_and_rollback_answer_the_change_and_what_is_served(dataset):
    with TestClient(app()) as client:
        promoted = client.post(f"/models/{dataset}/promote", json={"version": 2})
        assert promoted.status_code == 200, promoted.text
        change = promoted.json()["change"]
        assert (change["action"], change["from"], change["to"]) == ("promote", "1", "2")
        assert promoted.json()["served"][dataset]["version"] == "2"
        assert promoted.json()["models"] == change, "the first release's field still holds the change"
        # GET /models keeps its own shape: the registered models, the change last in their history
        assert registered(client, dataset)["history"][-1] == change

        rolled = client.post(f"/models/{dataset}/rollback")
        assert rolled.status_code == 200, rolled.text
        change = rolled.json()["change"]
        assert (change["action"], change["from"], change["to"]) == ("rollback", "2", "1")
        assert rolled.json()["served"][dataset]["version"] == "1"

        paths = client.get("/openapi.json").json()["paths"]
        answers = {path: paths[path]["post" if "/models/" in path else "get"]["responses"]["200"]["content"]
                   ["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                   for path in ("/models", "/models/{dataset}/promote", "/models/{dataset}/rollback")}
        assert answers == {"/models": "ModelsResponse", "/models/{dataset}/promote": "ChampionChangeResponse",
                           "/models/{dataset}/rollback": "ChampionChangeResponse"}


def test_promoting_the_champion_changes_nothing_and_a_rollback_without_history_is_a_conflict(dataset):
    with TestClient(app()) as client:
        history = registered(client, dataset)["history"]
        again = client.post(f"/models/{dataset}/promote", json={"version": 1})
        assert again.status_code == 200, again.text
        assert registered(client, dataset)["history"] == history, "nothing is recorded"

        problem(client.post(f"/models/{dataset}/rollback"), 409, "no earlier champion")
        assert registered(client, dataset)["champion"] == "1"
        assert again.json()["change"] is None and again.json()["served"][dataset]["version"] == "1"


def test_the_public_history_names_the_key_or_api_never_the_client_address(dataset, mlflow_env):
    from mlflow import MlflowClient

    with TestClient(app()) as client:
        promoted = client.post(f"/models/{dataset}/promote", json={"version": 2})
        assert promoted.status_code == 200, promoted.text
        model = registered(client, dataset)
        assert model["history"][-1]["who"] == "api"
        assert next(v for v in model["versions"] if v["version"] == "2")["tags"]["promoted_by"] == "api"
        assert "testclient" not in client.get("/models").text  # TestClient's client address
        assert promoted.json()["change"]["who"] == "api"

        # what was recorded before: `api:<address>` in the history and the version tags is shown as `api`
        name, mlflow = f"sdhrnet-{dataset}", MlflowClient(mlflow_env, registry_uri=mlflow_env)
        history = mlflow.get_registered_model(name).tags["champion_history"]
        mlflow.set_registered_model_tag(name, "champion_history",
                                        history.replace('"who": "api"', '"who": "api:10.9.8.7"'))
        mlflow.set_model_version_tag(name, "2", "promoted_by", "api:10.9.8.7")
        listed = client.get("/models")
        assert "10.9.8.7" not in listed.text
        assert registered(client, dataset)["history"][-1]["who"] == "api"

    with TestClient(app(api_keys={"ci": "k1"})) as client:
        rolled = client.post(f"/models/{dataset}/rollback", headers={"X-API-Key": "k1"})
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["change"]["who"] == "api-key:ci"
