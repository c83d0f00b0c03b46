"""The server's journal: every accepted news item and its analysis, appended and fsync'd before anyone is told.

An append-only JSON Lines file, one record per line::

    {"kind": "news", "item": {...NewsItem.to_dict()...}}
    {"kind": "analysis", "id": "<news id>", "analysis": {...Analysis.to_dict()...}}

A news record is written (and fsync'd) before the ``ack`` goes out, so an acknowledged item survives a crash or a
SIGKILL. Its analysis follows when the worker has produced it; on restart, items without an analysis are analysed again.
A half-written last line (the process was killed mid-write) is ignored with a warning; a bad line anywhere else is a
``DataError`` naming the line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import DataError, UserError
from bridge.types import Analysis, NewsItem

log = logging.getLogger("bridge.wire.journal")


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

    def load(self) -> JournalContents:
        """Read the whole journal (an absent file is an empty journal)."""
        items: list[NewsItem] = []
        analyses: dict[str, Analysis] = {}
        truncated = False
        if not self.path.exists():
            return JournalContents(items, analyses)
        with open(self.path, "rb") as fh:
            lines = fh.read().split(b"\n")
        # The file ends with a newline when complete, so the last piece is empty; anything else there was cut off.
        last = len(lines) - 1
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                self._apply(rec, items, analyses)
            except (ValueError, KeyError, TypeError) as exc:
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
        return JournalContents(items, analyses, truncated)

    @staticmethod
    def _apply(rec: dict, items: list[NewsItem], analyses: dict[str, Analysis]) -> None:
        kind = rec["kind"]
        if kind == "news":
            items.append(NewsItem.from_dict(rec["item"]))
        elif kind == "analysis":
            analyses[str(rec["id"])] = Analysis.from_dict(rec["analysis"])
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def open(self):
        """Open for appending (repairing a cut-off tail) and take the writer's lock; idempotent."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Repair a cut-off tail first, so the next record starts on its own line. A line with no newline was
            # never acknowledged (the ack waits for the whole record and the fsync): drop it unless it is complete.
            if self.path.exists() and self.path.stat().st_size:
                with open(self.path, "r+b") as fh:
                    data = fh.read()
                    if not data.endswith(b"\n"):
                        cut = data.rfind(b"\n") + 1
                        try:
                            json.loads(data[cut:])
                            fh.write(b"\n")
                        except ValueError:
                            log.warning("journal %s: dropping a half-written last record", self.path)
                            fh.truncate(cut)
                        os.fsync(fh.fileno())
            self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the server's lifetime
            self._lock()
        return self._fh

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
        fh.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        if sync:
            self.sync()

    def sync(self) -> None:
        """fsync what was written so far (group commit after several ``sync=False`` appends)."""
        if self._fh is not None and self.fsync:
            os.fsync(self._fh.fileno())

    def append_news(self, item: NewsItem, sync: bool = True) -> None:
        """Record an accepted news item; durable on return unless ``sync=False`` (then call ``sync()``)."""
        self._append({"kind": "news", "item": item.to_dict()}, sync)

    def append_analysis(self, news_id: str, analysis: Analysis, sync: bool = False) -> None:
        """Record the analysis of an accepted item.

        Not fsync'd by default: an analysis lost in a crash is recomputed on restart (its item is then pending), so
        its durability is worth less than the milliseconds an fsync per analysis would add to news-to-target latency.
        """
        self._append({"kind": "analysis", "id": news_id, "analysis": analysis.to_dict()}, sync)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __iter__(self) -> Iterator[NewsItem]:
        return iter(self.load().items)
