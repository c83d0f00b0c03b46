"""Interactive charts of the HTML report, drawn with Bokeh and embedded with its JavaScript inline (no CDN, no
network: the file opens offline).

The price chart shows the close with every trade (entry triangle up for long, down for short, exit cross, both with
their news on hover) and every news item that moves the symbol (a dot above the price, green when it is good for the
symbol, red when bad, sized by its effect; hover for the headline and its analysis). Zoom with the mouse wheel, pan by
dragging; the equity and drawdown charts below share the time axis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.report_format import duration, when

MAX_LINE_POINTS = 60_000  # a year of M1 bars is ~370k points; beyond this the line shows every k-th close
MAX_NEWS_MARKERS = 20_000
CHART_ID = "price-chart"
WIDTH = 1100


def _naive_utc(index) -> pd.DatetimeIndex:
    """Bokeh reads datetimes as UTC milliseconds; give it naive UTC times."""
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx


def bokeh_resources() -> str:
    """Bokeh's core JavaScript as inline ``<script>`` tags (no widgets: the report's tables are plain HTML)."""
    from bokeh.resources import Resources

    return Resources(mode="inline", components=["bokeh"]).render_js()


def _line(bars: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray, int]:
    step = max(1, int(np.ceil(len(bars) / MAX_LINE_POINTS)))
    close = bars["Close"].iloc[step - 1 :: step] if step > 1 else bars["Close"]
    return _naive_utc(close.index), close.to_numpy(dtype=np.float64), step


def price_chart(bars: pd.DataFrame, trades: pd.DataFrame, analyses: pd.DataFrame | None, symbol: str):
    """The interactive price chart (see the module docstring); returns a Bokeh figure."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    x, y, step = _line(bars)
    title = f"{symbol} close" + (
        f" (every {step}th bar shown; zoom keeps all trades and news)" if step > 1 else ""
    )
    p = figure(
        title=title,
        x_axis_type="datetime",
        width=WIDTH,
        height=420,
        tools="xpan,xwheel_zoom,box_zoom,reset,save",
        active_drag="xpan",
        active_scroll="xwheel_zoom",
        name=CHART_ID,
    )
    p.line(x, y, color="#555555", line_width=1, legend_label="close")

    if len(trades):
        t = trades
        long = (t["Size"] > 0).to_numpy()
        src = ColumnDataSource(
            {
                "entry_t": _naive_utc(t["EntryTime"]),
                "entry_p": t["EntryPrice"].to_numpy(),
                "exit_t": _naive_utc(t["ExitTime"]),
                "exit_p": t["ExitPrice"].to_numpy(),
                "trade": t["Trade"].to_numpy() if "Trade" in t else np.arange(1, len(t) + 1),
                "side": np.where(long, "long", "short"),
                "pnl": [f"{v:,.2f}" for v in t["PnL"]],
                "held": [duration(v) for v in t["Duration"]],
                "reason": t["ExitReason"].astype(str).to_numpy(),
                "news": (
                    t["EntryHeadlines"].fillna("") if "EntryHeadlines" in t else pd.Series("", index=t.index)
                )
                .str.slice(0, 300)
                .to_numpy(),
                "angle": np.where(long, 0.0, np.pi),
                "color": np.where(long, "#1a9850", "#d73027"),
            }
        )
        entries = p.scatter(
            "entry_t",
            "entry_p",
            source=src,
            marker="triangle",
            angle="angle",
            size=9,
            color="color",
            legend_label="trade entry",
        )
        exits = p.scatter(
            "exit_t", "exit_p", source=src, marker="x", size=8, color="black", legend_label="exit"
        )
        p.segment("entry_t", "entry_p", "exit_t", "exit_p", source=src, color="color", line_dash="dotted")
        p.add_tools(
            HoverTool(
                renderers=[entries, exits],
                tooltips=[
                    ("trade", "#@trade @side"),
                    ("P&L", "@pnl"),
                    ("held", "@held"),
                    ("exit", "@reason"),
                    ("news", "@news"),
                ],
            )
        )

    if analyses is not None and len(analyses):
        a = analyses[analyses["effect"] != 0].head(MAX_NEWS_MARKERS)
        if len(a):
            times = pd.DatetimeIndex(a["time"])
            pos = np.clip(bars.index.searchsorted(times, side="right") - 1, 0, len(bars) - 1)
            price = bars["High"].to_numpy()[pos]
            eff = a["effect"].to_numpy(dtype=np.float64)
            src = ColumnDataSource(
                {
                    "t": _naive_utc(times),
                    "p": price * (1 + 0.0004),
                    "when": [when(v) for v in times],
                    "headline": a["headline"].str.slice(0, 200).to_numpy(),
                    "analysis": [
                        f"{r.analyzer}: {r.event} / {r.market}, level {r.level:+d}, conf {r.confidence:.2f}"
                        for r in a.itertuples()
                    ],
                    "effect": [f"{v:+.2f}" for v in eff],
                    "size": 5 + 8 * np.minimum(1.0, np.abs(eff)),
                    "color": np.where(eff > 0, "#1a9850", "#d73027"),
                }
            )
            dots = p.scatter(
                "t", "p", source=src, size="size", color="color", alpha=0.55, legend_label="news (effect)"
            )
            p.add_tools(
                HoverTool(
                    renderers=[dots],
                    tooltips=[
                        ("time", "@when UTC"),
                        ("news", "@headline"),
                        ("read as", "@analysis"),
                        ("effect", "@effect"),
                    ],
                )
            )
    p.legend.location = "top_left"
    p.legend.click_policy = "hide"
    p.yaxis.axis_label = "price"
    return p


def equity_charts(equity: pd.Series, baselines: dict[str, pd.Series] | None, x_range):
    """Equity with the baselines, and the drawdown in %, on the price chart's time axis."""
    from bokeh.plotting import figure

    step = max(1, int(np.ceil(len(equity) / MAX_LINE_POINTS)))
    e = equity.iloc[::step]
    p = figure(title="equity", x_axis_type="datetime", width=WIDTH, height=260, x_range=x_range, tools="")
    p.line(_naive_utc(e.index), e.to_numpy(), color="#2166ac", line_width=1.5, legend_label="strategy")
    colors = iter(["#888888", "#f46d43", "#66bd63", "#9970ab"])
    for name, curve in (baselines or {}).items():
        c = curve.iloc[::step]
        p.line(_naive_utc(c.index), c.to_numpy(), color=next(colors, "#999999"), legend_label=name)
    p.legend.location = "top_left"
    p.legend.click_policy = "hide"
    dd = (equity / equity.cummax() - 1.0) * 100
    d = dd.iloc[::step]
    q = figure(title="drawdown %", x_axis_type="datetime", width=WIDTH, height=160, x_range=x_range, tools="")
    q.varea(_naive_utc(d.index), d.to_numpy(), 0, color="#d73027", alpha=0.4)
    return p, q


def histogram(values: np.ndarray, title: str, x_label: str, bins: int = 30):
    from bokeh.plotting import figure

    p = figure(title=title, width=540, height=250, tools="")
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values):
        counts, edges = np.histogram(values, bins=bins)
        p.quad(top=counts, bottom=0, left=edges[:-1], right=edges[1:], color="#4393c3", line_color="white")
    p.xaxis.axis_label = x_label
    p.yaxis.axis_label = "trades"
    return p


def bar_chart(labels, values, title: str, y_label: str):
    from bokeh.plotting import figure

    labels = [str(v) for v in labels]
    values = np.asarray(values, dtype=np.float64)
    p = figure(title=title, x_range=labels or ["none"], width=540, height=250, tools="")
    if labels:
        colors = np.where(values >= 0, "#1a9850", "#d73027")
        p.vbar(x=labels, top=values, width=0.8, color=list(colors))
    p.yaxis.axis_label = y_label
    p.xaxis.major_label_orientation = 0.8 if max((len(s) for s in labels), default=0) > 4 else 0
    return p


def components_html(layout) -> tuple[str, str]:
    """The ``<script>`` that builds ``layout`` and its ``<div>``."""
    from bokeh.embed import components

    return components(layout)
