"""Performance statistics of a run, under the names traders know from backtesting.py.

One pure function, :func:`compute_stats`, takes the trades table, the equity at each bar's close and the bars, and
returns a ``pd.Series``. Definitions:

* returns are annualised from daily equity returns (last equity of each calendar day), compounded over 252 trading
  days a year, or 365 when the bars trade on weekends;
* ``Volatility (Ann.) [%]`` is the standard deviation of daily returns times sqrt(days a year); ``Sharpe Ratio`` is
  (annualised return - risk-free rate) / annualised volatility; ``Sortino Ratio`` divides by the annualised downside
  deviation (root mean square of the negative daily returns) instead;
* ``Max. Drawdown [%]`` is the deepest fall of equity from its running peak, as a negative percentage;
* trade returns are each trade's P&L (net of costs) over its entry notional; ``Avg. Trade [%]`` is their geometric
  mean, ``Expectancy [%]`` their arithmetic mean, ``Profit Factor`` the sum of winning over the sum of losing returns;
* ``Buy & Hold Return [%]`` is the change from the first to the last close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STAT_NAMES = (
    "Start",
    "End",
    "Duration",
    "Exposure Time [%]",
    "Equity Final [$]",
    "Equity Peak [$]",
    "Commissions [$]",
    "Return [%]",
    "Buy & Hold Return [%]",
    "Return (Ann.) [%]",
    "Volatility (Ann.) [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Max. Drawdown [%]",
    "Max. Drawdown Duration",
    "# Trades",
    "Win Rate [%]",
    "Best Trade [%]",
    "Worst Trade [%]",
    "Avg. Trade [%]",
    "Avg. Trade Duration",
    "Profit Factor",
    "Expectancy [%]",
    "SQN",
)


def _geometric_mean(returns: np.ndarray) -> float:
    growth = 1.0 + returns
    if len(growth) == 0:
        return float("nan")
    if np.any(growth <= 0):
        return -1.0  # a trade (or day) that lost everything
    return float(np.exp(np.log(growth).mean()) - 1.0)


def _exposure(trades: pd.DataFrame, n: int) -> float:
    """Share of bars during which a position was open (entry bar to exit bar inclusive, as backtesting.py counts)."""
    if n == 0 or len(trades) == 0:
        return 0.0
    marks = np.zeros(n + 1)
    np.add.at(marks, trades["EntryBar"].to_numpy(), 1)
    np.add.at(marks, trades["ExitBar"].to_numpy() + 1, -1)
    return float((np.cumsum(marks[:n]) > 0).mean())


def _max_drawdown_duration(equity: pd.Series) -> pd.Timedelta:
    peak = equity.cummax()
    under = (equity < peak).to_numpy()
    if not under.any():
        return pd.Timedelta(0)
    times = equity.index
    flag = under.astype(np.int8)
    first = np.flatnonzero(np.diff(np.r_[0, flag]) == 1)  # first bar under the peak
    last = np.flatnonzero(np.diff(np.r_[flag, 0]) == -1)  # last bar under the peak
    # A drawdown lasts from the peak bar before it to the bar that regains the peak (or the last bar).
    began = times[np.maximum(first - 1, 0)]
    ended = times[np.minimum(last + 1, len(times) - 1)]
    return pd.Timedelta((ended - began).max())


def compute_stats(
    trades: pd.DataFrame,
    equity: pd.Series,
    bars: pd.DataFrame,
    risk_free_rate: float = 0.0,
) -> pd.Series:
    """Statistics of one run as a ``pd.Series`` (see the module docstring for the definitions).

    ``trades`` has the engine's columns (at least ``PnL``, ``ReturnPct``, ``EntryBar``, ``ExitBar``, ``Duration``);
    ``equity`` is the equity at each bar's close, indexed like ``bars``. The trades table rides along under
    ``_trades`` and the equity under ``_equity_curve``.
    """
    if not -1 < risk_free_rate < 1:
        raise ValueError(f"risk_free_rate is an annual fraction in (-1, 1), got {risk_free_rate}")
    if len(equity) != len(bars):
        raise ValueError(f"equity has {len(equity)} values for {len(bars)} bars")
    eq = np.asarray(equity, dtype=np.float64)
    index = bars.index
    s: dict[str, object] = {}
    s["Start"] = index[0]
    s["End"] = index[-1]
    s["Duration"] = index[-1] - index[0]
    s["Exposure Time [%]"] = _exposure(trades, len(index)) * 100
    s["Equity Final [$]"] = eq[-1]
    s["Equity Peak [$]"] = eq.max()
    s["Commissions [$]"] = float(trades["Commission"].sum()) if "Commission" in trades else 0.0
    s["Return [%]"] = (eq[-1] / eq[0] - 1) * 100
    close = bars["Close"].to_numpy(dtype=np.float64)
    s["Buy & Hold Return [%]"] = (close[-1] / close[0] - 1) * 100

    eq_series = pd.Series(eq, index=index)
    daily = eq_series.resample("D").last().dropna().pct_change().dropna().to_numpy()
    weekend_share = (
        float(np.isin(index.day_of_week, (5, 6)).mean()) if isinstance(index, pd.DatetimeIndex) else 0.0
    )
    days_a_year = 365 if weekend_share > 2 / 7 * 0.6 else 252
    if len(daily) >= 2:
        g = _geometric_mean(daily)
        ann_return = (1 + g) ** days_a_year - 1
        ann_vol = float(np.std(daily, ddof=1) * np.sqrt(days_a_year))
        downside = float(np.sqrt(np.mean(np.minimum(daily, 0.0) ** 2)) * np.sqrt(days_a_year))
    else:
        ann_return, ann_vol, downside = float("nan"), float("nan"), float("nan")
    s["Return (Ann.) [%]"] = ann_return * 100
    s["Volatility (Ann.) [%]"] = ann_vol * 100
    s["Sharpe Ratio"] = (ann_return - risk_free_rate) / ann_vol if ann_vol else float("nan")
    s["Sortino Ratio"] = (ann_return - risk_free_rate) / downside if downside else float("nan")
    drawdown = 1 - eq / np.maximum.accumulate(eq)
    s["Max. Drawdown [%]"] = -float(np.nan_to_num(drawdown.max())) * 100
    s["Max. Drawdown Duration"] = _max_drawdown_duration(eq_series)

    n_trades = len(trades)
    pnl = trades["PnL"].to_numpy(dtype=np.float64) if n_trades else np.zeros(0)
    rets = trades["ReturnPct"].to_numpy(dtype=np.float64) if n_trades else np.zeros(0)
    s["# Trades"] = n_trades
    s["Win Rate [%]"] = float((pnl > 0).mean() * 100) if n_trades else float("nan")
    s["Best Trade [%]"] = float(rets.max() * 100) if n_trades else float("nan")
    s["Worst Trade [%]"] = float(rets.min() * 100) if n_trades else float("nan")
    s["Avg. Trade [%]"] = _geometric_mean(rets) * 100
    s["Avg. Trade Duration"] = trades["Duration"].mean() if n_trades else pd.NaT
    losses = abs(rets[rets < 0].sum())
    s["Profit Factor"] = float(rets[rets > 0].sum() / losses) if losses else float("nan")
    s["Expectancy [%]"] = float(rets.mean() * 100) if n_trades else float("nan")
    sd = pnl.std(ddof=1) if n_trades > 1 else 0.0
    s["SQN"] = float(np.sqrt(n_trades) * pnl.mean() / sd) if sd else float("nan")
    out = pd.Series(s, dtype=object)
    out["_equity_curve"] = pd.DataFrame({"Equity": eq, "DrawdownPct": drawdown}, index=index)
    out["_trades"] = trades
    return out


def stats_table(stats: pd.Series) -> str:
    """The public statistics (without the ``_`` entries) as aligned text, for the terminal."""
    shown = stats[[k for k in stats.index if not str(k).startswith("_")]]
    width = max(len(str(k)) for k in shown.index)
    lines = []
    for k, v in shown.items():
        if isinstance(v, float | np.floating):
            text = f"{v:,.4f}" if abs(v) < 1e6 else f"{v:,.2f}"
        else:
            text = str(v)
        lines.append(f"{k:<{width}}  {text}")
    return "\n".join(lines)


def stats_to_jsonable(stats: pd.Series) -> dict:
    """The public statistics as JSON-ready values (times as ISO text, durations as text, NaN as None)."""
    out = {}
    for k, v in stats.items():
        if str(k).startswith("_"):
            continue
        if isinstance(v, pd.Timestamp):
            out[k] = v.isoformat()
        elif isinstance(v, pd.Timedelta):
            out[k] = str(v)
        elif v is pd.NaT or v is None:
            out[k] = None
        elif isinstance(v, float | np.floating):
            out[k] = None if not np.isfinite(v) else float(v)
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = v
    return out
