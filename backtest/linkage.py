"""Which news made each trade: the trades table linked to the news behind its entry, the reason it ended, and the
analyses table with the trade each item opened or closed.

The link follows the policy exactly (``bridge.policy.signal_at``): a trade entered at the open of bar ``i`` was
decided as of ``open[i] - latency`` from the items published in the TTL before that instant, each weighted by
``effect * 0.5 ** (age / half_life)``; those items, strongest first, are the trade's entry news and their sum is its
entry signal. A trade that ended on a target change ended for one of two reasons:

* ``target_change``: a news item arrived between the previous bar's decision and this one (new news flipped or
  cancelled the position);
* ``expiry``: nothing new arrived, the position's news aged out (its decayed sum fell under the threshold or its TTL
  ran out).

The engine's other reasons are kept: ``sl`` (stop-loss), ``tp`` (take-profit), ``end`` (end of data).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backtest.event_study import indicator_label
from bridge.policy import PolicyConfig, effect_on, news_currency
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem

MAX_LISTED = 10  # entry news listed per trade (strongest first); EntryNewsCount has the full count
EXIT_REASONS = {
    "target_change": "target change (new news)",
    "expiry": "expiry (the news aged out)",
    "sl": "stop-loss",
    "tp": "take-profit",
    "end": "end of data",
    "target": "target change",
}


def _ns(times) -> np.ndarray:
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def analysis_summary(analysis: Analysis, effect: float) -> str:
    """``economic data / US / rates, level -2, conf 0.85, effect -0.57``: one analysis in one short line."""
    labels = " / ".join(v for v in (analysis.event, analysis.market, analysis.labels.get("sector", "")) if v)
    return f"{labels}, level {analysis.sentiment:+d}, conf {analysis.confidence:.2f}, effect {effect:+.2f}"


def _effects(
    symbol: str, pairs: Sequence[tuple[NewsItem, Analysis]], policy: PolicyConfig
) -> tuple[np.ndarray, np.ndarray, list[tuple[NewsItem, Analysis]]]:
    """Times (ns, sorted), effects and the (item, analysis) of every item that moves ``symbol``."""
    rows = []
    for item, analysis in pairs:
        e = effect_on(symbol, news_currency(item, analysis), analysis, policy)
        if e != 0.0:
            rows.append((item.time.value, e, item, analysis))
    rows.sort(key=lambda r: (r[0], r[2].id))
    t = np.array([r[0] for r in rows], dtype=np.int64)
    e = np.array([r[1] for r in rows], dtype=np.float64)
    return t, e, [(r[2], r[3]) for r in rows]


def link_trades(
    trades: pd.DataFrame,
    bars_index: pd.DatetimeIndex,
    symbol: str,
    pairs: Sequence[tuple[NewsItem, Analysis]],
    policy: PolicyConfig,
    latency_s: float,
) -> pd.DataFrame:
    """``trades`` with a ``Trade`` number and the entry news, entry signal and refined exit reason (a new frame)."""
    out = trades.copy()
    out.insert(0, "Trade", np.arange(1, len(out) + 1))
    times = _ns(bars_index)
    lat = int(round(latency_s * 1e9))
    ttl = int(policy.ttl * 60e9)
    half = policy.half_life * 60e9
    ev_t, ev_e, ev_pairs = _effects(symbol, pairs, policy)

    ids, when, heads, reads, contrib, signal, count = [], [], [], [], [], [], []
    for s in out["EntryBar"].to_numpy(dtype=np.int64):
        asof = times[s] - lat
        lo = np.searchsorted(ev_t, asof - ttl, side="right")
        hi = np.searchsorted(ev_t, asof, side="right")
        w = ev_e[lo:hi] * np.exp2(-(asof - ev_t[lo:hi]) / half)
        order = lo + np.argsort(-np.abs(w), kind="stable")[:MAX_LISTED]
        sel = [(ev_pairs[j], ev_e[j], w[j - lo]) for j in order]
        ids.append(";".join(it.id for (it, _), _, _ in sel))
        when.append(";".join(it.time.isoformat() for (it, _), _, _ in sel))
        heads.append(" | ".join(it.headline for (it, _), _, _ in sel))
        reads.append(" | ".join(analysis_summary(a, e) for (_, a), e, _ in sel))
        contrib.append(";".join(f"{x:+.4f}" for _, _, x in sel))
        signal.append(float(w.sum()))
        count.append(hi - lo)
    out["EntrySignal"] = signal
    out["EntryNewsCount"] = count
    out["EntryNewsIds"] = ids
    out["EntryNewsTimes"] = when
    out["EntryHeadlines"] = heads
    out["EntryAnalyses"] = reads
    out["EntryEffects"] = contrib

    # Target exits: news in (previous decision, this decision] -> target change, else the news aged out.
    e = out["ExitBar"].to_numpy(dtype=np.int64)
    is_target = (out["ExitReason"] == "target").to_numpy()
    now = times[e] - lat
    before = times[np.maximum(e - 1, 0)] - lat
    arrived = np.searchsorted(ev_t, now, side="right") - np.searchsorted(ev_t, before, side="right")
    out.loc[is_target, "ExitReason"] = np.where(arrived[is_target] > 0, "target_change", "expiry")
    return out


def analyses_table(
    pairs: Sequence[tuple[NewsItem, Analysis]],
    symbol: str,
    policy: PolicyConfig,
    bars_index: pd.DatetimeIndex,
    latency_s: float,
    trades: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every analysed item in range: what it is, how it was read, its effect on ``symbol``, the bar it could act
    at, and the trade it opened (it is among that trade's entry news) or closed (a target change at that bar)."""
    base, quote = split_symbol(symbol)
    times = _ns(bars_index)
    lat = int(round(latency_s * 1e9))
    rows = []
    for item, a in pairs:
        cur = news_currency(item, a)
        rows.append(
            {
                "time": item.time,
                "id": item.id,
                "source": item.source,
                "headline": item.headline,
                "currency": cur or "",
                "impact": (item.impact or "").lower(),
                "indicator": indicator_label(item),
                "actual": item.actual,
                "forecast": item.forecast,
                "previous": item.previous,
                "analyzer": a.analyzer,
                "event": a.event,
                "market": a.market,
                "sector": a.labels.get("sector", ""),
                "level": int(a.sentiment),
                "score": round(a.score, 4),
                "confidence": a.confidence,
                "fallback": a.fallback,
                "effect": effect_on(symbol, cur, a, policy) if cur in (base, quote) else 0.0,
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # The first bar whose decision instant (open - latency) is at or after the item: where it can first act.
    bar = np.searchsorted(times - lat, _ns(df["time"]), side="left")
    df["acts_at"] = pd.Series(bars_index).reindex(bar).to_numpy()
    df["opened_trade"] = pd.array([pd.NA] * len(df), dtype="Int64")
    df["closed_trade"] = pd.array([pd.NA] * len(df), dtype="Int64")
    if trades is not None and len(trades) and "Trade" in trades:
        pos = {nid: i for i, nid in enumerate(df["id"])}
        for t in trades.itertuples():
            for nid in filter(None, str(t.EntryNewsIds).split(";")):
                i = pos.get(nid)
                if i is not None and bar[i] == t.EntryBar:
                    df.iat[i, df.columns.get_loc("opened_trade")] = t.Trade
            if t.ExitReason == "target_change":
                hit = np.flatnonzero((bar == t.ExitBar) & (df["effect"].to_numpy() != 0))
                df.iloc[hit, df.columns.get_loc("closed_trade")] = t.Trade
    return df


def release_times(items: Sequence[NewsItem], symbol: str, impact: str = "high") -> np.ndarray:
    """Times (ns, sorted) of calendar releases of ``impact`` about either of ``symbol``'s currencies: the windows
    of the news-time cost model."""
    ccys = set(split_symbol(symbol))
    want = impact.lower()
    t = [
        it.time.value
        for it in items
        if (it.impact or "").lower() == want and (it.currency or "").upper() in ccys
    ]
    return np.unique(np.array(t, dtype=np.int64))
