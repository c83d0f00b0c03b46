"""The server's journal: every accepted news item and its analysis, appended and fsync'd before anyone is told.

An append-only JSON Lines file, one record per line::

    {"kind": "news", "item": {...NewsItem.to_dict()...}}
    {"kind": "analysis", "id": "<news id>", "analysis": {...Analysis.to_dict()...}}

A news record is written (and fsync'd) before the ``ack`` goes out, so an acknowledged item survives a crash or a
SIGKILL. Its analysis follows when the worker has produced it; on restart, items without an analysis are analysed again.
A half-written last line (the process was killed mid-write) is ignored with a warning; a bad line anywhere else, a
record of the wrong shape included, is a ``DataError`` naming the line.

A second news record with an id already in the journal is a revision (a corrected calendar figure): it replaces the
earlier version and drops the earlier version's analysis.

The journal is compacted (``compact``) so that restart time and memory follow the live state, not the uptime: the
server rewrites it as the records of the items it still holds (a snapshot) once pruning has left most of the file
dead, into a new file that replaces the old one atomically (write, fsync, rename, fsync the folder): a crash at any
moment leaves either the old journal or the new one, whole.

A write that fails (disk full, I/O error) or is short raises ``StorageError`` and the partial record is cut off again,
so the file never holds a half record that was acknowledged; the caller refuses the item and the next append retries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import DataError, UserError
from bridge.types import Analysis, NewsItem

log = logging.getLogger("bridge.wire.journal")

# NewsItem fields in a record and the JSON types each may have; anything else is corruption, reported with its line.
_ITEM_TYPES = {
    "time": (str,),
    "headline": (str,),
    "source": (str,),
    "body": (str,),
    "currency": (str, type(None)),
    "actual": (int, float, type(None)),
    "forecast": (int, float, type(None)),
    "previous": (int, float, type(None)),
    "impact": (str, type(None)),
    "event": (str, type(None)),
    "id": (str,),
}


TAIL_BYTES = 1 << 20  # how much of the end of the file the tail repair reads


def _discard(path: Path) -> None:
    """Remove a half-made file; what cannot be removed (a folder in its place) is overwritten next time."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


class StorageError(OSError):
    """The journal could not durably write a record; nothing of it is left in the file."""


def _check_item(d: object) -> dict:
    if not isinstance(d, dict):
        raise TypeError(f"item must be an object, got {type(d).__name__}")
    for name, types in _ITEM_TYPES.items():
        if name in d and (isinstance(d[name], bool) or not isinstance(d[name], types)):
            raise TypeError(f"item field {name!r} must be {'/'.join(t.__name__ for t in types)}")
    for name in ("time", "headline"):
        if name not in d:
            raise KeyError(name)
    return d


@dataclass
class JournalContents:
    """What a journal holds: items in the order they were accepted, and the analyses by news id."""

    items: list[NewsItem]
    analyses: dict[str, Analysis]
    truncated_tail: bool = False


class Journal:
    """Append-only, fsync'd JSONL journal of news items and analyses."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._fh = None

    def _check_path(self) -> None:
        """One line naming the path for every way it can be unusable, before anything is read or written."""
        hint = "give --journal a writable regular file (or --journal none)"
        parent = self.path.parent
        for up in (parent, *parent.parents):
            if up.exists():
                if not up.is_dir():
                    raise UserError(f"{up} is not a folder", path=self.path, hint=hint)
                break
        if self.path.exists() and not self.path.is_file():
            raise UserError("journal path is not a regular file", path=self.path, hint=hint)

    def load(self) -> JournalContents:
        """Read the whole journal (an absent file is an empty journal)."""
        items: dict[str, NewsItem] = {}  # by id, in acceptance order; a revision replaces its earlier version
        analyses: dict[str, Analysis] = {}
        truncated = False
        self._check_path()
        if not self.path.exists():
            return JournalContents([], analyses)
        try:
            with open(self.path, "rb") as fh:
                lines = fh.read().split(b"\n")
        except OSError as exc:
            raise UserError(
                f"cannot read the journal: {exc.strerror or exc}",
                path=self.path,
                hint="check its permissions, or move it away to start with an empty journal",
            ) from None
        # The file ends with a newline when complete, so the last piece is empty; anything else there was cut off.
        last = len(lines) - 1
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                self._apply(rec, items, analyses)
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
                if lineno - 1 == last:
                    log.warning(
                        "journal %s: ignoring a half-written last line %d (%s)", self.path, lineno, exc
                    )
                    truncated = True
                    continue
                raise DataError(
                    f"journal record is not valid: {exc}",
                    path=self.path,
                    line=lineno,
                    hint="the journal is append-only JSON Lines; restore it from a backup or move it away",
                ) from None
        return JournalContents(list(items.values()), analyses, truncated)

    @staticmethod
    def _apply(rec: dict, items: dict[str, NewsItem], analyses: dict[str, Analysis]) -> None:
        if not isinstance(rec, dict):
            raise TypeError(f"a record must be an object, got {type(rec).__name__}")
        kind = rec["kind"]
        if kind == "news":
            item = NewsItem.from_dict(_check_item(rec["item"]))
            if item.id in items:
                analyses.pop(item.id, None)  # a revision: the earlier version's analysis no longer holds
            items[item.id] = item
        elif kind == "analysis":
            if not isinstance(rec["analysis"], dict):
                raise TypeError("analysis must be an object")
            analyses[str(rec["id"])] = Analysis.from_dict(rec["analysis"])
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def open(self):
        """Open for appending (repairing a cut-off tail) and take the writer's lock; idempotent."""
        if self._fh is None:
            self._check_path()
            try:
                self._open_for_append()
            except OSError as exc:
                raise UserError(
                    f"cannot open the journal for writing: {exc.strerror or exc}",
                    path=self.path,
                    hint="check the folder exists and is writable, or give another --journal",
                ) from None
            self._lock()
        return self._fh

    def _open_for_append(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Repair a cut-off tail first, so the next record starts on its own line. A line with no newline was
        # never acknowledged (the ack waits for the whole record and the fsync): drop it unless it is complete.
        size = self.path.stat().st_size if self.path.exists() else 0
        if size:
            with open(self.path, "r+b") as fh:
                # Only the tail matters: one record is far smaller than this, and a big journal is not read twice.
                offset = max(0, size - TAIL_BYTES)
                fh.seek(offset)
                data = fh.read()
                if not data.endswith(b"\n"):
                    cut = data.rfind(b"\n") + 1
                    fh.seek(offset + len(data))
                    try:
                        json.loads(data[cut:])
                        fh.write(b"\n")
                    except ValueError:
                        log.warning("journal %s: dropping a half-written last record", self.path)
                        fh.truncate(offset + cut)
                    os.fsync(fh.fileno())
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the server's lifetime

    def _lock(self) -> None:
        # Two servers appending to one journal would interleave records; the second one is refused. (POSIX only:
        # on Windows, where fcntl does not exist, the bound port is what keeps a second server out.)
        try:
            import fcntl
        except ImportError:
            return
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            self._fh = None
            raise UserError(
                "journal is in use by another running server",
                path=self.path,
                hint="stop the other server or give this one its own --journal",
            ) from None

    def _append(self, rec: dict, sync: bool) -> None:
        fh = self.open()
        data = self._encode(rec)
        start = fh.tell()
        try:
            written = fh.write(data)
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
            if sync:
                self.sync()
        except OSError as exc:
            self._cut(start)
            raise StorageError(f"journal {self.path}: cannot write a record: {exc}") from None

    @staticmethod
    def _encode(rec: dict) -> bytes:
        try:
            return json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        # a lone surrogate from a file loader: escaped, the record stays valid JSON
        except UnicodeEncodeError:
            return json.dumps(rec, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"

    def _cut(self, size: int) -> None:
        """Drop a partly written record, so what follows starts on a line of its own and no half record stays."""
        try:
            os.ftruncate(self._fh.fileno(), size)
            self._fh.seek(size)
        except OSError as exc:  # the next append retries; load() ignores a cut-off last line
            log.error("journal %s: cannot cut a partial record: %s", self.path, exc)

    def sync(self) -> None:
        """fsync what was written so far (group commit after several ``sync=False`` appends); ``StorageError`` when
        the disk refuses."""
        if self._fh is not None and self.fsync:
            try:
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise StorageError(f"journal {self.path}: fsync failed: {exc}") from None

    def append_news(self, item: NewsItem, sync: bool = True) -> None:
        """Record an accepted news item; durable on return unless ``sync=False`` (then call ``sync()``)."""
        self._append({"kind": "news", "item": item.to_dict()}, sync)

    def append_analysis(self, news_id: str, analysis: Analysis, sync: bool = False) -> None:
        """Record the analysis of an accepted item.

        Not fsync'd by default: an analysis lost in a crash is recomputed on restart (its item is then pending), so
        its durability is worth less than the milliseconds an fsync per analysis would add to news-to-target latency.
        """
        self._append({"kind": "analysis", "id": news_id, "analysis": analysis.to_dict()}, sync)

    def size(self) -> int:
        """Bytes in the journal (what restart reads)."""
        if self._fh is not None:
            return self._fh.tell()
        return self.path.stat().st_size if self.path.exists() else 0

    def compact(self, items: list[NewsItem], analyses: dict[str, Analysis]) -> None:
        """Replace the journal by the records of ``items`` (in order) and their ``analyses``, atomically.

        The new file is locked before it takes the journal's name, so no second server can slip in between; on any
        failure it is removed and the old journal stays in use (``StorageError``).
        """
        self.open()
        tmp = self.path.with_name(self.path.name + ".compact")
        try:
            with open(tmp, "wb") as out:
                for item in items:
                    out.write(self._encode({"kind": "news", "item": item.to_dict()}))
                    if item.id in analyses:
                        rec = {"kind": "analysis", "id": item.id, "analysis": analyses[item.id].to_dict()}
                        out.write(self._encode(rec))
                out.flush()
                os.fsync(out.fileno())
            fh = open(tmp, "ab", buffering=0)  # noqa: SIM115 - becomes the journal's handle
        except OSError as exc:
            _discard(tmp)
            raise StorageError(f"journal {self.path}: cannot compact: {exc}") from None
        old, self._fh = self._fh, fh
        try:
            self._lock()
            # (on Windows a file open elsewhere cannot be replaced: this fails, and the old journal stays in use)
            os.replace(tmp, self.path)
        except (OSError, UserError) as exc:
            fh.close()
            self._fh = old
            _discard(tmp)
            raise StorageError(f"journal {self.path}: cannot compact: {exc}") from None
        old.close()  # from here the new file is the journal, whatever follows
        try:
            self._sync_folder()
        except OSError as exc:
            log.error("journal %s: compacted, but the folder could not be fsync'd: %s", self.path, exc)

    def _sync_folder(self) -> None:
        if os.name == "posix":  # the rename itself must survive a crash
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __iter__(self) -> Iterator[NewsItem]:
        return iter(self.load().items)
