"""Result files of a backtest: ``stats.json``, ``trades.csv`` (each trade with the news behind it and why it
ended), ``analyses.csv`` (every news item with its reading and the trade it opened or closed), ``event_study.csv``,
``equity.png`` and a self-contained ``report.html``.

The HTML opens offline: Bokeh's JavaScript is inline (``backtest.report_charts``), static figures are base64 PNG, and
the trades and analyses tables are searchable and paged by a few lines of script of our own over JSON in the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.engine import Result
from backtest.event_study import EventStudy, breakdown, headline_summary
from backtest.linkage import EXIT_REASONS
from backtest.pipeline import BASELINE_NOTES
from backtest.report_format import (
    MISSING,
    WEEKDAYS,
    duration,
    human,
    is_missing,
    monthly_returns,
    news_type_of_trades,
    number,
    pnl_by,
    when,
)
from backtest.stats import stats_to_jsonable
from bridge.provenance import library_versions


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def equity_figure(result: Result, bars: pd.DataFrame, baselines: dict[str, pd.Series] | None = None):
    """Equity with buy & hold (and other baselines) above, drawdown below."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    eq = result.equity
    ax1.plot(eq.index, eq.to_numpy(), label="strategy", color="tab:blue", lw=1.2)
    colors = iter(["tab:gray", "tab:orange", "tab:green", "tab:purple"])
    for name, curve in (baselines or {}).items():
        ax1.plot(curve.index, curve.to_numpy(), label=name, lw=0.9, alpha=0.8, color=next(colors, None))
    ax1.set_ylabel("equity")
    ax1.legend(loc="best", fontsize=8)
    ax1.grid(alpha=0.3)
    dd = (eq / eq.cummax() - 1.0) * 100
    ax2.fill_between(dd.index, dd.to_numpy(), 0, color="tab:red", alpha=0.4)
    ax2.set_ylabel("drawdown %")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def trades_figure(result: Result, bars: pd.DataFrame, max_trades: int = 400):
    """Close price with entries (long ^ green, short v red) and exits (x) marked; the first ``max_trades`` trades."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(bars.index, bars["Close"].to_numpy(), color="0.3", lw=0.7)
    t = result.trades.head(max_trades)
    if len(t):
        long = t["Size"] > 0
        ax.scatter(
            t.loc[long, "EntryTime"], t.loc[long, "EntryPrice"], marker="^", color="green", s=18, label="long"
        )
        ax.scatter(
            t.loc[~long, "EntryTime"],
            t.loc[~long, "EntryPrice"],
            marker="v",
            color="red",
            s=18,
            label="short",
        )
        ax.scatter(t["ExitTime"], t["ExitPrice"], marker="x", color="k", s=12, label="exit")
        ax.legend(loc="best", fontsize=8)
    ax.set_ylabel("price")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def event_figure(study: EventStudy):
    """Left: directed move by horizon, model vs shuffled labels, with 95% CIs. Right: move by level at one horizon."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    t = study.table
    if t.empty:
        a1.text(0.5, 0.5, "no news about this symbol in the bars' range", ha="center")
        return fig
    for i, (labels, color) in enumerate((("model", "tab:blue"), ("shuffled", "tab:gray"))):
        s = t[(t["labels"] == labels) & (t["by"] == "all")]
        if s.empty:
            continue
        x = np.arange(len(s)) + (i - 0.5) * 0.3
        y = s["mean_directed_bp"].to_numpy()
        err = np.vstack([y - s["directed_ci_low_bp"].to_numpy(), s["directed_ci_high_bp"].to_numpy() - y])
        a1.errorbar(x, y, yerr=np.nan_to_num(err), fmt="o", color=color, capsize=3, label=labels)
        a1.set_xticks(np.arange(len(s)), [f"{h}m" for h in s["horizon_min"]])
    a1.axhline(0, color="k", lw=0.5)
    a1.set_title("move in the predicted direction, bp (95% CI)", fontsize=9)
    a1.legend(fontsize=8)
    h = list(study.horizons)[min(2, len(study.horizons) - 1)]
    s = t[(t["labels"] == "model") & (t["by"] == "level") & (t["horizon_min"] == h)]
    if not s.empty:
        y = s["mean_bp"].to_numpy()
        err = np.vstack([y - s["ci_low_bp"].to_numpy(), s["ci_high_bp"].to_numpy() - y])
        a2.bar(s["group"], y, yerr=np.nan_to_num(err), color="tab:blue", alpha=0.7, capsize=3)
    a2.axhline(0, color="k", lw=0.5)
    a2.set_title(f"move after {h} min by sentiment level (for the symbol), bp", fontsize=9)
    fig.tight_layout()
    return fig


def _img(png: bytes, alt: str) -> str:
    return (
        f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
    )


def _table_html(df: pd.DataFrame, float_format="{:,.4f}".format) -> str:
    return df.to_html(index=False, float_format=float_format, border=0, classes="t", na_rep="")


PAGED_TABLE_JS = """
function pagedTable(id, pageSize) {
  const data = JSON.parse(document.getElementById(id + '-data').textContent);
  const root = document.getElementById(id);
  const search = root.querySelector('input');
  const info = root.querySelector('.info');
  const tbody = root.querySelector('tbody');
  let page = 0, rows = data.rows;
  function render() {
    const pages = Math.max(1, Math.ceil(rows.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    tbody.replaceChildren();
    for (const r of rows.slice(page * pageSize, (page + 1) * pageSize)) {
      const tr = document.createElement('tr');
      for (const v of r) { const td = document.createElement('td'); td.textContent = v; tr.appendChild(td); }
      tbody.appendChild(tr);
    }
    info.textContent = rows.length + ' of ' + data.rows.length + ' rows, page ' + (page + 1) + ' of ' + pages;
  }
  search.addEventListener('input', () => {
    const q = search.value.toLowerCase();
    rows = q ? data.rows.filter(r => r.join(' ').toLowerCase().includes(q)) : data.rows;
    page = 0; render();
  });
  root.querySelector('.prev').addEventListener('click', () => { page--; render(); });
  root.querySelector('.next').addEventListener('click', () => { page++; render(); });
  render();
}
"""

CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1150px;margin:auto;padding:1em;color:#222}"
    "table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{padding:2px 8px;"
    "border-bottom:1px solid #ddd;text-align:right;vertical-align:top}table.t td:first-child{text-align:left}"
    "img{max-width:100%}pre{background:#f6f6f6;padding:.5em;font-size:11px;overflow-x:auto}"
    ".paged table{font-size:11px}.paged td{max-width:420px;overflow-wrap:anywhere}.note{color:#555;font-size:13px}"
    ".grid{display:flex;flex-wrap:wrap;gap:8px}.pos{color:#1a7f37}.neg{color:#b42318}"
)


def _paged_table(table_id: str, columns: list[str], rows: list[list[str]], page_size: int = 25) -> str:
    """A searchable, paged table over every row (data as JSON in the page; the script renders one page)."""
    data = json.dumps({"columns": columns, "rows": rows}, ensure_ascii=False).replace("</", "<\\/")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    return (
        f"<div class='paged' id='{table_id}'><input type='search' placeholder='search' size='40'> "
        "<button class='prev'>&lt; prev</button> <button class='next'>next &gt;</button> <span class='info'></span>"
        f"<table class='t'><thead><tr>{head}</tr></thead><tbody></tbody></table></div>"
        f"<script type='application/json' id='{table_id}-data'>{data}</script>"
        f"<script>pagedTable('{table_id}', {page_size});</script>"
    )


def _trade_rows(trades: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    cols = [
        "#",
        "side",
        "lots",
        "entry (UTC)",
        "entry price",
        "exit (UTC)",
        "exit price",
        "held",
        "exit reason",
    ]
    cols += ["P&L", "return %", "swap", "entry signal", "entry news"]
    rows = []
    for i, t in enumerate(trades.itertuples(index=False), start=1):
        rows.append(
            [
                str(getattr(t, "Trade", i)),
                "long" if t.Size > 0 else "short",
                number(t.Lots),
                when(t.EntryTime),
                number(t.EntryPrice, 5),
                when(t.ExitTime),
                number(t.ExitPrice, 5),
                duration(t.Duration),
                EXIT_REASONS.get(str(t.ExitReason), str(t.ExitReason)),
                number(t.PnL),
                number(100 * t.ReturnPct, 3),
                number(getattr(t, "Swap", 0.0)),
                number(getattr(t, "EntrySignal", float("nan")), 3),
                str(getattr(t, "EntryHeadlines", "") or ""),
            ]
        )
    return cols, rows


def _analysis_rows(analyses: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    cols = ["time (UTC)", "source", "headline", "analyzer", "event", "market", "sector", "level", "score"]
    cols += ["confidence", "effect", "impact", "opened trade", "closed trade"]
    rows = []
    for a in analyses.itertuples(index=False):
        rows.append(
            [
                when(a.time),
                str(a.source or ""),
                str(a.headline),
                str(a.analyzer),
                str(a.event),
                str(a.market),
                str(a.sector),
                f"{a.level:+d}",
                number(a.score),
                number(a.confidence),
                number(a.effect, 3),
                str(a.impact or ""),
                "" if pd.isna(a.opened_trade) else str(a.opened_trade),
                "" if pd.isna(a.closed_trade) else str(a.closed_trade),
            ]
        )
    return cols, rows


def _human_table(df: pd.DataFrame, percent: set[str] = frozenset(), decimals: int = 2) -> str:
    """A small table with every number formatted for people (percent columns get a % sign)."""
    out = df.copy()
    for c in out.columns:
        if c in percent:
            out[c] = [MISSING if is_missing(v) else f"{float(v):,.{decimals}f} %" for v in out[c]]
        elif pd.api.types.is_float_dtype(out[c]):
            out[c] = [number(v, decimals) for v in out[c]]
    return out.to_html(index=False, border=0, classes="t", na_rep=MISSING, escape=True)


def _event_tables(study: EventStudy) -> list[str]:
    parts = []
    summary = headline_summary(study)
    if not summary.empty:
        parts.append(
            "<p class='note'>Hit rate: share of items with a predicted direction whose move went that way. "
            "p: one-sided permutation p-value over label shuffles (below 0.05: better than 95% of label-free "
            "readings of the same moves). Shuffled: one such shuffle, as a baseline.</p>"
        )
        parts.append(_human_table(summary, decimals=3))
    for by, title in (
        ("impact", "by calendar impact"),
        ("surprise", "by size of the surprise (terciles of the standardised surprise)"),
        ("analyzer", "by analyzer (model or surprise rule)"),
        ("level", "by sentiment level (seen from the symbol)"),
        ("event", "by event type"),
    ):
        table = breakdown(study, by)
        if not table.empty:
            parts.append(f"<h3>{html.escape(title)}</h3>" + _human_table(table, decimals=3))
    ind = breakdown(study, "indicator")
    if not ind.empty:
        parts.append(
            "<details><summary>by indicator</summary>" + _human_table(ind, decimals=3) + "</details>"
        )
    return parts


def write_report(
    out_dir: str | Path,
    stats: pd.Series,
    result: Result,
    bars: pd.DataFrame,
    study: EventStudy | None,
    config: dict,
    baselines: dict[str, pd.Series] | None = None,
    baseline_stats: dict[str, pd.Series] | None = None,
    notes: list[str] | None = None,
    analyses: pd.DataFrame | None = None,
    pairs=None,
) -> dict[str, Path]:
    """Write the result files into ``out_dir`` (created if needed) and return their paths by name.

    ``analyses``: the ``backtest.linkage.analyses_table`` of the run (written as ``analyses.csv`` and shown in the
    report); ``pairs`` is accepted for callers that have them and not needed otherwise.
    """
    from bokeh.layouts import column, row

    from backtest import report_charts as charts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = ("stats.json", "trades.csv", "analyses.csv", "event_study.csv", "report.html", "equity.png")
    paths = {k: out / k for k in names}
    doc = {
        "stats": stats_to_jsonable(stats),
        "baselines": {k: stats_to_jsonable(v) for k, v in (baseline_stats or {}).items()},
        "config": config,
        "versions": library_versions(),
        "notes": list(notes or []),
    }
    paths["stats.json"].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    trades = result.trades
    trades.to_csv(paths["trades.csv"], index=False)
    (analyses if analyses is not None else pd.DataFrame()).to_csv(paths["analyses.csv"], index=False)
    table = study.table if study is not None else pd.DataFrame()
    table.to_csv(paths["event_study.csv"], index=False)
    paths["equity.png"].write_bytes(_png(equity_figure(result, bars, baselines)))

    symbol = str(config.get("symbol", ""))
    price = charts.price_chart(bars, trades, analyses, symbol)
    eq, dd = charts.equity_charts(result.equity, baselines, price.x_range)
    hours = (
        pnl_by(trades, trades["EntryTime"].dt.hour, order=range(24)) if len(trades) else pnl_by(trades, None)
    )
    days = (
        pnl_by(trades, trades["EntryTime"].dt.day_of_week.map(dict(enumerate(WEEKDAYS))), order=WEEKDAYS)
        if len(trades)
        else pnl_by(trades, None)
    )
    kinds = news_type_of_trades(trades, analyses)
    by_kind = pnl_by(trades, kinds).sort_values("pnl") if len(trades) else pnl_by(trades, None)
    dist = row(
        charts.histogram(trades["PnL"].to_numpy() if len(trades) else [], "P&L per trade", "P&L"),
        charts.histogram(
            trades["Duration"].dt.total_seconds().to_numpy() / 3600 if len(trades) else [],
            "trade duration",
            "hours",
        ),
    )
    by_time = row(
        charts.bar_chart(hours["group"], hours["pnl"], "P&L by hour of entry (UTC)", "P&L"),
        charts.bar_chart(days["group"], days["pnl"], "P&L by weekday of entry", "P&L"),
    )
    script, divs = charts.components_html({"main": column(price, eq, dd), "dist": dist, "time": by_time})

    public = pd.DataFrame({"statistic": [str(k) for k in doc["stats"]]})
    public["Strategy"] = [human(stats.get(k), str(k)) for k in doc["stats"]]
    for name, s in (baseline_stats or {}).items():
        public[name] = [human(s.get(k), str(k)) for k in doc["stats"]]
    baseline_lines = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(BASELINE_NOTES.get(k, ''))}</li>"
        for k in (baseline_stats or {})
    )
    reasons = (
        trades["ExitReason"].map(lambda r: EXIT_REASONS.get(str(r), str(r))).value_counts()
        if len(trades)
        else None
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>EA Bridge backtest "
        f"{html.escape(symbol)}</title><style>{CSS}</style>",
        charts.bokeh_resources(),
        f"<script>{PAGED_TABLE_JS}</script>",
        script,
        "</head><body>",
        f"<h1>Backtest {html.escape(symbol)}</h1>",
        f"<p class='note'>{len(bars):,} bars, {when(bars.index[0])} to {when(bars.index[-1])} UTC; "
        f"{len(trades):,} trades; {0 if analyses is None else len(analyses):,} news items analysed.</p>",
        "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in notes or []),
        "<h2>Price, trades and news</h2>",
        "<p class='note'>Drag to pan, wheel to zoom, hover a marker for its trade or headline; click a legend "
        "entry to hide it. Triangles: entries (up long, down short); crosses: exits; dots above the price: news "
        "that moves the symbol (green good for it, red bad, larger = stronger effect).</p>",
        divs["main"],
        "<h2>Statistics</h2>",
        f"<ul class='note'>{baseline_lines}</ul>",
        public.to_html(index=False, border=0, classes="t", escape=True),
    ]
    if reasons is not None:
        parts += [
            "<h3>Why trades ended</h3>",
            _human_table(reasons.rename_axis("exit reason").reset_index(name="trades")),
        ]
    parts += [
        "<h2>Monthly returns (%)</h2>",
        _human_table(monthly_returns(result.equity).reset_index(), percent=set()),
        "<h2>Distributions</h2>",
        divs["dist"],
        "<h2>P&amp;L by time</h2>",
        divs["time"],
        "<div class='grid'>",
        _human_table(hours.rename(columns={"group": "hour (UTC)"}), percent={"win_rate"}),
        _human_table(days.rename(columns={"group": "weekday"}), percent={"win_rate"}),
        "</div>",
        "<h2>P&amp;L by news type</h2>",
        "<p class='note'>Each trade counted under its strongest entry news: the calendar indicator for releases, "
        "the event type for headlines.</p>",
        _human_table(by_kind.rename(columns={"group": "news type"}), percent={"win_rate"}),
    ]
    if study is not None:
        parts += [
            "<h2>Event study</h2>",
            _img(_png(event_figure(study)), "event study"),
            *_event_tables(study),
        ]
    cols, rows = _trade_rows(trades)
    parts += [f"<h2>All trades ({len(trades):,})</h2>", _paged_table("trades", cols, rows)]
    if analyses is not None and len(analyses):
        cols, rows = _analysis_rows(analyses)
        parts += [f"<h2>All analysed news ({len(analyses):,})</h2>", _paged_table("analyses", cols, rows)]
    parts += [
        "<h2>Configuration and versions</h2>",
        f"<pre>{html.escape(json.dumps({'config': config, 'versions': doc['versions']}, indent=2, default=str))}</pre>",
        "</body></html>",
    ]
    paths["report.html"].write_text("\n".join(parts), encoding="utf-8")
    return paths
