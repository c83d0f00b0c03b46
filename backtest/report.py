"""Result files of a backtest: ``stats.json``, ``trades.csv``, ``event_study.csv``, ``equity.png`` and a
self-contained ``report.html`` (charts embedded as base64 PNG, no scripts or network needed to open it).
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
from backtest.event_study import EventStudy, headline_summary
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
) -> dict[str, Path]:
    """Write the result files into ``out_dir`` (created if needed) and return their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / k for k in ("stats.json", "trades.csv", "event_study.csv", "report.html", "equity.png")}
    doc = {
        "stats": stats_to_jsonable(stats),
        "baselines": {k: stats_to_jsonable(v) for k, v in (baseline_stats or {}).items()},
        "config": config,
        "versions": library_versions(),
        "notes": list(notes or []),
    }
    paths["stats.json"].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    result.trades.to_csv(paths["trades.csv"], index=False)
    table = study.table if study is not None else pd.DataFrame()
    table.to_csv(paths["event_study.csv"], index=False)

    eq_png = _png(equity_figure(result, bars, baselines))
    paths["equity.png"].write_bytes(eq_png)
    tr_png = _png(trades_figure(result, bars))
    ev_png = _png(event_figure(study)) if study is not None else b""

    public = pd.DataFrame(
        {"statistic": [str(k) for k in doc["stats"]], "strategy": list(doc["stats"].values())}
    )
    for name, s in doc["baselines"].items():
        public[name] = [s.get(k) for k in doc["stats"]]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>EA Bridge backtest</title>",
        "<style>body{font-family:sans-serif;max-width:1150px;margin:auto;padding:1em}"
        "table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}pre{background:#f6f6f6;padding:.5em;"
        "font-size:11px;overflow-x:auto}</style></head><body>",
        f"<h1>Backtest {html.escape(str(config.get('symbol', '')))}</h1>",
        "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in notes or []),
        "<h2>Equity and drawdown</h2>",
        _img(eq_png, "equity curve"),
        "<h2>Statistics</h2>",
        public.to_html(index=False, border=0, classes="t", na_rep=""),
        "<h2>Trades on price</h2>",
        _img(tr_png, "trades on price"),
    ]
    if study is not None:
        parts += ["<h2>Event study</h2>", _img(ev_png, "event study")]
        summary = headline_summary(study)
        if not summary.empty:
            parts.append(_table_html(summary))
        lv = study.table[(study.table["by"] != "all") & (study.table["labels"] == "model")]
        parts.append(
            "<details><summary>by level and by event type</summary>" + _table_html(lv) + "</details>"
        )
    head = result.trades.head(200)
    parts += [
        f"<h2>Trades (first {len(head)} of {len(result.trades)})</h2>",
        _table_html(head),
        "<h2>Configuration and versions</h2>",
        f"<pre>{html.escape(json.dumps({'config': config, 'versions': doc['versions']}, indent=2, default=str))}</pre>",
        "</body></html>",
    ]
    paths["report.html"].write_text("\n".join(parts), encoding="utf-8")
    return paths
