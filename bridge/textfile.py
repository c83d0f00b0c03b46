"""Reading a user's text file the one way every loader does: a clear error for a missing, empty or undecodable file.

News files, training data and signal files all come from spreadsheets, MetaTrader scripts and other tools, so the
same rules apply everywhere: UTF-16 when the file starts with its byte-order mark (MetaTrader writes it without
FILE_ANSI), UTF-8 with or without a BOM, and, only for formats known to ship in it, Latin-1.
"""

from __future__ import annotations

from pathlib import Path

from bridge.errors import DataError, UserError


def read_text_file(path: str | Path, what: str = "file", latin1: bool = False) -> tuple[str, str]:
    """The whole text of ``path`` and the encoding used.

    ``what`` names the file in messages (``news file``); ``latin1`` allows Latin-1 where UTF-8 fails (Financial
    PhraseBank ships in it). A missing path, a directory, an empty file or bytes that are not UTF-8 are a
    ``UserError``/``DataError`` naming the file and, for a bad byte, its line.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise UserError(f"the {what} {path} {problem}", hint=f"give the path of a {what}")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(
            f"the {what} is empty", path=path, hint="expected a header line and at least one data row"
        )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise DataError(
                f"the {what} is not valid UTF-16 text", path=path, hint="save it as UTF-8"
            ) from None
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        if latin1:
            return raw.decode("latin-1"), "latin-1"
        raise DataError(
            f"not UTF-8 text (byte {raw[exc.start]:#04x})",
            path=path,
            line=raw[: exc.start].count(b"\n") + 1,
            hint="save the file as UTF-8",
        ) from None
