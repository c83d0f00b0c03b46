"""Price bars from files: MT5 "Export bars", HistData ASCII M1, Dukascopy-style and generic OHLC CSV, to UTC.

``load_bars(path)`` sniffs the format from the first lines, reads the file with pandas' C parser (explicit dtypes), parses
the time stamps with a fixed format, converts the source clock to UTC and validates the bars with vectorised checks.

What it returns: a DataFrame indexed by a UTC ``DatetimeIndex`` named ``time`` with float64 columns ``Open High Low Close
Volume`` (and ``Spread``, in points, when the file has one), sorted and unique. ``df.attrs`` records where it came from:
``source``, ``format``, ``tz`` (the source clock), ``symbol``, ``timeframe``, ``repairs`` (what was fixed, each naming the
file line) and ``issues`` (repairs plus everything else worth a look: gaps, zero-volume bars, an assumed zone).

Source clocks when no ``tz`` is given:

====================  ======================  =================================================================
format                default zone            why
====================  ======================  =================================================================
``histdata``          ``America/New_York``    HistData documents "EST without DST", but its bars line up with
                                              other sources only on New York local time (UTC-5 / UTC-4).
``dukascopy``         ``UTC``                 Dukascopy exports are in GMT.
``mt5``, ``csv``      ``UTC``, with a warning broker server time varies by broker; pass ``tz``. Most MetaTrader
                                              brokers run ``America/New_York+7`` (UTC+2 winter, UTC+3 summer on
                                              US dates); some ``Europe/Athens`` or a fixed offset like ``UTC+4``.
====================  ======================  =================================================================

What cannot be used raises ``bridge.errors.DataError`` naming the file, the line and what to do: unparseable time or
price, empty price fields, high below low, open or close outside [low, high], non-positive prices, two rows with the same
time and different prices, a missing column. What can be repaired is repaired with a ``BarDataWarning`` naming the lines:
rows out of order are sorted, exact duplicate rows dropped, blank lines and a truncated last line (a cut download) skipped.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.errors import DataError, UserError
from bridge.news.tz import localize_to_utc, parse_tz, tz_name, utc_to_wall
from bridge.symbols import symbol_in_name

FORMATS = ("auto", "mt5", "histdata", "dukascopy", "csv")
PRICE_COLUMNS = ("Open", "High", "Low", "Close")
DEFAULT_TZ = {"histdata": "America/New_York", "dukascopy": "UTC", "mt5": None, "csv": None}

_SNIFF_BYTES = 64 * 1024  # the format is told from the first lines only
_SNIFF_LINES = 200
_MAX_LISTED = 5  # line numbers quoted in one message
_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
MAX_PRICE = 1e9  # no traded instrument is quoted above this; inf and 1e308 are broken rows
_YEARS = (1900, 2200)  # bar dates outside these years are typing errors (and overflow ns timestamps)

# Header names, normalised (lower case, letters and digits only), by role. Order is preference.
_TIME_NAMES = ("datetime", "timestamp", "gmttime", "localtime", "dateandtime", "datetimeutc", "timeutc")
_DATE_NAMES = ("date", "day")
_CLOCK_NAMES = ("time", "hour")
_PRICE_NAMES = {
    "Open": ("open", "o", "openprice", "openbid"),
    "High": ("high", "h", "highprice", "highbid"),
    "Low": ("low", "l", "lowprice", "lowbid"),
    "Close": ("close", "c", "closeprice", "closebid", "last"),
}
# Tick volume first: FX has no real volume, and MT5 writes 0 in <VOL> where the broker has none.
_VOLUME_NAMES = ("tickvol", "tickvolume", "volume", "vol", "realvolume", "realvol")
_SPREAD_NAMES = ("spread",)

_DATE_FORMATS = ("%Y.%m.%d", "%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y")
_CLOCK_FORMATS = ("%H:%M:%S.%f", "%H:%M:%S", "%H:%M", "%H%M%S")

_TIMEFRAMES = {"M": 60, "H": 3600, "D": 86_400, "W": 7 * 86_400}


class BarDataWarning(UserWarning):
    """Something in a bars file was repaired or assumed; the message names the file and line."""


@dataclass
class _Layout:
    """How to read one file, decided by the sniffer."""

    format: str
    sep: str
    encoding: str
    header: bool  # first line is a header
    names: list[str]  # column names as read_csv will see them
    time_cols: list[str]  # one (date-time) or two (date, clock) columns
    time_format: str  # strptime format of the (joined) time text, or "epoch_s"/"epoch_ms"
    roles: dict[str, str] = field(default_factory=dict)  # our column -> file column
    first_line: int = 1  # file line of the first data row


def demo_bars_path() -> Path:
    """The bundled EURUSD H1 2017 bars (gym-anytrading, MIT; Dukascopy style, UTC)."""
    return Path(__file__).resolve().parents[1] / "demo" / "EURUSD_H1_2017.csv"


def load_bars(
    path: str | Path,
    format: str = "auto",
    tz: str | tzinfo | None = None,
    symbol: str | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Load one bars file as a UTC-indexed OHLC(V) DataFrame (see the module docstring for formats and checks).

    ``format``: ``auto`` (sniff), ``mt5``, ``histdata``, ``dukascopy`` or ``csv``. ``tz``: the file's clock (IANA name,
    fixed offset or ``America/New_York+7``); ``None`` takes the format's default. ``symbol``: recorded in ``attrs``,
    guessed from the file name when not given. ``date_format``: strptime format of the time text when sniffing cannot
    tell (day/month order in ``01/02/2017``).
    """
    path = Path(path)
    if format not in FORMATS:
        raise UserError(f"unknown bars format {format!r}", hint=f"use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError("bars file not found", path=path, hint="check the path")
    layout = _sniff(path, format, date_format)
    frame = _read(path, layout)
    times, lines, values, repairs = _parse_rows(path, layout, frame)
    zone, tz_label, assumed = _source_zone(layout.format, tz)
    issues: list[str] = []
    if assumed:
        issues.append(f"{path}: {assumed}")
        warnings.warn(issues[-1], BarDataWarning, stacklevel=2)
    return bars_from_arrays(
        times,
        values,
        source=str(path),
        format=layout.format,
        tz=zone,
        tz_label=tz_label,
        symbol=symbol or symbol_in_name(path),
        lines=lines,
        repairs=repairs,
        issues=issues,
        stacklevel=3,
    )


def bars_from_arrays(
    times: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    source: str,
    format: str,
    tz: tzinfo | str | None,
    tz_label: str | None = None,
    symbol: str | None = None,
    lines: np.ndarray | None = None,
    repairs: list[str] | None = None,
    issues: list[str] | None = None,
    stacklevel: int = 2,
) -> pd.DataFrame:
    """Validate parsed bars and build the frame; shared by the file loaders and the MetaTrader5 package source.

    ``times``: naive wall-clock times in ``tz`` as int64 nanoseconds (or datetime64). ``values``: float arrays for
    ``Open High Low Close`` and optionally ``Volume`` and ``Spread``. ``lines``: the source line of each row, quoted in
    messages (row numbers from 1 when ``None``).
    """
    repairs = list(repairs or [])
    issues = list(issues or [])
    times = np.asarray(times)
    if times.dtype.kind == "M":
        times = times.astype("datetime64[ns]").astype(np.int64)
    n = len(times)
    lines = np.arange(1, n + 1, dtype=np.int64) if lines is None else np.asarray(lines, dtype=np.int64)
    if n == 0:
        raise DataError("no bars in the file", path=source, hint="check that the export is not empty")
    values = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    _check_prices(source, values, lines)

    utc = localize_to_utc(pd.DatetimeIndex(times.astype("datetime64[ns]")), tz).as_unit("ns")
    stamps = utc.asi8
    stamps, lines, values = _order_rows(source, stamps, lines, values, repairs)
    issues.extend(_volume_and_gap_notes(source, stamps, lines, values))

    index = pd.DatetimeIndex(stamps.view("datetime64[ns]"), name="time").tz_localize("UTC")
    columns = [c for c in (*PRICE_COLUMNS, "Volume", "Spread") if c in values]
    df = pd.DataFrame({c: values[c] for c in columns}, index=index)
    for message in repairs:
        warnings.warn(message, BarDataWarning, stacklevel=stacklevel)
    df.attrs.update(
        source=source,
        format=format,
        tz=tz_label or tz_name(tz),
        symbol=symbol,
        timeframe=infer_timeframe(df.index),
        repairs=repairs,
        issues=repairs + issues,
    )
    return df


# ----------------------------------------------------------------------------------------------------------- sniffing


def _read_head(path: Path) -> tuple[str, str]:
    with path.open("rb") as fh:
        raw = fh.read(_SNIFF_BYTES)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        # MetaTrader writes UTF-16 when "Unicode" is ticked in the export dialog.
        return raw.decode("utf-16", errors="ignore"), "utf-16"
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(raw) - 4:  # a multi-byte character cut by the sniff window
            return raw[: exc.start].decode("utf-8"), "utf-8"
        return raw.decode("latin-1"), "latin-1"


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _split(line: str, sep: str) -> list[str]:
    return [f.strip().strip('"') for f in line.split(sep)]


def _guess_sep(line: str) -> str:
    counts = {s: line.count(s) for s in ("\t", ";", ",", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ""


_SEP_NAMES = {"\t": "tab", ";": "';'", ",": "','", "|": "'|'", "": "none"}


def _sniff(path: Path, format: str, date_format: str | None) -> _Layout:
    head, encoding = _read_head(path)
    all_lines = head.splitlines()
    if len(head) == _SNIFF_BYTES and len(all_lines) > 1:
        all_lines = all_lines[:-1]  # the last one may be cut by the window
    if not head.strip():
        raise DataError("file is empty", path=path, hint="export the bars again; the file has no lines")
    # (file line number, text) of the first non-blank lines
    sample = [(i + 1, ln) for i, ln in enumerate(all_lines) if ln.strip()][:_SNIFF_LINES]
    first_no, first = sample[0]
    sep = _guess_sep(first)
    looks_mt5 = first.lstrip().startswith("<")
    looks_histdata = re.match(r"^\d{8} \d{6};", first) is not None
    if format == "auto":
        if looks_mt5:
            format = "mt5"
        elif looks_histdata:
            format = "histdata"
        elif (
            sep
            and _norm(_split(first, sep)[0]) in ("time", "gmttime", "localtime")
            and _is_dukascopy(sample, sep)
        ):
            format = "dukascopy"
        else:
            format = "csv"
    elif format == "mt5" and not looks_mt5:
        raise DataError(
            "not an MT5 'Export bars' file: line 1 is not a <DATE> <TIME> <OPEN> ... header",
            path=path,
            line=first_no,
            hint="use --format auto or csv",
        )
    elif format == "histdata" and not looks_histdata:
        raise DataError(
            "not a HistData generic ASCII file: line 1 should look like '20170102 020000;1.05155;...'",
            path=path,
            line=first_no,
            hint="HistData ASCII rows are ';'-separated without a header; use --format auto or csv",
        )
    if format == "histdata":
        sep = first[15]
        layout = _Layout(
            format="histdata",
            sep=sep,
            encoding=encoding,
            header=False,
            names=["time", "Open", "High", "Low", "Close", "Volume"],
            time_cols=["time"],
            time_format="%Y%m%d %H%M%S",
            roles={c: c for c in ("Open", "High", "Low", "Close", "Volume")},
            first_line=first_no,
        )
    elif format == "mt5" and sep == "":
        raise DataError(
            "the MT5 header has no separator between its columns",
            path=path,
            line=first_no,
            hint="re-export the bars",
        )
    else:
        layout = _header_layout(path, format, sep, encoding, sample, date_format)
    if layout.format == "histdata":
        _check_field_counts(path, len(layout.names), layout.sep, sample)
    if date_format:
        layout.time_format = date_format
    return layout


def _is_dukascopy(sample: list[tuple[int, str]], sep: str) -> bool:
    if len(sample) < 2:
        return False
    value = _split(sample[1][1], sep)[0]
    return re.match(r"^\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}(\.\d+)?$", value) is not None


def _header_layout(
    path: Path, format: str, sep: str, encoding: str, sample: list[tuple[int, str]], date_format: str | None
) -> _Layout:
    first_no, first = sample[0]
    if not sep:
        raise DataError(
            "cannot find a column separator (tab, ';', ',' or '|') on the first line",
            path=path,
            line=first_no,
            hint="a bars file needs time, open, high, low and close columns",
        )
    fields = _split(first, sep)
    _check_field_counts(path, len(fields), sep, sample)
    # A first line that starts with a date is data: a headerless MT4-style export 'date,time,open,high,low,close,vol'.
    headerless = _first_time_format(fields[:2]) is not None
    if headerless:
        if format in ("mt5", "dukascopy"):
            raise DataError(f"a {format} file starts with a header line", path=path, line=first_no)
        return _headerless_layout(path, sep, encoding, sample, date_format)
    names = [f.strip("<>") for f in fields]
    normed = [_norm(n) for n in names]
    if len(set(normed)) != len(normed):
        dup = next(n for n in names if normed.count(_norm(n)) > 1)
        raise DataError(f"column {dup!r} appears twice in the header", path=path, line=first_no)
    by_norm = dict(zip(normed, names, strict=True))
    roles: dict[str, str] = {}
    for role, candidates in _PRICE_NAMES.items():
        hit = next((by_norm[c] for c in candidates if c in by_norm), None)
        if hit is None:
            raise DataError(
                f"no {role} column in the header (found: {', '.join(names)})",
                path=path,
                line=first_no,
                hint=f"name the columns Time/Date, Open, High, Low, Close; check the delimiter (read as {_SEP_NAMES[sep]})",
            )
        roles[role] = hit
    for role, candidates in (("Volume", _VOLUME_NAMES), ("Spread", _SPREAD_NAMES)):
        hit = next((by_norm[c] for c in candidates if c in by_norm), None)
        if hit is not None:
            roles[role] = hit
    dt = next((by_norm[c] for c in _TIME_NAMES if c in by_norm), None)
    date = next((by_norm[c] for c in _DATE_NAMES if c in by_norm), None)
    clock = next((by_norm[c] for c in _CLOCK_NAMES if c in by_norm), None)
    if dt is not None:
        time_cols = [dt]
    elif date is not None and clock is not None:
        time_cols = [date, clock]
    elif date is not None or clock is not None:
        time_cols = [date or clock]
    else:
        raise DataError(
            f"no time column in the header (found: {', '.join(names)})",
            path=path,
            line=first_no,
            hint="name it Date, Time, Datetime or Timestamp (or Date and Time)",
        )
    positions = [names.index(c) for c in time_cols]
    texts = [
        " ".join(_split(ln, sep)[p] for p in positions)
        for _, ln in sample[1:]
        if len(_split(ln, sep)) > max(positions)
    ]
    if not texts:
        raise DataError(
            "no bars after the header", path=path, line=first_no + 1, hint="the file has only a header"
        )
    time_format = date_format or _detect_time_format(path, texts, first_no + 1)
    return _Layout(
        format=format,
        sep=sep,
        encoding=encoding,
        header=True,
        names=names,
        time_cols=time_cols,
        time_format=time_format,
        roles=roles,
        first_line=first_no + 1,
    )


def _headerless_layout(
    path: Path, sep: str, encoding: str, sample: list[tuple[int, str]], date_format: str | None
) -> _Layout:
    first_no, first = sample[0]
    fields = _split(first, sep)
    two = (
        _first_time_format(fields[:1]) is not None
        and len(fields) > 1
        and re.match(r"^\d{1,2}:\d{2}", fields[1])
    )
    n_time = 2 if two else 1
    n_num = len(fields) - n_time
    if n_num < 4:
        raise DataError(
            f"a headerless row needs time then open, high, low, close; line has {len(fields)} fields",
            path=path,
            line=first_no,
            hint="add a header line naming the columns",
        )
    time_names = ["date", "clock"][:n_time]
    num_names = ["Open", "High", "Low", "Close", "Volume", "Spread"][: min(n_num, 6)]
    extra = [f"extra{i}" for i in range(n_num - len(num_names))]
    texts = [" ".join(_split(ln, sep)[:n_time]) for _, ln in sample]
    return _Layout(
        format="csv",
        sep=sep,
        encoding=encoding,
        header=False,
        names=time_names + num_names + extra,
        time_cols=time_names,
        time_format=date_format or _detect_time_format(path, texts, first_no),
        roles={c: c for c in num_names},
        first_line=first_no,
    )


def _first_time_format(fields: list[str]) -> str | None:
    text = " ".join(fields[:1]).strip()
    if re.fullmatch(r"\d{10}|\d{13}", text):
        return "epoch"
    found = _formats_for([text]) if text else []
    return found[0] if found else None


@functools.lru_cache(maxsize=1)
def _candidate_formats() -> tuple[str, ...]:
    out = []
    for d in _DATE_FORMATS:
        out.append(d)
        for c in _CLOCK_FORMATS:
            out.append(f"{d} {c}")
            out.append(f"{d}T{c}")
    return tuple(out)


@functools.cache
def _shape(fmt: str) -> re.Pattern:
    """A regular expression that every text ``fmt`` can parse matches: rules most formats out without strptime."""
    widths = {
        "%Y": r"\d{4}",
        "%m": r"\d{1,2}",
        "%d": r"\d{1,2}",
        "%H": r"\d{1,2}",
        "%M": r"\d{1,2}",
        "%S": r"\d{1,2}",
    }
    widths["%f"] = r"\d{1,9}"
    out, i = "", 0
    while i < len(fmt):
        if fmt[i] == "%":
            out += widths[fmt[i : i + 2]]
            i += 2
        else:
            out += re.escape(fmt[i])
            i += 1
    return re.compile(out)


def _formats_for(texts: list[str]) -> list[str]:
    """Candidate formats that parse the first text (a cheap pre-filter before the sample)."""
    out = []
    for fmt in _candidate_formats():
        if not _shape(fmt).fullmatch(texts[0]):
            continue
        try:
            datetime.strptime(texts[0], fmt)
        except ValueError:
            continue
        out.append(fmt)
    return out


def _detect_time_format(path: Path, texts: list[str], line: int) -> str:
    texts = [t.strip() for t in texts if t.strip()]
    if texts and all(re.fullmatch(r"\d{10}", t) for t in texts):
        return "epoch_s"
    if texts and all(re.fullmatch(r"\d{13}", t) for t in texts):
        return "epoch_ms"
    # Trailing rows of the sample may be cut or bad; decide on the rows that parse, preferring formats that parse most.
    # Every fourth row of the sample, the first and the last: enough to see day/month order, at a tenth of the cost.
    texts = texts[:1] + texts[1:-1:4] + texts[-1:]
    scored = []
    for fmt in _formats_for(texts):
        parsed = []
        for t in texts:
            try:
                parsed.append(datetime.strptime(t, fmt))
            except ValueError:
                parsed.append(None)
        ok = [p for p in parsed if p is not None]
        if not ok:
            continue
        increasing = all(a <= b for a, b in zip(ok, ok[1:], strict=False))
        scored.append((len(ok), increasing, fmt))
    if not scored:
        raise DataError(
            f"cannot parse the time {texts[0]!r}" if texts else "no time values",
            path=path,
            line=line,
            hint="use dates like 2017.01.02 13:00, 2017-01-02 13:00:00 or 02.01.2017 13:00:00.000, or pass date_format",
        )
    best = max(s[:2] for s in scored)
    tied = [s[2] for s in scored if s[:2] == best]
    # Day/month ambiguity: keep the first (day-first formats are listed before month-first) but say so.
    if len({f.replace("%d", "X").replace("%m", "X") for f in tied}) < len(tied) and len(tied) > 1:
        warnings.warn(
            f"{path}:{line}: dates in the first lines read both as day/month and month/day; using {tied[0]!r} "
            "(pass --date-format / date_format to choose)",
            BarDataWarning,
            stacklevel=4,
        )
    return tied[0]


def _check_field_counts(path: Path, want: int, sep: str, sample: list[tuple[int, str]]) -> None:
    """Catch a different delimiter on the data lines than on the first line, before pandas reads the file."""
    for no, ln in sample[1:-1]:  # the last sampled line may be the truncated end of the file
        have = len(ln.split(sep))
        if have != want:
            other = _guess_sep(ln)
            if other and other != sep and have == 1:
                raise DataError(
                    f"line is separated by {_SEP_NAMES[other]}, not {_SEP_NAMES[sep]} like line {sample[0][0]}",
                    path=path,
                    line=no,
                    hint="use one delimiter throughout the file",
                )
            raise DataError(
                f"expected {want} fields separated by {_SEP_NAMES[sep]}, found {have}",
                path=path,
                line=no,
                hint="fix or delete this line",
            )


# ------------------------------------------------------------------------------------------------------------ reading


def _read(path: Path, layout: _Layout) -> pd.DataFrame:
    dtypes: dict[str, object] = {c: object for c in layout.time_cols}
    for col in layout.roles.values():
        dtypes[col] = np.float64
    usecols = list(layout.time_cols) + list(layout.roles.values())
    kwargs = dict(
        sep=layout.sep,
        header=0 if layout.header else None,
        names=layout.names,
        usecols=usecols,
        encoding=layout.encoding,
        engine="c",
        skip_blank_lines=False,  # keeps row i on file line first_line + i
        skiprows=layout.first_line - (2 if layout.header else 1),
        quoting=0,
        low_memory=False,  # one pass, no chunks to stitch together
    )
    fast = {}
    if layout.format == "histdata" and layout.time_format == "%Y%m%d %H%M%S":
        # '20170102 020000' read as the integer 20170102020000 with ' ' as the thousands separator: the C parser then
        # does the work and no Python string is made per row. Any odd row fails the int64 dtype -> the text path below.
        dtypes[layout.time_cols[0]] = np.int64
        fast = {"thousands": " "}
    try:
        return pd.read_csv(path, dtype=dtypes, **fast, **kwargs)
    except pd.errors.ParserError as exc:
        raise _parser_error(path, layout, exc) from None
    except (ValueError, TypeError):
        pass  # a field that is not a number: read again as text to find the line
    try:
        return pd.read_csv(path, dtype=object, **kwargs)
    except pd.errors.ParserError as exc:
        raise _parser_error(path, layout, exc) from None


def _parser_error(path: Path, layout: _Layout, exc: Exception) -> DataError:
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if m:
        # pandas counts lines from the first one it reads (after skiprows)
        line = int(m.group(2)) + layout.first_line - (2 if layout.header else 1)
        return DataError(
            f"expected {m.group(1)} fields separated by {_SEP_NAMES[layout.sep]}, found {m.group(3)}",
            path=path,
            line=line,
            hint="fix or delete this line",
        )
    return DataError(f"cannot read the file: {exc}", path=path, hint="check the delimiter and quoting")


def _lines_text(lines: np.ndarray) -> str:
    shown = ", ".join(str(int(x)) for x in lines[:_MAX_LISTED])
    more = f" and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) in (b"\n", b"\r")


def _parse_rows(
    path: Path, layout: _Layout, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[str]]:
    n = len(frame)
    lines = np.arange(layout.first_line, layout.first_line + n, dtype=np.int64)
    repairs: list[str] = []
    raw_time = [
        frame[c].to_numpy() if frame[c].dtype.kind == "i" else frame[c].to_numpy(dtype=object)
        for c in layout.time_cols
    ]
    values: dict[str, np.ndarray] = {}
    bad_value: dict[str, np.ndarray] = {}
    for role, col in layout.roles.items():
        series = frame[col]
        if series.dtype != np.float64:
            num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            bad_value[role] = np.isnan(num) & series.notna().to_numpy()
            values[role] = num
        else:
            values[role] = series.to_numpy(dtype=np.float64)
    # Blank lines read as all-NaN rows (skip_blank_lines=False keeps the line numbers); look at the time text only there.
    nan_all = np.ones(n, dtype=bool)
    for v in values.values():
        nan_all &= np.isnan(v)
    blank = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(nan_all):
        blank[i] = all(pd.isna(r[i]) for r in raw_time)
    keep = ~blank
    if n and not blank[-1] and not _ends_with_newline(path):
        # A last row without a line end and with fields missing or unreadable: a cut download, not a bad bar.
        last_bad = any(np.isnan(values[r][-1]) for r in PRICE_COLUMNS if r in values)
        last_bad = last_bad or any(b[-1] for b in bad_value.values())
        last_bad = last_bad or any(pd.isna(r[-1]) for r in raw_time)
        last_bad = last_bad or bool(_parse_times([r[-1:] for r in raw_time], layout)[1].any())
        if last_bad:
            keep[-1] = False
            repairs.append(
                f"{path}:{lines[-1]}: last line is truncated (no line end, fields missing); skipped"
            )
    if blank.any():
        repairs.append(f"{path}: blank {_lines_text(lines[blank])} skipped")
    if not keep.all():
        rows = np.flatnonzero(keep)
        lines = lines[keep]
        raw_time = [r[keep] for r in raw_time]
        values = {k: v[keep] for k, v in values.items()}
        bad_value = {k: v[keep] for k, v in bad_value.items()}
    else:
        rows = np.arange(n)
    if len(lines) == 0:
        raise DataError(
            "no bars in the file", path=path, line=layout.first_line, hint="the file has no data rows"
        )
    for role, bad in bad_value.items():
        if bad.any():
            where = lines[bad]
            sample = frame[layout.roles[role]].to_numpy(dtype=object)[rows[bad][0]]
            raise DataError(
                f"{role} is not a number ({sample!r}) on {_lines_text(where)}",
                path=path,
                line=int(where[0]),
                hint="fix or delete these rows; check the decimal point and the delimiter",
            )
    times, bad_time = _parse_times(raw_time, layout)
    if bad_time.any():
        missing = np.zeros(len(lines), dtype=bool)
        for r in raw_time:
            missing |= pd.isna(r)
        if missing.any():
            where = lines[missing]
            raise DataError(
                f"time is empty on {_lines_text(where)}",
                path=path,
                line=int(where[0]),
                hint="fix or delete these rows",
            )
        where = lines[bad_time]
        text = " ".join(str(r[bad_time][0]) for r in raw_time)
        shown = layout.time_format
        if raw_time[0].dtype.kind == "i":  # HistData read as integers: show the text as it is in the file
            v = int(raw_time[0][bad_time][0])
            text, shown = f"{v // 10**6:08d} {v % 10**6:06d}", "YYYYMMDD HHMMSS"
        raise DataError(
            f"cannot parse time {text!r} as {shown!r} on {_lines_text(where)}",
            path=path,
            line=int(where[0]),
            hint="fix these rows, or pass --format/date_format if the whole file uses another layout",
        )
    return times, lines, values, repairs


# ------------------------------------------------------------------------------------------------------ time parsing


def _parse_times(raw: list[np.ndarray], layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock int64 ns per row and a mask of rows that did not parse."""
    fmt = layout.time_format
    if fmt in ("epoch_s", "epoch_ms"):
        num = pd.to_numeric(pd.Series(raw[0]), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num)
        scale = _NS if fmt == "epoch_s" else 1_000_000
        return np.where(bad, 0, num).astype(np.int64) * scale, bad
    if raw[0].dtype.kind == "i":
        return _parse_compact(raw[0])
    if len(raw) == 2:
        date_fmt, _, clock_fmt = fmt.partition(" ")
        d, bad_d = _parse_one(raw[0], date_fmt)
        c, bad_c = _parse_one(raw[1], clock_fmt, clock_only=True)
        return d + c, bad_d | bad_c
    return _parse_one(raw[0], fmt)


_FIELD_WIDTH = {"%Y": 4, "%m": 2, "%d": 2, "%H": 2, "%M": 2, "%S": 2}


def _fixed_layout(fmt: str) -> list[tuple[str, int]] | None:
    """``[(directive or literal char, width)]`` when every field of ``fmt`` has a fixed width, else ``None``."""
    out = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            d = fmt[i : i + 2]
            if d == "%f":
                out.append((d, 0))  # width taken from the data: the rest of the text
            elif d in _FIELD_WIDTH:
                out.append((d, _FIELD_WIDTH[d]))
            else:
                return None
            i += 2
        else:
            out.append((fmt[i], 1))
            i += 1
    if any(d == "%f" for d, _ in out[:-1]):
        return None
    return out


def _parse_one(values: np.ndarray, fmt: str, clock_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Parse with the fixed-width fast path, falling back to ``pd.to_datetime(format=...)`` to find bad rows."""
    fast = _parse_fixed(values, fmt, clock_only)
    if fast is not None:
        return fast, np.zeros(len(values), dtype=bool)
    series = pd.Series(values, dtype=object)
    if clock_only:
        parsed = pd.to_datetime("1970-01-01 " + series.astype(str), format="%Y-%m-%d " + fmt, errors="coerce")
    else:
        parsed = pd.to_datetime(series, format=fmt, errors="coerce")
    # pandas parses year 9999 at a coarser unit; turned into ns it would wrap round to 1816 without a word.
    years = parsed.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = parsed.isna().to_numpy() | ~((years >= _YEARS[0]) & (years <= _YEARS[1]))
    ns = parsed.where(~bad).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.where(bad, 0, ns), bad


def _parse_fixed(values: np.ndarray, fmt: str, clock_only: bool) -> np.ndarray | None:
    """Digits read straight from the bytes, ~10x faster than strptime. ``None`` when any row does not fit exactly."""
    layout = _fixed_layout(fmt)
    if layout is None or len(values) == 0:
        return None
    try:
        first = str(values[0])
        frac = len(first) - sum(w for _, w in layout) if layout[-1][0] == "%f" else 0
        if layout[-1][0] == "%f" and not 1 <= frac <= 9:
            return None
        width = sum(w for _, w in layout) + frac
        buf = values.astype(f"S{width + 1}")
    except (UnicodeEncodeError, ValueError, TypeError):
        return None
    u = buf.view(np.uint8).reshape(len(values), width + 1)
    spans: dict[str, tuple[int, int]] = {}
    literal_pos, literal_val = [], []
    pos = 0
    for d, w in layout:
        w = frac if d == "%f" else w
        if d.startswith("%"):
            spans[d] = (pos, w)
        else:
            literal_pos.append(pos)
            literal_val.append(ord(d))
        pos += w
    # One check of every byte against the pattern (a digit, or the literal), and a NUL after the last one: a text of
    # another length or shape sends the column to the slow path.
    lo = np.full(width + 1, 48, dtype=np.uint8)
    hi = np.full(width + 1, 57, dtype=np.uint8)
    lo[literal_pos] = hi[literal_pos] = literal_val
    lo[width] = hi[width] = 0
    if ((u < lo) | (u > hi)).any():
        return None
    if not clock_only and not {"%Y", "%m", "%d"} <= spans.keys():
        return None
    n = len(values)
    date_keys = [d for d in ("%Y", "%m", "%d") if d in spans]
    if date_keys:
        # Bars come in runs of one date: find where the date bytes change and do the calendar once per run.
        lo_b = min(spans[d][0] for d in date_keys)
        hi_b = max(spans[d][0] + spans[d][1] for d in date_keys)
        date_bytes = np.ascontiguousarray(u[:, lo_b:hi_b]).view(f"S{hi_b - lo_b}").ravel()
        heads = np.flatnonzero(np.r_[True, date_bytes[1:] != date_bytes[:-1]])
    else:
        heads = np.arange(n)

    def number(d: str, rows: np.ndarray | slice) -> np.ndarray:
        start, w = spans[d]
        block = u[rows, start : start + w]
        num = block[:, 0].astype(np.int64) - 48
        for k in range(1, w):
            num = num * 10 + (block[:, k] - 48)
        return num

    zero = np.zeros(n, dtype=np.int64)
    clock, bad = _clock_ns(*(number(d, slice(None)) if d in spans else zero for d in ("%H", "%M", "%S")))
    if bad.any():
        return None
    if "%f" in spans:
        clock = clock + number("%f", slice(None)) * 10 ** (9 - frac)
    if clock_only:
        return clock
    days, bad_day = _days_since_epoch(number("%Y", heads), number("%m", heads), number("%d", heads))
    if bad_day.any():
        return None
    return np.repeat(days * _DAY_NS, np.diff(np.r_[heads, n])) + clock


def _parse_compact(num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``YYYYMMDDHHMMSS`` integers (HistData's time field read with ' ' as a thousands separator) to ns and a bad mask."""
    num = num.astype(np.int64, copy=False)
    return _compose(
        num // 10**10,
        num // 10**8 % 100,
        num // 10**6 % 100,
        num // 10**4 % 100,
        num // 100 % 100,
        num % 100,
    )


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _clock_ns(hour, minute, second) -> tuple[np.ndarray, np.ndarray]:
    """Time of day in ns, and a mask of impossible ones (25:00, 12:60)."""
    bad = (hour > 23) | (minute > 59) | (second > 59) | (hour < 0) | (minute < 0) | (second < 0)
    return ((hour * 60 + minute) * 60 + second) * _NS, bad


def _compose(year, month, day, hour, minute, second) -> tuple[np.ndarray, np.ndarray]:
    """Calendar fields to int64 ns since 1970 (civil-from-days arithmetic, no datetime objects) and a bad-row mask."""
    clock, bad = _clock_ns(hour, minute, second)
    if len(clock) == 0:
        return clock, bad
    # Bars come in runs of one date (24 per H1 day, 1440 per M1 day): do the calendar once per run.
    key = (year * 100 + month) * 100 + day
    heads = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    days, bad_day = _days_since_epoch(year[heads], month[heads], day[heads])
    run = np.diff(np.r_[heads, len(key)])
    bad |= np.repeat(bad_day, run)
    ns = np.repeat(days * _DAY_NS, run) + clock
    return np.where(bad, 0, ns), bad


def _days_since_epoch(year, month, day) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 for calendar dates, and a mask of impossible ones (31 April, 29 February 2017)."""
    bad = (month < 1) | (month > 12) | (day < 1) | (year < _YEARS[0]) | (year > _YEARS[1])
    m = np.clip(month, 1, 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    bad |= day > _DAYS_IN_MONTH[m] + (leap & (m == 2))
    # days_from_civil (H. Hinnant): March-based years make the leap day the last day of the year.
    y = year - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468, bad


# --------------------------------------------------------------------------------------------------------- validation


def _source_zone(format: str, tz: str | tzinfo | None) -> tuple[tzinfo, str, str]:
    """The zone to read the file's clock in, its printable name and a note when it was assumed."""
    if tz is not None:
        return parse_tz(tz), tz_name(tz), ""
    default = DEFAULT_TZ.get(format)
    if default is not None:
        return parse_tz(default), default, ""
    note = (
        f"no time zone given for this {format} file; assuming UTC. Pass --tz with the broker's server time "
        "(often America/New_York+7, i.e. UTC+2 winter / UTC+3 summer)"
    )
    return parse_tz("UTC"), "UTC (assumed)", note


def _check_prices(source: str, values: dict[str, np.ndarray], lines: np.ndarray) -> None:
    for role in PRICE_COLUMNS:
        if role not in values:
            raise DataError(f"no {role} column", path=source, hint="the bars need Open, High, Low and Close")
    o, h, lo, c = (values[k] for k in PRICE_COLUMNS)
    checks = [
        (
            np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c),
            "a price is missing",
            "fill in or delete these rows",
        ),
        (
            (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            "a price is zero or negative",
            "fix or delete these rows",
        ),
        (
            ~(np.abs(o) < MAX_PRICE)
            | ~(np.abs(h) < MAX_PRICE)
            | ~(np.abs(lo) < MAX_PRICE)
            | ~(np.abs(c) < MAX_PRICE),
            f"a price is infinite or above {MAX_PRICE:g}",
            "fix or delete these rows",
        ),
        (h < lo, "High is below Low", "check the column order (Open, High, Low, Close) or fix these rows"),
        (
            (o > h) | (o < lo) | (c > h) | (c < lo),
            "Open or Close is outside [Low, High]",
            "check the column order (Open, High, Low, Close) or fix these rows",
        ),
    ]
    for extra in ("Volume", "Spread"):
        if extra in values:
            v = values[extra]
            checks.append((np.isnan(v), f"{extra} is missing", "fill in or delete these rows"))
            checks.append((v < 0, f"{extra} is negative", "fix or delete these rows"))
    for mask, what, hint in checks:
        if mask.any():
            where = lines[mask]
            raise DataError(f"{what} on {_lines_text(where)}", path=source, line=int(where[0]), hint=hint)


def _order_rows(
    source: str, stamps: np.ndarray, lines: np.ndarray, values: dict[str, np.ndarray], repairs: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Sort rows out of order and drop exact duplicates (repairs); same time with other prices is an error."""
    order = np.arange(len(stamps))
    step = np.diff(stamps)
    if (step < 0).any():
        back = np.flatnonzero(step < 0) + 1
        order = np.argsort(stamps, kind="stable")
        stamps, lines = stamps[order], lines[order]
        values = {k: v[order] for k, v in values.items()}
        repairs.append(
            f"{source}: {len(back)} bar(s) out of time order at {_lines_text(lines[np.isin(order, back)])}; sorted"
        )
        step = np.diff(stamps)
    same = np.flatnonzero(step == 0)
    if len(same):
        # Runs of equal times: compare each row with the first of its run.
        first_of_run = np.ones(len(stamps), dtype=bool)
        first_of_run[same + 1] = False
        run_head = np.maximum.accumulate(np.where(first_of_run, np.arange(len(stamps)), 0))
        dup = ~first_of_run
        differs = np.zeros(len(stamps), dtype=bool)
        for v in values.values():
            differs |= v != v[run_head]
        conflict = dup & differs
        if conflict.any():
            i = int(np.flatnonzero(conflict)[0])
            when = pd.Timestamp(int(stamps[i]), tz="UTC")
            raise DataError(
                f"lines {lines[run_head[i]]} and {lines[i]} are both the bar of {when} (UTC) with different prices "
                f"({int(conflict.sum())} such conflict(s))",
                path=source,
                line=int(lines[i]),
                hint="delete one of them; if the file repeats an hour at a clock change, check --tz",
            )
        repairs.append(
            f"{source}: {int(dup.sum())} exact duplicate bar(s) at {_lines_text(lines[dup])}; dropped"
        )
        keep = ~dup
        stamps, lines = stamps[keep], lines[keep]
        values = {k: v[keep] for k, v in values.items()}
    return stamps, lines, values


def _volume_and_gap_notes(
    source: str, stamps: np.ndarray, lines: np.ndarray, values: dict[str, np.ndarray]
) -> list[str]:
    notes = []
    if "Volume" in values:
        zero = values["Volume"] == 0
        if zero.all():
            notes.append(f"{source}: Volume is 0 on every bar (the source has no volume)")
        elif zero.any():
            notes.append(f"{source}: Volume is 0 on {int(zero.sum())} bar(s), at {_lines_text(lines[zero])}")
    if len(stamps) < 3:
        return notes
    step = np.diff(stamps)
    interval = int(np.median(step[:20_000]))  # the bar size; the first 20k bars are plenty
    if interval <= 0 or interval >= _DAY_NS:
        return notes
    # A gap is missing time longer than max(3 bars, 1 hour) that does not span a Saturday (the FX weekend).
    threshold = max(3 * interval, 3600 * _NS)
    gap = np.flatnonzero(step > threshold)
    if len(gap):
        start = stamps[gap] + interval
        end = stamps[gap + 1] - 1
        d0, d1 = start // _DAY_NS, end // _DAY_NS
        next_saturday = d0 + (5 - (d0 + 3) % 7) % 7  # 1970-01-01 was a Thursday (weekday 3)
        weekend = (next_saturday <= d1) & (step[gap] <= 4 * _DAY_NS)
        gap = gap[~weekend]
    if len(gap):
        biggest = gap[np.argmax(step[gap])]
        hours = step[biggest] / 3600 / _NS
        notes.append(
            f"{source}: {len(gap)} gap(s) longer than {threshold / 3600 / _NS:g} h outside weekends; the largest "
            f"{hours:g} h after {pd.Timestamp(int(stamps[biggest]), tz='UTC')} (line {lines[biggest]})"
        )
    return notes


# ---------------------------------------------------------------------------------------------------------- timeframes


def infer_timeframe(index: pd.DatetimeIndex) -> str | None:
    """The bar size as MetaTrader names it (``M1``, ``H1``, ``D1``), from the most common spacing of the times."""
    if len(index) < 2:
        return None
    step = np.diff(index.as_unit("ns").asi8[:20_001])  # the first 20k bars tell, at a fraction of the sort
    step = step[step > 0]
    if not len(step):
        return None
    values, counts = np.unique(step, return_counts=True)
    seconds = int(values[np.argmax(counts)] // _NS)
    for prefix in ("W", "D", "H", "M"):
        unit = _TIMEFRAMES[prefix]
        if seconds and seconds % unit == 0:
            return f"{prefix}{seconds // unit}"
    return f"S{seconds}"


def timeframe_seconds(timeframe: str) -> int:
    """Seconds in a MetaTrader-style timeframe name: ``M15`` -> 900, ``H1`` -> 3600, ``D1`` -> 86400."""
    m = re.fullmatch(r"([MHDW])(\d+)", str(timeframe).strip().upper())
    if not m or int(m.group(2)) == 0:
        raise UserError(f"unknown timeframe {timeframe!r}", hint="use M1, M5, M15, M30, H1, H4, D1 or W1")
    return _TIMEFRAMES[m.group(1)] * int(m.group(2))


def resample_bars(df: pd.DataFrame, timeframe: str, tz: str | tzinfo | None = None) -> pd.DataFrame:
    """Aggregate bars to a longer ``timeframe`` (``M15``, ``H1``, ``D1`` ...): first open, max high, min low, last close,
    summed volume, mean spread; periods without bars are left out.

    Periods start on whole multiples of the timeframe on the UTC clock, or on the wall clock of ``tz`` when given
    (``D1`` with ``tz="America/New_York+7"`` gives broker days that end at 17:00 New York); weeks start on Monday. The
    result is indexed by each period's start in UTC and keeps the source ``attrs`` with ``timeframe`` updated.
    """
    step = timeframe_seconds(timeframe) * _NS
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
        raise UserError("resample_bars needs bars indexed by UTC time", hint="load them with load_bars")
    if len(df) == 0:
        out = df.iloc[:0].copy()
        out.attrs = dict(df.attrs, timeframe=str(timeframe).upper())
        return out
    utc = df.index.tz_convert("UTC").as_unit("ns").asi8
    wall = utc if tz is None else utc_to_wall(df.index, tz).as_unit("ns").asi8
    origin = 4 * _DAY_NS if step % (7 * _DAY_NS) == 0 else 0  # 1970-01-05 was a Monday
    key = (wall - origin) // step
    # Bins are runs of equal keys, so a repeated autumn hour on a DST wall clock stays two bars.
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    out = {
        "Open": df["Open"].to_numpy(np.float64)[starts],
        "High": np.maximum.reduceat(df["High"].to_numpy(np.float64), starts),
        "Low": np.minimum.reduceat(df["Low"].to_numpy(np.float64), starts),
        "Close": df["Close"].to_numpy(np.float64)[ends - 1],
    }
    if "Volume" in df:
        out["Volume"] = np.add.reduceat(df["Volume"].to_numpy(np.float64), starts)
    if "Spread" in df:
        total = np.add.reduceat(df["Spread"].to_numpy(np.float64), starts)
        out["Spread"] = total / (ends - starts)
    label_wall = key[starts] * step + origin
    if tz is None:
        index = pd.DatetimeIndex(label_wall.view("datetime64[ns]")).tz_localize("UTC")
    else:
        index = localize_to_utc(pd.DatetimeIndex(label_wall.view("datetime64[ns]")), tz).as_unit("ns")
    result = pd.DataFrame(out, index=index.rename("time"))
    result.attrs = dict(df.attrs, timeframe=str(timeframe).upper())
    return result
