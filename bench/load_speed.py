"""Bars loading speed: ``backtest.bars.load_bars`` against a bare ``pandas.read_csv`` of the same files, same run.

    python bench/load_speed.py                       # 15 repeats, ../shared/data, bench/results/load_speed.json
    python bench/load_speed.py --repeats 30 --data /path/to/shared/data --out /tmp/load_speed.json

Files: the six HistData M1 files of 2017 (about 186k rows, America/New_York clock) and EURUSD60.csv (65k H1 rows, UTC+4).
``load_bars`` does everything a backtest needs: format sniffing, typed parsing, time parsing, zone conversion to UTC and
the validation checks. The baseline is what a user would write without it, ``pd.read_csv(path, sep=...)`` with pandas'
own type inference and no time parsing. Each repeat times both on every file, alternating which goes first so drift
in machine load hits both; the table shows medians over repeats. Goal: at most 1.5x the bare read in total.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backtest.bars.loading import BarDataWarning, load_bars  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.errors import UserError, run_main  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402

GOAL = 1.5  # at most this many times the bare read
# (path under the data folder, source zone, separator and header for the bare read)
FILES = [(f"bars/DAT_ASCII_EURUSD_M1_2017{m:02d}.csv", "America/New_York", ";", None) for m in range(1, 7)]
FILES.append(("bars/EURUSD60.csv", "UTC+4", ",", 0))


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(data: Path, repeats: int, progress: bool = True) -> dict:
    """Time both loaders on every file ``repeats`` times; return per-file and total medians and ratios."""
    paths = [(data / rel, tz, sep, header) for rel, tz, sep, header in FILES]
    missing = [str(p) for p, *_ in paths if not p.is_file()]
    if missing:
        raise UserError(
            f"benchmark data not found: {', '.join(missing)}", hint="pass --data with the shared data folder"
        )
    rows = {}
    for path, tz, _, _ in paths:  # warm-up, and the row counts for the table
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BarDataWarning)
            rows[path.name] = len(load_bars(path, tz=tz))
    ours = {p.name: [] for p, *_ in paths}
    bare = {p.name: [] for p, *_ in paths}
    for r in tqdm(range(repeats), desc="repeats", disable=not progress):
        gc.collect()
        for path, tz, sep, header in paths:

            def load(path=path, tz=tz):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", BarDataWarning)
                    load_bars(path, tz=tz)

            def read(path=path, sep=sep, header=header):
                pd.read_csv(path, sep=sep, header=header)

            first, second = (load, read) if r % 2 == 0 else (read, load)
            t1, t2 = _time(first), _time(second)
            ours[path.name].append(t1 if first is load else t2)
            bare[path.name].append(t2 if first is load else t1)
    per_file = []
    for path, *_ in paths:
        o, b = statistics.median(ours[path.name]), statistics.median(bare[path.name])
        per_file.append(
            {"file": path.name, "rows": rows[path.name], "load_bars_s": o, "read_csv_s": b, "ratio": o / b}
        )
    totals_ours = np.sum([ours[p.name] for p, *_ in paths], axis=0)
    totals_bare = np.sum([bare[p.name] for p, *_ in paths], axis=0)
    total = {
        "file": "all",
        "rows": sum(rows.values()),
        "load_bars_s": float(np.median(totals_ours)),
        "read_csv_s": float(np.median(totals_bare)),
    }
    total["ratio"] = total["load_bars_s"] / total["read_csv_s"]
    histdata = [f for f in per_file if f["file"].startswith("DAT_ASCII")]
    return {
        "per_file": per_file,
        "histdata_m1_total": {
            "rows": sum(f["rows"] for f in histdata),
            "load_bars_s": sum(f["load_bars_s"] for f in histdata),
            "read_csv_s": sum(f["read_csv_s"] for f in histdata),
        },
        "total": total,
        "goal_ratio": GOAL,
        "meets_goal": total["ratio"] <= GOAL,
    }


def _table(result: dict) -> str:
    lines = [f"{'file':<34} {'rows':>8} {'load_bars ms':>13} {'read_csv ms':>12} {'ratio':>6}"]
    for f in [*result["per_file"], result["total"]]:
        lines.append(
            f"{f['file']:<34} {f['rows']:>8} {f['load_bars_s'] * 1e3:>13.1f} {f['read_csv_s'] * 1e3:>12.1f} {f['ratio']:>6.2f}"
        )
    verdict = "meets" if result["meets_goal"] else "MISSES"
    lines.append(
        f"goal: load_bars at most {result['goal_ratio']}x the bare read in total -> {verdict} the goal"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON record."""
    parser = argparse.ArgumentParser(
        prog="python bench/load_speed.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared data folder"
    )
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per file (median reported)")
    parser.add_argument(
        "--out", type=Path, default=default_results_dir("load_speed") / "load_speed.json", help="JSON record"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    result = run(args.data, args.repeats, progress=not args.no_progress)
    print(_table(result))
    record = {
        "benchmark": "bars load speed",
        "config": {
            "repeats": args.repeats,
            "files": [rel for rel, *_ in FILES],
            "zones": [tz for _, tz, *_ in FILES],
        },
        "versions": library_versions(),
        "created_utc": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
