"""News-time costs: the spread widens and fills slip more inside the window around a high-impact release, exactly
there and nowhere else; swap is paid per night held over the 17:00 New York rollover, Wednesday three times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import EngineConfig, news_window_mask, rollover_nights, run_backtest
from backtest.linkage import release_times
from bridge.types import NewsItem

START = pd.Timestamp("2017-03-07 13:00", tz="UTC")  # a Tuesday
SPREAD = 0.0001


def _flat_bars(n: int = 60, freq: str = "min") -> pd.DataFrame:
    idx = pd.date_range(START, periods=n, freq=freq)
    x = np.full(n, 1.1)
    return pd.DataFrame({"Open": x, "High": x, "Low": x, "Close": x}, index=idx)


def _config(**kw) -> EngineConfig:
    base = dict(spread=SPREAD, news_spread_mult=3.0, news_slippage=0.00005)
    return EngineConfig(**{**base, **kw})


def test_a_trade_entered_at_a_release_pays_the_widened_spread_and_the_extra_slippage():
    bars = _flat_bars()
    release = bars.index[10] + pd.Timedelta(
        seconds=30
    )  # 13:10:30, the 13:10 and 13:11 bars are in its window
    target = np.zeros(len(bars))
    target[11:40] = 1  # enters at the 13:11 open (30 s after), exits at 13:40, far outside the window
    r = run_backtest(bars, target, _config(), news_times=pd.DatetimeIndex([release]))
    t = r.trades.iloc[0]
    assert t["EntryPrice"] == pytest.approx(1.1 + 3 * SPREAD / 2 + 0.00005)
    assert t["ExitPrice"] == pytest.approx(1.1 - SPREAD / 2)
    quiet = run_backtest(bars, target, _config(), news_times=None).trades.iloc[0]
    assert quiet["EntryPrice"] == pytest.approx(1.1 + SPREAD / 2)
    off = run_backtest(
        bars, target, _config(news_spread_mult=1.0, news_slippage=0.0), pd.DatetimeIndex([release])
    )
    assert off.trades.iloc[0]["EntryPrice"] == pytest.approx(1.1 + SPREAD / 2)
    # The window is 13:09:30 .. 13:13:30: the 13:10 to 13:13 opens are inside, 13:09 and 13:14 are not.
    np.testing.assert_allclose(r.spread[9:15], np.array([1, 3, 3, 3, 3, 1]) * SPREAD)


def test_the_window_is_exactly_before_to_after_the_release():
    cfg = EngineConfig(news_window_before_s=60, news_window_after_s=180)
    release = START + pd.Timedelta(minutes=10)
    offsets = np.array([-121, -61, -60, 0, 180, 181, 600])  # seconds from the release to the bar's open
    opens = (release + pd.to_timedelta(offsets, unit="s")).as_unit("ns").asi8
    mask = news_window_mask(opens, [release.value], cfg)
    assert list(mask) == [False, False, True, True, True, False, False]
    assert not news_window_mask(opens, [], cfg).any()


def test_only_high_impact_releases_of_the_symbols_currencies_open_a_window():
    t = START
    items = [
        NewsItem(time=t, headline="NFP", currency="USD", impact="High"),
        NewsItem(time=t + pd.Timedelta(hours=1), headline="ZEW", currency="EUR", impact="Medium"),
        NewsItem(time=t + pd.Timedelta(hours=2), headline="BoJ", currency="JPY", impact="High"),
        NewsItem(time=t + pd.Timedelta(hours=3), headline="ECB", currency="EUR", impact="high"),
    ]
    assert list(release_times(items, "EURUSD")) == [t.value, (t + pd.Timedelta(hours=3)).value]


def test_swap_nights_count_the_new_york_rollovers_with_wednesday_triple():
    def nights(a, b):
        return int(
            rollover_nights(
                pd.DatetimeIndex([pd.Timestamp(a, tz="UTC")]), pd.DatetimeIndex([pd.Timestamp(b, tz="UTC")])
            )[0]
        )

    assert (
        nights("2017-03-07 15:00", "2017-03-07 21:00") == 0
    )  # Tue, before 17:00 New York (22:00 UTC in winter)
    assert nights("2017-03-07 15:00", "2017-03-07 22:00") == 1  # over Tuesday's rollover
    assert nights("2017-03-07 15:00", "2017-03-09 15:00") == 4  # Tuesday 1 + Wednesday 3
    assert nights("2017-03-10 15:00", "2017-03-13 15:00") == 1  # Friday to Monday: Friday's rollover only
    assert nights("2017-06-06 20:59", "2017-06-06 21:00") == 1  # summer: 17:00 New York is 21:00 UTC


def test_swap_is_booked_per_lot_and_night_with_the_side_rate():
    bars = _flat_bars(n=60, freq="h")  # Tuesday 13:00 UTC for 60 hours
    target = np.zeros(len(bars))
    target[0:30] = 1  # long Tuesday 13:00 to Wednesday 19:00 UTC: over Tuesday's rollover only
    target[
        30:59
    ] = -1  # short from Wednesday 19:00 to Friday 00:00 UTC: Wednesday's rollover (x3) and Thursday's
    cfg = EngineConfig(spread=0.0, lots=0.5, swap_long=-6.5, swap_short=1.2)
    t = run_backtest(bars, target, cfg).trades
    per_point_per_lot = 100_000 * 0.00001
    assert t["Swap"].tolist() == pytest.approx(
        [-6.5 * 0.5 * per_point_per_lot * 1, 1.2 * 0.5 * per_point_per_lot * 4]
    )
    assert t["PnL"].tolist() == pytest.approx(t["Swap"].tolist())  # flat prices, no spread: P&L is the swap


def test_bad_news_cost_values_are_refused():
    with pytest.raises(ValueError, match="news_spread_mult"):
        EngineConfig(news_spread_mult=0.5)
    with pytest.raises(ValueError, match="news_window_after_s"):
        EngineConfig(news_window_after_s=-1)
