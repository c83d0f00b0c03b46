"""``python -m backtest.bars inspect FILE``: check a bars file (see ``backtest.bars.inspect.main``)."""

import sys

from backtest.bars.inspect import main
from bridge.errors import run_main

sys.exit(run_main(main))
