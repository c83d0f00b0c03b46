"""The replay engine: a per-bar target position in, trades and an equity curve out.

Vectorised with numpy: stop-loss and take-profit hits are found for every bar at once, and the only Python loop
(used for ``risk`` sizing, where each trade's size depends on the equity left by the ones before it) runs over
position changes, never over bars.

Execution model, the same one the Expert Advisor follows:

* ``target[i]`` is the position wanted at the **open** of bar ``i`` (-1 short, 0 flat, +1 long). It must be computed
  from information known by then: :func:`targets_from_signals` and :func:`targets_from_effects` evaluate the policy at
  the bar's open time minus the latency, so news at time ``t`` moves the position from the first bar opening at or
  after ``t + latency`` and never earlier.
* The engine trades the difference to the target: the same target on consecutive bars does nothing; a change from
  long to short closes the long and opens the short at the same open.
* After a stop-loss or take-profit the position stays flat until the target changes (the EA does not re-enter on a
  target it already acted on).

Cost model (all prices are the bars' prices, read as mid prices):

* a buy fills at ``price + spread / 2 + slippage``, a sell at ``price - spread / 2 - slippage``; market fills (entries,
  exits on a target change, stop-loss) pay slippage, take-profit (a limit order) does not;
* ``spread`` per bar comes from the bars' ``Spread`` column (in points, times the symbol's point size) unless a fixed
  value is given;
* ``commission`` is in account currency **per lot per side** (MetaTrader's convention), so a round trip of ``L`` lots
  costs ``2 * L * commission``;
* profit is in the quote currency of the symbol (USD for EURUSD), which is taken as the account currency;
* **news-time costs** (``run_backtest(..., news_times=...)``, the times of high-impact releases): a bar whose open
  lies within ``news_window_before_s`` before to ``news_window_after_s`` after a release pays the spread times
  ``news_spread_mult`` and ``news_slippage`` more on market fills. Releases are scheduled in advance, so widening a
  bar before one is not look-ahead. ``news_spread_mult=1`` and ``news_slippage=0`` switch it off;
* **swap**: a position held over the daily rollover (17:00 New York) is credited or charged ``swap_long`` /
  ``swap_short`` points per lot per night, signed as brokers quote them (negative = the trader pays); Wednesday's
  rollover counts three nights (the weekend), as in MetaTrader's default for FX; no rollover on Saturday or Sunday.
  Swap is booked at the trade's exit.

Stops are checked inside every bar from the entry price: a long is stopped when the bar's bid low (``Low - spread/2``)
reaches ``entry - sl`` and takes profit when the bid high reaches ``entry + tp``; when both are reached in one bar the
stop is taken (we cannot know the order inside the bar, so we assume the adverse one). A bar that opens beyond the
stop fills at its open. Positions still open at the end are closed at the last close.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from bridge.policy import PolicyConfig, signal_at

OHLC = ("Open", "High", "Low", "Close")

# Fixed spread used when neither the bars nor the caller give one: 1 pip on a 5-digit quote.
DEFAULT_SPREAD_POINTS = 10.0


@dataclass(frozen=True)
class EngineConfig:
    """Account, sizing and cost parameters of a run; see the module docstring for the cost model."""

    cash: float = field(default=10_000.0, metadata={"help": "starting equity, account (quote) currency"})
    lots: float = field(
        default=0.1, metadata={"help": "fixed position size in lots (ignored when risk is set)"}
    )
    risk: float | None = field(
        default=None, metadata={"help": "risk this fraction of equity per trade at the stop"}
    )
    contract_size: float = field(default=100_000.0, metadata={"help": "units of the base currency per lot"})
    lot_step: float = field(default=0.01, metadata={"help": "smallest lot increment for risk sizing"})
    spread: float | None = field(
        default=None, metadata={"help": "fixed spread in price units; None = bars' column"}
    )
    slippage: float = field(default=0.0, metadata={"help": "adverse price units added to every market fill"})
    commission: float = field(default=0.0, metadata={"help": "account currency per lot per side"})
    sl: float = field(default=0.0, metadata={"help": "stop-loss distance from entry, price units (0 = none)"})
    tp: float = field(
        default=0.0, metadata={"help": "take-profit distance from entry, price units (0 = none)"}
    )
    point: float = field(default=0.00001, metadata={"help": "price of one point, converts the Spread column"})
    news_spread_mult: float = field(
        default=1.0, metadata={"help": "spread multiplier inside the window around a high-impact release"}
    )
    news_slippage: float = field(
        default=0.0, metadata={"help": "extra adverse price units on market fills inside that window"}
    )
    news_window_before_s: float = field(default=60.0, metadata={"help": "window start, seconds before"})
    news_window_after_s: float = field(default=180.0, metadata={"help": "window end, seconds after"})
    swap_long: float = field(default=0.0, metadata={"help": "points per lot per night held long (+ credit)"})
    swap_short: float = field(
        default=0.0, metadata={"help": "points per lot per night held short (+ credit)"}
    )

    def __post_init__(self):
        if not self.cash > 0:
            raise ValueError(f"cash must be > 0, got {self.cash}")
        if self.risk is None and not self.lots > 0:
            raise ValueError(f"lots must be > 0, got {self.lots}")
        if self.risk is not None:
            if not 0 < self.risk < 1:
                raise ValueError(f"risk is a fraction of equity in (0, 1), got {self.risk}")
            if not self.sl > 0:
                raise ValueError("risk sizing needs a stop-loss distance: set sl > 0 or use fixed lots")
        for name in ("slippage", "commission", "sl", "tp"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.spread is not None and self.spread < 0:
            raise ValueError(f"spread must be >= 0, got {self.spread}")
        if not self.point > 0 or not self.contract_size > 0 or not self.lot_step > 0:
            raise ValueError("point, contract_size and lot_step must be > 0")
        if not self.news_spread_mult >= 1:
            raise ValueError(f"news_spread_mult must be >= 1, got {self.news_spread_mult}")
        for name in ("news_slippage", "news_window_before_s", "news_window_after_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Result:
    """What a run produced: the trades table, the equity and position at each bar's close, and the inputs' config."""

    trades: pd.DataFrame
    equity: pd.Series
    position: pd.Series
    target: pd.Series
    config: EngineConfig
    spread: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def final_equity(self) -> float:
        return float(self.equity.iloc[-1])


TRADE_COLUMNS = [
    "Size",
    "Lots",
    "EntryBar",
    "ExitBar",
    "EntryPrice",
    "ExitPrice",
    "SL",
    "TP",
    "PnL",
    "Commission",
    "Swap",
    "ReturnPct",
    "EntryTime",
    "ExitTime",
    "Duration",
    "ExitReason",
]


def validate_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """A checked copy of ``bars``: UTC DatetimeIndex, increasing and unique, float OHLC without gaps.

    Raises ``TypeError``/``ValueError`` for bars that cannot be used; warns (and fixes) unsorted or duplicate times and
    a naive index (read as UTC). The caller's frame is never changed.
    """
    if not isinstance(bars, pd.DataFrame):
        raise TypeError(f"bars must be a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in OHLC if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}; need {list(OHLC)} (and optionally Volume, Spread)")
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise TypeError("bars must have a DatetimeIndex of bar open times")
    if len(bars) < 2:
        raise ValueError(f"need at least 2 bars, got {len(bars)}")
    df = bars.copy()
    if df.index.tz is None:
        warnings.warn("bars have a naive time index; reading it as UTC", stacklevel=2)
        df.index = df.index.tz_localize("UTC")
    else:
        df.index = df.index.tz_convert("UTC")
    if not df.index.is_monotonic_increasing:
        warnings.warn("bars are not in time order; sorting them", stacklevel=2)
        df = df.sort_index(kind="stable")
    if df.index.has_duplicates:
        n = int(df.index.duplicated().sum())
        warnings.warn(f"{n} bars repeat an earlier time; keeping the first of each", stacklevel=2)
        df = df[~df.index.duplicated(keep="first")]
    ohlc = df[list(OHLC)].astype(np.float64)
    if ohlc.isna().to_numpy().any():
        first = ohlc.index[ohlc.isna().any(axis=1)][0]
        raise ValueError(f"bars have missing prices (first at {first}); fill or drop those bars")
    if (ohlc["High"] < ohlc[["Open", "Close", "Low"]].max(axis=1) - 1e-12).any() or (
        ohlc["Low"] > ohlc[["Open", "Close", "High"]].min(axis=1) + 1e-12
    ).any():
        warnings.warn(
            "some bars have High below Open/Close or Low above them; widening High/Low", stacklevel=2
        )
        ohlc["High"] = ohlc.max(axis=1)
        ohlc["Low"] = ohlc.min(axis=1)
    df[list(OHLC)] = ohlc
    return df


def bar_spread(bars: pd.DataFrame, config: EngineConfig) -> tuple[np.ndarray, str]:
    """The spread in price units at each bar and a sentence saying where it came from."""
    n = len(bars)
    if config.spread is not None:
        return np.full(n, float(config.spread)), f"fixed {config.spread:g}"
    if "Spread" in bars.columns:
        pts = pd.to_numeric(bars["Spread"], errors="coerce").to_numpy(dtype=np.float64)
        if np.isfinite(pts).all() and (pts >= 0).all():
            return pts * config.point, "the bars' Spread column (points x point size)"
        warnings.warn(
            "the bars' Spread column has missing or negative values; using the default spread", stacklevel=2
        )
    value = DEFAULT_SPREAD_POINTS * config.point
    return np.full(n, value), f"default fixed {DEFAULT_SPREAD_POINTS:g} points = {value:g}"


def bar_open_ns(bars: pd.DataFrame) -> np.ndarray:
    """Bar open times as int64 nanoseconds UTC."""
    return bars.index.tz_convert("UTC").as_unit("ns").asi8


def targets_from_signals(
    bar_times_ns: np.ndarray, signal_times_ns: np.ndarray, signal_values: np.ndarray, latency_s: float = 0.0
) -> np.ndarray:
    """Per-bar targets from a sorted signal series: the last signal at or before each bar's open minus latency."""
    signal_times_ns = np.asarray(signal_times_ns, dtype=np.int64)
    if len(signal_times_ns) > 1 and np.any(np.diff(signal_times_ns) < 0):
        raise ValueError("signal times must be in increasing order")
    asof = np.asarray(bar_times_ns, dtype=np.int64) - int(round(latency_s * 1e9))
    idx = np.searchsorted(signal_times_ns, asof, side="right") - 1
    values = np.sign(np.asarray(signal_values, dtype=np.float64)).astype(np.int8)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], 0).astype(np.int8)


def targets_from_effects(
    bar_times_ns: np.ndarray, effects: pd.DataFrame, policy: PolicyConfig, latency_s: float = 0.0
) -> np.ndarray:
    """Per-bar targets from a ``bridge.policy.effects_frame``: the policy evaluated at each bar's open minus latency."""
    if len(effects) == 0:
        return np.zeros(len(bar_times_ns), dtype=np.int8)
    ev = effects["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    asof = np.asarray(bar_times_ns, dtype=np.int64) - int(round(latency_s * 1e9))
    _, direction, _ = signal_at(ev, effects["effect"].to_numpy(dtype=np.float64), asof, policy)
    return direction.astype(np.int8)


def _segments(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of a constant non-zero target: (start bar, end bar exclusive, direction)."""
    n = len(target)
    change = np.flatnonzero(np.diff(target, prepend=np.int8(0)) != 0)
    ends = np.append(change[1:], n)
    d = target[change]
    keep = d != 0
    return change[keep], ends[keep], d[keep].astype(np.float64)


def news_window_mask(bar_times_ns: np.ndarray, news_times_ns, config: EngineConfig) -> np.ndarray:
    """True for bars whose open lies within ``[t - before, t + after]`` of some release time ``t``."""
    bar_times_ns = np.asarray(bar_times_ns, dtype=np.int64)
    ev = np.sort(np.asarray(news_times_ns, dtype=np.int64))
    if not len(ev):
        return np.zeros(len(bar_times_ns), dtype=bool)
    before = int(round(config.news_window_before_s * 1e9))
    after = int(round(config.news_window_after_s * 1e9))
    # The first release at or after (open - after): the bar is in its window when that release is <= open + before.
    j = np.searchsorted(ev, bar_times_ns - after, side="left")
    nxt = ev[np.minimum(j, len(ev) - 1)]
    return (j < len(ev)) & (nxt <= bar_times_ns + before)


ROLLOVER_ZONE = "America/New_York"
ROLLOVER_HOUR = 17
# Nights charged per rollover by weekday of the rollover (Mon..Sun): Wednesday carries the weekend, no rollover at
# the weekend itself. A week holds 7 nights.
_NIGHTS = np.array([1, 1, 3, 1, 1, 0, 0], dtype=np.int64)
_NIGHTS_CUM = np.concatenate([[0], np.cumsum(_NIGHTS)])


def _nights_through(day: np.ndarray) -> np.ndarray:
    """Nights charged by the rollovers of days 0 .. ``day`` (days since 1970-01-05, a Monday)."""
    weeks, rem = np.divmod(day, 7)
    return weeks * 7 + _NIGHTS_CUM[rem + 1]


def rollover_nights(entry: pd.DatetimeIndex, exit: pd.DatetimeIndex) -> np.ndarray:
    """Swap nights for positions held from ``entry`` to ``exit``: the 17:00 New York rollovers in (entry, exit]."""
    if not len(entry):
        return np.zeros(0, dtype=np.int64)

    def rollover_day(t: pd.DatetimeIndex) -> np.ndarray:
        # New York wall time minus 17 h: a rollover falls on the day this shifted clock starts.
        local = t.tz_convert(ROLLOVER_ZONE).tz_localize(None) - pd.Timedelta(hours=ROLLOVER_HOUR)
        days = local.as_unit("ns").asi8 // (86_400 * 10**9)
        return days - 4  # 1970-01-05 (a Monday) is day 0

    d0, d1 = rollover_day(pd.DatetimeIndex(entry)), rollover_day(pd.DatetimeIndex(exit))
    return np.maximum(_nights_through(d1) - _nights_through(d0), 0)


def run_backtest(bars: pd.DataFrame, target, config: EngineConfig | None = None, news_times=None) -> Result:
    """Replay a per-bar ``target`` (-1/0/+1 wanted at each bar's open) over ``bars`` and return the trades and equity.

    ``target`` is an array or a Series aligned with ``bars`` (a Series is reindexed to the bars, missing = flat).
    ``news_times``: release times (int64 ns UTC or a DatetimeIndex) around which the news-time costs apply.
    """
    config = config or EngineConfig()
    df = validate_bars(bars)
    n = len(df)
    if isinstance(target, pd.Series):
        idx = target.index
        if isinstance(idx, pd.DatetimeIndex) and idx.tz is None:
            idx = idx.tz_localize("UTC")
        tgt = pd.Series(target.to_numpy(), index=idx).reindex(df.index).fillna(0).to_numpy()
    else:
        tgt = np.asarray(target)
        if tgt.shape != (len(bars),):
            raise ValueError(f"target must have one value per bar ({len(bars)}), got shape {tgt.shape}")
        if len(df) != len(bars):
            raise ValueError("bars had duplicate times; pass the target as a Series indexed by time")
        if not bars.index.is_monotonic_increasing:
            tgt = tgt[np.argsort(bars.index.asi8, kind="stable")]
    tgt = np.asarray(tgt, dtype=np.float64)
    if not np.isfinite(tgt).all():
        raise ValueError("target has missing or infinite values")
    tgt = np.sign(tgt).astype(np.int8)

    o, h, lo, c = (df[k].to_numpy() for k in OHLC)
    spread, _ = bar_spread(df, config)
    slip = np.full(n, float(config.slippage))
    if news_times is not None and (config.news_spread_mult > 1 or config.news_slippage > 0):
        nt = news_times.as_unit("ns").asi8 if isinstance(news_times, pd.DatetimeIndex) else news_times
        in_window = news_window_mask(bar_open_ns(df), nt, config)
        spread = np.where(in_window, spread * config.news_spread_mult, spread)
        slip = np.where(in_window, slip + config.news_slippage, slip)
    half = spread / 2.0

    s, e, d = _segments(tgt)
    m = len(s)
    entry = o[s] + d * (half[s] + slip[s])
    stop = entry - d * config.sl if config.sl > 0 else np.full(m, np.nan)
    take = entry + d * config.tp if config.tp > 0 else np.full(m, np.nan)

    # Which trade (segment) each bar belongs to, -1 when flat.
    seg = np.full(n, -1, dtype=np.int64)
    if m:
        marks = np.zeros(n + 1, dtype=np.int64)
        np.add.at(marks, s, np.arange(1, m + 1))
        np.add.at(marks, e, -np.arange(1, m + 1))
        seg = np.cumsum(marks[:n]) - 1

    exit_bar = np.where(e < n, e, n - 1).astype(np.int64)
    exit_price = np.empty(m)
    inner = e < n
    exit_price[inner] = o[e[inner]] - d[inner] * (half[e[inner]] + slip[e[inner]])
    exit_price[~inner] = c[n - 1] - d[~inner] * (half[n - 1] + slip[n - 1])
    reason = np.where(inner, "target", "end").astype(object)

    if m and (config.sl > 0 or config.tp > 0):
        bars_in = np.flatnonzero(seg >= 0)
        g = seg[bars_in]
        dg = d[g]
        # Price at which the position can be closed inside the bar: bid for a long, ask for a short.
        adverse = np.where(dg > 0, lo[bars_in] - half[bars_in], h[bars_in] + half[bars_in])
        favour = np.where(dg > 0, h[bars_in] - half[bars_in], lo[bars_in] + half[bars_in])
        with np.errstate(invalid="ignore"):
            sl_hit = (dg * (adverse - stop[g]) <= 0) if config.sl > 0 else np.zeros(len(g), bool)
            tp_hit = (dg * (favour - take[g]) >= 0) if config.tp > 0 else np.zeros(len(g), bool)
        hit = np.flatnonzero(sl_hit | tp_hit)
        if len(hit):
            first_seg, first = np.unique(g[hit], return_index=True)
            k_local = hit[first]
            k = bars_in[k_local]
            is_sl = sl_hit[k_local]  # adverse first when both are touched in one bar
            dd = d[first_seg]
            open_close = o[k] - dd * half[k]  # the bar's open on the closing side
            sl_px = dd * np.minimum(dd * open_close, dd * stop[first_seg]) - dd * slip[k]
            tp_px = dd * np.maximum(dd * open_close, dd * take[first_seg])
            exit_price[first_seg] = np.where(is_sl, sl_px, tp_px)
            exit_bar[first_seg] = k
            reason[first_seg] = np.where(is_sl, "sl", "tp")

    per_unit = d * (exit_price - entry)
    lots = _sizes(per_unit, entry, config, m)
    units = lots * config.contract_size
    commission = 2.0 * lots * config.commission
    times = df.index
    swap = np.zeros(m)
    if m and (config.swap_long or config.swap_short):
        nights = rollover_nights(times[s], times[exit_bar])
        rate = np.where(d > 0, config.swap_long, config.swap_short)
        swap = lots * config.contract_size * config.point * rate * nights
    pnl = units * per_unit - commission + swap

    # Equity at each close: cash + realised P&L of trades closed so far + open trade marked at its closing price.
    realised = np.zeros(n)
    np.add.at(realised, exit_bar, pnl)
    equity = config.cash + np.cumsum(realised)
    position = np.zeros(n)
    if m:
        t = np.arange(n)
        j = np.maximum(seg, 0)
        held = (seg >= 0) & (t < exit_bar[j]) & (t >= s[j])
        mark = c - d[j] * half
        unreal = units[j] * d[j] * (mark - entry[j]) - commission[j] / 2.0
        equity = equity + np.where(held, unreal, 0.0)
        position = np.where(held, units[j] * d[j], 0.0)

    trades = pd.DataFrame(
        {
            "Size": units * d,
            "Lots": lots,
            "EntryBar": s,
            "ExitBar": exit_bar,
            "EntryPrice": entry,
            "ExitPrice": exit_price,
            "SL": stop,
            "TP": take,
            "PnL": pnl,
            "Commission": commission,
            "Swap": swap,
            "ReturnPct": np.divide(pnl, units * entry, out=np.zeros(m), where=units > 0),
            "EntryTime": times[s],
            "ExitTime": times[exit_bar],
            "ExitReason": reason.astype(str),
        }
    )
    trades["Duration"] = trades["ExitTime"] - trades["EntryTime"]
    trades = trades[trades["Lots"] > 0][TRADE_COLUMNS].reset_index(drop=True)
    return Result(
        trades=trades,
        equity=pd.Series(equity, index=times, name="Equity"),
        position=pd.Series(position, index=times, name="Position"),
        target=pd.Series(tgt, index=times, name="Target"),
        config=config,
        spread=spread,
    )


def _sizes(per_unit: np.ndarray, entry: np.ndarray, config: EngineConfig, m: int) -> np.ndarray:
    """Lots per trade: fixed, or ``risk`` of the equity at entry over the stop distance (a loop over trades only)."""
    if config.risk is None:
        return np.full(m, float(config.lots))
    lots = np.zeros(m)
    equity = config.cash
    per_lot_risk = config.sl * config.contract_size
    for i in range(m):
        size = np.floor(equity * config.risk / per_lot_risk / config.lot_step + 1e-9) * config.lot_step
        if size <= 0:
            continue
        lots[i] = size
        equity += size * config.contract_size * per_unit[i] - 2.0 * size * config.commission
    return lots
