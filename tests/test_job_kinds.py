"""Every job kind declared in sdhrnet.job_kinds reaches every surface: a Celery task, a trainer runner, an API route
with a request body, and a `sdhrnet` command for the training kinds."""
from sdhrnet.job_kinds import JOB_KINDS, TRAINING_KINDS, UnknownJobKind, job_kind


def test_each_kind_has_a_task_a_runner_a_route_and_a_command():
    import trainer.jobs
    from sdhrnet.cli import SUBCOMMANDS
    from service.app import create_app
    from sdhrnet.settings import ServiceSettings
    from worker.app import app
    from worker.tasks import TASKS  # noqa: F401  (registers the tasks)

    routes = create_app(ServiceSettings(model_poll_seconds=0)).openapi()["paths"]
    for kind in JOB_KINDS.values():
        assert kind.task in app.tasks, kind
        assert callable(getattr(trainer.jobs, kind.runner)), kind
    for kind in TRAINING_KINDS:
        assert f"/jobs/{kind.name}" in routes and kind.command in SUBCOMMANDS, kind


def test_a_kind_is_found_by_its_name_or_its_command():
    assert job_kind("train-teacher") is job_kind("teacher") is job_kind("train_teacher")
    try:
        job_kind("nope")
    except UnknownJobKind as exc:
        assert all(name in str(exc) for name in JOB_KINDS)
    else:
        raise AssertionError("an unknown kind was accepted")
