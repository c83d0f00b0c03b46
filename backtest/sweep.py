"""Parameter sweeps with walk-forward validation, on Ray (a local cluster by default, ``--address`` for a real one).

    python -m backtest.sweep --symbol EURUSD --half-life 30,60,120 --threshold 0.2,0.3,0.5 --folds 4 --out runs/sweep
    python -m backtest.sweep --symbol EURUSD --bars EURUSD60.csv --bars-tz UTC+4 --symbol GBPUSD --bars GBPUSD60.csv \\
        --news forexfactory_2016.csv --address auto

News is read and analysed once on the driver (through the same cache as ``backtest.run``); each Ray task evaluates a
chunk of the policy grid for one symbol. The bars are cut into ``--folds`` equal consecutive windows; for every window
after the first, the parameters are chosen on the in-sample windows before it (``--train-folds`` of them, default all:
anchored walk-forward) by ``--metric`` and reported on that window, which they have not seen. One table
(``results.csv``) holds every (symbol, parameters, fold) with its in-sample and out-of-sample statistics and a
``selected`` flag; ``sweep.json`` records the config, library versions and the walk-forward summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from backtest.engine import EngineConfig, bar_open_ns, run_backtest, targets_from_effects
from backtest.pipeline import (
    add_cost_arguments,
    add_model_arguments,
    add_news_arguments,
    add_progress_argument,
    analyse,
    engine_config,
    load_all_news,
    load_bars_for_run,
    news_analyzer,
    news_in_range,
)
from backtest.stats import compute_stats
from bridge.cli import HelpFormatter, finite_float
from bridge.errors import UserError, run_main
from bridge.policy import PolicyConfig, effects_frame

GRID_PARAMS = ("half_life", "ttl", "threshold", "min_confidence", "sl", "tp")
REPORTED = ("Return [%]", "Sharpe Ratio", "Max. Drawdown [%]", "# Trades", "Win Rate [%]", "Profit Factor")


def fold_edges(n_bars: int, folds: int) -> np.ndarray:
    """Bar indices splitting ``n_bars`` into ``folds`` consecutive windows of (nearly) equal length."""
    if folds < 2:
        raise ValueError(f"walk-forward needs at least 2 folds, got {folds}")
    if n_bars < 2 * folds:
        raise ValueError(f"{n_bars} bars are too few for {folds} folds")
    return np.linspace(0, n_bars, folds + 1).round().astype(int)


def walk_forward_windows(folds: int, train_folds: int | None) -> list[tuple[int, int, int]]:
    """(first in-sample fold, test fold, fold count) triples: test fold ``k`` is selected on folds [first, k)."""
    out = []
    for k in range(1, folds):
        first = 0 if not train_folds else max(0, k - train_folds)
        out.append((first, k, folds))
    return out


def evaluate(
    symbol: str,
    bars: pd.DataFrame,
    effects: pd.DataFrame,
    grid: Sequence[dict],
    engine: EngineConfig,
    latency_s: float,
    folds: int,
    train_folds: int | None,
) -> list[dict]:
    """Statistics of every grid point on every in-sample and out-of-sample window (runs inside a Ray task)."""
    edges = fold_edges(len(bars), folds)
    times = bar_open_ns(bars)
    rows = []
    for params in grid:
        policy = PolicyConfig(**params)
        eff = effects[effects["confidence"] >= policy.min_confidence]
        # The policy is causal, so targets computed once over all bars equal those computed window by window.
        target = targets_from_effects(times, eff, policy, latency_s)
        cfg = replace(engine, sl=policy.sl, tp=policy.tp)
        for first, k, _ in walk_forward_windows(folds, train_folds):
            row = {"symbol": symbol, **params, "fold": k}
            for tag, lo, hi in (("is", edges[first], edges[k]), ("oos", edges[k], edges[k + 1])):
                b = bars.iloc[lo:hi]
                r = run_backtest(b, target[lo:hi], cfg)
                s = compute_stats(r.trades, r.equity, b)
                for name in REPORTED:
                    row[f"{tag} {name}"] = float(s[name])
                row[f"{tag}_start"] = b.index[0].isoformat()
                row[f"{tag}_end"] = b.index[-1].isoformat()
            rows.append(row)
    return rows


def select(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mark, per symbol and fold, the grid point with the best in-sample ``metric`` (NaN ranks last)."""
    col = f"is {metric}"
    if col not in results:
        raise UserError(f"unknown metric {metric!r}", hint=f"use one of {', '.join(REPORTED)}")
    out = results.copy()
    score = out[col].fillna(-np.inf)
    best = score.groupby([out["symbol"], out["fold"]]).idxmax()
    out["selected"] = out.index.isin(best.to_numpy())
    return out


def sweep(
    inputs: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    grid: Sequence[dict],
    engine: EngineConfig,
    latency_s: float = 5.0,
    folds: int = 4,
    train_folds: int | None = None,
    metric: str = "Sharpe Ratio",
    chunk: int = 8,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the grid for every symbol on Ray (``ray.init`` must have been called) and return the marked table.

    ``inputs`` maps symbol -> (bars, effects with a ``confidence`` column, see :func:`symbol_effects`).
    """
    import ray

    remote = ray.remote(evaluate)
    futures = []
    for symbol, (bars, effects) in inputs.items():
        fold_edges(len(bars), folds)  # fail on the driver, not in a worker
        bars_ref, eff_ref = ray.put(bars), ray.put(effects)
        for i in range(0, len(grid), chunk):
            futures.append(
                remote.remote(
                    symbol,
                    bars_ref,
                    eff_ref,
                    list(grid[i : i + chunk]),
                    engine,
                    latency_s,
                    folds,
                    train_folds,
                )
            )
    rows: list[dict] = []
    with tqdm(total=len(futures), desc="sweep", unit="task", disable=not progress) as bar:
        pending = futures
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                rows += ray.get(ref)
            bar.update(len(done))
    table = (
        pd.DataFrame(rows).sort_values(["symbol", "fold", *GRID_PARAMS], kind="stable").reset_index(drop=True)
    )
    return select(table, metric)


def walk_forward_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per symbol: the out-of-sample statistics of the selected parameters, fold by fold and on average."""
    sel = table[table["selected"]]
    cols = [
        "symbol",
        "fold",
        *GRID_PARAMS,
        "is Sharpe Ratio",
        "oos Return [%]",
        "oos Sharpe Ratio",
        "oos # Trades",
    ]
    return sel[cols].reset_index(drop=True)


def symbol_effects(symbol: str, pairs) -> pd.DataFrame:
    """The policy's effects of ``pairs`` on ``symbol`` before any confidence filter, with each item's confidence."""
    eff = effects_frame(symbol, pairs, PolicyConfig(min_confidence=0.0))
    conf = {item.id: a.confidence for item, a in pairs}
    eff["confidence"] = eff["id"].map(conf).astype(float)
    return eff


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{name} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise UserError(f"--{name} is empty")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m backtest.sweep",
        description="Grid search of policy parameters with walk-forward validation, on Ray.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--symbol", action="append", default=None, help="symbol, repeatable (default EURUSD)")
    p.add_argument(
        "--bars", type=Path, action="append", default=None, help="bars file per --symbol (default demo)"
    )
    p.add_argument("--bars-format", default="auto", help="bars format for every --bars")
    p.add_argument("--bars-tz", default=None, help="bars clock for every --bars")
    add_news_arguments(p)
    p.add_argument("--from", dest="start", default=None, help="first bar time (UTC)")
    p.add_argument("--to", dest="end", default=None, help="last bar time (UTC)")
    p.add_argument("--timeframe", default=None, help="resample the bars first")
    add_model_arguments(p)
    defaults = {f.name: f.default for f in fields(PolicyConfig)}
    for name in GRID_PARAMS:
        p.add_argument(
            f"--{name.replace('_', '-')}", default=str(defaults[name]), help=f"comma-separated {name} values"
        )
    add_cost_arguments(p)
    p.add_argument("--lots", type=finite_float, default=0.1, help="fixed size in lots")
    p.add_argument("--folds", type=int, default=4, help="consecutive windows of the walk-forward")
    p.add_argument(
        "--train-folds", type=int, default=0, help="in-sample windows per test window (0 = all before)"
    )
    p.add_argument(
        "--metric",
        default="Sharpe Ratio",
        help=f"in-sample selection metric: {', '.join(REPORTED).replace('%', '%%')}",
    )
    p.add_argument(
        "--address", default=None, help="Ray cluster address (e.g. auto or ray://host:10001); default local"
    )
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--chunk", type=int, default=8, help="grid points per Ray task")
    p.add_argument("--out", type=Path, default=None, help="write results.csv and sweep.json here")
    add_progress_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    symbols, bars_files = _symbols_and_bars(args)
    values = {name: _floats(getattr(args, name), name.replace("_", "-")) for name in GRID_PARAMS}
    grid = [dict(zip(GRID_PARAMS, combo, strict=True)) for combo in itertools.product(*values.values())]
    try:
        for g in grid:
            PolicyConfig(**g)
        engines = {
            s: engine_config(
                s,
                cash=args.cash,
                lots=args.lots,
                spread_points=args.spread,
                slippage_points=args.slippage,
                commission=args.commission,
            )
            for s in symbols
        }
    except ValueError as exc:
        raise UserError(str(exc)) from None
    inputs, notes = _inputs(args, symbols, bars_files, max_ttl=max(values["ttl"]))
    table = _sweep_on_ray(args, inputs, grid, engines)
    summary = walk_forward_summary(table)
    _print_summary(summary, len(grid), len(symbols), args.folds)
    if args.out is not None:
        _write(args, table, summary, grid, engines, notes)
    return 0


def _symbols_and_bars(args) -> tuple[list[str], list[Path | None]]:
    symbols = args.symbol or ["EURUSD"]
    bars_files = args.bars or [None]
    if len(bars_files) == 1 and len(symbols) > 1 and bars_files[0] is None:
        raise UserError("give one --bars file per --symbol", hint="the bundled demo bars are EURUSD only")
    if len(bars_files) != len(symbols):
        raise UserError(
            f"{len(symbols)} --symbol for {len(bars_files)} --bars", hint="give one --bars per --symbol"
        )
    return symbols, bars_files


def _inputs(args, symbols, bars_files, max_ttl: float) -> tuple[dict, list[str]]:
    """Per symbol: its bars and the unfiltered effects of the news on it (each item analysed once for all)."""
    all_items = load_all_news(args.news, args.news_format, args.news_tz)
    analyzer, note = news_analyzer(all_items, args.model, args.backend, None if args.no_cache else args.cache)
    inputs = {}
    analysed: dict[str, tuple] = {}  # news id -> (item, analysis), shared by the symbols
    try:
        for symbol, path in zip(symbols, bars_files, strict=True):
            bars = load_bars_for_run(
                path,
                symbol,
                format=args.bars_format,
                tz=args.bars_tz,
                start=args.start,
                end=args.end,
                timeframe=args.timeframe,
            )
            try:
                fold_edges(len(bars), args.folds)
            except ValueError as exc:
                raise UserError(str(exc), hint="use fewer --folds or more bars") from None
            items = news_in_range(all_items, bars, max_ttl)
            todo = [it for it in items if it.id not in analysed]
            got, _ = analyse(todo, analyzer, progress=not args.no_progress) if todo else ([], {})
            analysed.update({it.id: (it, a) for it, a in got})
            pairs = [analysed[it.id] for it in items if it.id in analysed]
            inputs[symbol] = (bars, symbol_effects(symbol, pairs))
    finally:
        if analyzer.cache is not None:
            analyzer.cache.close()
    return inputs, [note] if note else []


def _sweep_on_ray(args, inputs: dict, grid: list[dict], engines: dict) -> pd.DataFrame:
    import ray

    ray.init(
        address=args.address,
        num_cpus=None if args.address else args.num_cpus,
        include_dashboard=False,
        ignore_reinit_error=True,
        log_to_driver=False,
        logging_level="ERROR",
    )
    try:
        tables = [
            sweep(
                {symbol: inputs[symbol]},
                grid,
                engines[symbol],
                args.latency,
                args.folds,
                args.train_folds or None,
                args.metric,
                args.chunk,
                not args.no_progress,
            )
            for symbol in inputs
        ]
    finally:
        ray.shutdown()
    return pd.concat(tables, ignore_index=True)


def _print_summary(summary: pd.DataFrame, n_grid: int, n_symbols: int, folds: int) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"{n_grid} parameter sets x {n_symbols} symbols x {folds - 1} walk-forward folds")
        print("Selected in-sample, reported out-of-sample:")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        oos = summary.groupby("symbol")[["oos Return [%]", "oos Sharpe Ratio"]].mean()
        print("\nMean out-of-sample per symbol:")
        print(oos.to_string(float_format=lambda v: f"{v:.4f}"))


def _write(args, table, summary, grid, engines, notes) -> None:
    from bridge.provenance import library_versions

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "results.csv", index=False)
    doc = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "grid_size": len(grid),
        "engine": {s: e.to_dict() for s, e in engines.items()},
        "walk_forward": json.loads(summary.to_json(orient="records")),
        "notes": notes,
        "versions": library_versions("ray"),
    }
    (args.out / "sweep.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out / 'results.csv'}, {args.out / 'sweep.json'}")


if __name__ == "__main__":
    warnings.showwarning = lambda m, *a, **k: print(f"warning: {m}", file=sys.stderr)
    sys.exit(run_main(main))
