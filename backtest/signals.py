"""Signals made elsewhere: a CSV of ``time_utc,target`` rows, backtested without running a model.

``target`` is the wanted position from that time on: -1 short, 0 flat, +1 long (any number is read by its sign; words
``long``/``short``/``flat``/``buy``/``sell`` are accepted too). ``time_utc`` is UTC unless the text carries an offset
or ``tz=`` says otherwise. Rows must be in time order: an out-of-order row makes the intended position ambiguous, so
it is an error naming its line rather than something silently re-sorted.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.errors import DataError
from bridge.news.tz import localize_to_utc
from bridge.textfile import read_text_file

_WORDS = {"long": 1, "buy": 1, "short": -1, "sell": -1, "flat": 0, "none": 0, "": None}
TIME_COLUMNS = ("time_utc", "time", "timestamp", "datetime", "date")
TARGET_COLUMNS = ("target", "direction", "signal", "position")


def load_signals(path: str | Path, tz=None) -> pd.Series:
    """The signals in ``path`` as a Series of int8 targets (-1/0/+1) indexed by UTC time, in file order.

    Raises ``DataError`` naming the file and line for a missing column, an unreadable time or target, an empty file,
    or rows out of time order.
    """
    path = Path(path)
    text, _ = read_text_file(path, "signals file")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows = [
        r for r in rows if r and not (len(r) == 1 and not r[0].strip()) and not r[0].lstrip().startswith("#")
    ]
    if not rows:
        raise DataError("signals file is empty", path=path, hint="expected a header time_utc,target and rows")
    header = [h.strip().lower() for h in rows[0]]
    tcol = next((header.index(c) for c in TIME_COLUMNS if c in header), None)
    vcol = next((header.index(c) for c in TARGET_COLUMNS if c in header), None)
    if tcol is None or vcol is None:
        raise DataError(
            f"signals file needs a time and a target column, found {rows[0]}",
            path=path,
            line=1,
            hint="write the header as time_utc,target",
        )
    body = rows[1:]
    if not body:
        raise DataError("signals file has a header but no rows", path=path, line=1)
    times, values = [], []
    for n, r in enumerate(body, start=2):
        if len(r) <= max(tcol, vcol):
            raise DataError(f"row has {len(r)} fields, expected {len(header)}", path=path, line=n)
        ts = pd.to_datetime(r[tcol].strip(), errors="coerce")
        if pd.isna(ts):
            raise DataError(
                f"cannot read time {r[tcol]!r}",
                path=path,
                line=n,
                hint="use ISO 8601, e.g. 2017-01-06 13:30:00",
            )
        times.append(ts)
        values.append(_target_value(r[vcol], path, n))
    idx = pd.DatetimeIndex([t.tz_convert("UTC") if t.tzinfo else t for t in times])
    if idx.tz is None:
        idx = localize_to_utc(idx, tz)
    order = idx.asi8
    back = np.flatnonzero(np.diff(order) < 0)
    if len(back):
        line = int(back[0]) + 3  # +1 header, +1 one-based, +1 the later row
        raise DataError(
            f"signal at {idx[back[0] + 1]} is earlier than the row before it ({idx[back[0]]})",
            path=path,
            line=line,
            hint="sort the file by time; signals must be in the order they were made",
        )
    return pd.Series(np.asarray(values, dtype=np.int8), index=idx.as_unit("ns"), name="target")


def _target_value(text: str, path: Path, line: int) -> int:
    t = text.strip().lower()
    if t in _WORDS:
        v = _WORDS[t]
        if v is None:
            raise DataError("empty target", path=path, line=line, hint="use -1, 0 or 1")
        return v
    try:
        x = float(t)
    except ValueError:
        raise DataError(f"cannot read target {text!r}", path=path, line=line, hint="use -1, 0 or 1") from None
    if not np.isfinite(x):
        raise DataError(
            f"target {text!r} is not a finite number", path=path, line=line, hint="use -1, 0 or 1"
        )
    return int(np.sign(x))
