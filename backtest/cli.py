"""Console scripts of the backtester (pyproject.toml [project.scripts]), beside ``python -m backtest.run`` etc."""

from __future__ import annotations

from bridge.cli import run_command


def run() -> int:
    return run_command("backtest.run")


def sweep() -> int:
    return run_command("backtest.sweep")


def bars() -> int:
    return run_command("backtest.bars.inspect")
