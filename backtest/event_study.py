"""Event study: how the symbol moved after each news item, and whether the reading of the news beats chance.

For each analysed item about one of the symbol's currencies, the move is measured from the open of the first bar that
opens at or after the news time (the first price a trader could get) to the open ``k`` bars later, where ``k`` bars
is the horizon (1, 5, 15, 60 minutes by default, for M1 bars) rounded to the nearest whole number of bars (at least
one; on H1 bars the default horizons merge into one). Moves are in basis points of price. The model's *level* is the
sentiment level seen from the symbol: an EUR-positive item is + for EURUSD and a USD-positive one is -. The
*predicted direction* is the sign of the policy's effect of the item.

Averages come with 95% confidence intervals (Student's t). The hit rate is the share of items with a predicted
direction whose move went that way; the directed move is the move times the predicted direction.

Is it real? A **permutation test**: the predicted directions are shuffled across the items of a group
``n_permutations`` times (1,000 by default), which keeps the moves, the number of directed items and the share of
longs and shorts but breaks the link between an item and its own reading. The one-sided p-value of the hit rate (and
of the mean directed move) is ``(1 + #shuffles at least as good) / (1 + #shuffles)``: below 0.05 the reading beats
95% of label-free readings of the same moves. One such shuffle is also kept as the ``shuffled`` rows of the table,
a baseline to plot.

Groups (the ``by`` column): ``all``; ``level``; ``event`` (event type); ``impact`` (the calendar's high / medium / low);
``surprise`` (terciles small / medium / large of the standardised surprise ``|actual - expected| / typical``, the
indicator's median absolute surprise over releases strictly before the item, as the surprise rule scales it);
``indicator`` (the calendar indicator, currency first); ``analyzer`` (model or surprise rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridge.news.surprise import SurpriseAnalyzer, expected_value, indicator_key
from bridge.policy import PolicyConfig, effect_on, news_currency
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem

DEFAULT_HORIZONS = (1, 5, 15, 60)
DEFAULT_PERMUTATIONS = 1000
TERCILES = ("small", "medium", "large")


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


def _standardised_surprises(
    pairs: Sequence[tuple[NewsItem, Analysis]], history: Sequence[NewsItem] | None
) -> dict[str, float]:
    """Signed ``(actual - expected) / typical`` per calendar item id, with the surprise rule's causal typical size."""
    scaler = SurpriseAnalyzer(history=history if history is not None else [it for it, _ in pairs])
    out = {}
    for item, _ in pairs:
        exp, _ = expected_value(item)
        if item.actual is None or exp is None:
            continue
        scale = scaler.scale_for(item)
        if scale:
            out[item.id] = (float(item.actual) - float(exp)) / scale
    return out


def indicator_label(item: NewsItem) -> str:
    """``USD non-farm employment change``: the indicator without its period, for calendar items; '' otherwise."""
    if not item.is_calendar:
        return ""
    cur, name = indicator_key(item).split("|", 1)
    return f"{cur} {name}".strip()


def event_moves(
    bars: pd.DataFrame,
    pairs: Sequence[tuple[NewsItem, Analysis]],
    symbol: str,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    policy: PolicyConfig | None = None,
    history: Sequence[NewsItem] | None = None,
) -> tuple[pd.DataFrame, dict[int, int]]:
    """One row per item about the symbol's currencies: time, level, event type, predicted direction, impact,
    standardised surprise and its tercile, indicator, analyzer, and the moves.

    ``history``: calendar items the typical surprise is learnt from (only those strictly before each item count);
    default the items of ``pairs``.
    """
    policy = policy or PolicyConfig()
    base, quote = split_symbol(symbol)
    hb = horizon_bars(horizons, bar_minutes(bars.index))
    times = bars.index.as_unit("ns").asi8
    opens = bars["Open"].to_numpy(dtype=np.float64)
    z = _standardised_surprises(pairs, history)
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
                (item.impact or "").strip().lower(),
                z.get(item.id, np.nan),
                indicator_label(item),
                analysis.analyzer or "unknown",
            )
        )
    columns = ["time_ns", "id", "headline", "level", "event", "predicted", "impact", "surprise_z"]
    ev = pd.DataFrame(rows, columns=[*columns, "indicator", "analyzer"])
    i0 = np.searchsorted(times, ev["time_ns"].to_numpy(dtype=np.int64), side="left")
    ok = i0 < len(times)
    # Drop items after the last bar, and items more than a day before the next bar (outside the bars' coverage).
    gap = np.where(ok, times[np.minimum(i0, len(times) - 1)] - ev["time_ns"].to_numpy(dtype=np.int64), 0)
    ok &= gap <= 86_400 * 10**9
    ev = ev[ok].reset_index(drop=True)
    i0 = i0[ok]
    ev["surprise"] = _terciles(ev["surprise_z"].abs())
    p0 = opens[i0]
    for h, k in hb.items():
        j = i0 + k
        move = np.full(len(ev), np.nan)
        inside = j < len(opens)
        move[inside] = (opens[j[inside]] / p0[inside] - 1.0) * 1e4
        ev[f"move_{h}m_bp"] = move
    ev.insert(0, "time", pd.to_datetime(ev.pop("time_ns"), utc=True))
    return ev, hb


def _terciles(size: pd.Series) -> pd.Series:
    """small / medium / large by the terciles of ``size`` (NaN stays ''); fewer than 3 values: all ''."""
    out = pd.Series("", index=size.index, dtype=object)
    fin = size.notna()
    if fin.sum() >= 3:
        lo, hi = np.quantile(size[fin], [1 / 3, 2 / 3])
        out[fin] = np.where(size[fin] <= lo, TERCILES[0], np.where(size[fin] <= hi, TERCILES[1], TERCILES[2]))
    return out


def permutation_pvalues(
    moves: np.ndarray, predicted: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """One-sided permutation p-values of (hit rate, mean directed move) for labels ``predicted`` of ``moves``.

    The labels are shuffled across the items ``n_permutations`` times at once (one matrix, no Python loop); a
    shuffle counts against the labels when its statistic is at least the observed one. NaN when no item is directed.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    moves = np.asarray(moves, dtype=np.float64)
    nd = int(np.count_nonzero(predicted))
    if nd == 0 or n_permutations < 1:
        return float("nan"), float("nan")
    directed = predicted * moves
    hits, total = np.count_nonzero(directed > 0), directed.sum()
    perm = rng.permuted(np.broadcast_to(predicted, (n_permutations, len(predicted))), axis=1)
    p_dm = perm * moves
    perm_hits = np.count_nonzero(p_dm > 0, axis=1)
    perm_total = p_dm.sum(axis=1)
    # A tiny tolerance so that shuffles equal to the observed sum up to rounding count as "at least as good".
    eps = 1e-9 * max(1.0, float(np.abs(moves).sum()))
    p_hit = (1 + np.count_nonzero(perm_hits >= hits)) / (n_permutations + 1)
    p_mean = (1 + np.count_nonzero(perm_total >= total - eps)) / (n_permutations + 1)
    return float(p_hit), float(p_mean)


GROUPINGS = ("all", "level", "event", "impact", "surprise", "indicator", "analyzer")


def _summaries(
    ev: pd.DataFrame,
    hb: dict[int, int],
    bar_min: float,
    labels: str,
    n_permutations: int = 0,
    seed: int = 0,
) -> list[dict]:
    rows = []
    rng = np.random.default_rng(seed)
    for by in GROUPINGS:
        keys = pd.Series("all", index=ev.index) if by == "all" else ev[by]
        for group, sub in ev.groupby(keys, sort=True):
            if by != "all" and str(group) == "":
                continue  # no impact / surprise / indicator: headlines, or calendar items without the field
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
                p_hit, p_mean = (
                    permutation_pvalues(m_all, p, n_permutations, rng) if n_permutations else (np.nan, np.nan)
                )
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
                        "p_hit_rate": p_hit,
                        "p_mean_directed": p_mean,
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
    n_permutations: int = DEFAULT_PERMUTATIONS,
    history: Sequence[NewsItem] | None = None,
) -> EventStudy:
    """The event study of ``pairs`` (news items with their analyses) on ``bars`` of ``symbol``.

    ``table`` has one row per (labels, by, group, horizon): ``labels`` is ``model`` or ``shuffled``; ``by`` is one of
    ``GROUPINGS``; the model rows carry the permutation p-values ``p_hit_rate`` and ``p_mean_directed`` over
    ``n_permutations`` shuffles. See the module docstring for the definitions.
    """
    ev, hb = event_moves(bars, pairs, symbol, horizons, policy, history)
    bm = bar_minutes(bars.index)
    rows = _summaries(ev, hb, bm, "model", n_permutations, seed)
    if len(ev) > 1:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(ev))
        shuffled = ev.copy()
        shuffled[["level", "event", "predicted"]] = ev[["level", "event", "predicted"]].to_numpy()[perm]
        rows += _summaries(shuffled, hb, bm, "shuffled")
    return EventStudy(events=ev, table=pd.DataFrame(rows), horizons=hb)


def headline_summary(study: EventStudy) -> pd.DataFrame:
    """The ``all`` rows side by side: per horizon, the model's and the shuffled labels' hit rate and directed move,
    with the model's permutation p-values."""
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
    p = t[t["labels"] == "model"].set_index("horizon_min")[["p_hit_rate", "p_mean_directed"]]
    return wide.reset_index().join(p, on="horizon_min")


def breakdown(study: EventStudy, by: str, horizons: Sequence[int] | None = None) -> pd.DataFrame:
    """The model's rows for one grouping (``impact``, ``surprise`` ...): n, hit rate, p-values, directed move."""
    t = study.table
    t = t[(t["labels"] == "model") & (t["by"] == by)]
    if horizons is not None:
        t = t[t["horizon_min"].isin(list(horizons))]
    cols = [
        "group",
        "horizon_min",
        "n_directed",
        "hit_rate",
        "p_hit_rate",
        "mean_directed_bp",
        "p_mean_directed",
    ]
    return t[cols].reset_index(drop=True)
