"""POST /jobs/<kind> refuses at submit what a job could not run with, rather than answering 202 and failing (or
doing something else) later, and a job that does fail says why in words, not in Python (an audit with curl against
`sdhrnet run`). In-process (ASGI) with the in-memory job queue unless a test says otherwise."""
import pytest
from fastapi.testclient import TestClient

from sdhrnet.settings import ServiceSettings
from service.app import create_app
from tests.service_support import FakeJobs, FakeRegistry
from tests.test_service_api import assert_problem

JSON = {"Content-Type": "application/json"}
SPEC = {"dataset": "300w", "data_root": "/data/300w", "preset": "tiny"}
SLIM_RUN = "5" * 32
INTERNALS = ("Error:", "Exception", "<class", "Traceback", "mlflow.", "RESOURCE_DOES_NOT_EXIST")


def make_client(registry, jobs):
    settings = ServiceSettings(model_poll_seconds=0, preload_datasets="", registry_timeout_seconds=30)
    return TestClient(create_app(settings, registry=registry, jobs=jobs, api_keys=frozenset()))


@pytest.fixture()
def jobs():
    return FakeJobs()


@pytest.fixture()
def registry():
    registry = FakeRegistry({})
    registry.runs.add(SLIM_RUN)
    return registry


@pytest.fixture()
def client(registry, jobs):
    with make_client(registry, jobs) as c:
        yield c


def bodies(change: dict) -> dict:
    """A valid body of every training kind with `change` applied."""
    return {"slim": {**SPEC, **change}, "teacher": {**SPEC, **change},
            "distill": {**SPEC, "slim_run": "s-hrnet-300w", "teacher_run": f"runs:/{SLIM_RUN}/model_files", **change},
            "sweep": {**SPEC, "slim_run": SLIM_RUN, "budgets": ["params=800000"], **change}}


# --- NaN and infinity in overrides ------------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_overrides_that_are_not_finite_numbers_are_refused_at_submit(client, jobs, number):
    # written out, as a client sends them: Python's JSON parser reads all four (1e999 as infinity)
    body = '{"dataset": "300w", "data_root": "/data/300w", "preset": "tiny", "overrides": {"lr": %s}}' % number
    for kind in ("slim", "teacher"):
        assert_problem(client.post(f"/jobs/{kind}", content=body, headers=JSON), 422, "overrides.lr", "finite")
    assert jobs.jobs == {}, "nothing may be queued"


def test_the_command_line_refuses_them_too(tmp_path, settings_env, capsys):
    from sdhrnet.cli import main

    settings_env(SDHRNET_HOME=tmp_path / "home", SDHRNET_OFFLINE_RUNS=tmp_path / "runs")
    (tmp_path / "data").mkdir()
    for value in ("NaN", "1e999"):
        code = main(["slim", "--dataset", "300w", "--data-root", str(tmp_path / "data"), "--preset", "tiny",
                     "--set", f"lr={value}"])
        assert code == 2 and "finite number" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run may be started"


# --- the device ---------------------------------------------------------------------------------------------------

def test_the_device_is_checked_at_submit(client, jobs):
    for device in ("tpu9", "CUDA", "cuda:", "cuda:-1", "cuda:0:1", "gpu", ""):
        for kind, body in bodies({"device": device}).items():
            assert_problem(client.post(f"/jobs/{kind}", json=body), 422, "device", "cpu, cuda or cuda:N")
    assert jobs.jobs == {}
    for device in ("cpu", "cuda", "cuda:1"):
        r = client.post("/jobs/slim", json={**SPEC, "device": device})
        assert r.status_code == 202, r.text
        assert jobs.jobs[r.json()["job_id"]]["params"]["device"] == device


def test_the_workers_default_device_is_checked_the_same_way(settings_env):
    from sdhrnet.cli import main as cli
    from sdhrnet.settings import Settings

    settings_env(SDHRNET_DEVICE="tpu9")
    assert Settings().device == "tpu9", "the API reads the same environment and must still start"
    with pytest.raises(ValueError, match="SDHRNET_DEVICE: unknown device 'tpu9'; use cpu, cuda"):
        cli(["worker"])


# --- split names -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [({"val_split": "tset"}, "val_split"), ({"train_split": "Train"}, "train_split"),
                                           ({"extra_train": ["csv:/data/p1-ytf68:trainnig"]}, "extra_train")])
def test_a_split_the_layout_does_not_have_is_refused_at_submit(client, jobs, change, field):
    for kind, body in bodies({"overrides": change}).items():
        assert_problem(client.post(f"/jobs/{kind}", json=body), 422, field, "split", "; use ")
    assert jobs.jobs == {}


def test_every_split_the_layouts_read_passes(client, jobs):
    for dataset, split in (("300w", "dev"), ("300w", "afw+helen/trainset"), ("wflw", "occlusion"), ("cofw", "test"),
                           ("csv", "training")):
        r = client.post("/jobs/slim", json={**SPEC, "dataset": dataset, "overrides": {"val_split": split}})
        assert r.status_code == 202, (dataset, split, r.text)
    r = client.post("/jobs/slim", json={**SPEC, "overrides": {"extra_train": ["csv:/data/p1-ytf68:training"]}})
    assert r.status_code == 202, r.text


def test_the_command_line_refuses_an_unknown_split_before_reading_data(tmp_path, settings_env, capsys):
    from sdhrnet.cli import main

    settings_env(SDHRNET_HOME=tmp_path / "home", SDHRNET_OFFLINE_RUNS=tmp_path / "runs")
    (tmp_path / "empty").mkdir()
    code = main(["slim", "--dataset", "300w", "--data-root", str(tmp_path / "empty"), "--preset", "tiny",
                 "--set", "val_split=commom"])
    err = capsys.readouterr().err
    assert code == 2 and "val_split: unknown 300W split 'commom'" in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run may be started"


# --- fields that no training reads ------------------------------------------------------------------------------

def test_training_jobs_refuse_fields_they_do_not_read(client, jobs):
    for kind, body in bodies({"split": "nosuchsplit"}).items():
        problem = assert_problem(client.post(f"/jobs/{kind}", json=body), 422, "unknown field(s) split",
                                 "data_root", "val_split", "overrides")
        assert ("slim_run" in problem["detail"]) == (kind in ("distill", "sweep")), "the fields of this kind"
    assert jobs.jobs == {}
    # where the splits are chosen
    r = client.post("/jobs/slim", json={**SPEC, "overrides": {"val_split": "dev"}})
    assert r.status_code == 202 and jobs.jobs[r.json()["job_id"]]["params"]["overrides"] == {"val_split": "dev"}


# --- the runs a job starts from ---------------------------------------------------------------------------------

def test_runs_a_job_starts_from_are_looked_up_in_mlflow_at_submit(tmp_path, settings_env, jobs):
    """The API's own registry client against a real MLflow store (the embedded SQLite one)."""
    from registry.tracking import client as mlflow_client
    from service.backends import RegistryBackend

    settings_env(SDHRNET_HOME=tmp_path / "home", MLFLOW_TRACKING_URI=None, SDHRNET_TRACKING_URI=None)
    store = mlflow_client()
    slim_run = store.create_run(store.create_experiment("slim")).info.run_id
    missing = "0" * 32
    with make_client(RegistryBackend(), jobs) as c:
        sweep = {**SPEC, "budgets": ["params=800000"]}
        assert_problem(c.post("/jobs/sweep", json={**sweep, "slim_run": "deadbeef"}), 422,
                       "slim_run", "'deadbeef' names no run", "runs:/RUN_ID")
        for ref in ("runs:/deadbeef", "runs:/deadbeef/models/supernet"):
            problem = assert_problem(c.post("/jobs/sweep", json={**sweep, "slim_run": ref}), 422,
                                     "slim_run: run deadbeef was not found in MLflow")
            assert not any(word in problem["detail"] for word in INTERNALS), problem["detail"]
        distill = {**SPEC, "slim_run": slim_run}
        assert_problem(c.post("/jobs/distill", json={**distill, "teacher_run": missing}), 422,
                       f"teacher_run: run {missing} was not found in MLflow")
        assert jobs.jobs == {}, "nothing may be queued"
        accepted = [c.post("/jobs/sweep", json={**sweep, "slim_run": slim_run}),
                    c.post("/jobs/sweep", json={**sweep, "slim_run": f"runs:/{slim_run}"}),
                    c.post("/jobs/distill", json={**distill, "teacher_run": f"runs:/{slim_run}/model_files"}),
                    # what names no run is for the worker to find: a folder there, a published architecture
                    c.post("/jobs/distill", json={**SPEC, "slim_run": "s-hrnet-300w", "teacher_run": "/models/t"})]
        assert [r.status_code for r in accepted] == [202] * 4, [r.text for r in accepted]


def test_a_registry_that_does_not_answer_queues_no_job_that_names_a_run(jobs):
    class Down(FakeRegistry):
        def run_exists(self, run_id):
            raise ConnectionError("connection refused")

    with make_client(Down({}), jobs) as c:
        assert_problem(c.post("/jobs/sweep", json=bodies({})["sweep"]), 503, "registry", "retry")
        assert jobs.jobs == {}
        assert c.post("/jobs/slim", json=SPEC).status_code == 202, "a job that names no run does not ask MLflow"


# --- malformed JSON -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("/jobs/slim", '"data_root": "/data/300w"'), ("/jobs/teacher", '"data_root": "/data/300w"'),
    ("/jobs/distill", '"teacher_run": '), ("/jobs/sweep", '"budgets": ["params=800000", "ms=4"]'),
    ("/models/300w/promote", '{"version": 3} or {"budget": '),
])
def test_malformed_json_is_answered_with_the_body_expected(client, jobs, path, expected):
    body = '{"dataset": "300w",\n "data_root": }'
    problem = assert_problem(client.post(path, content=body, headers=JSON), 422, "the JSON body must be like",
                             expected, "invalid JSON at line 2 column 15")
    assert problem["errors"] == [{"loc": "body", "msg": "invalid JSON", "type": "json_invalid"}]
    assert jobs.jobs == {}


# --- what a failed job says -----------------------------------------------------------------------------------------

def test_a_failed_jobs_error_is_mlflows_message_without_its_type():
    from mlflow.exceptions import RestException

    from sdhrnet.job_kinds import failure_message

    missing = RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=deadbeef not found"})
    assert failure_message(missing) == "Run with id=deadbeef not found"
    assert failure_message(ValueError("data_root /d is not a folder")) == "data_root /d is not a folder"
    assert failure_message(KeyError("lr")) == "KeyError: 'lr'", "a bare 'lr' would say nothing"
    assert "worker log" in failure_message(KeyError())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_job_whose_run_is_not_in_mlflow_fails_saying_so(tmp_path, monkeypatch, worker_factory, registry):
    """A real worker (embedded broker and MLflow store, tests/fake_jobs.py's sweep, which looks its slim run up as
    the real one does) fails a sweep queued with a run MLflow does not have; GET /jobs says so in words."""
    from sdhrnet.settings import get_settings
    from service.backends import JobsBackend
    from tests.services import wait_until
    from tests.worker_flow import worker_env
    from worker.api import submit

    home = tmp_path / "home"
    unset = ("REDIS_URL", "MLFLOW_TRACKING_URI", "SDHRNET_REDIS_URL", "SDHRNET_TRACKING_URI")
    monkeypatch.setenv("SDHRNET_HOME", str(home))
    for key in unset:
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    try:
        worker = worker_factory(worker_env({"SDHRNET_HOME": str(home), **dict.fromkeys(unset)}),
                                tmp_path / "worker.log", jobs_module="tests.fake_jobs")
        # queued past the API's check, as the command line or a job queued before the run was deleted would be
        job_id = submit("sweep", {**SPEC, "data_root": str(tmp_path), "slim_run": "runs:/deadbeef",
                                  "budgets": ["params=800000"]})
        with make_client(registry, JobsBackend()) as c:
            wait_until(lambda: c.get(f"/jobs/{job_id}").json()["state"] == "FAILURE", 120, "the job to fail",
                       interval=0.3)
            assert c.get(f"/jobs/{job_id}").json()["error"] == "run deadbeef was not found in MLflow", worker.tail()
            listed = {j["job_id"]: j for j in c.get("/jobs").json()["jobs"]}
            assert listed[job_id]["error"] == "run deadbeef was not found in MLflow"
        log = worker.tail(200)
        assert "MlflowException" in log and "Traceback" in log, "the worker log keeps the type and the traceback"
    finally:
        get_settings.cache_clear()


# --- the device, where the job runs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["slim"], ["pipeline"]])
def test_the_command_line_refuses_a_device_while_reading_its_arguments(tmp_path, capsys, command):
    from sdhrnet.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*command, "--dataset", "300w", "--data-root", str(tmp_path), "--device", "gpu0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unknown device 'gpu0'; use cpu, cuda or cuda:N" in err, err


def test_a_gpu_the_machine_lacks_is_named_with_those_it_has(monkeypatch):
    import torch

    from sdhrnet.train_config import make_config
    from trainer.engine import setup_torch

    cfg = make_config("tiny", "300w")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:0' was asked for but CUDA is not available on this machine; use cpu"):
            setup_torch(cfg, "cuda:0")
    # a machine with two GPUs, as far as the check can tell (none is touched: the index is refused first)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"'cuda:2' was asked for but this machine has 2 GPU\(s\): cuda:0, cuda:1"):
        setup_torch(cfg, "cuda:2")
