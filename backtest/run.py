"""Replay historical news against price bars through the same analyzer and policy as the live server.

    python -m backtest.run --symbol EURUSD                       # bundled 2017 demo bars and news, shipped model
    python -m backtest.run --symbol EURUSD --bars EURUSD60.csv --bars-tz UTC+4 \\
        --news forexfactory_2016.csv --news headlines.csv --out runs/eurusd
    python -m backtest.run --symbol EURUSD --signals my_signals.csv   # time_utc,target rows; no model

Calendar items with an actual value are read by the surprise rule, other news by the language model (``--model``,
default the shipped one). Analyses are cached (``--cache``), so a second run does no inference. The policy options
have the same names and defaults as ``python -m bridge.serve``. News at time t moves the position from the first bar
opening at or after t + ``--latency``. Costs: see ``backtest.engine``; the account currency is the symbol's quote
currency.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.bars.loading import demo_bars_path
from backtest.engine import (
    EngineConfig,
    bar_open_ns,
    bar_spread,
    run_backtest,
    targets_from_effects,
    targets_from_signals,
)
from backtest.event_study import (
    DEFAULT_HORIZONS,
    DEFAULT_PERMUTATIONS,
    EventStudy,
    breakdown,
    event_study,
    headline_summary,
)
from backtest.linkage import analyses_table, link_trades, release_times
from backtest.pipeline import (
    DEFAULT_LOTS,
    DEMO_NEWS,
    NEWS_COST_SOURCE,
    add_cost_arguments,
    add_model_arguments,
    add_news_arguments,
    add_news_cost_arguments,
    add_progress_argument,
    analyse,
    baselines,
    comparison_table,
    engine_config,
    load_all_news,
    load_bars_for_run,
    news_analyzer,
    news_cost_options,
    news_in_range,
    prepare_output_dir,
)
from backtest.signals import load_signals
from backtest.stats import compute_stats
from bridge.cli import HelpFormatter, finite_float
from bridge.errors import DataError, UserError, run_main
from bridge.policy import PolicyConfig, add_policy_arguments, effects_frame, policy_from_args
from bridge.types import Analysis, NewsItem


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m backtest.run",
        description="Backtest news-driven targets on price bars (no look-ahead, real costs).",
        formatter_class=HelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--symbol", default="EURUSD", help="symbol traded; its currencies select the news that matter"
    )
    d.add_argument(
        "--bars",
        type=Path,
        action="append",
        default=None,
        help="bars file, repeatable: monthly files join into one series, overlaps and gaps reported "
        "(default: the bundled EURUSD H1 2017 demo)",
    )
    d.add_argument("--bars-format", default="auto", help="auto, mt5, histdata, dukascopy or csv")
    d.add_argument(
        "--bars-tz", default=None, help="bars' clock (IANA name or UTC+4); default: the format's own"
    )
    add_news_arguments(d)
    d.add_argument(
        "--signals", type=Path, default=None, help="CSV of time_utc,target to backtest instead of news"
    )
    d.add_argument("--from", dest="start", default=None, help="first bar time (UTC), e.g. 2017-03-01")
    d.add_argument("--to", dest="end", default=None, help="last bar time (UTC)")
    d.add_argument("--timeframe", default=None, help="resample the bars first, e.g. H4, D1")

    add_model_arguments(p.add_argument_group("model"))

    add_policy_arguments(p.add_argument_group("policy (same names as python -m bridge.serve)"))

    x = p.add_argument_group("execution and costs")
    add_cost_arguments(x)
    add_news_cost_arguments(p.add_argument_group("news-time costs and swap (see backtest.engine)"))
    size = x.add_mutually_exclusive_group()
    size.add_argument(
        "--lots",
        type=finite_float,
        default=DEFAULT_LOTS,
        help="fixed size in lots (100,000 units of the base)",
    )
    size.add_argument(
        "--risk", type=finite_float, default=None, help="size each trade to lose this equity fraction at --sl"
    )

    o = p.add_argument_group("output")
    o.add_argument(
        "--out", type=Path, default=None, help="write stats.json, trades.csv, event_study.csv, report.html"
    )
    o.add_argument(
        "--horizons", default=",".join(map(str, DEFAULT_HORIZONS)), help="event-study horizons, minutes"
    )
    o.add_argument(
        "--permutations",
        type=int,
        default=DEFAULT_PERMUTATIONS,
        help="label shuffles of the event study's permutation test",
    )
    o.add_argument("--seed", type=int, default=0, help="seed of the shuffled baselines")
    add_progress_argument(o)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return "" if not np.isfinite(v) else f"{v:,.4f}"
    return str(v)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    policy, config, horizons = _settings(args)
    prepare_output_dir(args.out)
    bars = load_bars_for_run(
        args.bars,
        args.symbol,
        format=args.bars_format,
        tz=args.bars_tz,
        start=args.start,
        end=args.end,
        timeframe=args.timeframe,
    )
    times = bar_open_ns(bars)
    notes: list[str] = list(bars.attrs.get("joined", []))
    pairs: list[tuple[NewsItem, Analysis]] = []
    all_items: list[NewsItem] = []
    releases = np.zeros(0, dtype=np.int64)
    if args.signals is not None:
        target, source = _signal_targets(args, bars, times)
    else:
        pairs, source, note, all_items = _news_pairs(args, bars, policy.ttl)
        notes += [note] if note else []
        target = _news_targets(args.symbol, pairs, times, policy, args.latency)
        releases = release_times(news_in_range(all_items, bars, policy.ttl), args.symbol)

    result = run_backtest(bars, target, config, news_times=releases)
    if pairs:
        result.trades = link_trades(result.trades, bars.index, args.symbol, pairs, policy, args.latency)
    _, spread_note = bar_spread(bars, config)
    stats = compute_stats(result.trades, result.equity, bars)
    base = baselines(bars, result.target.to_numpy(), config, args.seed, news_times=releases)
    base_stats = {k: compute_stats(r.trades, r.equity, bars) for k, r in base.items()}
    study = (
        event_study(
            bars,
            pairs,
            args.symbol,
            horizons,
            policy,
            seed=args.seed,
            n_permutations=args.permutations,
            history=all_items,
        )
        if pairs
        else None
    )
    _print_results(args.symbol, bars, spread_note, {"Strategy": stats, **base_stats}, study)
    analyses = (
        analyses_table(pairs, args.symbol, policy, bars.index, args.latency, result.trades) if pairs else None
    )

    if args.out is not None:
        from backtest.report import write_report

        run_config = _run_config(args, argv, policy, config, horizons, spread_note, source, len(releases))
        paths = write_report(
            args.out,
            stats,
            result,
            bars,
            study,
            run_config,
            baselines={k: r.equity for k, r in base.items()},
            baseline_stats=base_stats,
            notes=notes,
            analyses=analyses,
            pairs=pairs,
        )
        print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _run_config(args, argv, policy, config, horizons, spread_note, source, n_releases: int) -> dict:
    """What made the run, recorded in stats.json and the report."""
    return {
        "symbol": args.symbol,
        "bars": [str(p) for p in (args.bars or [demo_bars_path()])],
        "bars_format": args.bars_format,
        "bars_tz": args.bars_tz,
        "from": args.start,
        "to": args.end,
        "timeframe": args.timeframe,
        "model": args.model,
        "latency_s": args.latency,
        "spread_source": spread_note,
        "news_cost_releases": n_releases,
        "news_cost_source": NEWS_COST_SOURCE,
        "policy": policy.to_dict(),
        "engine": config.to_dict(),
        "horizons_min": horizons,
        "seed": args.seed,
        "source": source,
        "argv": list(argv) if argv is not None else sys.argv[1:],
    }


def _settings(args) -> tuple[PolicyConfig, EngineConfig, list[int]]:
    """Policy, engine and event-study horizons from the options; a bad value is one clear line."""
    try:
        policy = policy_from_args(args)
        config = engine_config(
            args.symbol,
            cash=args.cash,
            lots=args.lots,
            risk=args.risk,
            spread_points=args.spread,
            slippage_points=args.slippage,
            commission=args.commission,
            sl=args.sl,
            tp=args.tp,
            **news_cost_options(args),
        )
        horizons = [int(h) for h in str(args.horizons).split(",") if h.strip()]
    except ValueError as exc:
        raise UserError(str(exc), hint="see python -m backtest.run --help") from None
    return policy, config, horizons


def _signal_targets(args, bars: pd.DataFrame, times: np.ndarray) -> tuple[np.ndarray, dict]:
    """Targets from a --signals file (no model runs)."""
    if args.news:
        warnings.warn("--signals given: the --news files are not used", stacklevel=1)
    signals = load_signals(args.signals)
    if signals.index[-1] < bars.index[0] or signals.index[0] > bars.index[-1]:
        raise DataError(
            f"the signals ({signals.index[0]:%Y-%m-%d} .. {signals.index[-1]:%Y-%m-%d}) and the bars "
            f"({bars.index[0]:%Y-%m-%d} .. {bars.index[-1]:%Y-%m-%d}) do not overlap in time",
            path=args.signals,
            hint="check the time zones and periods of both files",
        )
    target = targets_from_signals(times, signals.index.as_unit("ns").asi8, signals.to_numpy(), args.latency)
    return target, {"signals": str(args.signals), "rows": len(signals)}


def _news_pairs(args, bars: pd.DataFrame, ttl_min: float):
    """The news in range with their analyses (the server's analyzer), the source record and a note or None."""
    all_items = load_all_news(args.news, args.news_format, args.news_tz)
    items = news_in_range(all_items, bars, ttl_min)
    analyzer, note = news_analyzer(all_items, args.model, args.backend, None if args.no_cache else args.cache)
    if note:
        warnings.warn(note, stacklevel=1)
    try:
        pairs, info = analyse(items, analyzer, progress=not args.no_progress)
    finally:
        if analyzer.cache is not None:
            analyzer.cache.close()
    source = {"news": [str(p) for p in (args.news or [DEMO_NEWS])], "items_in_range": len(items), **info}
    return pairs, source, note, all_items


def _news_targets(symbol, pairs, times, policy, latency) -> np.ndarray:
    """Targets per bar from the analysed news (the policy the server uses, acted on after the latency)."""
    effects = effects_frame(symbol, pairs, policy)
    if effects.empty:
        warnings.warn(
            f"none of the {len(pairs)} analysed news items moves {symbol} (wrong --symbol, or all neutral)",
            stacklevel=1,
        )
    return targets_from_effects(times, effects, policy, latency)


def _print_results(symbol, bars, spread_note, stats: dict[str, pd.Series], study: EventStudy | None) -> None:
    print(f"{symbol}: {len(bars)} bars {bars.index[0]} .. {bars.index[-1]}; spread from {spread_note}")
    print(comparison_table(stats).map(_fmt).to_string())
    if study is not None and not study.table.empty:
        print("\nEvent study (move in the predicted direction, bp; model vs shuffled labels; one-sided")
        print("permutation p-values of the hit rate and of the mean directed move):")
        print(headline_summary(study).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        first = list(study.horizons)[:2]
        for by in ("impact", "surprise"):
            table = breakdown(study, by, first)
            if not table.empty:
                print(f"\nby {by}, {' and '.join(f'{h} min' for h in first)}:")
                print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    sys.exit(run_main(main))
