"""Price bars: loading and checking bar files of every supported format (``loading``), the MetaTrader5 package as a
source on Windows (``mt5_source``) and ``python -m backtest.bars inspect FILE`` (``inspect``)."""

from backtest.bars.loading import load_bars, resample_bars

__all__ = ["load_bars", "resample_bars"]
