"""Backtest engine speed against backtesting.py and vectorbt, all measured in one run on the same bars and the same
precomputed news-driven target series (about 10,000 position changes, stop-loss and take-profit on every trade).

    python bench/backtest_speed.py                      # H1 2010-2021, M1 2017-H1, M1 repeated to 2M bars
    python bench/backtest_speed.py --quick              # smaller sizes, for a smoke run

Data (never copied into the project): ../shared/data/bars/EURUSD60.csv (65,000 H1 bars, broker clock UTC+4) and the
six HistData M1 months DAT_ASCII_EURUSD_M1_2017{01..06}.csv (about 186,000 bars), concatenated and then repeated
(with time shifted, so the index stays increasing) up to 2 million bars for the scaling curve.

The target series is news-driven: random news times and effects over the bars' span, through the same policy as the
server with a half-life of one bar and a TTL of four (its time is reported as ``policy_s``, outside the comparison), tuned to about 10,000 position changes.
What is timed: one full replay producing trades and an equity curve (best of ``--repeat`` runs; vectorbt after a
warm-up call so numba compilation is excluded and reported apart; backtesting.py once per size, it is slow).
backtesting.py is fed a strategy that follows the target exactly as our engine does (see
tests/test_vs_backtesting_py.py, which checks that both give the same trades); vectorbt gets the target changes as
entry/exit signals filled at the bar open with relative stops, the closest formulation it has.

Writes a table to stdout, ``backtest_speed.json`` (figures, config, versions) and ``backtest_speed.png`` (time
against bars, log-log) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backtest.bars.loading import load_bars  # noqa: E402
from backtest.engine import EngineConfig, bar_open_ns, run_backtest, targets_from_effects  # noqa: E402
from backtest.reference import follow_target_backtest  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.policy import PolicyConfig  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "bars"
SL, TP = 0.0030, 0.0060
UNITS = 10_000


def news_target(bars: pd.DataFrame, changes: int, seed: int = 0) -> tuple[np.ndarray, float, int]:
    """A news-driven target series with about ``changes`` position changes: random news times over the bars' span
    with random effects, turned into targets by the policy (half-life one bar, TTL four bars) (``bridge.policy.signal_at`` through
    ``targets_from_effects``). The news count is adjusted until the change count is within 2% of ``changes``.

    Returns the target, the policy's time for the final series (seconds) and the number of news items.
    """
    rng = np.random.default_rng(seed)
    times = bar_open_ns(bars)
    # Half-life one bar and TTL four bars, whatever the timeframe, so the same number of changes fits any bar count.
    bar_min = float(np.median(np.diff(times[:10_000])) / 60e9)
    policy = PolicyConfig(half_life=bar_min, ttl=4 * bar_min, threshold=0.3)
    n_news = max(1, changes // 2)
    for _ in range(8):
        ev = np.sort(rng.integers(times[0], times[-1], n_news))
        effects = pd.DataFrame(
            {
                "time": pd.to_datetime(ev, utc=True),
                "effect": rng.choice([-1, 1], n_news) * rng.uniform(0.2, 1.0, n_news),
                "id": "bench",
                "headline": "",
            }
        )
        t0 = time.perf_counter()
        target = targets_from_effects(times, effects, policy, latency_s=5)
        policy_s = time.perf_counter() - t0
        got = int((np.diff(target) != 0).sum())
        if abs(got - changes) <= 0.02 * changes:
            break
        n_news = min(10 * changes, max(1, int(round(n_news * changes / max(got, 1)))))
    target[:2] = 0  # backtesting.py can first fill on bar 2
    return target, policy_s, n_news


def repeat_bars(bars: pd.DataFrame, n: int) -> pd.DataFrame:
    """``bars`` repeated until ``n`` rows, each copy shifted in time past the previous one."""
    reps = int(np.ceil(n / len(bars)))
    span = bars.index[-1] - bars.index[0] + pd.Timedelta(minutes=1)
    parts = []
    for k in range(reps):
        part = bars.copy()
        part.index = part.index + k * span
        parts.append(part)
    return pd.concat(parts).iloc[:n]


def time_ours(bars: pd.DataFrame, target: np.ndarray, repeat: int) -> tuple[float, int]:
    cfg = EngineConfig(cash=10_000, lots=UNITS / 100_000, spread=0.0, sl=SL, tp=TP)
    best, n = np.inf, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = run_backtest(bars, target, cfg)
        best = min(best, time.perf_counter() - t0)
        n = len(r.trades)
    return best, n


def time_backtesting_py(bars: pd.DataFrame, target: np.ndarray) -> tuple[float, int]:
    bt = follow_target_backtest(bars, target, UNITS, SL, TP, cash=1_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = bt.run()
        return time.perf_counter() - t0, int(stats["# Trades"])


def time_vectorbt(bars: pd.DataFrame, target: np.ndarray, repeat: int) -> tuple[float, int, float]:
    import vectorbt as vbt

    prev = np.r_[0, target[:-1]]
    entries = (target == 1) & (prev != 1)
    exits = (prev == 1) & (target != 1)
    short_entries = (target == -1) & (prev != -1)
    short_exits = (prev == -1) & (target != -1)
    o = bars["Open"]
    kw = dict(
        close=bars["Close"],
        entries=entries,
        exits=exits,
        short_entries=short_entries,
        short_exits=short_exits,
        price=o,
        open=o,
        high=bars["High"],
        low=bars["Low"],
        size=UNITS,
        size_type="amount",
        sl_stop=SL / o.to_numpy(),
        tp_stop=TP / o.to_numpy(),
        init_cash=1_000_000,
        freq="1min",
    )

    def run():
        pf = vbt.Portfolio.from_signals(**kw)
        return pf, len(pf.trades.records)

    t0 = time.perf_counter()
    run()  # numba compilation on the first call
    compile_s = time.perf_counter() - t0
    best, n = np.inf, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        _, n = run()
        best = min(best, time.perf_counter() - t0)
    return best, n, compile_s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--changes", type=int, default=10_000, help="position changes in the target series")
    p.add_argument(
        "--repeat", type=int, default=3, help="timed runs per size (best kept) for ours and vectorbt"
    )
    p.add_argument("--max-bars", type=int, default=2_000_000, help="largest size of the scaling curve")
    p.add_argument("--bt-max-bars", type=int, default=200_000, help="largest size backtesting.py is run on")
    p.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    p.add_argument(
        "--out", type=Path, default=default_results_dir("backtest_speed"), help="where JSON and PNG go"
    )
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 2
    if args.quick:
        args.max_bars, args.bt_max_bars, args.repeat = 400_000, 70_000, 1

    h1 = load_bars(DATA / "EURUSD60.csv", tz="UTC+4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        months = [load_bars(DATA / f"DAT_ASCII_EURUSD_M1_2017{m:02d}.csv") for m in range(1, 7)]
    m1 = pd.concat(months)
    m1 = m1[~m1.index.duplicated()].sort_index()
    cases = [("EURUSD H1 2010-2021", h1), ("EURUSD M1 2017-01..06", m1)]
    for n in (500_000, 1_000_000, 2_000_000):
        if n <= args.max_bars:
            cases.append((f"M1 repeated to {n:,}", repeat_bars(m1, n)))
    scaling_small = [("M1 first 50,000", m1.iloc[:50_000]), ("M1 first 100,000", m1.iloc[:100_000])]
    cases = scaling_small + cases

    try:
        import backtesting  # noqa: F401

        have_bt = True
    except ImportError:
        have_bt = False
    try:
        import vectorbt  # noqa: F401

        have_vbt = True
    except ImportError:
        have_vbt = False

    rows = []
    for name, bars in cases:
        target, policy_s, n_news = news_target(bars, args.changes)
        ours, n_ours = time_ours(bars, target, args.repeat)
        row = {"case": name, "bars": len(bars), "news": n_news, "changes": int((np.diff(target) != 0).sum())}
        row.update(policy_s=policy_s, ours_s=ours)
        row["ours_trades"] = n_ours
        if have_vbt:
            v, n_v, comp = time_vectorbt(bars, target, args.repeat)
            row.update(vectorbt_s=v, vectorbt_trades=n_v, vectorbt_compile_s=comp, vs_vectorbt=v / ours)
        if have_bt and len(bars) <= args.bt_max_bars:
            b, n_b = time_backtesting_py(bars, target)
            row.update(backtesting_py_s=b, backtesting_py_trades=n_b, vs_backtesting_py=b / ours)
        rows.append(row)
        print(f"{name}: {len(bars):,} bars, ours {ours:.3f}s", file=sys.stderr, flush=True)

    table = pd.DataFrame(rows)
    sizes = table["bars"].to_numpy(dtype=float)
    slope = float(np.polyfit(np.log(sizes), np.log(table["ours_s"].to_numpy()), 1)[0])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nours: time ~ bars^{slope:.2f} (1.0 = linear)")
    if "vs_backtesting_py" in table:
        print(
            f"speed-up over backtesting.py: {table['vs_backtesting_py'].dropna().min():.1f}x .. "
            f"{table['vs_backtesting_py'].dropna().max():.1f}x (goal >= 20x)"
        )
    if "vs_vectorbt" in table:
        print(
            f"vectorbt time / ours: {table['vs_vectorbt'].min():.2f} .. {table['vs_vectorbt'].max():.2f} (goal >= 1)"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "sl": SL,
        "tp": TP,
        "units": UNITS,
        "scaling_exponent_ours": slope,
        "available": {"backtesting.py": have_bt, "vectorbt": have_vbt},
        "rows": json.loads(table.to_json(orient="records")),
        "versions": library_versions("backtesting", "vectorbt", "numba"),
    }
    (args.out / "backtest_speed.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    _plot(table, args.out / "backtest_speed.png")
    print(f"wrote {args.out / 'backtest_speed.json'} and {args.out / 'backtest_speed.png'}")
    return 0


def _plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    t = table.sort_values("bars")
    for col, label in (
        ("ours_s", "EA Bridge engine"),
        ("vectorbt_s", "vectorbt"),
        ("backtesting_py_s", "backtesting.py"),
    ):
        if col in t:
            s = t[["bars", col]].dropna()
            ax.plot(s["bars"], s[col], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bars")
    ax.set_ylabel("seconds per backtest (10,000 position changes)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
