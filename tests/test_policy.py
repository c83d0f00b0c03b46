"""The policy: currency mapping, decay, threshold, TTL, and no use of news after the query time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.policy import PolicyConfig, effects_frame, largest, signal_at, target_for
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem

T0 = pd.Timestamp("2017-03-15 18:00", tz="UTC")


def _pair(minutes: float, currency: str, level: int, market: str = "US", confidence: float = 1.0):
    item = NewsItem(
        time=T0 + pd.Timedelta(minutes=minutes),
        headline=f"{currency} news {minutes} {level}",
        currency=currency,
    )
    analysis = Analysis(
        {"event": "economic data", "market": market, "sector": "rates"}, level, confidence=confidence
    )
    return item, analysis


def test_split_symbol_ignores_broker_suffix():
    assert split_symbol("EURUSD") == ("EUR", "USD")
    assert split_symbol("eurusd.m") == ("EUR", "USD")
    with pytest.raises(ValueError, match="base and quote"):
        split_symbol("DAX")


def test_base_currency_positive_news_is_long_and_quote_positive_news_is_short():
    cfg = PolicyConfig(threshold=0.3)
    long_ = target_for("EURUSD", T0, effects_frame("EURUSD", [_pair(0, "EUR", 2)], cfg), cfg)
    short = target_for("EURUSD", T0, effects_frame("EURUSD", [_pair(0, "USD", 2)], cfg), cfg)
    assert (long_.direction, short.direction) == (1, -1)
    assert long_.sl == cfg.sl and long_.tp == cfg.tp
    unrelated = effects_frame("EURUSD", [_pair(0, "JPY", 3)], cfg)
    assert len(unrelated) == 0


def test_market_gives_currency_when_item_has_none():
    item = NewsItem(time=T0, headline="ECB raises rates")
    analysis = Analysis({"event": "central bank decision", "market": "EU", "sector": "rates"}, 3)
    cfg = PolicyConfig()
    assert target_for("EURUSD", T0, effects_frame("EURUSD", [(item, analysis)], cfg), cfg).direction == 1


def test_effect_decays_by_half_life_and_vanishes_after_ttl():
    cfg = PolicyConfig(half_life=30, ttl=120, threshold=0.1)
    frame = effects_frame("EURUSD", [_pair(0, "EUR", 3)], cfg)
    times = np.array([(T0 + pd.Timedelta(minutes=m)).value for m in (0, 30, 60, 119, 121)])
    total, direction, _ = signal_at(
        frame["time"].to_numpy("datetime64[ns]").astype(np.int64), frame["effect"].to_numpy(), times, cfg
    )
    np.testing.assert_allclose(total[:3], [1.0, 0.5, 0.25])
    assert total[4] == 0.0 and direction[4] == 0
    assert list(direction[:4]) == [1, 1, 1, 0]  # 2**(-119/30) = 0.06 < threshold


def test_below_threshold_is_flat_and_target_expires_after_ttl():
    cfg = PolicyConfig(threshold=0.5, ttl=60)
    frame = effects_frame("EURUSD", [_pair(0, "EUR", 1)], cfg)  # score 1/3 < 0.5
    target = target_for("EURUSD", T0, frame, cfg)
    assert target.direction == 0 and target.strength == 0 and target.sl == 0
    assert target.expires == T0 + pd.Timedelta(minutes=60)


def test_opposite_news_cancel():
    cfg = PolicyConfig(threshold=0.3)
    frame = effects_frame("EURUSD", [_pair(0, "EUR", 2), _pair(0, "USD", 2)], cfg)
    assert target_for("EURUSD", T0, frame, cfg).direction == 0


def test_low_confidence_is_ignored_when_asked():
    cfg = PolicyConfig(min_confidence=0.5)
    assert len(effects_frame("EURUSD", [_pair(0, "EUR", 3, confidence=0.4)], cfg)) == 0


@pytest.mark.parametrize(
    "kwargs", [{"half_life": 0}, {"ttl": -1}, {"threshold": 0}, {"min_confidence": 1.5}, {"sl": -0.001}]
)
def test_config_rejects_inconsistent_values(kwargs):
    with pytest.raises(ValueError):
        PolicyConfig(**kwargs)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-300, 300), st.sampled_from(["EUR", "USD"]), st.integers(-3, 3)), max_size=12
    ),
    st.integers(-300, 300),
    st.lists(st.tuples(st.integers(1, 300), st.sampled_from(["EUR", "USD"]), st.integers(-3, 3)), max_size=5),
)
def test_news_after_query_time_never_changes_the_target(before, query, after):
    """Adding news published after the query time leaves the target at that time unchanged."""
    cfg = PolicyConfig(threshold=0.2)
    now = T0 + pd.Timedelta(minutes=query)
    base = [_pair(m, c, lv) for m, c, lv in before]
    future = [_pair(query + m, c, lv) for m, c, lv in after]
    a = target_for("EURUSD", now, effects_frame("EURUSD", base, cfg), cfg)
    b = target_for("EURUSD", now, effects_frame("EURUSD", base + future, cfg), cfg)
    assert (a.direction, a.strength, a.expires) == (b.direction, b.strength, b.expires)


def test_one_query_sums_exactly_as_the_vectorised_loop():
    """The server asks for one time, the backtester for many; the two code paths must agree bit for bit, or a
    target at the threshold could differ between them."""
    rng = np.random.default_rng(3)
    config = PolicyConfig(half_life=30, ttl=240)
    events = np.sort(rng.integers(0, 10 * 3600, 400)) * 1_000_000_000
    effects = rng.normal(0, 0.7, 400)
    times = rng.integers(0, 11 * 3600, 50) * 1_000_000_000
    many = signal_at(events, effects, times, config)
    for k, t in enumerate(times):
        one = signal_at(events, effects, np.array([t]), config)
        assert one[0][0] == many[0][k] and one[1][0] == many[1][k] and one[2][0] == many[2][k]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_largest_is_a_stable_descending_argsort_prefix(k):
    rng = np.random.default_rng(k)
    for n in (0, 1, 2, 3, 7, 100):
        values = rng.integers(0, 4, n).astype(float)  # many ties on purpose
        assert list(largest(values, k)) == list(np.argsort(-values, kind="stable")[:k])
