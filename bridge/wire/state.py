"""The server's news state: accepted items, their analyses, and the policy target per symbol as of any time.

The target comes from ``bridge.policy`` (``effect_on`` + ``target_from_events``), the same pure functions the
backtester runs, so a reply as of time ``t`` uses only news published at or before ``t``. This module only adds state:
the items, which of them are analysed, and per currency pair the time-sorted effects of the analysed items
(``PairEffects``). Those are built once when a pair is first asked about and then kept up to date as each analysis
lands, revision drops or prune forgets: an analysis costs one insertion per cached pair and a ``signal`` only reads the
events inside the TTL window, so neither slows down as news piles up (an intake flood cannot make replies slow). The
cache is a bounded LRU keyed by the canonical pair (``EURUSD`` for ``m.EURUSD`` and ``EURUSD.pro`` alike), so a stream
of invented symbol names cannot grow memory.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import OrderedDict
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from bridge.policy import PolicyConfig, effect_on, news_currency, target_from_events
from bridge.schema import Schema, load_schema
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem, Target

K = TypeVar("K")
V = TypeVar("V")

# pairs whose effects are kept up to date (33 known codes make ~1,000 pairs; few are traded)
MAX_EFFECT_PAIRS = 256


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

    def items(self):
        return self._d.items()

    def __len__(self) -> int:
        return len(self._d)


def figures(item: NewsItem) -> tuple:
    """What a revision changes: the calendar figures. The same id with the same figures is a duplicate."""
    return (item.actual, item.forecast, item.previous)


def pair_of(symbol: str) -> str:
    """The canonical pair of a symbol (``m.EURUSD`` -> ``EURUSD``); ValueError when it is none."""
    return "".join(split_symbol(symbol))


# Change stamps of PairEffects: unique over the process, so a pair evicted and rebuilt never reuses a stamp a cached
# reply was keyed by.
_stamps = itertools.count(1)


class PairEffects:
    """The non-zero effects of analysed items on one pair, sorted by time and, at equal times, by the order their
    analyses landed; updated in place.

    Times and effects live in numpy arrays that grow by doubling, so a new item (nearly always the newest) is an
    append and a target reads a view, never a copy. ``stamp`` changes whenever an event is added or removed: a reply
    cached under it is still right.
    """

    def __init__(self):
        self._times = np.empty(64, np.int64)
        self._effects = np.empty(64, np.float64)
        self.ids: list[str] = []
        self.headlines: list[str] = []
        self.stamp = next(_stamps)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def times(self) -> np.ndarray:
        return self._times[: len(self)]

    @property
    def effects(self) -> np.ndarray:
        return self._effects[: len(self)]

    @classmethod
    def build(cls, rows: list[tuple[int, float, str, str]]) -> PairEffects:
        """From (time ns, effect, id, headline) rows in the order their analyses landed: one stable sort."""
        out = cls()
        if rows:
            order = np.argsort(np.array([r[0] for r in rows], np.int64), kind="stable")
            rows = [rows[k] for k in order]
            out._times = np.array([r[0] for r in rows], np.int64)
            out._effects = np.array([r[1] for r in rows], np.float64)
            out.ids = [r[2] for r in rows]
            out.headlines = [r[3] for r in rows]
        return out

    def add(self, time_ns: int, effect: float, news_id: str, headline: str) -> None:
        """Add the newest analysis's effect: after every event at the same time or earlier."""
        n = len(self)
        if n == len(self._times):
            self._times = np.resize(self._times, 2 * n)
            self._effects = np.resize(self._effects, 2 * n)
        at = (
            n
            if n == 0 or self._times[n - 1] <= time_ns
            else int(np.searchsorted(self.times, time_ns, "right"))
        )
        self._times[at + 1 : n + 1] = self._times[at:n]  # numpy copies overlapping slices safely
        self._effects[at + 1 : n + 1] = self._effects[at:n]
        self._times[at], self._effects[at] = time_ns, effect
        self.ids.insert(at, news_id)
        self.headlines.insert(at, headline)
        self.stamp = next(_stamps)

    def remove(self, news_ids: set[str]) -> None:
        keep = [k for k, i in enumerate(self.ids) if i not in news_ids]
        if len(keep) == len(self):
            return
        n = len(keep)
        self._times[:n] = self._times[keep]
        self._effects[:n] = self._effects[keep]
        self.ids = [self.ids[k] for k in keep]
        self.headlines = [self.headlines[k] for k in keep]
        self.stamp = next(_stamps)


class NewsState:
    """Accepted news items and their analyses; ``target(symbol, now)`` answers as of ``now``."""

    def __init__(self, config: PolicyConfig | None = None, schema: Schema | None = None):
        self.config = config or PolicyConfig()
        self.schema = schema or load_schema()
        self.items: dict[str, NewsItem] = {}
        self.analyses: dict[str, Analysis] = {}
        self._effects: LRU[str, PairEffects] = LRU(MAX_EFFECT_PAIRS)
        self.revisions = 0

    def __contains__(self, news_id: str) -> bool:
        return news_id in self.items

    def add_item(self, item: NewsItem) -> bool:
        """Accept an item; False (and nothing changes) when an item with the same id is held."""
        if item.id in self.items:
            return False
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
            self._forget_effects([item.id])
        self.revisions += 1
        return True

    def prune(self, before: pd.Timestamp) -> int:
        """Forget analysed items published before ``before`` (live mode: they are past the TTL and cannot count).

        Their ids go too, so memory is bounded by the news of one TTL however long the server runs: a copy that
        arrives later is accepted again, and being older than the TTL it cannot move a target. Items waiting for
        analysis are kept. Returns how many items were dropped.
        """
        old = [i for i, it in self.items.items() if it.time < before and i in self.analyses]
        for i in old:
            del self.items[i]
            del self.analyses[i]
        self._forget_effects(old)
        return len(old)

    def add_analysis(self, news_id: str, analysis: Analysis) -> None:
        """Attach the analysis of an accepted item and add its effect to every pair being followed."""
        item = self.items.get(news_id)
        if item is None:
            raise KeyError(f"analysis for unknown news id {news_id}")
        if self.analyses.pop(news_id, None) is not None:
            self._forget_effects([news_id])
        self.analyses[news_id] = analysis  # last in the dict: the order effects keep at equal times
        for pair, effects in self._effects.items():
            e = self._effect(pair, item, analysis)
            if e != 0.0:
                effects.add(item.time.value, e, item.id, item.headline)

    def pending(self) -> list[NewsItem]:
        """Accepted items still waiting for their analysis, oldest first."""
        return sorted((it for i, it in self.items.items() if i not in self.analyses), key=lambda it: it.time)

    def effects(self, symbol: str) -> PairEffects:
        """The effects on ``symbol``'s pair of all analysed items (built on first use, then kept up to date)."""
        pair = pair_of(symbol)
        effects = self._effects.get(pair)
        if effects is None:
            rows = []
            for news_id, analysis in self.analyses.items():
                item = self.items[news_id]
                e = self._effect(pair, item, analysis)
                if e != 0.0:
                    rows.append((item.time.value, e, item.id, item.headline))
            effects = PairEffects.build(rows)
            self._effects.put(pair, effects)
        return effects

    def stamp(self, symbol: str) -> int:
        """Changes whenever ``symbol``'s target may have, other than by the passing of time."""
        return self.effects(symbol).stamp

    def target(self, symbol: str, now: pd.Timestamp) -> Target:
        """The policy target for ``symbol`` as of ``now`` (UTC); raises ValueError for a symbol that is not a pair."""
        e = self.effects(symbol)
        tgt = target_from_events(pair_of(symbol), now, e.times, e.effects, e.ids, e.headlines, self.config)
        return dataclasses.replace(tgt, symbol=symbol)

    def _effect(self, pair: str, item: NewsItem, analysis: Analysis) -> float:
        return effect_on(pair, news_currency(item, analysis, self.schema), analysis, self.config)

    def _forget_effects(self, news_ids: list[str]) -> None:
        if news_ids:
            gone = set(news_ids)
            for _, effects in self._effects.items():
                effects.remove(gone)
