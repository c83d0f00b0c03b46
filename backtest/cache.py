"""A persistent cache of analyses, so a second backtest over the same news runs no inference.

Keyed by the analyzer's ``name`` (which for a fine-tuned model includes its checkpoint hash), the news item's id and a
hash of its content (headline, body and calendar fields), so an edited item is analysed again. Stored in one SQLite
file, by default ``$EA_BRIDGE_CACHE/analyses.sqlite`` or ``~/.cache/ea-bridge/analyses.sqlite``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from bridge.errors import UserError
from bridge.types import Analysis, NewsItem


def default_cache_dir() -> Path:
    """``$EA_BRIDGE_CACHE`` if set, else ``~/.cache/ea-bridge``."""
    env = os.environ.get("EA_BRIDGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ea-bridge"


def content_hash(item: NewsItem) -> str:
    """Hash of everything an analyzer may read from ``item`` (not its id)."""
    d = item.to_dict()
    d.pop("id", None)
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


class AnalysisCache:
    """Analyses by (analyzer name, news id, content hash) in a SQLite file; ``path=':memory:'`` keeps it in memory."""

    def __init__(self, path: str | Path | None = None):
        if path is None:
            path = default_cache_dir() / "analyses.sqlite"
        if str(path) != ":memory:":
            path = Path(path)
            if path.is_dir() or path.suffix == "":
                path = path / "analyses.sqlite"
        self.path = path
        try:
            if str(path) != ":memory:":
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS analyses (analyzer TEXT, news_id TEXT, content TEXT, analysis TEXT,"
                " PRIMARY KEY (analyzer, news_id, content))"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise UserError(
                f"cannot use the analysis cache: {exc}",
                path=path,
                hint="give --cache a folder (or an SQLite file) you can write, or use --no-cache",
            ) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AnalysisCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get_many(self, analyzer: str, items: Sequence[NewsItem]) -> list[Analysis | None]:
        """The cached analysis of each item, or None where there is none."""
        out: list[Analysis | None] = []
        cur = self._db.cursor()
        for item in items:
            row = cur.execute(
                "SELECT analysis FROM analyses WHERE analyzer=? AND news_id=? AND content=?",
                (analyzer, item.id, content_hash(item)),
            ).fetchone()
            out.append(Analysis.from_dict(json.loads(row[0])) if row else None)
        return out

    def put_many(self, analyzer: str, items: Sequence[NewsItem], analyses: Sequence[Analysis]) -> None:
        """Store analyses (replacing older ones for the same key)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?)",
            [
                (analyzer, it.id, content_hash(it), json.dumps(a.to_dict()))
                for it, a in zip(items, analyses, strict=True)
            ],
        )
        self._db.commit()
