"""What every command line shares: the help formatter that prints each useful default once, options made from a
typed dataclass config (one ``--flag`` per field, its help and default), and the console scripts."""

from __future__ import annotations

import argparse
import math
from dataclasses import fields


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to an option's help unless the help already says its default, or the default says
    nothing (None, False for a switch, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, [], "", argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def finite_float(text: str) -> float:
    """An option's number: NaN and infinities are refused (they would pass every ``<``/``>`` check and silently
    trade nothing, or everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a latency, a cost, a distance)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


_TYPES = {"int": int, "float": finite_float, "str": str}


def add_dataclass_arguments(group: argparse._ActionsContainer, cls, prefix: str = "") -> None:
    """One ``--prefix-field-name`` option per field of the dataclass ``cls``, with its help text and default."""
    for f in fields(cls):
        flag = "--" + prefix + f.name.replace("_", "-")
        dest = (prefix + f.name).replace("-", "_")
        help_text = f.metadata.get("help", "")
        ann = str(f.type)
        if ann == "bool":
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=f.default, help=help_text
            )
        elif "tuple" in ann:
            group.add_argument(flag, dest=dest, nargs="+", default=f.default, help=help_text)
        else:
            base = next((t for name, t in _TYPES.items() if ann.startswith(name)), str)
            group.add_argument(flag, dest=dest, type=base, default=f.default, help=help_text)


def dataclass_from_arguments(cls, args: argparse.Namespace, prefix: str = ""):
    """The ``cls`` instance from options made by ``add_dataclass_arguments``; its ``ValueError`` passes through."""
    return cls(**{f.name: getattr(args, (prefix + f.name).replace("-", "_")) for f in fields(cls)})


# Console scripts (pyproject.toml [project.scripts]) beside ``python -m``: each runs the command's ``main`` under
# ``run_main``, so a user mistake is one line and an exit code, never a traceback.


def run_command(module: str) -> int:
    """Run ``module.main`` under ``run_main`` (a console script's body)."""
    from importlib import import_module

    from bridge.errors import run_main

    return run_main(import_module(module).main)


def serve() -> int:
    return run_command("bridge.serve")


def client() -> int:
    return run_command("bridge.wire.client")


def news() -> int:
    return run_command("bridge.news.loading")


def keys() -> int:
    return run_command("bridge.wire.keys")


def install_ea() -> int:
    return run_command("bridge.install_ea")
