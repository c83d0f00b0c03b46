"""The records that flow through the system: a news item, its analysis, and the target position it leads to."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd


def news_id(time_utc: datetime, source: str, headline: str) -> str:
    """Stable id of a news item: the same time, source and headline give the same id on every machine and run."""
    key = (
        f"{pd.Timestamp(time_utc).isoformat()}|{source.strip().lower()}|{' '.join(headline.split()).lower()}"
    )
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class NewsItem:
    """One piece of news, always in UTC.

    Calendar events carry ``actual``/``forecast``/``previous`` as floats (already parsed from text such as ``227K``)
    so the surprise rule can label them without a model.
    """

    time: pd.Timestamp
    headline: str
    source: str = ""
    body: str = ""
    currency: str | None = None
    actual: float | None = None
    forecast: float | None = None
    previous: float | None = None
    impact: str | None = None
    event: str | None = None  # the calendar indicator's name, e.g. "Non-Farm Employment Change"
    id: str = ""

    def __post_init__(self):
        ts = pd.Timestamp(self.time)
        if ts.tzinfo is None:
            raise ValueError(f"NewsItem.time must be timezone-aware UTC, got naive {ts}")
        object.__setattr__(self, "time", ts.tz_convert("UTC"))
        if not self.id:
            object.__setattr__(self, "id", news_id(self.time, self.source, self.headline))

    @property
    def is_calendar(self) -> bool:
        """True for a calendar event with an actual value and something to compare it with."""
        return self.actual is not None and (self.forecast is not None or self.previous is not None)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["time"] = self.time.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NewsItem:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d and d[k] is not None}
        kw["time"] = pd.Timestamp(d["time"])
        return cls(**kw)


@dataclass(frozen=True)
class Analysis:
    """A model's (or a rule's) reading of one news item, in the terms of a label schema.

    ``labels`` holds the categorical fields by schema name (``event``, ``market``, ``sector`` for the FX schema);
    ``sentiment`` is the level on the 7-level scale, -3..+3; ``fallback`` is True when the model's answer could not be
    parsed and the neutral default was used instead (counted and reported, never hidden).
    """

    labels: dict[str, str]
    sentiment: int
    related: tuple[str, ...] = ()
    confidence: float = 1.0
    fallback: bool = False
    analyzer: str = ""

    def __post_init__(self):
        if not -3 <= int(self.sentiment) <= 3:
            raise ValueError(f"sentiment level must be in -3..3, got {self.sentiment}")
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")

    @property
    def score(self) -> float:
        """Sentiment as a score in [-1, 1]."""
        return self.sentiment / 3.0

    @property
    def event(self) -> str:
        return self.labels.get("event", "")

    @property
    def market(self) -> str:
        return self.labels.get("market", "")

    def to_dict(self) -> dict:
        return {
            "labels": dict(self.labels),
            "sentiment": int(self.sentiment),
            "score": round(self.score, 6),
            "related": list(self.related),
            "confidence": float(self.confidence),
            "fallback": bool(self.fallback),
            "analyzer": self.analyzer,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Analysis:
        return cls(
            labels=dict(d["labels"]),
            sentiment=int(d["sentiment"]),
            related=tuple(d.get("related", ())),
            confidence=float(d.get("confidence", 1.0)),
            fallback=bool(d.get("fallback", False)),
            analyzer=d.get("analyzer", ""),
        )


@dataclass(frozen=True)
class Target:
    """What the EA should hold in one symbol: a target, not an order. Sending it twice changes nothing.

    ``sl`` and ``tp`` are distances in price units from the entry (0 = none); ``expires`` is when the target falls back
    to flat if no newer news arrives.
    """

    symbol: str
    direction: int
    strength: float
    sl: float
    tp: float
    as_of: pd.Timestamp
    expires: pd.Timestamp | None
    reasons: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "symbol": self.symbol,
            "direction": int(self.direction),
            "strength": round(float(self.strength), 6),
            "sl": float(self.sl),
            "tp": float(self.tp),
            "as_of": self.as_of.isoformat(),
            "expires": self.expires.isoformat() if self.expires is not None else None,
            "reasons": list(self.reasons),
        }
