"""The backtest as a library: load bars and news, analyse, turn analyses into targets, run, compare with baselines.

``backtest.run`` and ``backtest.sweep`` are thin command lines over these functions; the options they share are
declared once here (``add_news_arguments``, ``add_model_arguments``, ``add_cost_arguments``). The analyzer comes from
``bridge.analysis.build_analyzer``, the same as the live server's, so a news item gets the same analysis in both.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.bars.files import load_bars_files
from backtest.bars.loading import demo_bars_path, resample_bars
from backtest.cache import AnalysisCache, default_cache_dir
from backtest.engine import DEFAULT_SPREAD_POINTS, EngineConfig, Result, run_backtest
from bridge.analysis import NOT_ANALYSED, NewsAnalyzer, add_analysis_arguments, build_analyzer
from bridge.cli import finite_float, non_negative_float
from bridge.errors import DataError, UserError
from bridge.news.loading import load_news
from bridge.symbols import point_size, split_symbol, symbol_in_name
from bridge.types import Analysis, NewsItem

DEMO_NEWS = Path(__file__).resolve().parent / "demo" / "news_2017.csv"
DEFAULT_LATENCY_S = 5.0
DEFAULT_CASH = 10_000.0
DEFAULT_LOTS = 0.1
ANALYSIS_BATCH = 32  # news items per analyzer call (a progress step)


# -- options shared by the command lines -----------------------------------------------------------------------


def add_news_arguments(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--news",
        type=Path,
        action="append",
        default=None,
        help="news file, repeatable (headlines and calendar together); default: the bundled 2017 demo news",
    )
    group.add_argument(
        "--news-format", action="append", default=None, help="per --news (or once for all); default auto"
    )
    group.add_argument(
        "--news-tz", action="append", default=None, help="per --news (or once for all); default per format"
    )


def add_model_arguments(group: argparse._ActionsContainer) -> None:
    add_analysis_arguments(group)
    group.add_argument("--cache", type=Path, default=default_cache_dir(), help="analysis cache directory")
    group.add_argument("--no-cache", action="store_true", help="analyse every item again and store nothing")


def add_progress_argument(group: argparse._ActionsContainer) -> None:
    """``--no-progress``, the one progress switch of every command (``--quiet`` is still read, not shown)."""
    group.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bars")
    group.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)


def add_cost_arguments(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--latency",
        type=non_negative_float,
        default=DEFAULT_LATENCY_S,
        help="seconds from news time to acting on it",
    )
    group.add_argument(
        "--spread",
        type=non_negative_float,
        default=None,
        help=f"spread in points; default: the bars' Spread column, else {DEFAULT_SPREAD_POINTS:g} points",
    )
    group.add_argument(
        "--slippage",
        type=non_negative_float,
        default=0.0,
        help="points of adverse slippage on every market fill",
    )
    group.add_argument(
        "--commission", type=non_negative_float, default=0.0, help="account currency per lot per side"
    )
    group.add_argument(
        "--cash", type=finite_float, default=DEFAULT_CASH, help="starting equity in the quote currency"
    )


# News-time cost defaults. FxPro's published minute-by-minute measurement of a US payrolls release (Raw+ feed,
# https://fxptrade-ng.com/news-spreads, "Spread During News") shows EURUSD going from 0.2 to 3.7 pips (x18.5) for a
# few seconds, the all-in cost x5 at the peak, back under 1.5x the quiet spread after 94 s, with quote gaps up to
# 1.7 s where slippage happens. A fill 5 s to a minute after a release sees part of that: we default to 3x the
# spread over one minute before to three minutes after, and half a pip (5 points) of extra slippage.
NEWS_SPREAD_MULT = 3.0
NEWS_SLIPPAGE_POINTS = 5.0
NEWS_WINDOW_S = (60.0, 180.0)
NEWS_COST_SOURCE = "https://fxptrade-ng.com/news-spreads (FxPro Raw+, spread during news)"


def add_news_cost_arguments(group: argparse._ActionsContainer) -> None:
    """Options of the news-time cost model and swap (``backtest.engine``'s module docstring)."""
    group.add_argument(
        "--news-spread-mult",
        type=non_negative_float,
        default=NEWS_SPREAD_MULT,
        help="spread multiplier around high-impact releases of the symbol's currencies (broker measurement: "
        "x18 peak for seconds, normal after ~90 s; " + NEWS_COST_SOURCE + ")",
    )
    group.add_argument(
        "--news-slippage",
        type=non_negative_float,
        default=NEWS_SLIPPAGE_POINTS,
        help="extra points of slippage on market fills in that window",
    )
    group.add_argument(
        "--news-window",
        type=non_negative_float,
        nargs=2,
        metavar=("BEFORE_S", "AFTER_S"),
        default=list(NEWS_WINDOW_S),
        help="the window, seconds before and after each release",
    )
    group.add_argument(
        "--no-news-costs", action="store_true", help="no news-time spread or slippage (the plain cost model)"
    )
    group.add_argument(
        "--swap-long",
        type=finite_float,
        default=0.0,
        help="points per lot per night held long, signed as the broker quotes it (MT5: symbol specification)",
    )
    group.add_argument(
        "--swap-short",
        type=finite_float,
        default=0.0,
        help="points per lot per night held short (Wednesday x3)",
    )


def engine_config(
    symbol: str,
    *,
    cash: float = DEFAULT_CASH,
    lots: float = DEFAULT_LOTS,
    risk: float | None = None,
    spread_points: float | None = None,
    slippage_points: float = 0.0,
    commission: float = 0.0,
    sl: float = 0.0,
    tp: float = 0.0,
    news_spread_mult: float = 1.0,
    news_slippage_points: float = 0.0,
    news_window_s: Sequence[float] = NEWS_WINDOW_S,
    swap_long: float = 0.0,
    swap_short: float = 0.0,
) -> EngineConfig:
    """The engine's configuration for ``symbol``, with spread and slippage given in the symbol's points (news-time
    costs off unless given)."""
    point = point_size(symbol)
    return EngineConfig(
        cash=cash,
        lots=lots,
        risk=risk,
        spread=None if spread_points is None else spread_points * point,
        slippage=slippage_points * point,
        commission=commission,
        sl=sl,
        tp=tp,
        point=point,
        news_spread_mult=news_spread_mult,
        news_slippage=news_slippage_points * point,
        news_window_before_s=float(news_window_s[0]),
        news_window_after_s=float(news_window_s[1]),
        swap_long=swap_long,
        swap_short=swap_short,
    )


def news_cost_options(args: argparse.Namespace) -> dict:
    """``engine_config`` keywords from ``add_news_cost_arguments`` options."""
    off = args.no_news_costs
    return {
        "news_spread_mult": 1.0 if off else args.news_spread_mult,
        "news_slippage_points": 0.0 if off else args.news_slippage,
        "news_window_s": tuple(args.news_window),
        "swap_long": args.swap_long,
        "swap_short": args.swap_short,
    }


def prepare_output_dir(path: Path | None) -> None:
    """Create ``--out`` before any work, so a path that cannot be a folder is one line now, not after the run."""
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(
            "--out must be a folder, but it or one of its parents is a file",
            path=path,
            hint="pick another --out",
        ) from None
    except OSError as exc:
        raise UserError(
            f"cannot create --out: {exc.strerror}", path=path, hint="pick a folder you can write"
        ) from None


# -- data ------------------------------------------------------------------------------------------------------


def load_bars_for_run(
    path: Path | Sequence[Path] | None,
    symbol: str,
    *,
    format: str = "auto",
    tz: str | None = None,
    start: str | None = None,
    end: str | None = None,
    timeframe: str | None = None,
) -> pd.DataFrame:
    """Bars from ``path`` (None: the demo; several paths: joined into one series with overlaps and gaps reported, see
    ``backtest.bars.files``), cut to ``start``/``end`` (UTC) and resampled to ``timeframe``."""
    paths = [demo_bars_path()] if not path else [path] if isinstance(path, str | Path) else list(path)
    path = paths[0]
    named = symbol_in_name(path)
    if named and split_symbol(named) != split_symbol(symbol):
        warnings.warn(
            f"{path}: the file name suggests {named} but --symbol is {symbol}; the news is filtered for "
            f"{symbol}'s currencies",
            stacklevel=2,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        bars = load_bars_files(paths, format=format, tz=tz, symbol=symbol)
    try:
        if start:
            bars = bars[bars.index >= pd.Timestamp(start, tz="UTC")]
        if end:
            bars = bars[bars.index <= pd.Timestamp(end, tz="UTC")]
    except ValueError as exc:
        raise UserError(f"cannot read --from/--to: {exc}", hint="use ISO dates such as 2017-03-01") from None
    if timeframe:
        bars = resample_bars(bars, timeframe)
    if len(bars) < 2:
        raise DataError(
            f"only {len(bars)} bars left after --from/--to",
            path=path,
            hint="widen the date range or check the file",
        )
    return bars


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


def load_all_news(
    paths: list[Path] | None, formats: list[str] | None = None, zones: list[str] | None = None
) -> list[NewsItem]:
    """Every item of every file (None: the demo news), sorted by time and de-duplicated by id.

    ``formats`` and ``zones`` are given once for all files or once per file.
    """
    paths = paths or [DEMO_NEWS]
    formats = _per_file(formats, len(paths), "--news-format")
    zones = _per_file(zones, len(paths), "--news-tz")
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


# -- analysis --------------------------------------------------------------------------------------------------


def news_analyzer(
    all_items: list[NewsItem],
    model: str | None = None,
    backend: str = "auto",
    cache_dir: Path | None = None,
) -> tuple[NewsAnalyzer, str | None]:
    """The server's analyzer (``bridge.analysis.build_analyzer``) with every loaded item observed, as the server
    observes every item it loads; the surprise rule uses only releases strictly before each item (no look-ahead).
    ``cache_dir`` None analyses everything again. Returns the analyzer and a note for the report, or None."""
    cache = AnalysisCache(cache_dir) if cache_dir is not None else None
    return build_analyzer(model, backend, history=all_items, missing_model_ok=model is None, cache=cache)


def analyse(
    items: list[NewsItem], analyzer: NewsAnalyzer, progress: bool = True
) -> tuple[list[tuple[NewsItem, Analysis]], dict]:
    """Every item that an analyzer read, with its analysis, in time order; and counts for the record.

    Headlines that no model reads (``--model none``) are counted, not returned: they cannot move a position.
    """
    from tqdm.auto import tqdm

    computed0 = analyzer.computed
    analyses: list[Analysis] = []
    with tqdm(
        total=len(items), desc=f"analysing news ({analyzer.name})", unit="item", disable=not progress
    ) as bar:
        for start in range(0, len(items), ANALYSIS_BATCH):
            batch = items[start : start + ANALYSIS_BATCH]
            analyses += analyzer.analyze(batch)
            bar.update(len(batch))
    pairs = [(it, a) for it, a in zip(items, analyses, strict=True) if a.analyzer != NOT_ANALYSED]
    n_cal = sum(1 for it in items if it.is_calendar)
    info = {
        "calendar_items": n_cal,
        "headline_items": len(items) - n_cal,
        "computed": analyzer.computed - computed0,
        "fallbacks": sum(1 for _, a in pairs if a.fallback),
    }
    if len(pairs) < len(items):
        info["headlines_not_analysed"] = len(items) - len(pairs)
    pairs.sort(key=lambda p: (p[0].time, p[0].id))
    return pairs, info


# -- results ---------------------------------------------------------------------------------------------------


BASELINE_NOTES = {
    "Buy & Hold": "long the same lots from the first bar to the last, same costs, no stops: what holding the "
    "market earned",
    "No-news (shifted)": "the strategy's own positions moved to a random point in time: same number, length and "
    "direction of trades, no link to the news; beating it says the timing from the news adds value",
}


def baselines(
    bars: pd.DataFrame, target: np.ndarray, config: EngineConfig, seed: int, news_times=None
) -> dict[str, Result]:
    """Buy & hold with the same size and costs (no stops), and a no-news baseline: the same targets shifted in time
    by a random offset, which keeps the number, length and direction of trades but breaks their link with the news
    (``BASELINE_NOTES`` says each in one line). Both pay the same news-time costs at the same releases."""
    n = len(bars)
    hold = np.ones(n, dtype=np.int8)
    rng = np.random.default_rng(seed)
    shift = int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)))
    return {
        "Buy & Hold": run_backtest(bars, hold, replace(config, sl=0.0, tp=0.0, risk=None), news_times),
        "No-news (shifted)": run_backtest(bars, np.roll(target, shift), config, news_times),
    }


def comparison_table(stats: dict[str, pd.Series]) -> pd.DataFrame:
    """Public statistics side by side, one column per run."""
    cols = {}
    for name, s in stats.items():
        cols[name] = s[[k for k in s.index if not str(k).startswith("_")]]
    return pd.DataFrame(cols)
