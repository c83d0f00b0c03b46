"""The project's user-facing exceptions, one exit code per class, caught once in each command's ``main()``.

A user mistake (a bad file, a bad option) is a ``UserError``: it is printed as one line naming what was wrong and what
to do, with no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input file, bad option, missing resource."""

    exit_code = 2

    def __init__(self, message: str, *, path: object | None = None, line: int | None = None, hint: str = ""):
        self.path = path
        self.line = line
        self.hint = hint
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        text = f"{where}{message}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class DataError(UserError):
    """An input data file cannot be used as it is."""

    exit_code = 3


class ModelError(UserError):
    """A model or checkpoint cannot be found or loaded."""

    exit_code = 4


def run_main(main, argv=None) -> int:
    """Run a command's ``main`` and turn a ``UserError`` into one clear line on stderr and its exit code."""
    import sys

    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
