"""Numbers for people, and the tables of the HTML report that are plain data (monthly returns, P&L breakdowns).

``human(value, name)`` formats one statistic by what its name says: ``[%]`` to two decimals, ``[$]`` with thousands
separators, durations as ``1 h 36 min``, times to the minute, missing values as an em dash (never ``None`` or
``nan``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MISSING = "\u2014"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def is_missing(v) -> bool:
    if v is None or v is pd.NaT or v is pd.NA:
        return True
    try:
        return bool(isinstance(v, float | np.floating) and not math.isfinite(v))
    except TypeError:
        return False


def duration(v) -> str:
    """``1 h 36 min``, ``3 d 4 h``, ``45 s``; the two largest units that are not zero."""
    if is_missing(v):
        return MISSING
    seconds = int(round(pd.Timedelta(v).total_seconds()))
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    units = (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1))
    values = []
    for unit, size in units:
        values.append((seconds // size, unit))
        seconds %= size
    first = next((i for i, (n, _) in enumerate(values) if n), len(values) - 1)
    shown = [values[first]] + [v for v in values[first + 1 : first + 2] if v[0]]
    return sign + " ".join(f"{n} {unit}" for n, unit in shown)


def when(v) -> str:
    if is_missing(v):
        return MISSING
    t = pd.Timestamp(v)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.strftime("%Y-%m-%d %H:%M")


def number(v, decimals: int = 2) -> str:
    if is_missing(v):
        return MISSING
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    return f"{float(v):,.{decimals}f}"


def human(v, name: str = "") -> str:
    """One value formatted by its statistic's name (see the module docstring)."""
    if is_missing(v):
        return MISSING
    if isinstance(v, pd.Timedelta | np.timedelta64) or "Duration" in name:
        return duration(v)
    if isinstance(v, pd.Timestamp | np.datetime64) or name in ("Start", "End"):
        return when(v)
    if isinstance(v, str):
        return v
    if name.startswith("#"):
        return number(int(v))
    if "[%]" in name:
        return f"{float(v):,.2f} %"
    if "[$]" in name:
        return f"{float(v):,.2f}"
    return number(v)


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Return of each calendar month in %, years as rows, months as columns, and the year's return."""
    eq = equity.copy()
    eq.index = eq.index.tz_convert("UTC").tz_localize(None)
    month_end = eq.resample("ME").last().dropna()
    start = pd.Series([float(eq.iloc[0])], index=[month_end.index[0] - pd.offsets.MonthEnd(1)])
    ret = pd.concat([start, month_end]).pct_change().dropna() * 100
    table = pd.DataFrame(index=sorted(set(ret.index.year)), columns=[*MONTHS, "Year"], dtype=float)
    for t, r in ret.items():
        table.loc[t.year, MONTHS[t.month - 1]] = r
    yearly = pd.concat([start, month_end]).groupby(lambda t: t.year).last()
    first = float(eq.iloc[0])
    prev = first
    for year, last in yearly.items():
        if year in table.index:
            table.loc[year, "Year"] = (last / prev - 1) * 100
            prev = last
    table.index.name = "year"
    return table


def pnl_by(trades: pd.DataFrame, keys: pd.Series, order=None) -> pd.DataFrame:
    """Trades grouped by ``keys``: count, total and mean P&L, win rate in %."""
    if trades.empty:
        return pd.DataFrame(columns=["group", "trades", "pnl", "mean_pnl", "win_rate"])
    g = trades.groupby(keys.to_numpy(), sort=order is None)["PnL"]
    out = pd.DataFrame(
        {
            "trades": g.size(),
            "pnl": g.sum(),
            "mean_pnl": g.mean(),
            "win_rate": g.apply(lambda x: (x > 0).mean() * 100),
        }
    )
    if order is not None:
        out = out.reindex([o for o in order if o in out.index])
    out.index.name = "group"
    return out.reset_index()


def news_type_of_trades(trades: pd.DataFrame, analyses: pd.DataFrame | None) -> pd.Series:
    """Per trade, the kind of its strongest entry news: the calendar indicator (``USD non-farm employment
    change``) or, for a headline, ``headline: <event type>``; ``no news`` when it has none (a --signals run)."""
    if trades.empty or "EntryNewsIds" not in trades or analyses is None or analyses.empty:
        return pd.Series("no news", index=trades.index)
    by_id = analyses.set_index("id")
    out = []
    for ids in trades["EntryNewsIds"].fillna(""):
        first = str(ids).split(";")[0]
        if not first or first not in by_id.index:
            out.append("no news")
            continue
        row = by_id.loc[first]
        row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
        out.append(row["indicator"] or f"headline: {row['event'] or 'other'}")
    return pd.Series(out, index=trades.index)
