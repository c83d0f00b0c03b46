"""The event study's permutation test tells signal from noise: a planted effect gives a small p-value, labels that
carry nothing give p-values spread evenly over (0, 1]; and the breakdowns by impact and surprise size are there."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.event_study import breakdown, event_study, permutation_pvalues
from bridge.types import Analysis, NewsItem


def test_planted_effect_gives_a_small_p_value():
    rng = np.random.default_rng(3)
    predicted = rng.choice([-1, 1], size=300)
    moves = 0.8 * predicted + rng.normal(0, 2.0, size=300)  # a weak real effect (hit rate ~ 0.65)
    p_hit, p_mean = permutation_pvalues(moves, predicted, 2000, np.random.default_rng(0))
    assert p_hit < 0.01 and p_mean < 0.01
    assert p_hit >= 1 / 2001  # never zero: the observed labels count as one of the shuffles


def test_without_an_effect_p_values_are_roughly_uniform_over_repeats():
    rng = np.random.default_rng(11)
    ps = []
    for _ in range(200):
        moves = rng.normal(0, 2.0, size=120)
        predicted = rng.choice([-1, 0, 1], size=120)
        ps.append(permutation_pvalues(moves, predicted, 1000, rng)[1])
    ps = np.array(ps)
    # Uniform on (0, 1]: a tenth below 0.1, half below 0.5 (binomial sd over 200 repeats is about 0.02 and 0.035).
    assert 0.03 <= (ps < 0.1).mean() <= 0.18
    assert 0.38 <= (ps < 0.5).mean() <= 0.62
    assert 0.4 <= ps.mean() <= 0.6


def test_no_directed_item_has_no_p_value():
    assert all(np.isnan(permutation_pvalues(np.ones(5), np.zeros(5), 100, np.random.default_rng(0))))


def _calendar_case(effect_bp: float, seed: int):
    """M1 bars and 90 USD releases of one indicator; the price steps ``effect_bp`` against the dollar surprise."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2017-01-02", tz="UTC")
    n = 90 * 120 + 200
    steps = rng.normal(0, 0.3, n)
    pairs = []
    for k in range(90):
        m = 60 + 120 * k
        actual, forecast = 100 + rng.normal(0, 10), 100.0
        impact = ("High", "Medium", "Low")[k % 3]
        item = NewsItem(
            time=start + pd.Timedelta(minutes=m),
            headline=f"USD Retail Sales {k}",
            currency="USD",
            actual=actual,
            forecast=forecast,
            impact=impact,
            event="Retail Sales m/m",
        )
        level = int(np.sign(actual - forecast)) * 2
        pairs.append((item, Analysis({"event": "economic data", "market": "US", "sector": "FX"}, level)))
        steps[m] -= np.sign(actual - forecast) * effect_bp  # USD up is EURUSD down, in the release minute
    close = 1.1 * np.exp(np.cumsum(steps) * 1e-4)
    idx = pd.date_range(start, periods=n, freq="min")
    opens = np.r_[1.1, close[:-1]]
    bars = pd.DataFrame(
        {"Open": opens, "High": np.maximum(opens, close), "Low": np.minimum(opens, close), "Close": close},
        index=idx,
    )
    return bars, pairs


def test_breakdowns_by_impact_and_surprise_terciles_with_p_values():
    bars, pairs = _calendar_case(effect_bp=3.0, seed=1)
    study = event_study(bars, pairs, "EURUSD", horizons=(1, 5), n_permutations=1000)
    imp = breakdown(study, "impact", [1])
    assert set(imp["group"]) == {"high", "medium", "low"}
    assert (imp["p_hit_rate"] < 0.01).all() and (imp["hit_rate"] > 0.8).all()
    sur = breakdown(study, "surprise", [1])
    assert set(sur["group"]) == {"small", "medium", "large"}
    assert sur["n_directed"].sum() >= 80  # all but the first three releases have a typical size to scale by
    assert set(breakdown(study, "indicator", [1])["group"]) == {"USD retail sales m/m"}

    flat_bars, flat_pairs = _calendar_case(effect_bp=0.0, seed=2)
    flat = event_study(flat_bars, flat_pairs, "EURUSD", horizons=(1,), n_permutations=1000)
    row = breakdown(flat, "all", [1]).iloc[0]
    assert row["p_hit_rate"] > 0.01 and 0.3 < row["hit_rate"] < 0.7
