"""Bars from the MetaTrader5 package, tested against a STAND-IN module.

The real ``MetaTrader5`` package only installs and runs on Windows beside a MetaTrader 5 terminal, so it cannot run on
this Linux test machine. These tests put a stand-in module into ``sys.modules`` under that name. It implements the
calls ``backtest.bars.mt5_source`` makes (``initialize``, ``symbol_info``, ``copy_rates_range``, ``last_error``,
``shutdown`` and the ``TIMEFRAME_*`` constants) with the package's documented return types: ``copy_rates_range``
returns a numpy structured array with the package's field names and dtypes, filled here from a genuine MT5 export file
(../shared/data/mt5), so what is checked is that the package path gives the same bars as loading that export.
"""

from __future__ import annotations

import sys
import types
import warnings
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from backtest.bars.loading import BarDataWarning, load_bars
from backtest.bars.mt5_source import load_mt5_bars
from bridge.errors import DataError, UserError

NY7 = "America/New_York+7"
# The dtype copy_rates_range returns (MetaTrader5 5.0.45): times in seconds on the server clock.
RATES_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)


class StandInMT5(types.ModuleType):
    """Stand-in for the Windows-only ``MetaTrader5`` package: serves rates from a DataFrame of broker-clock bars."""

    TIMEFRAME_M1, TIMEFRAME_H1, TIMEFRAME_D1 = 1, 16385, 16408

    def __init__(self, bars: pd.DataFrame | None, *, connect: bool = True, symbols=("EURUSD",)):
        super().__init__("MetaTrader5")
        self._bars = bars
        self._connect = connect
        self._symbols = set(symbols)
        self.calls: list[tuple] = []
        self.shut_down = False

    def initialize(self, *args, **kwargs):
        self.calls.append(("initialize", args, kwargs))
        return self._connect

    def last_error(self):
        return (-10003, "IPC initialize failed, MetaTrader 5 x64 not found")

    def shutdown(self):
        self.shut_down = True

    def symbol_info(self, symbol):
        return types.SimpleNamespace(name=symbol) if symbol in self._symbols else None

    def copy_rates_range(self, symbol, timeframe, date_from, date_to):
        self.calls.append(("copy_rates_range", symbol, timeframe, date_from, date_to))
        if self._bars is None:
            return None
        # The package compares the given datetimes' timestamps with the server-clock bar times.
        lo, hi = (pd.Timestamp(d).tz_convert(None) for d in (date_from, date_to))
        sel = self._bars[(self._bars.index >= lo) & (self._bars.index <= hi)]
        out = np.zeros(len(sel), dtype=RATES_DTYPE)
        out["time"] = sel.index.as_unit("s").asi8
        for name, col in (("open", "Open"), ("high", "High"), ("low", "Low"), ("close", "Close")):
            out[name] = sel[col].to_numpy()
        out["tick_volume"] = sel["Volume"].to_numpy()
        out["spread"] = sel["Spread"].to_numpy()
        return out


@pytest.fixture
def broker_bars(shared_data) -> pd.DataFrame:
    """The genuine 2017-2021 MT5 export, with its index put back on the broker's wall clock (naive)."""
    df = load_bars(shared_data / "mt5/EURUSD_H1_201704030000_202104010000.csv", tz="UTC")
    return df.set_axis(df.index.tz_localize(None))


def _install(monkeypatch, module: types.ModuleType) -> types.ModuleType:
    monkeypatch.setitem(sys.modules, "MetaTrader5", module)
    return module


def test_package_bars_equal_the_export_file(monkeypatch, shared_data, broker_bars):
    mt5 = _install(monkeypatch, StandInMT5(broker_bars))
    got = load_mt5_bars("EURUSD", "H1", "2017-10-30", "2017-11-10", tz=NY7)
    exported = load_bars(shared_data / "mt5/EURUSD_H1_201704030000_202104010000.csv", tz=NY7)
    expected = exported.loc[got.index[0] : got.index[-1]]
    pd.testing.assert_frame_equal(got, expected, check_freq=False)
    assert got.attrs["format"] == "mt5-package" and got.attrs["tz"] == NY7
    assert got.attrs["source"] == "MetaTrader5:EURUSD:H1" and got.attrs["timeframe"] == "H1"
    assert mt5.shut_down


def test_requested_range_is_sent_as_server_wall_time(monkeypatch, broker_bars):
    mt5 = _install(monkeypatch, StandInMT5(broker_bars))
    got = load_mt5_bars(
        "EURUSD", "h1", pd.Timestamp("2017-11-01 00:00", tz="UTC"), "2017-11-08 00:00", tz=NY7
    )
    _, symbol, timeframe, date_from, date_to = mt5.calls[-1]
    assert (symbol, timeframe) == ("EURUSD", StandInMT5.TIMEFRAME_H1)
    # 1 Nov is before the US change (broker UTC+3), 8 Nov after it (UTC+2).
    assert date_from == datetime(2017, 11, 1, 3, 0, tzinfo=UTC)
    assert date_to == datetime(2017, 11, 8, 2, 0, tzinfo=UTC)
    assert got.index[0] == pd.Timestamp("2017-11-01 00:00", tz="UTC")
    assert got.index[-1] == pd.Timestamp("2017-11-08 00:00", tz="UTC")


def test_without_tz_warns_and_assumes_utc(monkeypatch, broker_bars):
    _install(monkeypatch, StandInMT5(broker_bars))
    with pytest.warns(BarDataWarning, match="assuming UTC"):
        got = load_mt5_bars("EURUSD", "H1", "2017-11-01", "2017-11-02")
    assert got.attrs["tz"] == "UTC (assumed)" and got.index[0] == pd.Timestamp("2017-11-01 00:00", tz="UTC")


def test_login_arguments_reach_initialize(monkeypatch, broker_bars):
    mt5 = _install(monkeypatch, StandInMT5(broker_bars))
    load_mt5_bars("EURUSD", "H1", "2017-11-01", "2017-11-02", tz=NY7, login=123, password="pw", server="Demo")
    assert mt5.calls[0] == ("initialize", (), {"login": 123, "password": "pw", "server": "Demo"})


def test_package_missing_is_a_clear_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # makes the import fail like on Linux
    with pytest.raises(UserError, match="MetaTrader5 package is not installed") as exc:
        load_mt5_bars("EURUSD", "H1", "2017-01-01", "2017-02-01", tz=NY7)
    assert "Windows" in exc.value.hint


def test_terminal_not_running(monkeypatch):
    _install(monkeypatch, StandInMT5(None, connect=False))
    with pytest.raises(UserError, match="cannot connect to the MetaTrader 5 terminal"):
        load_mt5_bars("EURUSD", "H1", "2017-01-01", "2017-02-01", tz=NY7)


def test_unknown_symbol_and_timeframe(monkeypatch, broker_bars):
    mt5 = _install(monkeypatch, StandInMT5(broker_bars))
    with pytest.raises(DataError, match="symbol 'EURUSDm' is not known"):
        load_mt5_bars("EURUSDm", "H1", "2017-01-01", "2017-02-01", tz=NY7)
    assert mt5.shut_down
    with pytest.raises(UserError, match="unknown timeframe"):
        load_mt5_bars("EURUSD", "H7", "2017-01-01", "2017-02-01", tz=NY7)


def test_failed_copy_and_empty_range(monkeypatch, broker_bars):
    _install(monkeypatch, StandInMT5(None))
    with pytest.raises(DataError, match="copy_rates_range failed"):
        load_mt5_bars("EURUSD", "H1", "2017-01-01", "2017-02-01", tz=NY7)
    _install(monkeypatch, StandInMT5(broker_bars))
    with pytest.raises(DataError, match="no bars between"):
        load_mt5_bars("EURUSD", "H1", "2010-01-01", "2010-02-01", tz=NY7)


def test_package_rates_go_through_the_same_validation(monkeypatch, broker_bars):
    # From 03:00 on the broker's clock, the first bar the request for 00:00 UTC returns; row 6 is made bad.
    bad = broker_bars.loc["2017-11-01 03:00":"2017-11-02"].copy()
    bad.iloc[5, bad.columns.get_loc("High")] = bad.iloc[5]["Low"] - 0.001
    _install(monkeypatch, StandInMT5(bad))
    with warnings.catch_warnings(), pytest.raises(DataError, match="High is below Low on line 6") as exc:
        load_mt5_bars("EURUSD", "H1", "2017-11-01", "2017-11-03", tz=NY7)
    assert str(exc.value).startswith("MetaTrader5:EURUSD:H1:6:")
