"""Analyzers turn news items into analyses. Every backend (fine-tuned LM through ONNX Runtime or torch, the
calendar-surprise rule) follows the same small interface so the server and the backtester can swap them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from bridge.types import Analysis, NewsItem


@runtime_checkable
class Analyzer(Protocol):
    """``analyze`` returns one analysis per item, in order, and never raises on odd text."""

    name: str

    def analyze(self, items: Sequence[NewsItem]) -> list[Analysis]: ...
