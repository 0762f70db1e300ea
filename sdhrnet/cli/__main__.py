"""`python -m sdhrnet.cli ...`: what trainer.pipeline and `sdhrnet run` start their child processes with."""
import sys

from sdhrnet.cli import main

sys.exit(main())
