"""Our engine's trading rules written as a backtesting.py strategy: the independent implementation the parity test
and the speed benchmark run against. backtesting.py (AGPL) is a test-only dependency, imported only when called.

backtesting.py fills market orders at the next bar's open, so the strategy reads the target one bar ahead and acts in
the bar before it, which makes its fills land where ours do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def follow_target_backtest(
    bars: pd.DataFrame,
    target: np.ndarray,
    units: float,
    sl: float = 0.0,
    tp: float = 0.0,
    cash: float = 10_000,
):
    """A ``backtesting.Backtest`` that holds ``target`` (-1/0/+1 per bar) with ``units`` and stop/target distances
    ``sl``/``tp`` (0 = none); zero costs, since backtesting.py's costs are relative rates and ours are not."""
    from backtesting import Backtest, Strategy

    opens = bars["Open"].to_numpy()

    class FollowTarget(Strategy):
        def init(self):
            self.prev = 0

        def next(self):
            i = len(self.data) - 1
            if i + 1 >= len(target):
                return
            want = int(target[i + 1])
            if want == self.prev:  # same target twice does nothing, also after a stop
                return
            self.prev = want
            for trade in self.trades:
                # Drop the brackets first: backtesting.py would otherwise test the old stop inside the bar we
                # leave at its open.
                trade.sl = None
                trade.tp = None
                trade.close()
            if want:
                entry = opens[i + 1]
                kw = {}
                if sl:
                    kw["sl"] = entry - want * sl
                if tp:
                    kw["tp"] = entry + want * tp
                order = self.buy if want > 0 else self.sell
                try:
                    order(size=units, **kw)
                except (
                    ValueError
                ):  # a gap put the stop on the wrong side of the last close: trade without brackets
                    order(size=units)

    data = bars[["Open", "High", "Low", "Close"]].copy()
    data.index = data.index.tz_localize(None)
    return Backtest(data, FollowTarget, cash=cash, margin=0.01, commission=0, spread=0, finalize_trades=True)
