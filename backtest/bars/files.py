"""Several bars files as one series: monthly HistData or Dukascopy downloads given as repeated ``--bars``.

Each file is read by ``load_bars`` (its own format sniffing, clock and checks), then the frames are joined in time
order. Where files overlap, the bars of the file given first win and the overlap is reported; where a file starts
well after the previous one ends (a missing month), the gap is reported. Both end up in ``attrs["issues"]`` and as a
``BarDataWarning``, so a run never silently drops or skips data.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path

import pandas as pd

from backtest.bars.loading import BarDataWarning, infer_timeframe, load_bars

# Missing time between two files worth a word: more than a weekend (Friday close to Sunday open is ~49 h).
GAP_REPORT = pd.Timedelta(hours=72)


def join_bars(frames: Sequence[pd.DataFrame], names: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Join UTC-indexed bar frames into one sorted, unique series; returns it and the overlap/gap notes.

    Frames are ordered by their first bar; on a time present in several frames the frame listed first in ``frames``
    wins (the caller's order is its priority).
    """
    if not frames:
        raise ValueError("no bars frames to join")
    order = sorted(range(len(frames)), key=lambda i: frames[i].index[0])
    notes: list[str] = []
    for a, b in zip(order, order[1:], strict=False):
        fa, fb = frames[a], frames[b]
        if fb.index[0] <= fa.index[-1]:
            both = fb.index[(fb.index >= fa.index[0]) & (fb.index <= fa.index[-1])]
            notes.append(
                f"{names[b]} overlaps {names[a]}: {len(both)} bars from {fb.index[0]} to "
                f"{min(fa.index[-1], fb.index[-1])}; keeping those of {names[min(a, b)]}"
            )
        elif fb.index[0] - fa.index[-1] > GAP_REPORT:
            notes.append(
                f"gap of {fb.index[0] - fa.index[-1]} between {names[a]} (ends {fa.index[-1]}) and "
                f"{names[b]} (starts {fb.index[0]})"
            )
    joined = pd.concat(frames)  # in the caller's order, so keep="first" keeps the earlier-given file's bar
    joined = joined[~joined.index.duplicated(keep="first")].sort_index(kind="stable")
    return joined, notes


def load_bars_files(
    paths: Sequence[str | Path],
    format: str = "auto",
    tz: str | tzinfo | None = None,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Load and join ``paths`` (see the module docstring). One path is ``load_bars`` itself."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        return load_bars(paths[0], format=format, tz=tz, symbol=symbol)
    frames = [load_bars(p, format=format, tz=tz, symbol=symbol) for p in paths]
    joined, notes = join_bars(frames, [p.name for p in paths])
    for note in notes:
        warnings.warn(note, BarDataWarning, stacklevel=2)
    first = frames[0].attrs
    joined.attrs = {
        **first,
        "source": [str(p) for p in paths],
        "timeframe": infer_timeframe(joined.index),
        "repairs": [r for f in frames for r in f.attrs.get("repairs", [])],
        "issues": [i for f in frames for i in f.attrs.get("issues", [])] + notes,
        "joined": notes,
    }
    return joined
