"""What the API calls, on the embedded defaults without a worker running: jobs are known and PENDING
as soon as they are submitted, can be cancelled while queued, unknown ids and kinds are told apart."""
import pytest

from worker.api import UnknownJobKind

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    from sdhrnet.settings import get_settings

    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "home"))
    for key in ("REDIS_URL", "SDHRNET_REDIS_URL", "MLFLOW_TRACKING_URI", "SDHRNET_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def test_submit_status_cancel_list_without_a_worker(embedded):
    from worker import job_status, list_jobs, request_cancel, submit

    params = {"dataset": "300w", "data_root": "/data/300w", "preset": "tiny"}
    job = submit("train-teacher", params)
    status = job_status(job)
    assert (status["state"], status["kind"], status["params"], status["cancel_requested"]) == \
        ("PENDING", "teacher", params, False)
    assert list((embedded / "celery" / "queue").iterdir()), "the message waits in the filesystem broker"
    assert request_cancel(job)["cancel_requested"] is True
    assert [j["job_id"] for j in list_jobs()] == [job]
    assert job_status("no-such-job") is None and request_cancel("no-such-job") is None
    with pytest.raises(UnknownJobKind, match="use one of slim, distill, teacher, sweep, evaluate"):
        submit("train", params)
