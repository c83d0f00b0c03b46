"""Parameter sweep on Ray with walk-forward selection: windows, selection by in-sample metric, one results table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backtest.sweep import fold_edges, main, select, walk_forward_windows


def test_folds_are_consecutive_equal_windows_covering_every_bar():
    edges = fold_edges(1000, 4)
    assert list(edges) == [0, 250, 500, 750, 1000]
    with pytest.raises(ValueError, match="at least 2 folds"):
        fold_edges(1000, 1)


def test_walk_forward_tests_each_window_on_parameters_chosen_before_it():
    assert walk_forward_windows(4, None) == [(0, 1, 4), (0, 2, 4), (0, 3, 4)]  # anchored
    assert walk_forward_windows(4, 1) == [(0, 1, 4), (1, 2, 4), (2, 3, 4)]  # rolling, one window


def test_selection_takes_the_best_in_sample_metric_per_symbol_and_fold_never_out_of_sample():
    t = pd.DataFrame(
        {
            "symbol": ["EURUSD"] * 4 + ["GBPUSD"] * 2,
            "fold": [1, 1, 2, 2, 1, 1],
            "threshold": [0.2, 0.4, 0.2, 0.4, 0.2, 0.4],
            "is Sharpe Ratio": [0.5, 0.9, np.nan, -0.1, 1.0, 0.3],
            "oos Sharpe Ratio": [9.0, -1.0, 9.0, 0.0, 0.0, 9.0],
        }
    )
    sel = select(t, "Sharpe Ratio")
    assert list(sel["selected"]) == [False, True, False, True, True, False]


def test_sweep_cli_runs_on_ray_and_writes_one_table(shared_data, tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    argv = [
        "--bars", str(shared_data / "bars" / "EURUSD60.csv"), "--bars-tz", "UTC+4",
        "--news", str(shared_data / "calendar" / "forexfactory_2016.csv"),
        "--from", "2016-01-01", "--to", "2016-12-31",
        "--half-life", "30,120", "--threshold", "0.2,0.5", "--folds", "3", "--chunk", "2",
        "--num-cpus", "1", "--model", "none", "--quiet", "--cache", str(tmp_path / "cache"), "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Selected in-sample, reported out-of-sample" in printed
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 * 2  # 4 grid points x 2 walk-forward test windows
    assert table.groupby("fold")["selected"].sum().eq(1).all()
    # Out-of-sample windows start after their in-sample windows end.
    assert (pd.to_datetime(table["is_end"]) < pd.to_datetime(table["oos_start"])).all()
    chosen = table[table["selected"]]
    for _, row in chosen.iterrows():
        peers = table[table["fold"] == row["fold"]]
        assert row["is Sharpe Ratio"] == peers["is Sharpe Ratio"].max()
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["grid_size"] == 4 and "ray" in doc["versions"] and len(doc["walk_forward"]) == 2


def test_sweep_rejects_bad_grids(tmp_path):
    from bridge.errors import UserError

    with pytest.raises(UserError, match="comma-separated"):
        main(["--threshold", "0.2,abc", "--quiet"])
    with pytest.raises(UserError, match="threshold must be > 0"):
        main(["--threshold", "0,0.3", "--quiet"])
