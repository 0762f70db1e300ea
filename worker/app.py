"""The Celery application.

Broker and results: Redis from REDIS_URL; without it, the embedded set-up needs no server — kombu's
filesystem transport (folders under $SDHRNET_HOME/celery) and a SQLite result backend.

Training jobs run for hours, so: late acks (a job whose worker dies is not lost), prefetch 1 (a busy
worker does not sit on queued jobs), reject-on-worker-lost, one task per child process under prefork
(CUDA never initialised in the parent; the solo pool is the default of `sdhrnet worker`), and a Redis
visibility timeout above the longest job (48 h by default) so that a running job is never handed to a
second worker. A dead worker's job is recovered much sooner than that through its lease (worker.recovery).
"""
from datetime import timedelta

from celery import Celery

from sdhrnet.settings import get_settings

QUEUE = "sdhrnet"
def broker_config(settings) -> dict:
    if settings.redis_url:
        return {"broker_url": settings.redis_url, "result_backend": settings.redis_url,
                "broker_transport_options": {"visibility_timeout": settings.worker.visibility_timeout},
                "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}}}
    base = (settings.home / "celery").resolve()
    queue, processed, control = base / "queue", base / "processed", base / "control"
    for folder in (queue, processed, control):
        folder.mkdir(parents=True, exist_ok=True)
    return {"broker_url": "filesystem://localhost//", "result_backend": f"db+sqlite:///{base / 'results.sqlite'}",
            "broker_transport_options": {"data_folder_in": str(queue), "data_folder_out": str(queue),
                                         "processed_folder": str(processed), "store_processed": False,
                                         "control_folder": str(control)}}


def make_app(settings=None) -> Celery:
    settings = settings or get_settings()
    app = Celery("sdhrnet")
    app.conf.update(
        **broker_config(settings),
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        # STARTED is stored by the task itself after its guards: Celery's own would overwrite the final
        # state of a job whose message is delivered a second time
        task_track_started=False,
        result_extended=True,
        result_expires=timedelta(days=30),
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        imports=("worker.tasks",),
    )
    app.sdhrnet_key = _settings_key(settings)
    return app


def _settings_key(settings) -> tuple:
    return (settings.redis_url, str(settings.home.resolve()))


app = make_app()  # what `celery -A worker.app` and `sdhrnet worker` run
_clients: dict[tuple, Celery] = {}


def get_app() -> Celery:
    """The app for the current settings: callers in the API (or tests) that change REDIS_URL/SDHRNET_HOME after
    import get a matching client instead of the one built at import time."""
    key = _settings_key(get_settings())
    if key == app.sdhrnet_key:
        return app
    if key not in _clients:
        _clients[key] = make_app(get_settings())
    return _clients[key]
