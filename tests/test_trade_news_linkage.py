"""Every trade linked to its news: the entry news ids, the decayed sum at entry, why the trade ended, and the
analyses table naming the trade each item opened or closed; on a hand-made case whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import EngineConfig, bar_open_ns, run_backtest, targets_from_effects
from backtest.linkage import analyses_table, link_trades
from bridge.policy import PolicyConfig, effects_frame
from bridge.types import Analysis, NewsItem

START = pd.Timestamp("2017-03-06 10:00", tz="UTC")
POLICY = PolicyConfig(half_life=60.0, ttl=240.0, threshold=0.3, sl=0.0, tp=0.0)
LATENCY = 5.0


def _bars(n: int = 300) -> pd.DataFrame:
    idx = pd.date_range(START, periods=n, freq="min")
    x = np.full(n, 1.1)
    return pd.DataFrame({"Open": x, "High": x + 1e-4, "Low": x - 1e-4, "Close": x}, index=idx)


def _item(minute: int, currency: str, level: int, name: str) -> tuple[NewsItem, Analysis]:
    item = NewsItem(
        time=START + pd.Timedelta(minutes=minute, seconds=20), headline=name, currency=currency, source="test"
    )
    market = {"EUR": "EU", "USD": "US"}[currency]
    return item, Analysis(
        {"event": "economic data", "market": market, "sector": "rates"}, level, analyzer="t"
    )


def _run(pairs, policy=POLICY):
    bars = _bars()
    effects = effects_frame("EURUSD", pairs, policy)
    target = targets_from_effects(bar_open_ns(bars), effects, policy, LATENCY)
    result = run_backtest(bars, target, EngineConfig(spread=0.0))
    trades = link_trades(result.trades, bars.index, "EURUSD", pairs, policy, LATENCY)
    return bars, trades, analyses_table(pairs, "EURUSD", policy, bars.index, LATENCY, trades)


def test_two_news_items_one_trade_opened_by_the_first_and_closed_by_the_second():
    # A: EUR +3 at 10:00:20 (effect +1) opens a long at the 10:01 bar. B: USD +3 at 10:30:20 (effect -1) brings the
    # decayed sum to 0.5 ** 0.5 - 1 = -0.29, under the threshold: flat at the 10:31 bar, a target change by news.
    a, b = _item(0, "EUR", 3, "ECB hikes"), _item(30, "USD", 3, "Payrolls beat")
    bars, trades, analyses = _run([a, b])
    assert len(trades) == 1
    t = trades.iloc[0]
    assert (t["Trade"], t["EntryBar"], t["ExitBar"]) == (1, 1, 31)
    assert t["EntryNewsIds"] == a[0].id and t["EntryNewsCount"] == 1 and t["EntryHeadlines"] == "ECB hikes"
    assert t["EntrySignal"] == pytest.approx(0.5 ** ((35 / 60) / 60))  # 35 s old at the decision
    assert t["ExitReason"] == "target_change"
    assert "level +3" in t["EntryAnalyses"] and "effect +1.00" in t["EntryAnalyses"]
    rows = analyses.set_index("id")
    assert rows.loc[a[0].id, "opened_trade"] == 1 and pd.isna(rows.loc[a[0].id, "closed_trade"])
    assert rows.loc[b[0].id, "closed_trade"] == 1 and pd.isna(rows.loc[b[0].id, "opened_trade"])
    assert rows.loc[b[0].id, "effect"] == pytest.approx(-1.0)
    assert rows.loc[a[0].id, "acts_at"] == bars.index[1]


def test_a_position_whose_news_ages_out_ends_by_expiry():
    # One EUR +1 item (effect 1/3) decays under 0.3 after 60 * log2(1/0.9) = 9.1 minutes: no new news, an expiry.
    a = _item(0, "EUR", 1, "Small beat")
    _, trades, analyses = _run([a])
    assert list(trades["ExitReason"]) == ["expiry"]
    assert trades.iloc[0]["EntryNewsIds"] == a[0].id
    assert analyses.iloc[0]["opened_trade"] == 1 and pd.isna(analyses.iloc[0]["closed_trade"])


def test_news_about_other_currencies_is_listed_but_links_to_no_trade():
    pairs = [_item(0, "EUR", 3, "ECB hikes")]
    jpy = NewsItem(time=START + pd.Timedelta(minutes=5), headline="BoJ holds", currency="JPY")
    pairs.append((jpy, Analysis({"event": "central bank decision", "market": "JP", "sector": "rates"}, 2)))
    _, trades, analyses = _run(pairs)
    assert trades.iloc[0]["EntryNewsIds"] == pairs[0][0].id
    row = analyses.set_index("id").loc[jpy.id]
    assert row["effect"] == 0.0 and pd.isna(row["opened_trade"]) and pd.isna(row["closed_trade"])
