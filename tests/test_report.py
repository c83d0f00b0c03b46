"""The HTML report a trader would open: offline (all scripts inline), an interactive price chart with trade and
news markers, every trade and every analysed item in searchable tables, numbers for people; and, in a real headless
Chromium, a page that loads without console errors and draws the chart."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from backtest.engine import EngineConfig, bar_open_ns, run_backtest, targets_from_effects
from backtest.event_study import event_study
from backtest.linkage import analyses_table, link_trades
from backtest.pipeline import baselines
from backtest.report import write_report
from backtest.report_format import duration, human, monthly_returns
from backtest.stats import compute_stats
from bridge.policy import PolicyConfig, effects_frame
from bridge.types import Analysis, NewsItem

POLICY = PolicyConfig(sl=0.0020, tp=0.0040)


def _case(n_news: int = 40):
    rng = np.random.default_rng(5)
    idx = pd.date_range("2017-01-02", periods=60 * 24 * 40, freq="min", tz="UTC")
    close = 1.05 * np.exp(np.cumsum(rng.normal(0, 2e-4, len(idx))))
    opens = np.r_[close[0], close[:-1]]
    bars = pd.DataFrame(
        {
            "Open": opens,
            "High": np.maximum(opens, close) + 5e-5,
            "Low": np.minimum(opens, close) - 5e-5,
            "Close": close,
        },
        index=idx,
    )
    pairs = []
    for k in range(n_news):
        cur = "EUR" if k % 2 else "USD"
        item = NewsItem(
            time=idx[500 + k * 1400] + pd.Timedelta(seconds=10),
            headline=f"{cur} data </script><b>{k}</b>",  # markup in a headline must stay text
            currency=cur,
            source="test",
            actual=1.0 + k % 3,
            forecast=1.5,
            impact=("High", "Medium", "Low")[k % 3],
            event="Retail Sales m/m",
        )
        level = int(rng.choice([-3, -2, 2, 3]))
        pairs.append(
            (
                item,
                Analysis(
                    {"event": "economic data", "market": {"EUR": "EU", "USD": "US"}[cur], "sector": "FX"},
                    level,
                    analyzer="surprise-rule",
                ),
            )
        )
    return bars, pairs


def _report(tmp_path):
    bars, pairs = _case()
    effects = effects_frame("EURUSD", pairs, POLICY)
    target = targets_from_effects(bar_open_ns(bars), effects, POLICY, 5.0)
    config = EngineConfig(sl=POLICY.sl, tp=POLICY.tp, swap_long=-5.0, swap_short=1.0)
    result = run_backtest(bars, target, config)
    result.trades = link_trades(result.trades, bars.index, "EURUSD", pairs, POLICY, 5.0)
    analyses = analyses_table(pairs, "EURUSD", POLICY, bars.index, 5.0, result.trades)
    base = baselines(bars, result.target.to_numpy(), config, 0)
    study = event_study(bars, pairs, "EURUSD", n_permutations=200)
    paths = write_report(
        tmp_path / "out",
        compute_stats(result.trades, result.equity, bars),
        result,
        bars,
        study,
        {"symbol": "EURUSD"},
        baselines={k: r.equity for k, r in base.items()},
        baseline_stats={k: compute_stats(r.trades, r.equity, bars) for k, r in base.items()},
        analyses=analyses,
    )
    return paths, result, analyses


def test_report_is_offline_with_every_trade_and_analysis_in_its_tables(tmp_path):
    paths, result, analyses = _report(tmp_path)
    page = paths["report.html"].read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=[\"']?https?:", page)
    assert "price-chart" in page and "Bokeh" in page
    data = json.loads(
        re.search(r"id='trades-data'>(.*?)</script>", page, re.S).group(1).replace("<\\/", "</")
    )
    assert len(data["rows"]) == len(result.trades) > 20
    news = json.loads(
        re.search(r"id='analyses-data'>(.*?)</script>", page, re.S).group(1).replace("<\\/", "</")
    )
    assert len(news["rows"]) == len(analyses) == 40
    assert "<b>3</b>" not in page.split("id='analyses-data'")[0]  # headlines are escaped where shown as HTML
    # What people read has no None / nan; baselines are explained where they appear.
    visible = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert not re.search(r">\s*(None|nan|NaN|NaT)\s*<", visible)
    assert "No-news (shifted)</b>: the strategy&#x27;s own positions moved" in visible
    for section in (
        "Monthly returns",
        "P&amp;L by time",
        "P&amp;L by news type",
        "Why trades ended",
        "Event study",
    ):
        assert section in visible
    written = pd.read_csv(paths["analyses.csv"])
    assert {
        "headline",
        "analyzer",
        "event",
        "market",
        "sector",
        "level",
        "score",
        "confidence",
        "effect",
    } <= set(written.columns)
    assert written["opened_trade"].notna().sum() >= 1
    trades = pd.read_csv(paths["trades.csv"])
    assert set(trades["ExitReason"]) <= {"target_change", "expiry", "sl", "tp", "end"}
    assert trades["EntryNewsIds"].notna().all()


def test_numbers_are_formatted_for_people():
    assert duration(pd.Timedelta(minutes=96)) == "1 h 36 min"
    assert duration(pd.Timedelta(days=3, hours=4, minutes=7)) == "3 d 4 h"
    assert human(12.3456, "Return [%]") == "12.35 %"
    assert human(None, "SQN") == human(float("nan"), "Sharpe Ratio") == "\u2014"
    assert human(pd.Timestamp("2017-01-02 07:00", tz="UTC"), "Start") == "2017-01-02 07:00"
    eq = pd.Series(
        [100.0, 110.0, 99.0], index=pd.to_datetime(["2017-01-02", "2017-01-31", "2017-02-28"], utc=True)
    )
    m = monthly_returns(eq)
    assert m.loc[2017, "Jan"] == pytest.approx(10.0) and m.loc[2017, "Feb"] == pytest.approx(-10.0)
    assert m.loc[2017, "Year"] == pytest.approx(-1.0)


PROBE = """<script>window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message)));
const __ce=console.error;console.error=(...a)=>{__errors.push(a.join(' '));__ce(...a)};
addEventListener('load',()=>setTimeout(()=>{const d=document.createElement('pre');d.id='probe';
const doc=window.Bokeh&&Bokeh.documents[0];const m=doc&&doc.get_model_by_name('price-chart');
const view=m&&Object.values(Bokeh.index).some(v=>v.model===m||(v.child_views||[]).some(c=>c.model===m));
const rows=document.querySelectorAll('#trades tbody tr').length;
d.textContent=JSON.stringify({errors:__errors,chart:!!m,rows:rows,view:view,
 canvases:[...document.querySelectorAll('*')].filter(e=>e.shadowRoot).length});
document.body.appendChild(d)},1000));</script>"""


@pytest.mark.slow
def test_report_opens_in_headless_chromium_without_console_errors(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium; scripts/setup.sh does it as root)"
        )
    paths, _, _ = _report(tmp_path)
    page = paths["report.html"].read_text().replace("<head>", "<head>" + PROBE, 1)
    probe = tmp_path / "probe.html"
    probe.write_text(page)
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', out.stdout, re.S)
    assert found, out.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert result["chart"] and result["canvases"] >= 1  # the Bokeh model exists and its view rendered
    assert result["rows"] == 25  # the trades table drew its first page
    # Chromium echoes the page's console to stderr: Bokeh's own info lines are fine, an error or warning is not.
    console = [ln for ln in out.stderr.splitlines() if ":CONSOLE" in ln]
    assert console and not [ln for ln in console if ":INFO:CONSOLE" not in ln or "Uncaught" in ln]
