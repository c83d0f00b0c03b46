"""What every command line shares: the help formatter that prints each useful default once."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to an option's help unless the help already says its default, or the default says
    nothing (None, False for a switch, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, [], "", argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


# Console scripts (pyproject.toml [project.scripts]) beside ``python -m``: each runs the command's ``main`` under
# ``run_main``, so a user mistake is one line and an exit code, never a traceback.


def _run(module: str) -> int:
    from importlib import import_module

    from bridge.errors import run_main

    return run_main(import_module(module).main)


def serve() -> int:
    return _run("bridge.serve")


def client() -> int:
    return _run("bridge.wire.client")


def news() -> int:
    return _run("bridge.news.loading")


def keys() -> int:
    return _run("bridge.wire.keys")


def install_ea() -> int:
    return _run("bridge.install_ea")
