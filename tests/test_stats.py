"""compute_stats: backtesting.py's names, hand-checked values, and sane output when nothing traded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import EngineConfig, run_backtest
from backtest.stats import STAT_NAMES, compute_stats, stats_table, stats_to_jsonable

REQUIRED = [
    "Start",
    "End",
    "Duration",
    "Exposure Time [%]",
    "Equity Final [$]",
    "Equity Peak [$]",
    "Return [%]",
    "Buy & Hold Return [%]",
    "Return (Ann.) [%]",
    "Volatility (Ann.) [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Max. Drawdown [%]",
    "# Trades",
    "Win Rate [%]",
    "Best Trade [%]",
    "Worst Trade [%]",
    "Avg. Trade [%]",
    "Profit Factor",
    "Expectancy [%]",
]


def _bars(close, freq="h"):
    close = np.asarray(close, dtype=float)
    idx = pd.date_range("2021-03-01", periods=len(close), freq=freq, tz="UTC")
    o = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {"Open": o, "High": np.maximum(o, close), "Low": np.minimum(o, close), "Close": close}, index=idx
    )


def test_stats_carry_backtesting_py_names_in_order():
    bars = _bars(np.linspace(1.0, 1.1, 50))
    r = run_backtest(bars, np.r_[0, np.ones(49)], EngineConfig(spread=0))
    s = compute_stats(r.trades, r.equity, bars)
    assert all(name in s.index for name in REQUIRED)
    assert [k for k in s.index if not k.startswith("_")] == list(STAT_NAMES)


def test_trade_statistics_match_a_hand_computation():
    # Three long trades of 1 lot with no costs: +20 pips, -10 pips, +5 pips on a price of 1.0.
    close = [1.0, 1.0, 1.0020, 1.0020, 1.0010, 1.0010, 1.0015, 1.0015]
    bars = _bars(close)
    bars["Open"] = [1.0, 1.0, 1.0, 1.0020, 1.0020, 1.0010, 1.0010, 1.0015]
    bars["High"] = bars[["Open", "Close"]].max(axis=1)
    bars["Low"] = bars[["Open", "Close"]].min(axis=1)
    target = np.array([0, 1, 1, 0, 1, 0, 1, 0])
    # Trades: open 1.0 (bar 1) -> exit open of bar 3 = 1.0020; open 1.0020 (bar 4) -> 1.0010; open 1.0010 -> 1.0015.
    r = run_backtest(bars, target, EngineConfig(spread=0, lots=1.0, cash=10_000))
    s = compute_stats(r.trades, r.equity, bars)
    rets = np.array([0.0020 / 1.0, -0.0010 / 1.0020, 0.0005 / 1.0010])
    assert s["# Trades"] == 3
    assert s["Win Rate [%]"] == pytest.approx(200 / 3)
    assert s["Best Trade [%]"] == pytest.approx(rets.max() * 100)
    assert s["Worst Trade [%]"] == pytest.approx(rets.min() * 100)
    assert s["Expectancy [%]"] == pytest.approx(rets.mean() * 100)
    assert s["Avg. Trade [%]"] == pytest.approx((np.prod(1 + rets) ** (1 / 3) - 1) * 100)
    assert s["Profit Factor"] == pytest.approx((rets[0] + rets[2]) / -rets[1])
    assert s["Equity Final [$]"] == pytest.approx(10_000 + 200 - 100 + 50)
    assert s["Return [%]"] == pytest.approx(1.5)
    assert s["Buy & Hold Return [%]"] == pytest.approx(0.15)
    # Peak 10,200 then 10,100: a 0.98% drawdown.
    assert s["Max. Drawdown [%]"] == pytest.approx(-100 / 10_200 * 100)
    assert s["Exposure Time [%]"] == pytest.approx(
        100 * 7 / 8
    )  # bars 1-3, 4-5, 6-7 (entry to exit inclusive)


def test_annualised_figures_come_from_daily_returns():
    rng = np.random.default_rng(3)
    daily = rng.normal(0.0005, 0.01, 300)
    eq = 10_000 * np.cumprod(1 + daily)
    idx = pd.bdate_range("2019-01-01", periods=300, tz="UTC")
    bars = pd.DataFrame({"Open": 1.0, "High": 1.0, "Low": 1.0, "Close": 1.0}, index=idx)
    trades = run_backtest(bars, np.zeros(300), EngineConfig()).trades
    s = compute_stats(trades, pd.Series(eq, index=idx), bars)
    r = eq[1:] / eq[:-1] - 1
    g = np.exp(np.log1p(r).mean()) - 1
    assert s["Return (Ann.) [%]"] == pytest.approx(((1 + g) ** 252 - 1) * 100)
    assert s["Volatility (Ann.) [%]"] == pytest.approx(r.std(ddof=1) * np.sqrt(252) * 100)
    assert s["Sharpe Ratio"] == pytest.approx(s["Return (Ann.) [%]"] / s["Volatility (Ann.) [%]"])
    assert s["Sortino Ratio"] > s["Sharpe Ratio"] > 0


def test_no_trades_gives_zero_return_and_nan_trade_stats():
    bars = _bars(np.linspace(1.0, 1.05, 30))
    r = run_backtest(bars, np.zeros(30), EngineConfig())
    s = compute_stats(r.trades, r.equity, bars)
    assert s["# Trades"] == 0
    assert s["Return [%]"] == 0
    assert s["Exposure Time [%]"] == 0
    assert np.isnan(s["Win Rate [%]"]) and np.isnan(s["Profit Factor"])
    doc = stats_to_jsonable(s)
    assert doc["Win Rate [%]"] is None and doc["# Trades"] == 0
    assert "Sharpe Ratio" in stats_table(s)


def test_mismatched_equity_length_is_rejected():
    bars = _bars(np.linspace(1.0, 1.05, 10))
    r = run_backtest(bars, np.zeros(10), EngineConfig())
    with pytest.raises(ValueError, match="equity has 9 values"):
        compute_stats(r.trades, r.equity.iloc[:-1], bars)
