"""The calendar surprise rule: sentiment for an event's currency from actual against expected.

For a calendar item with an ``actual`` value the expected value is the ``forecast`` (consensus), or the ``previous``
reading when there is no forecast. The sign is ``sign(actual - expected) * polarity``, where the polarity comes from
the indicator's name through ``bridge/news/indicators.json`` (+1 by default; -1 for unemployment, jobless claims,
inventories and the like, where a higher number is bad news; 0 where the number has no direction for the currency).

Magnitude (slightly / moderately / extremely = 1 / 2 / 3) comes from the size of the surprise:

* **scaled** (preferred): with a history of the same indicator (``SurpriseAnalyzer(history=items)`` or
  ``typical_surprises``), ``z = |surprise| / typical`` where typical is the indicator's median absolute surprise;
  level 1 for z < 1.0, level 2 for z < 2.5, level 3 above. A surprise of ordinary size is "slightly", one two and a
  half times the usual is "extremely".
* **relative** (no history): ``r = |actual - expected| / max(|expected|, |previous|, |actual|)``; level 1 for
  r < 0.10, level 2 for r < 0.30, level 3 above. Crude for numbers near zero (month-on-month changes), which is why
  the scaled form is preferred where a history exists.

Confidence grows with the surprise: ``0.5 + 0.45 * min(1, size / top)`` where ``top`` is the extreme bound, times 0.7
when the comparison is against the previous reading instead of a forecast. An item with no actual, nothing to compare
with, or no direction (polarity 0) is neutral with confidence 0.1; an actual exactly on expectation is neutral with
confidence 0.5 (the outcome is known and unsurprising).

Labels (FX schema): event "economic data", or "central bank decision" for rate decisions (sector "rates"); market
from the currency (the schema's ``market_currency`` inverted; "global" when unknown); related = (currency,).
"""

from __future__ import annotations

import json
import math
import re
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from statistics import median

import pandas as pd

from bridge.errors import UserError
from bridge.schema import Schema, load_schema
from bridge.types import Analysis, NewsItem

INDICATORS_FILE = Path(__file__).with_name("indicators.json")
NAME = "surprise-rule"
LOW_CONFIDENCE = 0.1
ON_EXPECTATION_CONFIDENCE = 0.5
PREVIOUS_ONLY_FACTOR = 0.7  # comparing against last month's reading is a weaker signal than against consensus
# Calendar names carry the period they refer to: 'CPI (YoY) (OCT P)', 'Initial Jobless Claims (DEC 27)', '(3Q A)'.
# Matched against one trailing "(...)" group only (see _strip_period): a pattern anchored at the end with a leading
# \s* would try every start position of a long run of spaces, quadratic time on hostile input.
_PERIOD = re.compile(
    r"\((?:(?:jan|feb|mar|apr|may|june?|july?|aug|sep|oct|nov|dec)(?:[ -]\d{1,2})?|\d[qh]|q\d|(?:19|20)\d\d)"
    r"(?:\s+[apfst])?\)",
    re.IGNORECASE,
)
MAX_NAME_CHARS = 200  # an indicator name longer than this is cut before any pattern reads it


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern
    value: dict


@dataclass(frozen=True)
class IndicatorTable:
    """Polarity and event rules read from ``indicators.json`` (see its description)."""

    polarity_rules: tuple[_Rule, ...]
    event_rules: tuple[_Rule, ...]
    default_event: dict
    scaled: tuple[float, float]
    relative: tuple[float, float]

    def polarity(self, name: str) -> int:
        """+1, -1 or 0 for an indicator name; +1 when no rule matches."""
        for r in self.polarity_rules:
            if r.pattern.search(name):
                return int(r.value["polarity"])
        return 1

    def event(self, name: str) -> dict:
        """``{"event", "sector", "rate_decision"}`` for an indicator name."""
        for r in self.event_rules:
            if r.pattern.search(name):
                return {"rate_decision": False, **r.value}
        return {"rate_decision": False, **self.default_event}


@cache
def load_indicators(path: str | Path = INDICATORS_FILE) -> IndicatorTable:
    """Read and check the indicator table; a bad file is a ``UserError`` naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pol = tuple(
            _Rule(re.compile(r["pattern"], re.IGNORECASE), {"polarity": int(r["polarity"])})
            for r in data["polarity"]
        )
        ev = tuple(
            _Rule(
                re.compile(r["pattern"], re.IGNORECASE),
                {
                    "event": r["event"],
                    "sector": r["sector"],
                    "rate_decision": bool(r.get("rate_decision", False)),
                },
            )
            for r in data["events"]
        )
        th = data["thresholds"]
        table = IndicatorTable(
            pol, ev, dict(data["default_event"]), tuple(th["scaled"]), tuple(th["relative"])
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, re.error) as exc:
        raise UserError(
            f"invalid indicator table: {exc!r}", path=path, hint="see bridge/news/indicators.json"
        ) from exc
    for r in pol:
        if r.value["polarity"] not in (-1, 0, 1):
            raise UserError(f"polarity must be -1, 0 or 1 (rule {r.pattern.pattern!r})", path=path)
    return table


def _indicator_name(item: NewsItem) -> str:
    """The text the indicator rules read, cut to ``MAX_NAME_CHARS`` so no pattern ever sees a huge input."""
    return (item.event or item.headline)[:MAX_NAME_CHARS]


def _strip_period(name: str) -> str:
    """``'CPI (YoY) (OCT P)'`` -> ``'CPI (YoY)'``: drop trailing period groups, in linear time."""
    name = name.rstrip()
    while name.endswith(")"):
        start = name.rfind("(")
        if start < 0 or not _PERIOD.fullmatch(name, start):
            break
        name = name[:start].rstrip()
    return name


def indicator_key(item: NewsItem) -> str:
    """The indicator an item reports, without its reference period: ``USD|Initial Jobless Claims``."""
    name = _strip_period((item.event or item.headline.split(":", 1)[0])[:MAX_NAME_CHARS])
    return f"{item.currency or ''}|{' '.join(name.split()).lower()}"


def expected_value(item: NewsItem) -> tuple[float | None, bool]:
    """The value the market expected and whether it was a forecast (True) or the previous reading (False)."""
    if item.forecast is not None:
        return item.forecast, True
    return item.previous, False


MIN_HISTORY = 3  # fewer nonzero surprises than this say nothing about what is usual for an indicator
# The typical surprise of a release is the median of its indicator's last RECENT releases before it (20 years of a
# monthly figure, 5 of a weekly one): what is usual now, and a bounded cost per analysis whatever the history.
RECENT = 250
# bounded=True (the live server): indicators whose history is kept, the least recently updated forgotten first, so a
# feed inventing event names cannot grow memory; each keeps only its last RECENT releases
KEEP_INDICATORS = 5_000


def _surprises(items: Iterable[NewsItem]) -> Iterator[tuple[str, pd.Timestamp, float]]:
    """``(indicator key, time, |actual - expected|)`` of each item with a nonzero, finite surprise."""
    for it in items:
        exp, _ = expected_value(it)
        if it.actual is None or exp is None or it.actual == exp:
            continue
        try:
            size = abs(float(it.actual) - float(exp))
        except (OverflowError, TypeError, ValueError):  # 10**400 from a file: no surprise to learn from
            continue
        if math.isfinite(size):
            yield indicator_key(it), it.time, size


def typical_surprises(items: Iterable[NewsItem]) -> dict[str, float]:
    """Median absolute surprise per indicator (``indicator_key``), over items with a nonzero surprise.

    Indicators with fewer than three such items are left out (too few to know what is usual).
    """
    by_key: dict[str, list[float]] = {}
    for key, _, size in _surprises(items):
        by_key.setdefault(key, []).append(size)
    return {k: median(v) for k, v in by_key.items() if len(v) >= MIN_HISTORY}


def _level(size: float, bounds: tuple[float, float]) -> int:
    if size < bounds[0]:
        return 1
    if size < bounds[1]:
        return 2
    return 3


def _market(currency: str | None, schema: Schema) -> str:
    field = schema.field("market")
    for market, ccy in schema.market_currency:
        if ccy and currency and ccy == currency.upper():
            return market
    return field.default


def surprise_analysis(
    item: NewsItem,
    typical: dict[str, float] | None = None,
    schema: Schema | None = None,
    table: IndicatorTable | None = None,
    scale: float | None = None,
) -> Analysis:
    """The surprise rule for one item (see the module docstring); never raises on odd input.

    ``typical`` maps ``indicator_key`` to the indicator's typical surprise; ``scale`` gives that number for this item
    directly (it wins over ``typical``). Without either the relative magnitude is used.
    """
    schema = schema or load_schema()
    table = table or load_indicators()
    name = _indicator_name(item)
    ev = table.event(name)
    labels = schema.defaults()
    labels.update({k: ev[k] for k in ("event", "sector") if k in labels})
    if "market" in labels:
        labels["market"] = _market(item.currency, schema)
    related = (item.currency,) if item.currency else ()

    def result(level: int, confidence: float) -> Analysis:
        return Analysis(labels, level, related, confidence=round(confidence, 4), analyzer=NAME)

    exp, is_forecast = expected_value(item)
    polarity = table.polarity(name)
    if item.actual is None or exp is None or polarity == 0:
        return result(0, LOW_CONFIDENCE)
    diff = item.actual - exp
    if diff == 0:
        return result(0, ON_EXPECTATION_CONFIDENCE)
    if scale is None:
        scale = (typical or {}).get(indicator_key(item))
    if scale:
        size, bounds = abs(diff) / scale, table.scaled
    else:
        denom = max(abs(exp), abs(item.previous or 0.0), abs(item.actual))
        size, bounds = abs(diff) / denom, table.relative
    level = _level(size, bounds)
    confidence = 0.5 + 0.45 * min(1.0, size / bounds[1])
    if not is_forecast:
        confidence *= PREVIOUS_ONLY_FACTOR
    sign = 1 if diff > 0 else -1
    return result(sign * polarity * level, confidence)


class SurpriseAnalyzer:
    """The surprise rule as an ``Analyzer`` (name ``surprise-rule``).

    ``history``: calendar items used to learn each indicator's typical surprise (the scaled magnitude); without it the
    relative magnitude is used. With ``causal=True`` (the default, right for backtests and live use) an item's typical
    surprise comes only from history strictly before the item's time, so no later release shapes an earlier label;
    ``causal=False`` uses the whole history (the training-data converter labels a finished file this way). Items that
    are not calendar events get a neutral, low-confidence analysis.
    """

    name = NAME

    def __init__(
        self,
        history: Iterable[NewsItem] = (),
        schema: Schema | str | None = None,
        causal: bool = True,
        bounded: bool = False,
    ):
        self.schema = load_schema(schema) if isinstance(schema, str) else (schema or load_schema())
        if "market" not in {f.name for f in self.schema.fields} or not self.schema.market_currency:
            raise UserError(
                f"the surprise rule needs a schema with a 'market' field and a market_currency map; "
                f"{self.schema.name!r} lacks them",
                hint="use the fx_macro schema",
            )
        self.table = load_indicators()
        self.causal, self.bounded = causal, bounded
        self._lock = threading.Lock()  # the server observes on its request thread and analyses on its worker
        # per indicator, time-sorted: (time, surprise size, news id), and the times alone for bisecting
        self._history: OrderedDict[str, list[tuple[pd.Timestamp, float, str]]] = OrderedDict()
        self._times: dict[str, list[pd.Timestamp]] = {}
        # news id -> its surprise, while it is in a history
        self._seen: dict[str, tuple[str, pd.Timestamp, float]] = {}
        self.observe(history)

    @property
    def typical(self) -> dict[str, float]:
        """Median absolute surprise per indicator over the whole history (the non-causal scale)."""
        with self._lock:
            return {k: median(s for _, s, _ in v) for k, v in self._history.items() if len(v) >= MIN_HISTORY}

    def observe(self, items: Iterable[NewsItem]) -> int:
        """Add calendar items to the indicator history; returns how many surprises were added.

        The server observes every item it accepts, the backtester every item it loads, so a release gets the same
        typical surprise live and in a backtest: with ``causal=True`` only items strictly before it count. An item
        seen again with other figures (a revised release, same id) replaces its earlier surprise.
        """
        added = 0
        with self._lock:
            for it in items:
                new = next(_surprises([it]), None)
                old = self._seen.get(it.id)
                if old == new:
                    continue  # seen with the same figures (or neither time a surprise)
                if old is not None:
                    self._remove(it.id, *old)
                if new is not None:
                    self._add(it.id, *new)
                    added += 1
        return added

    def _add(self, news_id: str, key: str, when: pd.Timestamp, size: float) -> None:
        self._seen[news_id] = (key, when, size)
        times = self._times.setdefault(key, [])
        hist = self._history.setdefault(key, [])
        pos = bisect_right(times, when)
        times.insert(pos, when)
        hist.insert(pos, (when, size, news_id))
        if not self.bounded:
            return
        self._history.move_to_end(key)
        # the last RECENT count for a new release; twice that are kept for items still waiting for analysis
        if len(hist) > 2 * RECENT:
            del times[0]
            self._seen.pop(hist.pop(0)[2], None)
        if len(self._history) > KEEP_INDICATORS:
            gone, entries = self._history.popitem(last=False)
            del self._times[gone]
            for _, _, nid in entries:
                self._seen.pop(nid, None)

    def _remove(self, news_id: str, key: str, when: pd.Timestamp, size: float) -> None:
        del self._seen[news_id]
        hist = self._history[key]
        i = hist.index((when, size, news_id))
        del hist[i]
        del self._times[key][i]

    def scale_for(self, item: NewsItem) -> float | None:
        """The typical surprise of the item's indicator that the analyzer may use for this item, or None."""
        key = indicator_key(item)
        with self._lock:
            hist = self._history.get(key)
            if not hist:
                return None
            if not self.causal:
                return median(s for _, s, _ in hist) if len(hist) >= MIN_HISTORY else None
            n = bisect_left(self._times[key], item.time)
            recent = hist[max(0, n - RECENT) : n]
            return median(s for _, s, _ in recent) if len(recent) >= MIN_HISTORY else None

    def analyze(self, items: Sequence[NewsItem]) -> list[Analysis]:
        """One analysis per item, in order."""
        return [
            surprise_analysis(it, None, self.schema, self.table, scale=self.scale_for(it)) for it in items
        ]
