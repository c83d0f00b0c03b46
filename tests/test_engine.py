"""The replay engine: costs, intrabar stops, trading the difference, no look-ahead, validation at the door."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine import (
    EngineConfig,
    bar_open_ns,
    run_backtest,
    targets_from_effects,
    targets_from_signals,
)
from bridge.policy import PolicyConfig
from bridge.symbols import point_size

PRICE = 1.10000


def _bars(o, h, lo, c, start="2020-01-06 00:00", freq="h") -> pd.DataFrame:
    idx = pd.date_range(start, periods=len(o), freq=freq, tz="UTC")
    return pd.DataFrame({"Open": o, "High": h, "Low": lo, "Close": c}, index=idx)


def _flat(n: int) -> pd.DataFrame:
    x = np.full(n, PRICE)
    return _bars(x, x, x, x)


# --- costs -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", [[0, 1, 1, 0, -1, -1, 1, 0, 0, 1, 1, 0], [1, -1, 1, -1, 0, 0, -1, 1, 1, 1, 0, 0]]
)
def test_flat_market_with_constant_spread_loses_exactly_spread_times_trades(target):
    spread, lots = 0.00020, 0.5
    r = run_backtest(_flat(len(target)), np.array(target), EngineConfig(spread=spread, lots=lots))
    n_trades = len(r.trades)
    assert n_trades > 3
    loss = spread * lots * 100_000 * n_trades
    assert r.final_equity == pytest.approx(10_000 - loss, abs=1e-9)
    np.testing.assert_allclose(r.trades["PnL"], -spread * lots * 100_000, atol=1e-9)


def test_flat_market_commission_is_charged_per_lot_per_side():
    target = np.array([0, 1, 1, 0, -1, 1, 0, 0])
    r = run_backtest(_flat(len(target)), target, EngineConfig(spread=0.0, lots=2.0, commission=3.5))
    assert len(r.trades) == 3
    assert r.final_equity == pytest.approx(10_000 - 3 * 2 * 2.0 * 3.5, abs=1e-9)
    np.testing.assert_allclose(r.trades["Commission"], 2 * 2.0 * 3.5)


def test_flat_market_slippage_is_paid_on_entry_and_exit():
    target = np.array([0, 1, 0, -1, 0])
    r = run_backtest(_flat(len(target)), target, EngineConfig(spread=0.0, slippage=0.00003, lots=1.0))
    assert r.final_equity == pytest.approx(10_000 - 2 * 2 * 0.00003 * 100_000, abs=1e-9)


def test_spread_is_read_from_the_bars_spread_column_in_points():
    bars = _flat(6).assign(Spread=[15, 15, 15, 15, 15, 15])
    r = run_backtest(bars, np.array([0, 1, 1, 0, 0, 0]), EngineConfig(lots=1.0, point=point_size("EURUSD")))
    assert r.final_equity == pytest.approx(10_000 - 15 * 0.00001 * 100_000, abs=1e-9)


# --- intrabar stops ----------------------------------------------------------------------------------------------------


def test_stop_is_taken_when_stop_and_target_are_touched_in_the_same_bar():
    # Entry at 1.10000 (bar 1 open, no spread); bar 2 spans both 1.0970 (stop) and 1.1060 (target).
    bars = _bars(
        [1.1, 1.1, 1.1, 1.1, 1.1],
        [1.1, 1.1005, 1.1070, 1.1, 1.1],
        [1.1, 1.0995, 1.0960, 1.1, 1.1],
        [1.1, 1.1, 1.1, 1.1, 1.1],
    )
    r = run_backtest(bars, np.array([0, 1, 1, 1, 1]), EngineConfig(spread=0, lots=1, sl=0.0030, tp=0.0060))
    t = r.trades.iloc[0]
    assert t["ExitReason"] == "sl"
    assert t["ExitBar"] == 2
    assert t["ExitPrice"] == pytest.approx(1.0970)
    assert t["PnL"] == pytest.approx(-0.0030 * 100_000)


def test_short_stop_is_taken_when_both_are_touched_in_the_entry_bar():
    bars = _bars([1.1, 1.1, 1.1], [1.1, 1.1040, 1.1], [1.1, 1.0930, 1.1], [1.1, 1.1, 1.1])
    r = run_backtest(bars, np.array([0, -1, -1]), EngineConfig(spread=0, lots=1, sl=0.0030, tp=0.0060))
    t = r.trades.iloc[0]
    assert (t["ExitReason"], t["ExitBar"]) == ("sl", 1)
    assert t["ExitPrice"] == pytest.approx(1.1030)


def test_take_profit_fills_at_its_level_when_only_it_is_touched():
    bars = _bars([1.1, 1.1, 1.1], [1.1, 1.1070, 1.1], [1.1, 1.0990, 1.1], [1.1, 1.1, 1.1])
    r = run_backtest(bars, np.array([0, 1, 1]), EngineConfig(spread=0, lots=1, sl=0.0030, tp=0.0060))
    t = r.trades.iloc[0]
    assert (t["ExitReason"], t["ExitPrice"]) == ("tp", pytest.approx(1.1060))


def test_gap_through_the_stop_fills_at_the_bar_open():
    bars = _bars(
        [1.1, 1.1, 1.0950, 1.09],
        [1.1, 1.1001, 1.0960, 1.09],
        [1.1, 1.0999, 1.0940, 1.09],
        [1.1, 1.1, 1.095, 1.09],
    )
    r = run_backtest(bars, np.array([0, 1, 1, 1]), EngineConfig(spread=0, lots=1, sl=0.0030))
    t = r.trades.iloc[0]
    assert (t["ExitReason"], t["ExitBar"]) == ("sl", 2)
    assert t["ExitPrice"] == pytest.approx(1.0950)


def test_stop_distance_is_measured_from_the_fill_including_spread():
    # Long fills at 1.10010 (half of a 2-pip spread); the bid low must reach 1.09710 to stop.
    bars = _bars([1.1, 1.1, 1.1], [1.1, 1.1, 1.1], [1.1, 1.0973, 1.0971], [1.1, 1.1, 1.1])
    r = run_backtest(bars, np.array([0, 1, 1]), EngineConfig(spread=0.0002, lots=1, sl=0.0030))
    t = r.trades.iloc[0]
    assert t["EntryPrice"] == pytest.approx(1.1001)
    assert (t["ExitReason"], t["ExitBar"]) == ("sl", 2)  # bar 1's bid low 1.0972 is above the 1.0971 stop


def test_position_stays_flat_after_a_stop_until_the_target_changes():
    o = [1.1] * 8
    h = [1.1] * 8
    lo = [1.1, 1.1, 1.09, 1.1, 1.1, 1.1, 1.1, 1.1]
    bars = _bars(o, h, lo, o)
    r = run_backtest(bars, np.array([0, 1, 1, 1, 1, -1, -1, -1]), EngineConfig(spread=0, lots=1, sl=0.003))
    assert list(r.trades["ExitReason"]) == ["sl", "end"]
    assert list(r.position.to_numpy()[:5]) == [0, 100_000, 0, 0, 0]
    assert r.trades["EntryBar"].iloc[1] == 5


# --- trading the difference --------------------------------------------------------------------------------------------


def test_same_target_twice_trades_once():
    r = run_backtest(_flat(6), np.array([0, 1, 1, 1, 1, 1]), EngineConfig(spread=0.0001))
    assert len(r.trades) == 1


def test_reversal_closes_and_opens_at_the_same_open():
    x = np.linspace(1.1, 1.11, 6)
    bars = _bars(x, x + 0.001, x - 0.001, x)
    r = run_backtest(bars, np.array([0, 1, 1, -1, -1, -1]), EngineConfig(spread=0.0))
    assert list(r.trades["ExitBar"][:1]) == [3]
    assert r.trades["EntryBar"].iloc[1] == 3
    assert r.trades["ExitPrice"].iloc[0] == r.trades["EntryPrice"].iloc[1] == pytest.approx(x[3])


def test_risk_sizing_loses_the_risk_fraction_at_the_stop():
    o = [1.1, 1.1, 1.1, 1.1]
    lo = [1.1, 1.1, 1.09, 1.1]
    bars = _bars(o, o, lo, o)
    cfg = EngineConfig(spread=0, risk=0.01, sl=0.0050, cash=10_000)
    r = run_backtest(bars, np.array([0, 1, 1, 1]), cfg)
    assert r.trades["Lots"].iloc[0] == pytest.approx(0.2)  # 100 $ / (0.005 * 100,000)
    assert r.final_equity == pytest.approx(9_900)


# --- targets from news and signals: latency, no look-ahead -------------------------------------------------------------


def test_news_moves_the_position_only_from_the_first_bar_opening_at_or_after_news_plus_latency():
    times = bar_open_ns(_flat(6))
    news = pd.Timestamp("2020-01-06 01:59:58", tz="UTC").value
    tgt = targets_from_signals(times, np.array([news]), np.array([1]), latency_s=5)
    assert list(tgt) == [
        0,
        0,
        0,
        1,
        1,
        1,
    ]  # 02:00 opens 2 s after the news, < 5 s latency: 03:00 is the first
    tgt0 = targets_from_signals(times, np.array([news]), np.array([1]), latency_s=0)
    assert list(tgt0) == [0, 0, 1, 1, 1, 1]


def _random_case(seed: int, n: int = 120):
    rng = np.random.default_rng(seed)
    c = PRICE + np.cumsum(rng.normal(0, 0.0008, n))
    o = np.r_[PRICE, c[:-1]]
    h = np.maximum(o, c) + rng.uniform(0, 0.0010, n)
    lo = np.minimum(o, c) - rng.uniform(0, 0.0010, n)
    bars = _bars(o, h, lo, c).assign(Spread=rng.integers(5, 20, n))
    k = 40
    t0 = bars.index[0].value
    ev_t = np.sort(rng.integers(t0 - 3_600 * 10**9, bars.index[-1].value, k))
    effects = pd.DataFrame(
        {"time": pd.to_datetime(ev_t, utc=True), "effect": rng.uniform(-1, 1, k), "id": "x", "headline": "h"}
    )
    return bars, effects


CFGS = [
    EngineConfig(lots=0.3, sl=0.0020, tp=0.0030, commission=2.0, slippage=0.00002),
    EngineConfig(risk=0.02, sl=0.0015, tp=0.0),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(5, 115),
    cfg=st.sampled_from(CFGS),
    latency=st.sampled_from([0.0, 5.0, 1800.0]),
    bump=st.floats(-0.01, 0.01, allow_nan=False),
)
def test_no_look_ahead_changing_bars_or_news_after_t_changes_nothing_before_t(seed, cut, cfg, latency, bump):
    bars, effects = _random_case(seed)
    policy = PolicyConfig(half_life=90, ttl=300, threshold=0.2)
    t = bars.index[cut]

    def run(b, e):
        tgt = targets_from_effects(bar_open_ns(b), e, policy, latency)
        return run_backtest(b, tgt, cfg)

    base = run(bars, effects)
    # Change every bar that opens at or after t, and every news item at or after t (values, and add new items).
    bars2 = bars.copy()
    later = bars2.index >= t
    bars2.loc[later, ["Open", "High", "Low", "Close"]] += bump
    bars2.loc[later, "High"] += abs(bump)
    bars2.loc[later, "Spread"] = 40
    effects2 = effects.copy()
    after = effects2["time"] >= t
    effects2.loc[after, "effect"] = -effects2.loc[after, "effect"]
    extra = pd.DataFrame(
        {"time": [t, t + pd.Timedelta(minutes=7)], "effect": [5.0, -5.0], "id": "y", "headline": "h"}
    )
    effects2 = pd.concat([effects2, extra]).sort_values("time", kind="stable").reset_index(drop=True)
    changed = run(bars2, effects2)

    np.testing.assert_array_equal(base.target.to_numpy()[:cut], changed.target.to_numpy()[:cut])
    np.testing.assert_array_equal(base.position.to_numpy()[:cut], changed.position.to_numpy()[:cut])
    np.testing.assert_allclose(
        base.equity.to_numpy()[:cut], changed.equity.to_numpy()[:cut], rtol=0, atol=1e-9
    )
    done_a = base.trades[base.trades["ExitBar"] < cut].drop(columns=["ExitReason"])
    done_b = changed.trades[changed.trades["ExitBar"] < cut].drop(columns=["ExitReason"])
    pd.testing.assert_frame_equal(done_a.reset_index(drop=True), done_b.reset_index(drop=True))
    open_a = base.trades[(base.trades["EntryBar"] < cut) & (base.trades["ExitBar"] >= cut)]
    open_b = changed.trades[(changed.trades["EntryBar"] < cut) & (changed.trades["ExitBar"] >= cut)]
    cols = ["EntryBar", "EntryPrice", "Size", "SL", "TP"]
    pd.testing.assert_frame_equal(open_a[cols].reset_index(drop=True), open_b[cols].reset_index(drop=True))


# --- validation at the door --------------------------------------------------------------------------------------------


def test_caller_bars_are_copied_never_changed():
    bars = _flat(5).iloc[::-1]
    before = bars.copy()
    with pytest.warns(UserWarning, match="not in time order"):
        run_backtest(bars, np.array([0, 1, 1, 0, 0]), EngineConfig(spread=0))
    pd.testing.assert_frame_equal(bars, before)


def test_naive_index_is_read_as_utc_with_a_warning():
    bars = _flat(4)
    bars.index = bars.index.tz_localize(None)
    with pytest.warns(UserWarning, match="naive"):
        r = run_backtest(bars, np.zeros(4), EngineConfig())
    assert str(r.equity.index.tz) == "UTC"


@pytest.mark.parametrize(
    ("bars", "target", "exc", "match"),
    [
        ([1, 2, 3], np.zeros(3), TypeError, "DataFrame"),
        (_flat(4).drop(columns="Low"), np.zeros(4), ValueError, "Low"),
        (_flat(4).reset_index(drop=True), np.zeros(4), TypeError, "DatetimeIndex"),
        (_flat(4), np.zeros(3), ValueError, "one value per bar"),
        (_flat(4), np.array([0, np.nan, 1, 0]), ValueError, "missing"),
        (_flat(4).assign(Open=[1.1, np.nan, 1.1, 1.1]), np.zeros(4), ValueError, "missing prices"),
    ],
    ids=["not-a-frame", "missing-column", "no-time-index", "target-length", "target-nan", "price-nan"],
)
def test_unusable_input_is_rejected_with_a_clear_error(bars, target, exc, match):
    with pytest.raises(exc, match=match):
        run_backtest(bars, target, EngineConfig())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"cash": 0}, "cash"),
        ({"risk": 0.01}, "stop-loss"),
        ({"risk": 2, "sl": 0.001}, "fraction"),
        ({"spread": -1}, "spread"),
    ],
)
def test_inconsistent_config_is_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        EngineConfig(**kw)


def test_point_size_knows_jpy_and_rejects_unknown_symbols():
    assert point_size("EURUSD") == 0.00001
    assert point_size("USDJPY.m") == 0.001
    with pytest.raises(ValueError, match="unknown symbol"):
        point_size("FOOBAR")


def test_duplicate_bar_times_keep_the_first_with_a_warning():
    bars = pd.concat([_flat(3), _flat(3).iloc[[1]]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = run_backtest(bars, pd.Series(0, index=bars.index[:3]), EngineConfig())
    assert any("repeat" in str(w.message) for w in caught)
    assert len(r.equity) == 3
