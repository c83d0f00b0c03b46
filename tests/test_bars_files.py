"""Several bars files (monthly HistData downloads) load as one series; overlaps and gaps between them are
reported, and where files overlap the file given first wins."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from backtest.bars.files import load_bars_files
from backtest.bars.loading import BarDataWarning
from backtest.pipeline import load_bars_for_run


def _histdata(path, start: str, n: int, price: float):
    t = pd.date_range(start, periods=n, freq="min")
    lines = [f"{x:%Y%m%d %H%M%S};{price:.5f};{price + 1e-4:.5f};{price - 1e-4:.5f};{price:.5f};0" for x in t]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_files_join_in_time_order_with_overlap_and_gap_reported(tmp_path):
    jan = _histdata(tmp_path / "DAT_ASCII_EURUSD_M1_201701.csv", "2017-01-10 10:00", 120, 1.05)
    # Overlaps the last 20 minutes of the January file, with other prices.
    over = _histdata(tmp_path / "DAT_ASCII_EURUSD_M1_201701b.csv", "2017-01-10 11:40", 60, 1.07)
    # Starts a week later: a gap of more than a weekend.
    feb = _histdata(tmp_path / "DAT_ASCII_EURUSD_M1_201702.csv", "2017-01-17 10:00", 60, 1.06)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bars = load_bars_files([feb, jan, over])
    notes = [str(w.message) for w in caught if issubclass(w.category, BarDataWarning)]
    assert any("overlaps" in n and "20 bars" in n for n in notes), notes
    assert any(n.startswith("gap of") and "201702" in n for n in notes), notes
    assert bars.index.is_monotonic_increasing and not bars.index.has_duplicates
    assert len(bars) == 120 + 40 + 60
    # The overlap keeps the January file's bars (given before the overlapping one).
    overlap = bars.loc[bars.index[(bars.index >= "2017-01-10 16:40") & (bars.index < "2017-01-10 17:00")]]
    np.testing.assert_allclose(overlap["Open"], 1.05)
    assert bars.attrs["joined"] == notes[-len(bars.attrs["joined"]) :]


def test_back_to_back_monthly_files_join_silently_and_the_run_loader_takes_a_list(tmp_path):
    a = _histdata(tmp_path / "DAT_ASCII_EURUSD_M1_201701.csv", "2017-01-31 20:00", 100, 1.05)
    b = _histdata(tmp_path / "DAT_ASCII_EURUSD_M1_201702.csv", "2017-01-31 21:40", 100, 1.06)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BarDataWarning)
        bars = load_bars_for_run([a, b], "EURUSD")
    assert len(bars) == 200 and bars.attrs["joined"] == []
    assert bars.index[0] == pd.Timestamp("2017-02-01 01:00", tz="UTC")  # HistData's New York clock, winter


def test_no_files_is_an_error():
    with pytest.raises(ValueError):
        from backtest.bars.files import join_bars

        join_bars([], [])
