"""The server's news state: accepted items, their analyses, and the policy target per symbol as of any time.

The target comes from ``bridge.policy`` (``effects_frame`` + ``target_for``), the same pure functions the backtester
runs, so a reply as of time ``t`` uses only news published at or before ``t``. This module only adds state: the
items, which of them are analysed, and caches (the effects frame per symbol, invalidated when an analysis lands).
"""

from __future__ import annotations

import pandas as pd

from bridge.policy import PolicyConfig, effects_frame, target_for
from bridge.schema import Schema, load_schema
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem, Target


class NewsState:
    """Accepted news items and their analyses; ``target(symbol, now)`` answers as of ``now``."""

    def __init__(self, config: PolicyConfig | None = None, schema: Schema | None = None):
        self.config = config or PolicyConfig()
        self.schema = schema or load_schema()
        self.items: dict[str, NewsItem] = {}
        self._ids: set[str] = (
            set()
        )  # every id ever accepted, pruned ones included: duplicates stay duplicates
        self.analyses: dict[str, Analysis] = {}
        self.version = 0  # bumped on every new analysis; caches keyed by it
        self._effects: dict[str, tuple[int, pd.DataFrame]] = {}
        self._targets: dict[tuple[str, int], tuple[int, Target]] = {}

    def __contains__(self, news_id: str) -> bool:
        return news_id in self._ids

    def add_item(self, item: NewsItem) -> bool:
        """Accept an item; False (and nothing changes) when an item with the same id was ever accepted."""
        if item.id in self._ids:
            return False
        self._ids.add(item.id)
        self.items[item.id] = item
        return True

    def prune(self, before: pd.Timestamp) -> int:
        """Forget analysed items published before ``before`` (live mode: they are past the TTL and cannot count).

        Their ids are kept, so a late copy is still a duplicate. Items waiting for analysis are kept. Returns how
        many items were dropped.
        """
        old = [i for i, it in self.items.items() if it.time < before and i in self.analyses]
        for i in old:
            del self.items[i]
            del self.analyses[i]
        if old:
            self.version += 1
        return len(old)

    def add_analysis(self, news_id: str, analysis: Analysis) -> None:
        """Attach the analysis of an accepted item; the targets it may change are recomputed on demand."""
        if news_id not in self.items:
            raise KeyError(f"analysis for unknown news id {news_id}")
        self.analyses[news_id] = analysis
        self.version += 1

    def pending(self) -> list[NewsItem]:
        """Accepted items still waiting for their analysis, oldest first."""
        return sorted((it for i, it in self.items.items() if i not in self.analyses), key=lambda it: it.time)

    def effects(self, symbol: str) -> pd.DataFrame:
        """The policy's effects frame for ``symbol`` over all analysed items (cached until the next analysis)."""
        cached = self._effects.get(symbol)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        pairs = ((self.items[i], a) for i, a in self.analyses.items())
        frame = effects_frame(symbol, pairs, self.config, self.schema)
        self._effects[symbol] = (self.version, frame)
        return frame

    def target(self, symbol: str, now: pd.Timestamp) -> Target:
        """The policy target for ``symbol`` as of ``now`` (UTC); raises ValueError for a symbol that is not a pair.

        Answers for the same symbol, state and second are served from a cache: a live EA asks every timer tick, and
        the decayed sum changes meaningfully only over minutes.
        """
        split_symbol(symbol)
        now = pd.Timestamp(now)
        second = int(now.value // 1_000_000_000)
        key = (symbol, second)
        hit = self._targets.get(key)
        if hit is not None and hit[0] == self.version:
            return hit[1]
        tgt = target_for(symbol, pd.Timestamp(second, unit="s", tz="UTC"), self.effects(symbol), self.config)
        if len(self._targets) > 4096:
            self._targets.clear()
        self._targets[key] = (self.version, tgt)
        return tgt
