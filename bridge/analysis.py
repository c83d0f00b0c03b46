"""From news items to analyses, one path for the live server and the backtester.

``Analyzer`` is the small interface every backend follows (the fine-tuned LM through ONNX Runtime or torch, the
calendar surprise rule, the tests' keyword double). ``NewsAnalyzer`` routes items between them the same way
everywhere: a calendar event with an actual figure goes to the surprise rule, which learns each indicator's typical
surprise from every item it has observed before the release; any other item goes to the language model, or, with no
model, gets a neutral "not analysed" reading that moves nothing. ``build_analyzer`` makes one from the options both
command lines share (``add_analysis_arguments``), so a news item gets the same analysis live and in a backtest.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from bridge.errors import ModelError
from bridge.schema import load_schema
from bridge.types import Analysis, NewsItem

log = logging.getLogger("bridge.analysis")

NO_MODEL = "none"  # --model none: calendar items by the surprise rule, other news not traded
NOT_ANALYSED = "none"  # analyzer name of a headline read by no model
BACKENDS = ("auto", "onnx", "torch")


@runtime_checkable
class Analyzer(Protocol):
    """``analyze`` returns one analysis per item, in order, and never raises on odd text."""

    name: str

    def analyze(self, items: Sequence[NewsItem]) -> list[Analysis]: ...


def analyzer_name(analyzer) -> str:
    return getattr(analyzer, "name", type(analyzer).__name__)


class NewsAnalyzer:
    """Calendar items to ``calendar`` (the surprise rule), the rest to ``lm``; one bad item never spoils a batch.

    ``calendar`` may be None (every item to ``lm``) and ``lm`` may be None (headlines are not analysed: a neutral
    reading with confidence 0 and analyzer ``none``). ``observe`` feeds the surprise rule's indicator history.
    ``cache`` (``get_many(name, items)`` / ``put_many(name, items, analyses)``, as ``backtest.cache.AnalysisCache``)
    keeps the model's analyses; the surprise rule's are not cached, as they depend on the history observed.
    """

    def __init__(self, lm: Analyzer | None, calendar: Analyzer | None, schema=None, cache=None):
        self.lm, self.calendar, self.cache = lm, calendar, cache
        self.schema = schema or load_schema()
        self.failures = 0  # items whose analyzer raised and that fell back to neutral
        self.computed = 0  # items the language model actually read (not from the cache): the costly part

    @property
    def name(self) -> str:
        # read each time: a language model's name changes when its ONNX build fails on first use (torch answers)
        return "+".join(analyzer_name(a) for a in (self.lm, self.calendar) if a is not None) or NOT_ANALYSED

    def observe(self, items: Iterable[NewsItem]) -> None:
        """Let the surprise rule learn from ``items`` (every item accepted or loaded, analysed or not)."""
        observe = getattr(self.calendar, "observe", None)
        if observe is not None:
            observe(items)

    def route(self, item: NewsItem) -> Analyzer | None:
        """The analyzer that reads ``item``; None when no model reads it."""
        if self.calendar is not None and item.is_calendar:
            return self.calendar
        return self.lm

    def analyze(self, items: Sequence[NewsItem]) -> list[Analysis]:
        """One analysis per item, in order; never raises."""
        out: list[Analysis | None] = [None] * len(items)
        groups: dict[int, tuple[Analyzer | None, list[int]]] = {}
        for i, item in enumerate(items):
            analyzer = self.route(item)
            groups.setdefault(id(analyzer), (analyzer, []))[1].append(i)
        for analyzer, idx in groups.values():
            batch = [items[i] for i in idx]
            for i, a in zip(idx, self._analyze_group(analyzer, batch), strict=True):
                out[i] = a
        return out  # type: ignore[return-value]

    def _analyze_group(self, analyzer: Analyzer | None, batch: list[NewsItem]) -> list[Analysis]:
        if analyzer is None:
            return [self._neutral(NOT_ANALYSED, fallback=False) for _ in batch]
        if analyzer is self.lm and self.cache is not None:
            return self._cached(analyzer, batch)
        return self._safely(analyzer, batch)

    def _cached(self, analyzer: Analyzer, batch: list[NewsItem]) -> list[Analysis]:
        names = getattr(analyzer, "cache_names", None) or [analyzer_name(analyzer)]
        found = self.cache.get_many(names[0], batch)
        for other in names[1:]:
            missing = [i for i, a in enumerate(found) if a is None]
            for i, a in zip(missing, self.cache.get_many(other, [batch[i] for i in missing]), strict=True):
                found[i] = a
        todo = [i for i, a in enumerate(found) if a is None]
        if todo:
            items = [batch[i] for i in todo]
            results = self._safely(analyzer, items)
            keep = [(it, a) for it, a in zip(items, results, strict=True) if not a.fallback]
            if keep:
                # under the name of what answered: the first analysis may have switched ONNX to torch
                self.cache.put_many(analyzer_name(analyzer), *map(list, zip(*keep, strict=True)))
            for i, a in zip(todo, results, strict=True):
                found[i] = a
        return found  # type: ignore[return-value]

    def _safely(self, analyzer: Analyzer, batch: list[NewsItem]) -> list[Analysis]:
        try:
            results = self._checked(analyzer, batch)
            self.computed += len(batch) if analyzer is self.lm else 0
            return results
        except Exception:
            if len(batch) == 1:
                self.failures += 1
                log.exception(
                    "analyzer failed on an item; neutral fallback",
                    extra={"fields": {"id": batch[0].id, "analyzer": analyzer_name(analyzer)}},
                )
                return [self._neutral(analyzer_name(analyzer), fallback=True)]
        # The batch failed: find the bad item(s) one by one so the others are analysed normally.
        return [a for item in batch for a in self._safely(analyzer, [item])]

    @staticmethod
    def _checked(analyzer: Analyzer, batch: list[NewsItem]) -> list[Analysis]:
        results = list(analyzer.analyze(batch))
        if len(results) != len(batch):
            raise RuntimeError(f"analyzer returned {len(results)} analyses for {len(batch)} items")
        return results

    def _neutral(self, name: str, fallback: bool) -> Analysis:
        return Analysis(self.schema.defaults(), 0, confidence=0.0, fallback=fallback, analyzer=name)


def add_analysis_arguments(group: argparse._ActionsContainer) -> None:
    """The model options of ``bridge.serve`` and ``backtest.run``, declared once."""
    group.add_argument(
        "--model",
        default=None,
        help="fine-tuned model directory or id (default: the shipped model); "
        f"'{NO_MODEL}' = calendar items by the surprise rule only, other news not traded",
    )
    group.add_argument("--backend", choices=BACKENDS, default="auto", help="LM runtime")


def build_analyzer(
    model: str | None = None,
    backend: str = "auto",
    history: Iterable[NewsItem] = (),
    missing_model_ok: bool = False,
    cache=None,
    live: bool = False,
) -> tuple[NewsAnalyzer, str | None]:
    """The analyzer for ``--model``/``--backend``, its surprise rule primed with ``history``; and a note or None.

    ``model=None`` is the shipped model; ``cache`` keeps the model's analyses (see ``NewsAnalyzer``). If it is not
    installed, ``missing_model_ok`` serves calendar items only (the note says so); otherwise that is a ``ModelError``
    with the way out. ``live`` bounds the surprise rule's memory (``SurpriseAnalyzer(bounded=True)``).
    """
    from bridge.news.surprise import SurpriseAnalyzer

    # live (the server): the surprise rule keeps a bounded history, as an uptime of months must not grow memory
    calendar = SurpriseAnalyzer(history=history, bounded=live)
    if model is not None and model.lower() == NO_MODEL:
        return NewsAnalyzer(None, calendar, cache=cache), None
    from bridge.lm.analyzer import load_analyzer

    try:
        lm = load_analyzer(model, backend)
    except ModelError as exc:
        if model is not None or not missing_model_ok:
            if model is None:
                raise ModelError(f"{exc}; or serve calendar events only with --model {NO_MODEL}") from None
            raise
        note = (
            f"the shipped language model is missing ({exc}); calendar items are read by the surprise rule and "
            "headlines without actual/forecast values are not traded"
        )
        return NewsAnalyzer(None, calendar, cache=cache), note
    return NewsAnalyzer(lm, calendar, cache=cache), None
