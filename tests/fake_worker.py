"""`sdhrnet worker` running a stand-in trainer (`python -m tests.fake_worker MODULE WORKER-ARGS...`): the module is
named in the Celery configuration, which is where worker.tasks looks for the trainer."""
import sys

from sdhrnet.cli import main
from worker.app import app

if __name__ == "__main__":
    app.conf.sdhrnet_jobs_module = sys.argv[1]
    sys.exit(main(["worker", *sys.argv[2:]]))
