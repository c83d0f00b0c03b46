"""Console scripts of the backtester (pyproject.toml [project.scripts]), beside ``python -m backtest.run`` etc."""

from __future__ import annotations

from bridge.errors import run_main


def run() -> int:
    from backtest.run import main

    return run_main(main)


def sweep() -> int:
    from backtest.sweep import main

    return run_main(main)


def bars() -> int:
    from backtest.bars.inspect import main

    return run_main(main)
