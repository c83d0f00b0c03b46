"""Event study: how the symbol moved after each news item, grouped by what the model said about it.

For each analysed item about one of the symbol's currencies, the move is measured from the open of the first bar that
opens at or after the news time (the first price a trader could get) to the open ``k`` bars later, where ``k`` bars
is the horizon (5, 15, 60, 240 minutes by default) rounded to the nearest whole number of bars (at least one). Moves are
in basis points of price. The model's *level* is the sentiment level seen from the symbol: an EUR-positive item is
+ for EURUSD and a USD-positive one is -. The *predicted direction* is the sign of the policy's effect of the item.

Averages come with 95% confidence intervals (Student's t), by level and by event type, and the hit rate is the share
of items with a predicted direction whose move went that way. The same table is computed with the analyses shuffled
across items (a fixed seed), a baseline of labels that carry no information: a model that reads the news well beats it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridge.policy import PolicyConfig, effect_on, news_currency
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem

DEFAULT_HORIZONS = (5, 15, 60, 240)


@dataclass
class EventStudy:
    """Per-item moves (``events``) and the grouped table (``table``) for the model's labels and the shuffled ones."""

    events: pd.DataFrame
    table: pd.DataFrame
    horizons: dict[int, int]  # requested minutes -> bars


def _t95(n: np.ndarray) -> np.ndarray:
    try:
        from scipy.stats import t

        return np.where(n > 1, t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
    except ImportError:  # scipy is optional; the normal quantile is close for the group sizes that matter
        return np.where(n > 1, 1.96, np.nan)


def bar_minutes(index: pd.DatetimeIndex) -> float:
    """The bars' timeframe in minutes (the most common spacing)."""
    steps = np.diff(index.as_unit("ns").asi8)
    steps = steps[steps > 0]
    if not len(steps):
        raise ValueError("need at least two distinct bar times to tell the timeframe")
    vals, counts = np.unique(steps, return_counts=True)
    return float(vals[np.argmax(counts)] / 60e9)


def horizon_bars(horizons: Sequence[int], minutes_per_bar: float) -> dict[int, int]:
    """Each horizon in minutes to the nearest whole number of bars (at least 1). Horizons that land on the same bar
    count are kept once: the one closest to that many bars' real length (on H1 bars 5, 15 and 60 minutes all round to
    one bar, reported as the 60-minute horizon)."""
    best: dict[int, int] = {}
    for h in horizons:
        k = max(1, int(round(h / minutes_per_bar)))
        if k not in best or abs(h - k * minutes_per_bar) < abs(best[k] - k * minutes_per_bar):
            best[k] = int(h)
    return {h: k for k, h in sorted(best.items())}


def event_moves(
    bars: pd.DataFrame,
    pairs: Sequence[tuple[NewsItem, Analysis]],
    symbol: str,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    policy: PolicyConfig | None = None,
) -> tuple[pd.DataFrame, dict[int, int]]:
    """One row per item about the symbol's currencies: time, level, event type, predicted direction and the moves."""
    policy = policy or PolicyConfig()
    base, quote = split_symbol(symbol)
    hb = horizon_bars(horizons, bar_minutes(bars.index))
    times = bars.index.as_unit("ns").asi8
    opens = bars["Open"].to_numpy(dtype=np.float64)
    rows = []
    for item, analysis in pairs:
        cur = news_currency(item, analysis)
        side = 1 if cur == base else -1 if cur == quote else 0
        if side == 0:
            continue
        rows.append(
            (
                item.time.value,
                item.id,
                item.headline,
                side * int(analysis.sentiment),
                analysis.event or "other",
                int(np.sign(effect_on(symbol, cur, analysis, policy))),
            )
        )
    ev = pd.DataFrame(rows, columns=["time_ns", "id", "headline", "level", "event", "predicted"])
    i0 = np.searchsorted(times, ev["time_ns"].to_numpy(dtype=np.int64), side="left")
    ok = i0 < len(times)
    # Drop items after the last bar, and items more than a day before the next bar (outside the bars' coverage).
    gap = np.where(ok, times[np.minimum(i0, len(times) - 1)] - ev["time_ns"].to_numpy(dtype=np.int64), 0)
    ok &= gap <= 86_400 * 10**9
    ev = ev[ok].reset_index(drop=True)
    i0 = i0[ok]
    p0 = opens[i0]
    for h, k in hb.items():
        j = i0 + k
        move = np.full(len(ev), np.nan)
        inside = j < len(opens)
        move[inside] = (opens[j[inside]] / p0[inside] - 1.0) * 1e4
        ev[f"move_{h}m_bp"] = move
    ev.insert(0, "time", pd.to_datetime(ev.pop("time_ns"), utc=True))
    return ev, hb


def _summaries(ev: pd.DataFrame, hb: dict[int, int], bar_min: float, labels: str) -> list[dict]:
    rows = []
    groupings = [("all", pd.Series("all", index=ev.index)), ("level", ev["level"]), ("event", ev["event"])]
    for by, keys in groupings:
        for group, sub in ev.groupby(keys, sort=True):
            for h, k in hb.items():
                m = sub[f"move_{h}m_bp"].to_numpy(dtype=np.float64)
                pred = sub["predicted"].to_numpy()
                fin = np.isfinite(m)
                m_all, p = m[fin], pred[fin]
                directed = p != 0
                dm = m_all[directed] * p[directed]
                n, nd = len(m_all), len(dm)
                t = _t95(np.array([n, nd]))
                sd = m_all.std(ddof=1) if n > 1 else np.nan
                sdd = dm.std(ddof=1) if nd > 1 else np.nan
                mean = m_all.mean() if n else np.nan
                dmean = dm.mean() if nd else np.nan
                rows.append(
                    {
                        "labels": labels,
                        "by": by,
                        "group": str(group),
                        "horizon_min": h,
                        "horizon_bars": k,
                        "horizon_real_min": k * bar_min,
                        "n": n,
                        "mean_bp": mean,
                        "ci_low_bp": mean - t[0] * sd / np.sqrt(n) if n > 1 else np.nan,
                        "ci_high_bp": mean + t[0] * sd / np.sqrt(n) if n > 1 else np.nan,
                        "n_directed": nd,
                        "mean_directed_bp": dmean,
                        "directed_ci_low_bp": dmean - t[1] * sdd / np.sqrt(nd) if nd > 1 else np.nan,
                        "directed_ci_high_bp": dmean + t[1] * sdd / np.sqrt(nd) if nd > 1 else np.nan,
                        "hit_rate": float((dm > 0).mean()) if nd else np.nan,
                    }
                )
    return rows


def event_study(
    bars: pd.DataFrame,
    pairs: Sequence[tuple[NewsItem, Analysis]],
    symbol: str,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    policy: PolicyConfig | None = None,
    seed: int = 0,
) -> EventStudy:
    """The event study of ``pairs`` (news items with their analyses) on ``bars`` of ``symbol``.

    ``table`` has one row per (labels, by, group, horizon): ``labels`` is ``model`` or ``shuffled``; ``by`` is ``all``,
    ``level`` or ``event``. See the module docstring for the definitions.
    """
    ev, hb = event_moves(bars, pairs, symbol, horizons, policy)
    bm = bar_minutes(bars.index)
    rows = _summaries(ev, hb, bm, "model")
    if len(ev) > 1:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(ev))
        shuffled = ev.copy()
        shuffled[["level", "event", "predicted"]] = ev[["level", "event", "predicted"]].to_numpy()[perm]
        rows += _summaries(shuffled, hb, bm, "shuffled")
    return EventStudy(events=ev, table=pd.DataFrame(rows), horizons=hb)


def headline_summary(study: EventStudy) -> pd.DataFrame:
    """The ``all`` rows side by side: per horizon, the model's and the shuffled labels' hit rate and directed move."""
    t = study.table
    t = t[t["by"] == "all"]
    if t.empty:
        return pd.DataFrame()
    wide = t.pivot_table(
        index=["horizon_min", "horizon_real_min"],
        columns="labels",
        values=["n_directed", "hit_rate", "mean_directed_bp"],
        aggfunc="first",
    )
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    return wide.reset_index()
