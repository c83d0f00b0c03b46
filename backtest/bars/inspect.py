"""Check a bars file before a backtest: ``python -m backtest.bars inspect FILE [--format ...] [--tz TZ]``.

Prints the detected format, the source clock and how it was chosen, the timeframe, the row count, the first and last bar
in UTC and every problem found (repairs with their lines, gaps, zero volume). A file that cannot be used exits with
status 3 and one line naming the file, the line and what to do.

    python -m backtest.bars inspect backtest/demo/EURUSD_H1_2017.csv
    python -m backtest.bars inspect EURUSD_H1.csv --tz America/New_York+7
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from backtest.bars.loading import DEFAULT_TZ, FORMATS, BarDataWarning, load_bars
from bridge.cli import HelpFormatter
from bridge.errors import run_main


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backtest.bars",
        description="Inspect price-bar files before a backtest.",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="print format, rows, first/last time in UTC and problems found",
        formatter_class=HelpFormatter,
        description="Load a bars file the way the backtester does and report what was found.",
    )
    inspect.add_argument("file", help="bars file: MT5 export, HistData ASCII, Dukascopy-style or OHLC CSV")
    inspect.add_argument(
        "--format", choices=FORMATS, default="auto", help="file layout; auto sniffs the first lines"
    )
    inspect.add_argument(
        "--tz",
        default=None,
        help="clock of the file: IANA name, fixed offset (UTC+4) or America/New_York+7 (MT5 'New York close' "
        "server time). Default per format: "
        + ", ".join(f"{k}={v or 'UTC with a warning'}" for k, v in DEFAULT_TZ.items()),
    )
    inspect.add_argument(
        "--symbol", default=None, help="instrument; guessed from the file name when not given"
    )
    inspect.add_argument(
        "--date-format", default=None, help="strptime format of the time column if sniffing cannot tell"
    )
    inspect.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser


def inspect_file(
    path: str, format: str = "auto", tz: str | None = None, symbol: str | None = None, date_format=None
):
    """Load ``path`` and return a summary dict (what ``inspect`` prints); raises ``DataError`` for unusable files."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BarDataWarning)
        df = load_bars(path, format=format, tz=tz, symbol=symbol, date_format=date_format)
    problems = list(df.attrs["issues"])
    # Warnings raised outside bars_from_arrays (an ambiguous date order) are not in attrs yet.
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, BarDataWarning) and not any(
            text.endswith(p) or p == text for p in problems
        ):
            problems.append(text)
    return {
        "file": str(path),
        "format": df.attrs["format"] + (" (detected)" if format == "auto" else ""),
        "tz": df.attrs["tz"] + ("" if tz or "assumed" in df.attrs["tz"] else " (default for the format)"),
        "symbol": df.attrs["symbol"],
        "timeframe": df.attrs["timeframe"],
        "rows": len(df),
        "first_utc": str(df.index[0]),
        "last_utc": str(df.index[-1]),
        "columns": list(df.columns),
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m backtest.bars``."""
    args = _build_parser().parse_args(argv)
    summary = inspect_file(args.file, args.format, args.tz, args.symbol, args.date_format)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    labels = {
        "file": "file",
        "format": "format",
        "tz": "source clock",
        "symbol": "symbol",
        "timeframe": "timeframe",
        "rows": "rows",
        "first_utc": "first bar (UTC)",
        "last_utc": "last bar (UTC)",
    }
    for key, label in labels.items():
        print(f"{label:<16} {summary[key]}")
    print(f"{'columns':<16} {' '.join(summary['columns'])}")
    if summary["problems"]:
        print(f"problems ({len(summary['problems'])}):")
        for p in summary["problems"]:
            print(f"  - {p}")
    else:
        print(f"{'problems':<16} none")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
