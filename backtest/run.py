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
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.bars import demo_bars_path, guess_symbol, load_bars, resample_bars
from backtest.cache import AnalysisCache, analyze_cached, default_cache_dir
from backtest.engine import (
    DEFAULT_SPREAD_POINTS,
    EngineConfig,
    Result,
    bar_open_ns,
    bar_spread,
    point_size,
    run_backtest,
    targets_from_effects,
    targets_from_signals,
)
from backtest.event_study import DEFAULT_HORIZONS, EventStudy, event_study, headline_summary
from backtest.signals import load_signals
from backtest.stats import compute_stats
from bridge.errors import DataError, ModelError, UserError, run_main
from bridge.news import load_news
from bridge.policy import add_policy_arguments, effects_frame, policy_from_args
from bridge.types import Analysis, NewsItem

DEMO_NEWS = Path(__file__).resolve().parent / "demo" / "news_2017.csv"
DEFAULT_LATENCY_S = 5.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m backtest.run",
        description="Backtest news-driven targets on price bars (no look-ahead, real costs).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--symbol", default="EURUSD", help="symbol traded; its currencies select the news that matter"
    )
    d.add_argument(
        "--bars", type=Path, default=None, help="bars file (default: the bundled EURUSD H1 2017 demo)"
    )
    d.add_argument("--bars-format", default="auto", help="auto, mt5, histdata, dukascopy or csv")
    d.add_argument(
        "--bars-tz", default=None, help="bars' clock (IANA name or UTC+4); default: the format's own"
    )
    d.add_argument(
        "--news",
        type=Path,
        action="append",
        default=None,
        help="news file, repeatable (headlines and calendar together); default: the bundled 2017 demo news",
    )
    d.add_argument(
        "--news-format", action="append", default=None, help="per --news (or once for all); default auto"
    )
    d.add_argument(
        "--news-tz", action="append", default=None, help="per --news (or once for all); default per format"
    )
    d.add_argument(
        "--signals", type=Path, default=None, help="CSV of time_utc,target to backtest instead of news"
    )
    d.add_argument("--from", dest="start", default=None, help="first bar time (UTC), e.g. 2017-03-01")
    d.add_argument("--to", dest="end", default=None, help="last bar time (UTC)")
    d.add_argument("--timeframe", default=None, help="resample the bars first, e.g. H4, D1")

    m = p.add_argument_group("model")
    m.add_argument(
        "--model",
        default=None,
        help="fine-tuned model directory (default: the shipped model); 'none' = surprise rule only",
    )
    m.add_argument("--backend", default="auto", help="auto, onnx or torch")
    m.add_argument("--cache", type=Path, default=default_cache_dir(), help="analysis cache directory")
    m.add_argument("--no-cache", action="store_true", help="analyse every item again and store nothing")

    add_policy_arguments(p.add_argument_group("policy (same names as python -m bridge.serve)"))

    x = p.add_argument_group("execution and costs")
    x.add_argument(
        "--latency", type=float, default=DEFAULT_LATENCY_S, help="seconds from news time to acting on it"
    )
    x.add_argument(
        "--spread",
        type=float,
        default=None,
        help=f"spread in points; default: the bars' Spread column, else {DEFAULT_SPREAD_POINTS:g} points",
    )
    x.add_argument(
        "--slippage", type=float, default=0.0, help="points of adverse slippage on every market fill"
    )
    x.add_argument("--commission", type=float, default=0.0, help="account currency per lot per side")
    x.add_argument("--cash", type=float, default=10_000.0, help="starting equity in the quote currency")
    size = x.add_mutually_exclusive_group()
    size.add_argument(
        "--lots", type=float, default=0.1, help="fixed size in lots (100,000 units of the base)"
    )
    size.add_argument(
        "--risk", type=float, default=None, help="size each trade to lose this equity fraction at --sl"
    )

    o = p.add_argument_group("output")
    o.add_argument(
        "--out", type=Path, default=None, help="write stats.json, trades.csv, event_study.csv, report.html"
    )
    o.add_argument(
        "--horizons", default=",".join(map(str, DEFAULT_HORIZONS)), help="event-study horizons, minutes"
    )
    o.add_argument("--seed", type=int, default=0, help="seed of the shuffled baselines")
    o.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _per_file(values: list[str] | None, n: int, what: str) -> list[str | None]:
    if not values:
        return [None] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise UserError(
            f"{what} given {len(values)} times for {n} --news files", hint="give it once or once per file"
        )
    return list(values)


def _letters(symbol: str) -> str:
    return "".join(ch for ch in symbol.upper() if ch.isalpha())[:6]


def load_bars_for_run(args) -> pd.DataFrame:
    """Bars from --bars (or the demo), cut to --from/--to and resampled to --timeframe."""
    path = args.bars or demo_bars_path()
    named = guess_symbol(path)
    if named and _letters(named) != _letters(args.symbol):
        warnings.warn(
            f"{path}: the file name suggests {named} but --symbol is {args.symbol}; the news is filtered for "
            f"{args.symbol}'s currencies",
            stacklevel=2,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        bars = load_bars(path, format=args.bars_format, tz=args.bars_tz, symbol=args.symbol)
    try:
        if args.start:
            bars = bars[bars.index >= pd.Timestamp(args.start, tz="UTC")]
        if args.end:
            bars = bars[bars.index <= pd.Timestamp(args.end, tz="UTC")]
    except ValueError as exc:
        raise UserError(f"cannot read --from/--to: {exc}", hint="use ISO dates such as 2017-03-01") from None
    if args.timeframe:
        bars = resample_bars(bars, args.timeframe)
    if len(bars) < 2:
        raise DataError(
            f"only {len(bars)} bars left after --from/--to",
            path=path,
            hint="widen the date range or check the file",
        )
    return bars


def load_all_news(args) -> list[NewsItem]:
    """Every item of every --news file (or the demo news), sorted by time and de-duplicated by id."""
    paths = args.news or [DEMO_NEWS]
    formats = _per_file(args.news_format, len(paths), "--news-format")
    zones = _per_file(args.news_tz, len(paths), "--news-tz")
    items: dict[str, NewsItem] = {}
    for path, fmt, tz in zip(paths, formats, zones, strict=True):
        loaded = load_news(path, format=fmt or "auto", tz=tz)
        if not loaded:
            warnings.warn(f"{path}: no news items in this file", stacklevel=2)
        for it in loaded:
            items.setdefault(it.id, it)
    out = sorted(items.values(), key=lambda it: (it.time, it.id))
    if not out:
        raise DataError(
            "no news items in the given files", path=paths[0], hint="check the files and --news-format"
        )
    return out


def news_in_range(items: list[NewsItem], bars: pd.DataFrame, ttl_min: float) -> list[NewsItem]:
    """Items that can act on the bars: from ``ttl`` before the first bar to the last bar; error if none overlap."""
    lo = bars.index[0] - pd.Timedelta(minutes=ttl_min)
    hi = bars.index[-1]
    kept = [it for it in items if lo <= it.time <= hi]
    if not kept:
        raise DataError(
            f"the news ({items[0].time:%Y-%m-%d} .. {items[-1].time:%Y-%m-%d}) and the bars "
            f"({bars.index[0]:%Y-%m-%d} .. {bars.index[-1]:%Y-%m-%d}) do not overlap in time",
            hint="check --bars-tz/--news-tz and that both files cover the same period, or use --from/--to",
        )
    return kept


def _analyzers(args, history: list[NewsItem], progress_notes: list[str]):
    """(calendar analyzer, headline analyzer or None). A missing shipped model falls back to the surprise rule only."""
    from bridge.surprise import SurpriseAnalyzer

    # Typical surprise sizes are learnt only from items before the backtest, so no label depends on the future.
    calendar = SurpriseAnalyzer(history=[it for it in history if it.is_calendar])
    # args.model is None for the shipped model; only the word "none" means no model.
    if args.model is not None and args.model.lower() == "none":
        note = "--model none: calendar items are read by the surprise rule and other news is not traded"
        progress_notes.append(note)
        return calendar, None
    try:
        from bridge.lm_analyzer import load_analyzer

        lm = load_analyzer(args.model, backend=args.backend)
    except ModelError as exc:
        if args.model is not None:
            raise
        note = (
            f"the shipped language model is missing ({exc}); calendar items are read by the surprise rule and "
            "headlines without actual/forecast values are not traded"
        )
        warnings.warn(note, stacklevel=2)
        progress_notes.append(note)
        lm = None
    return calendar, lm


def analyse(
    items: list[NewsItem], calendar, lm, cache: AnalysisCache | None, progress: bool
) -> tuple[list[tuple[NewsItem, Analysis]], dict]:
    """Every item with its analysis (calendar items by the rule, the rest by the model); and counts for the record."""
    cal = [it for it in items if it.is_calendar]
    rest = [it for it in items if not it.is_calendar]
    pairs: list[tuple[NewsItem, Analysis]] = []
    info = {"calendar_items": len(cal), "headline_items": len(rest), "computed": 0, "fallbacks": 0}
    if cal:
        got, n = analyze_cached(calendar, cal, cache, progress=progress)
        pairs += list(zip(cal, got, strict=True))
        info["computed"] += n
    if rest and lm is not None:
        got, n = analyze_cached(lm, rest, cache, progress=progress)
        pairs += list(zip(rest, got, strict=True))
        info["computed"] += n
    elif rest:
        info["headlines_not_analysed"] = len(rest)
    info["fallbacks"] = sum(1 for _, a in pairs if a.fallback)
    pairs.sort(key=lambda p: (p[0].time, p[0].id))
    return pairs, info


def baselines(bars: pd.DataFrame, target: np.ndarray, config: EngineConfig, seed: int) -> dict[str, Result]:
    """Buy & hold with the same size and costs (no stops), and a no-news baseline: the same targets shifted in time by a random
    offset, which keeps the number, length and direction of trades but breaks their link with the news."""
    n = len(bars)
    hold = np.ones(n, dtype=np.int8)
    rng = np.random.default_rng(seed)
    shift = int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)))
    return {
        "Buy & Hold": run_backtest(bars, hold, replace(config, sl=0.0, tp=0.0, risk=None)),
        "No-news (shifted)": run_backtest(bars, np.roll(target, shift), config),
    }


def comparison_table(stats: dict[str, pd.Series]) -> pd.DataFrame:
    """Public statistics side by side, one column per run."""
    cols = {}
    for name, s in stats.items():
        cols[name] = s[[k for k in s.index if not str(k).startswith("_")]]
    return pd.DataFrame(cols)


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return "" if not np.isfinite(v) else f"{v:,.4f}"
    return str(v)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        point = point_size(args.symbol)
    except ValueError as exc:
        raise UserError(str(exc), hint="pass --symbol with the pair the bars are for") from None
    try:
        policy = policy_from_args(args)
        config = EngineConfig(
            cash=args.cash,
            lots=args.lots,
            risk=args.risk,
            spread=None if args.spread is None else args.spread * point,
            slippage=args.slippage * point,
            commission=args.commission,
            sl=args.sl,
            tp=args.tp,
            point=point,
        )
        horizons = [int(h) for h in str(args.horizons).split(",") if h.strip()]
    except ValueError as exc:
        raise UserError(str(exc)) from None

    progress = not args.quiet
    notes: list[str] = []
    bars = load_bars_for_run(args)
    times = bar_open_ns(bars)
    analysis_info: dict = {}
    pairs: list[tuple[NewsItem, Analysis]] = []
    if args.signals is not None:
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
        target = targets_from_signals(
            times, signals.index.as_unit("ns").asi8, signals.to_numpy(), args.latency
        )
        source = {"signals": str(args.signals), "rows": len(signals)}
    else:
        all_items = load_all_news(args)
        items = news_in_range(all_items, bars, policy.ttl)
        history = [it for it in all_items if it.time < bars.index[0]]
        calendar, lm = _analyzers(args, history, notes)
        cache = None if args.no_cache else AnalysisCache(args.cache)
        try:
            pairs, analysis_info = analyse(items, calendar, lm, cache, progress)
        finally:
            if cache is not None:
                cache.close()
        effects = effects_frame(args.symbol, pairs, policy)
        if effects.empty:
            warnings.warn(
                f"none of the {len(items)} news items moves {args.symbol} (wrong --symbol, or all neutral)",
                stacklevel=1,
            )
        target = targets_from_effects(times, effects, policy, args.latency)
        source = {
            "news": [str(p) for p in (args.news or [DEMO_NEWS])],
            "items_in_range": len(items),
            "items_moving_symbol": len(effects),
            **analysis_info,
        }

    result = run_backtest(bars, target, config)
    _, spread_note = bar_spread(bars, config)
    stats = compute_stats(result.trades, result.equity, bars)
    base = baselines(bars, result.target.to_numpy(), config, args.seed)
    base_stats = {k: compute_stats(r.trades, r.equity, bars) for k, r in base.items()}
    table = comparison_table({"Strategy": stats, **base_stats})

    study: EventStudy | None = None
    if pairs:
        study = event_study(bars, pairs, args.symbol, horizons, policy, seed=args.seed)

    print(f"{args.symbol}: {len(bars)} bars {bars.index[0]} .. {bars.index[-1]}; spread from {spread_note}")
    print(table.map(_fmt).to_string())
    if study is not None and not study.table.empty:
        print("\nEvent study (move in the predicted direction, bp; model vs shuffled labels):")
        print(headline_summary(study).to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    if args.out is not None:
        from backtest.report import write_report

        run_config = {
            "symbol": args.symbol,
            "bars": str(args.bars or demo_bars_path()),
            "bars_format": args.bars_format,
            "bars_tz": args.bars_tz,
            "from": args.start,
            "to": args.end,
            "timeframe": args.timeframe,
            "model": args.model,
            "latency_s": args.latency,
            "spread_source": spread_note,
            "policy": policy.to_dict(),
            "engine": config.to_dict(),
            "horizons_min": horizons,
            "seed": args.seed,
            "source": source,
            "argv": list(argv) if argv is not None else sys.argv[1:],
        }
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
        )
        print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
