"""The policy: from analyses of recent news to a target position per symbol.

The same pure function runs in the live server and in the backtester, so what was backtested is what trades.

For a symbol ``BASEQUOTE`` each analysed news item has an *effect*: its score times its confidence, signed + when the
news is about the base currency (EUR-positive news is long EURUSD) and - when it is about the quote currency. At time
``t`` the policy sums the effects of the items published at or before ``t`` and within ``ttl`` of it, each decayed
by ``0.5 ** (age / half_life)``. The target direction is the sign of that sum when its size reaches ``threshold``,
else flat; its strength is the size capped at 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from bridge.schema import Schema, load_schema
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem, Target


@dataclass(frozen=True)
class PolicyConfig:
    """Policy parameters; the server's and the backtester's options of the same names set them."""

    half_life: float = field(
        default=60.0, metadata={"help": "decay half-life of a news item's effect, minutes"}
    )
    ttl: float = field(
        default=240.0, metadata={"help": "a news item stops counting this many minutes after it"}
    )
    threshold: float = field(
        default=0.3, metadata={"help": "minimum |decayed sum of effects| to hold a position"}
    )
    min_confidence: float = field(default=0.0, metadata={"help": "ignore analyses less confident than this"})
    sl: float = field(default=0.0030, metadata={"help": "stop-loss distance in price units (0 = none)"})
    tp: float = field(default=0.0060, metadata={"help": "take-profit distance in price units (0 = none)"})

    def __post_init__(self):
        bad = [f.name for f in fields(self) if not math.isfinite(getattr(self, f.name))]
        if bad:
            raise ValueError(f"{', '.join(bad)} must be finite numbers")
        if self.half_life <= 0:
            raise ValueError(f"half_life must be > 0 minutes, got {self.half_life}")
        if self.ttl <= 0:
            raise ValueError(f"ttl must be > 0 minutes, got {self.ttl}")
        if self.threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.sl < 0 or self.tp < 0:
            raise ValueError("sl and tp are distances and must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def news_currency(item: NewsItem, analysis: Analysis, schema: Schema | None = None) -> str | None:
    """The currency a news item is about: the calendar's currency when given, else the analysed market's."""
    if item.currency:
        return item.currency.upper()
    schema = schema or load_schema()
    return schema.currency_of_market(analysis.market)


def effect_on(symbol: str, currency: str | None, analysis: Analysis, config: PolicyConfig) -> float:
    """The signed effect of one analysis on ``symbol`` (0 when it concerns neither of its currencies)."""
    if currency is None or analysis.confidence < config.min_confidence:
        return 0.0
    base, quote = split_symbol(symbol)
    sign = 1.0 if currency == base else -1.0 if currency == quote else 0.0
    return sign * analysis.score * analysis.confidence


def effects_frame(
    symbol: str,
    pairs: Iterable[tuple[NewsItem, Analysis]],
    config: PolicyConfig,
    schema: Schema | None = None,
) -> pd.DataFrame:
    """A time-sorted frame of (time, effect, id, headline) for the items that move ``symbol``."""
    rows = []
    for item, analysis in pairs:
        e = effect_on(symbol, news_currency(item, analysis, schema), analysis, config)
        if e != 0.0:
            rows.append((item.time, e, item.id, item.headline))
    frame = pd.DataFrame(rows, columns=["time", "effect", "id", "headline"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def signal_at(
    event_times: np.ndarray, effects: np.ndarray, times: np.ndarray, config: PolicyConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised policy core.

    ``event_times`` (sorted) and ``times`` are int64 nanoseconds UTC; returns (decayed sum, direction, index of the
    newest contributing event or -1) for each query time. Uses only events at or before each query time.
    """
    event_times = np.asarray(event_times, dtype=np.int64)
    effects = np.asarray(effects, dtype=np.float64)
    times = np.asarray(times, dtype=np.int64)
    ttl_ns = int(config.ttl * 60e9)
    half_ns = config.half_life * 60e9
    last = np.searchsorted(event_times, times, side="right") - 1
    first = np.searchsorted(event_times, times - ttl_ns, side="right")
    total = np.zeros(len(times))
    if len(times) == 1 and len(event_times):
        # One query (the live server): one vectorised pass over its window, newest first and summed in order (a
        # cumulative sum is sequential), so the result is bit for bit what the lag-by-lag loop below gives.
        lo, hi = int(first[0]), int(last[0]) + 1
        if hi > lo:
            age = (times[0] - event_times[lo:hi][::-1]).astype(np.float64)
            total[0] = np.cumsum(effects[lo:hi][::-1] * np.exp2(-age / half_ns))[-1]
    elif len(event_times):
        # Window sizes are small (news within the TTL), so sum lag by lag: O(bars x max window) numpy work.
        width = int(np.max(last - first + 1, initial=0))
        for k in range(width):
            j = last - k
            ok = j >= first
            jj = np.where(ok, j, 0)
            age = (times - event_times[jj]).astype(np.float64)
            total += np.where(ok, effects[jj] * np.exp2(-age / half_ns), 0.0)
    direction = np.where(np.abs(total) >= config.threshold, np.sign(total), 0.0).astype(np.int8)
    newest = np.where(last >= first, last, -1)
    return total, direction, newest


def largest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first, ties by position: a stable descending argsort's first
    ``k``, found in linear time (a window can hold a flood of news)."""
    if len(values) <= k:
        return np.argsort(-values, kind="stable")
    kth = np.partition(values, len(values) - k)[len(values) - k]
    above = np.flatnonzero(values > kth)
    picked = np.concatenate([above, np.flatnonzero(values == kth)[: k - len(above)]])
    return picked[np.lexsort((picked, -values[picked]))]


def target_for(
    symbol: str,
    now: pd.Timestamp,
    effects: pd.DataFrame,
    config: PolicyConfig,
    max_reasons: int = 3,
) -> Target:
    """The target for ``symbol`` as of ``now`` from an ``effects_frame`` (items after ``now`` are ignored)."""
    ev_times = (
        effects["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        if len(effects)
        else np.array([], np.int64)
    )
    return target_from_events(
        symbol,
        now,
        ev_times,
        effects["effect"].to_numpy(dtype=np.float64),
        effects["id"].to_numpy(),
        effects["headline"].to_numpy(),
        config,
        max_reasons,
    )


def target_from_events(
    symbol: str,
    now: pd.Timestamp,
    event_times: np.ndarray,
    effects: np.ndarray,
    ids: Sequence[str],
    headlines: Sequence[str],
    config: PolicyConfig,
    max_reasons: int = 3,
) -> Target:
    """The target as of ``now`` from time-sorted events (int64 ns UTC, effect, id, headline): ``target_for``'s core.
    The server calls it with views of the arrays it keeps up to date; the TTL window is found by binary search, so a
    reply costs the window's size however much news is held. The ``max_reasons`` largest effects in the window are
    the reasons."""
    now = pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    total, direction, newest = signal_at(event_times, effects, np.array([now.value]), config)
    reasons: Sequence[str] = ()
    expires = None
    if newest[0] >= 0:
        lo = int(np.searchsorted(event_times, now.value - int(config.ttl * 60e9), side="right"))
        order = lo + largest(np.abs(effects[lo : int(newest[0]) + 1]), max_reasons)
        reasons = tuple(f"{ids[k]} {effects[k]:+.2f} {headlines[k][:80]}" for k in order)
        expires = pd.Timestamp(int(event_times[newest[0]]), tz="UTC") + pd.Timedelta(minutes=config.ttl)
    d = int(direction[0])
    return Target(
        symbol=symbol,
        direction=d,
        strength=float(min(1.0, abs(total[0]))) if d else 0.0,
        sl=config.sl if d else 0.0,
        tp=config.tp if d else 0.0,
        as_of=now,
        expires=expires,
        reasons=tuple(reasons),
    )


def add_policy_arguments(parser) -> None:
    """Add one ``--half-life``, ``--ttl`` ... option per ``PolicyConfig`` field, so the server, the backtester and
    the sweep take the same names with the same defaults and help."""
    from bridge.cli import add_dataclass_arguments

    add_dataclass_arguments(parser, PolicyConfig)


def policy_from_args(args) -> PolicyConfig:
    """The ``PolicyConfig`` from options added by ``add_policy_arguments``; a bad value is a user error."""
    from bridge.cli import dataclass_from_arguments
    from bridge.errors import UserError

    try:
        return dataclass_from_arguments(PolicyConfig, args)
    except ValueError as exc:
        raise UserError(f"bad policy option: {exc}") from None
