"""``python -m bridge.client``: the command line of ``bridge.wire.client``."""

import sys

from bridge.errors import run_main
from bridge.wire.client import main

if __name__ == "__main__":
    sys.exit(run_main(main))
