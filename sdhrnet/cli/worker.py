"""`sdhrnet worker`: a Celery worker for the training and evaluation jobs.

Defaults to the solo pool with one job at a time: one training process per GPU (start one worker per
device, e.g. with CUDA_VISIBLE_DEVICES), and nothing forked after torch has started threads. With
`--pool prefork` every job gets a fresh child (max one task per child) so CUDA never lives in the parent."""
import os


def add_arguments(parser, command) -> None:
    parser.add_argument("--pool", choices=["solo", "prefork", "threads"], default="solo",
                        help="execution pool (default solo: the job runs in the worker process)")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs at a time (prefork/threads only)")
    parser.add_argument("--loglevel", default="INFO", help="DEBUG, INFO, WARNING, ...")
    parser.add_argument("--hostname", default=None, help="worker node name (default sdhrnet@<host>.<pid>)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per job (SDHRNET_THREADS)")


def main(args) -> int:
    if args.threads:
        os.environ["SDHRNET_THREADS"] = str(args.threads)
        from sdhrnet.settings import get_settings
        get_settings.cache_clear()
    if args.pool == "solo" and args.concurrency != 1:
        raise ValueError("--pool solo runs one job at a time; drop --concurrency or use --pool prefork")
    from worker.app import QUEUE, app
    from sdhrnet.settings import device_problem, get_settings

    settings = get_settings()
    problem = device_problem(settings.device)
    if problem:  # else every job it takes would fail
        raise ValueError(f"SDHRNET_DEVICE: {problem}")
    hostname = args.hostname or f"sdhrnet@%h.{os.getpid()}"
    print(f"sdhrnet worker: broker {'redis' if settings.redis_url else 'filesystem under ' + str(settings.home)}, "
          f"MLflow {settings.mlflow_uri}, pool {args.pool} x{args.concurrency}", flush=True)
    app.worker_main([
        "worker", f"--pool={args.pool}", f"--concurrency={args.concurrency}", f"--loglevel={args.loglevel}",
        f"--queues={QUEUE}", f"--hostname={hostname}",
        # no broadcast chatter: jobs are coordinated through the broker queue and the job store
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ])
    return 0
