"""Event study: moves measured from the first tradable price after the news, grouped by level and event type, with
confidence intervals, hit rates, and a shuffled-label baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.event_study import event_study, horizon_bars
from bridge.types import Analysis, NewsItem

START = pd.Timestamp("2017-03-06 00:00", tz="UTC")


def _minute_bars(n: int = 3000) -> pd.DataFrame:
    idx = pd.date_range(START, periods=n, freq="min")
    x = np.full(n, 1.1)
    return pd.DataFrame({"Open": x, "High": x, "Low": x, "Close": x}, index=idx)


def _news(minute: int, currency: str, level: int, event: str = "economic data") -> tuple[NewsItem, Analysis]:
    item = NewsItem(
        time=START + pd.Timedelta(minutes=minute, seconds=20), headline=f"n{minute}", currency=currency
    )
    market = {"EUR": "EU", "USD": "US", "JPY": "JP"}[currency]
    return item, Analysis(labels={"event": event, "market": market, "sector": "FX"}, sentiment=level)


def _informative_case():
    """News every 100 minutes; the price steps 10 bp the way the label says, 3 minutes after the news."""
    bars = _minute_bars()
    pairs = []
    close = bars["Close"].to_numpy().copy()
    rng = np.random.default_rng(1)
    for k in range(25):
        m = 50 + 100 * k
        cur = "EUR" if k % 2 else "USD"
        level = int(rng.choice([-3, -2, 2, 3]))
        pairs.append(_news(m, cur, level, event="central bank decision" if k % 3 == 0 else "economic data"))
        side = 1 if cur == "EUR" else -1
        close[m + 3 :] *= 1 + side * np.sign(level) * 0.0010
    bars["Open"] = np.r_[close[0], close[:-1]]
    bars["Close"] = close
    bars["High"] = bars[["Open", "Close"]].max(axis=1)
    bars["Low"] = bars[["Open", "Close"]].min(axis=1)
    return bars, pairs


def test_horizons_round_to_whole_bars_and_merge_on_coarse_bars():
    assert horizon_bars([5, 15, 60, 240], 1) == {5: 5, 15: 15, 60: 60, 240: 240}
    assert horizon_bars([5, 15, 60, 240], 60) == {60: 1, 240: 4}
    assert horizon_bars([5, 15, 60, 240], 15) == {15: 1, 60: 4, 240: 16}


def test_informative_labels_hit_every_time_after_the_move_and_beat_shuffled_labels():
    bars, pairs = _informative_case()
    study = event_study(bars, pairs, "EURUSD", seed=0)
    t = study.table
    model = t[(t.labels == "model") & (t.by == "all")].set_index("horizon_min")
    shuffled = t[(t.labels == "shuffled") & (t.by == "all")].set_index("horizon_min")
    assert model.loc[5, "n_directed"] == 25
    assert model.loc[5, "hit_rate"] == 1.0  # the step at +3 min is inside the 5-minute window
    assert model.loc[5, "mean_directed_bp"] == pytest.approx(10.0, rel=1e-3)
    assert model.loc[5, "directed_ci_low_bp"] == pytest.approx(
        10.0, rel=1e-3
    )  # identical moves: zero-width CI
    assert shuffled.loc[5, "hit_rate"] < 1.0
    assert shuffled.loc[5, "mean_directed_bp"] < model.loc[5, "mean_directed_bp"]


def test_a_move_before_the_first_tradable_bar_is_not_counted():
    # News at 00:50:20; the price steps during the 00:50 bar (which opened before the news): not measurable.
    bars = _minute_bars(400)
    close = bars["Close"].to_numpy().copy()
    close[50:] *= 1.001
    bars["Close"] = close
    bars["Open"] = np.r_[close[0], close[:-1]]
    bars["High"] = bars[["Open", "Close"]].max(axis=1)
    bars["Low"] = bars[["Open", "Close"]].min(axis=1)
    study = event_study(bars, [_news(50, "EUR", 3)], "EURUSD")
    assert study.events["move_5m_bp"].iloc[0] == pytest.approx(0.0)


def test_levels_are_seen_from_the_symbol_and_other_currencies_are_left_out():
    bars, pairs = _informative_case()
    pairs = pairs + [_news(2990, "JPY", 3)]
    study = event_study(bars, pairs, "EURUSD")
    assert len(study.events) == 25  # the JPY item is about neither EUR nor USD
    by_level = study.table[
        (study.table.labels == "model") & (study.table.by == "level") & (study.table.horizon_min == 15)
    ]
    means = by_level.set_index("group")["mean_bp"]
    # Seen from EURUSD, positive levels went up and negative ones down, whichever currency the item was about.
    assert all(means[g] > 0 for g in means.index if int(g) > 0)
    assert all(means[g] < 0 for g in means.index if int(g) < 0)
    ci = by_level.set_index("group")
    assert ((ci["ci_low_bp"] <= ci["mean_bp"] + 1e-9) & (ci["mean_bp"] <= ci["ci_high_bp"] + 1e-9)).all()


def test_event_types_are_grouped_and_horizons_past_the_last_bar_are_missing():
    bars, pairs = _informative_case()
    study = event_study(bars, pairs, "EURUSD", horizons=(5, 600))
    groups = set(study.table.loc[study.table.by == "event", "group"])
    assert groups == {"central bank decision", "economic data"}
    # The last item is at minute 2450 (first tradable bar 2451): 600 minutes on would pass the 3000th bar.
    assert np.isnan(study.events["move_600m_bp"].iloc[-1])
    assert np.isfinite(study.events["move_5m_bp"]).all()
