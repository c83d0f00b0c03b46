"""Bars straight from a running MetaTrader 5 terminal through the ``MetaTrader5`` package (Windows only).

    pip install "ea-bridge[mt5]"      # on Windows, beside an installed and logged-in terminal

    from backtest.bars.mt5_source import load_mt5_bars
    bars = load_mt5_bars("EURUSD", "H1", "2017-01-01", "2018-01-01", tz="America/New_York+7")

The package is imported inside the function, so the rest of the project runs where it cannot be installed. The bars go
through the same validation as file exports (``backtest.bars.loading.bars_from_arrays``) and come back in the same shape.

Time: ``copy_rates_range`` returns each bar's open time as seconds since 1970 on the broker's server clock (MT5 labels
it UTC but does not shift it), so ``tz`` is the server's zone, as for an "Export bars" file; the requested range is
given in UTC and turned into server wall time for the request.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, tzinfo

import numpy as np
import pandas as pd

from backtest.bars.loading import DEFAULT_TZ, BarDataWarning, bars_from_arrays
from bridge.errors import DataError, UserError
from bridge.news.tz import parse_tz, tz_name, utc_to_wall

TIMEFRAMES = ("M1", "M2", "M3", "M4", "M5", "M6", "M10", "M12", "M15", "M20", "M30")
TIMEFRAMES += ("H1", "H2", "H3", "H4", "H6", "H8", "H12", "D1", "W1", "MN1")


def _import_mt5():
    try:
        import MetaTrader5  # noqa: N813 - the package's own name
    except ImportError:
        raise UserError(
            "the MetaTrader5 package is not installed",
            hint="it runs on Windows beside a MetaTrader 5 terminal: pip install 'ea-bridge[mt5]'; "
            "elsewhere export the bars from the terminal (History Center, Export bars) and use load_bars",
        ) from None
    return MetaTrader5


def _server_wall(when: str | datetime | pd.Timestamp, zone: tzinfo) -> datetime:
    """A UTC instant as the server's wall clock, tagged UTC the way the package expects its arguments."""
    ts = pd.Timestamp(when)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    wall = utc_to_wall(pd.DatetimeIndex([ts]), zone)[0].to_pydatetime()
    return wall.replace(tzinfo=UTC)


def load_mt5_bars(
    symbol: str,
    timeframe: str,
    start: str | datetime | pd.Timestamp,
    end: str | datetime | pd.Timestamp,
    tz: str | tzinfo | None = None,
    *,
    terminal_path: str | None = None,
    login: int | None = None,
    password: str | None = None,
    server: str | None = None,
) -> pd.DataFrame:
    """Bars of ``symbol`` from ``start`` to ``end`` (UTC) via ``MetaTrader5.copy_rates_range``, indexed by UTC time.

    ``timeframe``: ``M1`` ... ``MN1`` (MetaTrader names). ``tz``: the broker server's clock (``America/New_York+7`` for
    most brokers); without it UTC is assumed with a warning, as for MT5 files. Login arguments are passed to
    ``MetaTrader5.initialize`` when given; otherwise the terminal's current account is used. Columns: ``Open High Low
    Close Volume`` (tick volume) and ``Spread`` (points).
    """
    tf = str(timeframe).upper()
    if tf not in TIMEFRAMES:
        raise UserError(f"unknown timeframe {timeframe!r}", hint=f"use one of {', '.join(TIMEFRAMES)}")
    mt5 = _import_mt5()
    zone = parse_tz(tz if tz is not None else "UTC")
    source = f"MetaTrader5:{symbol}:{tf}"
    kwargs = {
        k: v for k, v in (("login", login), ("password", password), ("server", server)) if v is not None
    }
    ok = mt5.initialize(terminal_path, **kwargs) if terminal_path else mt5.initialize(**kwargs)
    if not ok:
        raise UserError(
            f"cannot connect to the MetaTrader 5 terminal: {mt5.last_error()}",
            hint="start the terminal and log in, or pass terminal_path/login/password/server",
        )
    try:
        if mt5.symbol_info(symbol) is None:
            raise DataError(
                f"symbol {symbol!r} is not known to the terminal",
                path=source,
                hint="check the broker's name for it (suffixes such as EURUSD.m) in Market Watch",
            )
        rates = mt5.copy_rates_range(
            symbol, getattr(mt5, f"TIMEFRAME_{tf}"), _server_wall(start, zone), _server_wall(end, zone)
        )
        if rates is None:
            raise DataError(
                f"copy_rates_range failed: {mt5.last_error()}",
                path=source,
                hint="check the dates and that the terminal has downloaded this history (open the chart)",
            )
    finally:
        mt5.shutdown()
    if len(rates) == 0:
        raise DataError(
            f"no bars between {start} and {end}",
            path=source,
            hint="scroll the chart back in the terminal to load older history, or widen the range",
        )
    issues = []
    if tz is None and DEFAULT_TZ["mt5"] is None:
        issues.append(
            f"{source}: no time zone given for the server clock; assuming UTC (pass tz, often America/New_York+7)"
        )
        warnings.warn(issues[-1], BarDataWarning, stacklevel=2)
    values = {
        "Open": rates["open"],
        "High": rates["high"],
        "Low": rates["low"],
        "Close": rates["close"],
        "Volume": rates["tick_volume"],
        "Spread": rates["spread"],
    }
    return bars_from_arrays(
        np.asarray(rates["time"], dtype=np.int64) * 1_000_000_000,
        values,
        source=source,
        format="mt5-package",
        tz=zone,
        tz_label=tz_name(zone) if tz is not None else "UTC (assumed)",
        symbol=symbol,
        issues=issues,
    )
