"""Every command line answers ``--help`` (and each of its subcommands), with each default printed once."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "bridge.serve",
    "bridge.client",
    "bridge.news",
    "bridge.keys",
    "bridge.install_ea",
    "backtest.run",
    "backtest.bars",
    "backtest.sweep",
    "finetune.data",
    "finetune.train",
    "finetune.evaluate",
    "finetune.compare",
    "finetune.export",
    "finetune.card",
)
# every benchmark that runs as a script (bench/common.py is a module the others import)
SCRIPTS = tuple(
    sorted(str(p.relative_to(ROOT)) for p in (ROOT / "bench").glob("*.py") if "__main__" in p.read_text())
) + ("mql5/tests/bench_roundtrip.py",)


def _help(target: str, *sub: str) -> str:
    """The ``--help`` text of a module (``python -m``) or a script, run in this process; fails unless it exits 0."""
    out = io.StringIO()
    argv = [target, *sub, "--help"]
    old = sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
            if target.endswith(".py"):
                runpy.run_path(str(ROOT / target), run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = old
    assert done.value.code in (0, None), f"{' '.join(argv)} exited {done.value.code}"
    return out.getvalue()


def _subcommands(text: str) -> list[str]:
    m = re.search(r"^usage: .*?\{([\w,-]+)\}", text, re.S | re.M)
    return m.group(1).split(",") if m else []


def _check(text: str, what: str) -> None:
    assert text.startswith("usage:"), what
    assert "(default: None)" not in text, f"{what}: a default of None is printed"
    for line in text.splitlines():
        assert line.count("(default:") <= 1, f"{what}: a default printed twice: {line.strip()}"


@pytest.mark.parametrize("target", MODULES + SCRIPTS)
def test_help_of_every_command_and_subcommand_exits_zero(target):
    text = _help(target)
    _check(text, target)
    for sub in _subcommands(text):
        _check(_help(target, sub), f"{target} {sub}")


def test_every_console_script_points_at_a_command():
    import importlib
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert len(scripts) == len(MODULES)
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), name
