"""The server's news state: accepted items, their analyses, and the policy target per symbol as of any time.

The target comes from ``bridge.policy`` (``effects_frame`` + ``target_for``), the same pure functions the backtester
runs, so a reply as of time ``t`` uses only news published at or before ``t``. This module only adds state: the
items, which of them are analysed, and caches (the effects frame per currency pair, invalidated when an analysis
lands). Every cache is a bounded LRU keyed by the canonical pair (``EURUSD`` for ``m.EURUSD`` and ``EURUSD.pro``
alike), so a stream of invented symbol names cannot grow memory.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Generic, TypeVar

import pandas as pd

from bridge.policy import PolicyConfig, effects_frame, target_for
from bridge.schema import Schema, load_schema
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem, Target

K = TypeVar("K")
V = TypeVar("V")

# pairs whose effects frame is kept (33 known codes make ~1,000 pairs; few are traded)
MAX_EFFECT_FRAMES = 256
MAX_TARGETS = 4096  # (pair, second) answers kept


class LRU(Generic[K, V]):
    """A dict with at most ``limit`` entries; the least recently used one goes first. ``evicted`` counts them."""

    def __init__(self, limit: int):
        self.limit = limit
        self.evicted = 0
        self._d: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._d.get(key)
        if value is not None:
            self._d.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.limit:
            self._d.popitem(last=False)
            self.evicted += 1

    def __len__(self) -> int:
        return len(self._d)


def figures(item: NewsItem) -> tuple:
    """What a revision changes: the calendar figures. The same id with the same figures is a duplicate."""
    return (item.actual, item.forecast, item.previous)


def pair_of(symbol: str) -> str:
    """The canonical pair of a symbol (``m.EURUSD`` -> ``EURUSD``); ValueError when it is none."""
    return "".join(split_symbol(symbol))


class NewsState:
    """Accepted news items and their analyses; ``target(symbol, now)`` answers as of ``now``."""

    def __init__(self, config: PolicyConfig | None = None, schema: Schema | None = None):
        self.config = config or PolicyConfig()
        self.schema = schema or load_schema()
        self.items: dict[str, NewsItem] = {}
        # every id ever accepted, pruned ones included: duplicates stay duplicates
        self._ids: set[str] = set()
        self.analyses: dict[str, Analysis] = {}
        self.version = 0  # bumped on every new analysis; caches keyed by it
        self._effects: LRU[str, tuple[int, pd.DataFrame]] = LRU(MAX_EFFECT_FRAMES)
        self._targets: LRU[tuple[str, int], tuple[int, Target]] = LRU(MAX_TARGETS)
        self.revisions = 0

    def __contains__(self, news_id: str) -> bool:
        return news_id in self._ids

    def add_item(self, item: NewsItem) -> bool:
        """Accept an item; False (and nothing changes) when an item with the same id was ever accepted."""
        if item.id in self._ids:
            return False
        self._ids.add(item.id)
        self.items[item.id] = item
        return True

    def revise(self, item: NewsItem) -> bool:
        """Replace a held item by a new version with the same id (a corrected figure); its analysis is dropped and
        it is pending again. False (nothing changes) when the id is unknown, pruned, or the figures are the same."""
        old = self.items.get(item.id)
        if old is None or figures(old) == figures(item):
            return False
        self.items[item.id] = item
        if self.analyses.pop(item.id, None) is not None:
            self.version += 1
        self.revisions += 1
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
        """The policy's effects frame for ``symbol``'s pair over all analysed items (cached until the next analysis)."""
        pair = pair_of(symbol)
        cached = self._effects.get(pair)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        pairs = ((self.items[i], a) for i, a in self.analyses.items())
        frame = effects_frame(pair, pairs, self.config, self.schema)
        self._effects.put(pair, (self.version, frame))
        return frame

    def target(self, symbol: str, now: pd.Timestamp) -> Target:
        """The policy target for ``symbol`` as of ``now`` (UTC); raises ValueError for a symbol that is not a pair.

        Answers for the same symbol, state and second are served from a cache: a live EA asks every timer tick, and
        the decayed sum changes meaningfully only over minutes.
        """
        pair = pair_of(symbol)
        now = pd.Timestamp(now)
        second = int(now.value // 1_000_000_000)
        key = (pair, second)
        hit = self._targets.get(key)
        if hit is None or hit[0] != self.version:
            tgt = target_for(pair, pd.Timestamp(second, unit="s", tz="UTC"), self.effects(pair), self.config)
            hit = (self.version, tgt)
            self._targets.put(key, hit)
        tgt = hit[1]
        return tgt if tgt.symbol == symbol else dataclasses.replace(tgt, symbol=symbol)
