"""``python -m bridge.keys``: the command line of ``bridge.wire.keys``."""

import sys

from bridge.errors import run_main
from bridge.wire.keys import main

if __name__ == "__main__":
    sys.exit(run_main(main))
