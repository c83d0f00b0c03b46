"""python -m backtest.run end to end: the demo, --signals, result files, the analysis cache, bad input, and a run over
three years of real bars, calendar and headlines."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from doubles import LexiconAnalyzer

from backtest.bars.loading import load_bars
from backtest.cache import AnalysisCache
from backtest.engine import EngineConfig, bar_open_ns, run_backtest, targets_from_effects
from backtest.event_study import event_study
from backtest.pipeline import analyse
from backtest.report import write_report
from backtest.run import main
from backtest.stats import compute_stats
from bridge.analysis import NewsAnalyzer
from bridge.errors import run_main
from bridge.news.loading import load_news
from bridge.news.surprise import SurpriseAnalyzer
from bridge.policy import PolicyConfig, effects_frame
from bridge.types import NewsItem


def _run(argv, capsys) -> tuple[int, str, str]:
    rc = run_main(main, argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow  # runs the shipped language model over the demo headlines once it is installed
def test_demo_run_prints_the_statistics_table(tmp_path, capsys):
    out_dir = tmp_path / "out"
    argv = ["--symbol", "EURUSD", "--quiet", "--cache", str(tmp_path / "cache"), "--out", str(out_dir)]
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    for name in ("Return [%]", "Sharpe Ratio", "Max. Drawdown [%]", "# Trades", "Buy & Hold", "No-news"):
        assert name in out
    assert "Traceback" not in err
    source = json.loads((out_dir / "stats.json").read_text())["config"]["source"]
    from bridge.lm.analyzer import DEFAULT_MODEL_DIR

    if DEFAULT_MODEL_DIR.is_dir():
        # Without --model the shipped model reads every headline that has no calendar figures.
        assert "headlines_not_analysed" not in source
        assert source["computed"] == source["headline_items"] > 0  # model inference; the rule is not cached


def test_help_shows_the_defaults():
    out = subprocess.run(
        [sys.executable, "-m", "backtest.run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--half-life",
        "--ttl",
        "--threshold",
        "--min-confidence",
        "--sl",
        "--tp",
        "--latency",
        "--risk",
    ):
        assert flag in out
    assert "default: 5.0" in out  # latency


def _signals_file(path, times, values):
    pd.DataFrame({"time_utc": [t.strftime("%Y-%m-%d %H:%M:%S") for t in times], "target": values}).to_csv(
        path, index=False
    )


def test_signals_run_writes_self_contained_report_with_config_and_versions(tmp_path, capsys):
    times = pd.date_range("2017-02-01 10:30", periods=60, freq="37h", tz="UTC")
    values = np.resize([1, 0, -1, 1, -1], len(times))
    _signals_file(tmp_path / "sig.csv", times, values)
    out_dir = tmp_path / "out"
    argv = [
        "--signals",
        str(tmp_path / "sig.csv"),
        "--spread",
        "12",
        "--commission",
        "3",
        "--out",
        str(out_dir),
    ]
    rc, out, err = _run(argv + ["--quiet"], capsys)
    assert rc == 0, err
    for name in ("stats.json", "trades.csv", "event_study.csv", "report.html", "equity.png"):
        assert (out_dir / name).stat().st_size > 0
    doc = json.loads((out_dir / "stats.json").read_text())
    assert doc["config"]["engine"]["commission"] == 3.0
    assert doc["config"]["engine"]["spread"] == pytest.approx(12 * 0.00001)
    assert doc["versions"]["pandas"] == pd.__version__
    assert doc["stats"]["# Trades"] == len(pd.read_csv(out_dir / "trades.csv")) > 20
    assert set(doc["baselines"]) == {"Buy & Hold", "No-news (shifted)"}
    page = (out_dir / "report.html").read_text()
    assert 'id="price-chart"' in page or "price-chart" in page  # the interactive chart is there
    # Opens offline: every script is inline, nothing is fetched from a CDN or any other host.
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=[\"']?https?:", page)


def test_a_second_run_gives_the_same_statistics(shared_data, tmp_path, capsys):
    argv = [
        "--bars", str(shared_data / "bars" / "EURUSD60.csv"), "--bars-tz", "UTC+4",
        "--news", str(shared_data / "calendar" / "forexfactory_2016.csv"),
        "--from", "2016-01-01", "--to", "2016-03-31", "--model", "none", "--quiet", "--cache", str(tmp_path / "cache"),
    ]  # fmt: skip
    first, second = tmp_path / "a", tmp_path / "b"
    assert _run(argv + ["--out", str(first)], capsys)[0] == 0
    assert _run(argv + ["--out", str(second)], capsys)[0] == 0
    a = json.loads((first / "stats.json").read_text())
    b = json.loads((second / "stats.json").read_text())
    # Calendar items are read by the surprise rule (not cached: it learns from the history); no model ran.
    assert a["config"]["source"]["calendar_items"] > 100
    assert a["config"]["source"]["computed"] == b["config"]["source"]["computed"] == 0
    assert a["stats"] == b["stats"]


# --- bad input: one clear line, an exit code, no traceback ---------------------------------------------------------


def test_bars_and_news_that_do_not_overlap_are_a_clear_error(shared_data, tmp_path, capsys):
    argv = [
        "--news",
        str(shared_data / "calendar" / "forexfactory_2014.csv"),
        "--quiet",
        "--cache",
        str(tmp_path),
    ]
    rc, _, err = _run(argv, capsys)
    assert rc == 3
    assert "do not overlap in time" in err and "2014" in err and "2017" in err
    assert "Traceback" not in err


def test_unknown_symbol_is_a_clear_error(tmp_path, capsys):
    rc, _, err = _run(["--symbol", "FOOBAR", "--quiet", "--cache", str(tmp_path)], capsys)
    assert rc == 2
    assert "unknown symbol 'FOOBAR'" in err and "Traceback" not in err


def test_empty_news_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "news.csv").write_text("time_utc,source,currency,headline\n")
    rc, _, err = _run(["--news", str(tmp_path / "news.csv"), "--quiet", "--cache", str(tmp_path)], capsys)
    assert rc == 3
    assert "news.csv: the file has no news rows" in err and "Traceback" not in err


def test_signals_out_of_order_name_the_line(tmp_path, capsys):
    (tmp_path / "sig.csv").write_text(
        "time_utc,target\n2017-03-01 10:00:00,1\n2017-03-02 10:00:00,-1\n2017-03-01 12:00:00,0\n"
    )
    rc, _, err = _run(["--signals", str(tmp_path / "sig.csv"), "--quiet"], capsys)
    assert rc == 3
    assert "sig.csv:4:" in err and "earlier than the row before" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("when,what\n2017-03-01,1\n", "needs a time and a target column"),
        ("time_utc,target\n2017-03-01 10:00,maybe\n", "sig.csv:2: cannot read target"),
        ("time_utc,target\nyesterday,1\n", "sig.csv:2: cannot read time"),
        ("", "signals file is empty"),
    ],
    ids=["no-columns", "bad-target", "bad-time", "empty"],
)
def test_unreadable_signals_are_a_clear_error(tmp_path, capsys, text, match):
    (tmp_path / "sig.csv").write_text(text)
    rc, _, err = _run(["--signals", str(tmp_path / "sig.csv"), "--quiet"], capsys)
    assert rc == 3 and match in err and "Traceback" not in err


def test_signals_outside_the_bars_are_a_clear_error(tmp_path, capsys):
    _signals_file(tmp_path / "sig.csv", pd.date_range("2012-01-01", periods=3, freq="D"), [1, -1, 0])
    rc, _, err = _run(["--signals", str(tmp_path / "sig.csv"), "--quiet"], capsys)
    assert rc == 3 and "do not overlap" in err


def test_bad_option_values_are_a_clear_error(tmp_path, capsys):
    rc, _, err = _run(["--threshold", "0", "--quiet", "--cache", str(tmp_path)], capsys)
    assert rc == 2 and "threshold must be > 0" in err
    rc, _, err = _run(["--risk", "0.01", "--sl", "0", "--quiet", "--cache", str(tmp_path)], capsys)
    assert rc == 2 and "stop-loss" in err


# --- real data ---------------------------------------------------------------------------------------------------------


def test_real_bars_calendar_and_headlines_2014_2016_complete_with_an_event_study(shared_data, tmp_path):
    bars = load_bars(shared_data / "bars" / "EURUSD60.csv", tz="UTC+4")
    bars = bars[(bars.index >= "2014-01-01") & (bars.index < "2017-01-01")]
    items: list[NewsItem] = []
    for year in (2014, 2015, 2016):
        items += load_news(shared_data / "calendar" / f"forexfactory_{year}.csv")
    items += load_news(shared_data / "headlines" / "@TopForexNewsCom.csv")
    items.sort(key=lambda it: (it.time, it.id))
    with AnalysisCache(tmp_path / "cache") as cache:
        analyzer = NewsAnalyzer(LexiconAnalyzer(), SurpriseAnalyzer(history=items), cache=cache)
        pairs, info = analyse(items, analyzer, progress=False)
    assert info["calendar_items"] > 5000 and info["headline_items"] > 1500
    policy = PolicyConfig()
    effects = effects_frame("EURUSD", pairs, policy)
    target = targets_from_effects(bar_open_ns(bars), effects, policy, latency_s=5)
    result = run_backtest(bars, target, EngineConfig(sl=policy.sl, tp=policy.tp))
    stats = compute_stats(result.trades, result.equity, bars)
    assert stats["# Trades"] > 300
    study = event_study(bars, pairs, "EURUSD")
    t = study.table
    assert set(t["labels"]) == {"model", "shuffled"}
    assert set(t["horizon_min"]) == {60}  # 1, 5 and 15 minutes round to one H1 bar, reported as 60
    headline_events = t[(t.by == "event") & (t.group == "market move") & (t.labels == "model")]
    assert (headline_events["n"] > 100).all()
    paths = write_report(
        tmp_path / "out", stats, result, bars, study, {"symbol": "EURUSD", "policy": policy.to_dict()}
    )
    assert len(pd.read_csv(paths["event_study.csv"])) == len(t)


def test_cache_is_keyed_by_analyzer_and_content_so_edited_items_are_analysed_again(tmp_path):
    t = pd.Timestamp("2016-05-06 12:30", tz="UTC")
    items = [
        NewsItem(time=t, headline="Euro rises as ECB turns hawkish", source="wire"),
        NewsItem(time=t, headline="Dollar falls after weak data", source="wire"),
    ]

    def computed(analyzer_items, lm, cache) -> tuple[list, int]:
        analyzer = NewsAnalyzer(lm, None, cache=cache)
        return analyzer.analyze(analyzer_items), analyzer.computed

    with AnalysisCache(tmp_path) as cache:
        first, n1 = computed(items, LexiconAnalyzer(), cache)
        again, n2 = computed(items, LexiconAnalyzer(), cache)
        edited = [items[0], NewsItem(**{**items[1].to_dict(), "time": t, "body": "more", "id": items[1].id})]
        _, n3 = computed(edited, LexiconAnalyzer(), cache)
        other = LexiconAnalyzer()
        other.name = "test-keywords-v2"
        _, n4 = computed(items, other, cache)
    assert (n1, n2, n3, n4) == (2, 0, 1, 2)
    assert again == first


def test_symbol_that_differs_from_the_bars_file_name_is_warned_about(tmp_path, capsys):
    rc, _, err = _run(["--symbol", "USDJPY", "--model", "none", "--quiet", "--cache", str(tmp_path)], capsys)
    assert rc == 0
    assert "file name suggests EURUSD but --symbol is USDJPY" in err


def test_unusable_out_and_cache_paths_are_one_line_errors(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    not_db = tmp_path / "notes.sqlite"
    not_db.write_text("not a database")
    cases = [
        (["--out", str(a_file)], "--out must be a folder"),
        (["--out", str(a_file / "sub")], "--out must be a folder"),
        (["--cache", str(not_db)], "file is not a database"),
        (["--cache", str(a_file / "cache")], "cannot use the analysis cache"),
    ]
    for extra, message in cases:
        rc, _, err = _run(
            ["--model", "none", "--no-progress", "--cache", str(tmp_path / "c"), *extra], capsys
        )
        assert rc == 2 and message in err and "Traceback" not in err, (extra, err)
