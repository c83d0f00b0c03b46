"""News loading: headline files and economic calendars, from any source time zone to UTC ``NewsItem`` lists.

Formats (``--format``):

``headlines``
    CSV or JSONL with a time column and a headline column, optional currency, source and body columns. Column names are
    detected (``publish_date``/``time``/``time_utc``/``date``..., ``headline_text``/``headline``/``title``/``text``) or
    given (``time_col=``, ``headline_col=``, ``currency_col=``, ``source_col=``, ``body_col=``). Default zone UTC;
    times written with an offset (``...Z``, ``+02:00``) are read as such.
``forexfactory``
    ``,actual,country,datetime,forecast,forecast_error,impact,new,previous,previous_error,week``. The ``datetime``
    column is a fixed UTC-5 clock with no daylight saving (checked against US non-farm payrolls, which land at 13:30 UTC
    in winter and 12:30 UTC in summer), so the default zone is ``UTC-5``.
``dailyfx``
    ``,actual,country,date,forecast,forecast_error,impact,new,previous,previous_error,time``; ``date`` as text
    (``Friday, December 30, 2016``), ``time`` ``HH:MM``; default zone UTC.
``mt5calendar``
    The CSV our MQL5 export script writes (docs/calendar_csv.md): ``#`` header lines carrying the server's zone, then
    ``time,country,currency,event,importance,actual,forecast,previous,...`` in broker server time.

Every loader returns items sorted by (time, id) and de-duplicated by id; ``load_news_report`` also returns a
``LoadReport`` that accounts for every data row (items + duplicates + skipped == rows) and lists the problems found,
each with its line numbers. A file that cannot be used raises ``DataError`` naming file, line and what to do; a row
that cannot be used is skipped with a warning naming its line; nothing is dropped silently.

Calendar rows with no time (all-day entries such as bank holidays) stay news items: rows without an actual value are
placed at 00:00 of their date (known in advance); rows with an actual value but no time are placed at the end of the
day (23:59), because the release time is unknown and an earlier time would let a backtest trade on a number before it
was published.

    python -m bridge.news inspect FILE [--format auto|headlines|forexfactory|dailyfx|mt5calendar] [--tz TZ]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bridge.errors import DataError, UserError, run_main
from bridge.news.tz import localize_to_utc, parse_tz, tz_name
from bridge.news.values import is_missing, parse_value
from bridge.textfile import read_text_file
from bridge.types import NewsItem

FORMATS = ("headlines", "forexfactory", "dailyfx", "mt5calendar")
# Source clocks, from SOURCES.md of the test data and the formats' own documentation; --tz overrides.
DEFAULT_TZ = {"headlines": "UTC", "forexfactory": "UTC-5", "dailyfx": "UTC", "mt5calendar": None}
FRAME_COLUMNS = [
    "time",
    "id",
    "source",
    "headline",
    "currency",
    "actual",
    "forecast",
    "previous",
    "impact",
    "event",
]

_FF_COLUMNS = ("actual", "country", "datetime", "forecast", "impact", "new", "previous")
_DFX_COLUMNS = ("actual", "country", "date", "forecast", "impact", "new", "previous", "time")
_MT5_COLUMNS = ("time", "currency", "event", "actual", "forecast", "previous")
_TIME_NAMES = (
    "time_utc",
    "time",
    "publish_date",
    "published",
    "published_at",
    "datetime",
    "timestamp",
    "date",
    "created_at",
)
_HEADLINE_NAMES = ("headline", "headline_text", "title", "text", "sentence")
_CURRENCY_NAMES = ("currency", "ccy")
_SOURCE_NAMES = ("source",)
_BODY_NAMES = ("body", "summary", "description", "content")
_MT5_MULTIPLIER = {
    "": 1.0,
    "none": 1.0,
    "thousands": 1e3,
    "millions": 1e6,
    "billions": 1e9,
    "trillions": 1e12,
}
_MT5_SUFFIX = {"thousands": "K", "millions": "M", "billions": "B", "trillions": "T"}
_IMPACT = {
    "high": "high",
    "medium": "medium",
    "moderate": "medium",
    "med": "medium",
    "low": "low",
    "non-economic": "none",
    "none": "none",
    "holiday": "none",
}
_CCY = re.compile(r"^[A-Z]{3}$")


# ---------------------------------------------------------------------------------------------------------------------
# Report


@dataclass
class Problem:
    """One kind of problem and the lines it was found on (1-based, the header is line 1)."""

    message: str
    lines: list[int] = field(default_factory=list)
    skipped: bool = False  # the rows were not loaded
    note: bool = False  # information (e.g. vote counts that are not numbers), printed by inspect, not warned

    def __str__(self) -> str:
        if not self.lines:
            return self.message
        shown = ", ".join(str(n) for n in self.lines[:8])
        more = f" and {len(self.lines) - 8} more" if len(self.lines) > 8 else ""
        rows = "row" if len(self.lines) == 1 else "rows"
        return f"{self.message}: {len(self.lines)} {rows}, line {shown}{more}"


@dataclass
class LoadReport:
    """What a loader did with a file: every data row is an item, a duplicate, or skipped (with its line)."""

    path: str
    format: str
    tz: str
    rows: int = 0
    items: int = 0
    duplicates: int = 0
    duplicate_lines: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    delimiter: str = ","

    @property
    def skipped(self) -> int:
        return sum(len(p.lines) for p in self.problems if p.skipped)

    def add(self, message: str, line: int | None = None, skipped: bool = False, note: bool = False) -> None:
        """Record a problem on ``line``; problems with the same message are grouped."""
        for p in self.problems:
            if p.message == message and p.skipped == skipped:
                if line is not None:
                    p.lines.append(line)
                return
        self.problems.append(Problem(message, [line] if line is not None else [], skipped, note))

    @property
    def warnings(self) -> list[Problem]:
        """Problems that are repaired or skipped rows (notes excluded)."""
        return [p for p in self.problems if not p.note]

    def warn(self) -> None:
        """Issue one ``UserWarning`` per kind of problem, naming the file and lines."""
        for p in self.warnings:
            warnings.warn(f"{self.path}: {p}", UserWarning, stacklevel=3)
        if self.duplicates:
            warnings.warn(f"{self.path}: {self._dup_text()}", UserWarning, stacklevel=3)

    def _dup_text(self) -> str:
        shown = ", ".join(str(n) for n in self.duplicate_lines[:8])
        more = f" and {self.duplicates - 8} more" if self.duplicates > 8 else ""
        return f"{self.duplicates} duplicate rows (same time, source and headline as an earlier row) dropped: line {shown}{more}"

    def lines(self) -> list[str]:
        """The problems as printable lines."""
        out = [str(p) + (" (skipped)" if p.skipped else " (note)" if p.note else "") for p in self.problems]
        if self.duplicates:
            out.append(self._dup_text())
        return out


# ---------------------------------------------------------------------------------------------------------------------
# Reading text into rows with line numbers


def _read_text(path: Path) -> str:
    return read_text_file(path, "news file")[0]


def _split_comments(text: str) -> tuple[list[str], str, int]:
    """Leading ``#`` comment lines, the rest of the text, and how many lines were removed."""
    comments: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines) and (lines[i].lstrip().startswith("#") or not lines[i].strip()):
        if lines[i].strip():
            comments.append(lines[i].strip().lstrip("#").strip())
        i += 1
    return comments, "\n".join(lines[i:]), i


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class _Table:
    """Rows of a delimited file as dicts of stripped strings, each with the line it starts on."""

    header: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    delimiter: str
    comments: list[str]


def _read_table(path: Path, report: LoadReport, delimiter: str | None = None) -> _Table:
    text = _read_text(path)
    comments, body, offset = _split_comments(text)
    first = body.split("\n", 1)[0]
    delim = delimiter or _sniff_delimiter(first)
    report.delimiter = delim
    # strict: an unclosed quote is an error naming its line, not a field that silently swallows every later row
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delim, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError("the file has no header line", path=path) from None
    except csv.Error as exc:
        raise DataError(
            f"unreadable header line: {exc}", path=path, line=1 + offset, hint="check its quoting"
        ) from None
    if header and header[0] == "":
        header[0] = "_index"  # pandas' unnamed index column
    rows, lines = [], []
    prev_end = reader.line_num
    ends_clean = text.endswith("\n")
    try:
        for rec in reader:
            start = prev_end + 1 + offset
            prev_end = reader.line_num
            if not rec or all(not c.strip() for c in rec):
                continue
            report.rows += 1
            if len(rec) != len(header):
                last = prev_end + offset >= text.count("\n") + (0 if ends_clean else 1)
                why = (
                    "the file may be truncated"
                    if last and not ends_clean
                    else "check the delimiter and quoting"
                )
                report.add(
                    f"{len(rec)} fields where the header has {len(header)} ({why})", start, skipped=True
                )
                continue
            rows.append({h: c.strip() for h, c in zip(header, rec, strict=True)})
            lines.append(start)
    except csv.Error as exc:
        unclosed = "unexpected end of data" in str(exc)
        raise DataError(
            "a quote opened on this line is never closed" if unclosed else f"unreadable CSV: {exc}",
            path=path,
            line=prev_end + 1 + offset,
            hint='close the quote (a quote inside a field is written twice: "") or remove the line; '
            "no row after it was read",
        ) from None
    return _Table(header, rows, lines, delim, comments)


def _require(path: Path, table: _Table, needed: Iterable[str], fmt: str) -> None:
    missing = [c for c in needed if c not in table.header]
    if missing:
        hint = f"a {fmt} file needs the columns {', '.join(needed)}"
        if len(table.header) == 1:
            hint += f"; only one column was found with delimiter {table.delimiter!r}: is the file delimited differently?"
        raise DataError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found: {', '.join(table.header)})",
            path=path,
            line=1,
            hint=hint,
        )


# ---------------------------------------------------------------------------------------------------------------------
# Times


_AWARE = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


def _in_range(parsed: pd.Series) -> pd.Series:
    """Parsed times as datetime64[ns]; a date outside pandas' range (before 1677, after 2262) becomes NaT, so its
    row is reported as a bad time with its line instead of overflowing into a wrong date or a traceback."""
    try:
        return parsed.astype("datetime64[ns]")
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):
        pass

    return pd.Series([_ns_or_nat(v) for v in parsed], index=parsed.index, dtype="datetime64[ns]")


def _ns_or_nat(v):
    try:
        return pd.Timestamp(v).as_unit("ns") if pd.notna(v) else pd.NaT
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):
        return pd.NaT


def _parse_times(values: Sequence[str], fmt: str | None = None) -> pd.Series:
    """Parse strings to timestamps; unparseable ones become NaT. Strings with an offset are returned in UTC."""
    s = pd.Series(list(values), dtype=object)
    aware = s.map(lambda v: bool(_AWARE.search(v.strip())) if isinstance(v, str) else False)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    naive_mask = ~aware
    if naive_mask.any():
        part = s[naive_mask]
        if fmt:
            parsed = pd.to_datetime(part, format=fmt, errors="coerce")
        else:
            parsed = pd.to_datetime(part, format="ISO8601", errors="coerce")
            bad = parsed.isna() & part.ne("")
            if bad.any():
                # Non-ISO text ('12/30/2016 10:00', '2016.12.30 10:00'): slower element-wise parsing, only for those rows.
                retry = part[bad].str.replace(".", "-", regex=False)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    parsed[bad] = pd.to_datetime(retry, format="mixed", errors="coerce")
        out[naive_mask] = _in_range(parsed)
    result = out.astype(object)
    if aware.any():
        parsed = pd.to_datetime(s[aware], utc=True, errors="coerce", format="ISO8601")
        result[aware] = [_ns_or_nat(t) for t in parsed]
    return result


def _to_utc(naive: pd.Series, tz) -> pd.Series:
    """Naive timestamps (NaT allowed) in zone ``tz`` to UTC, keeping the index."""
    out = pd.Series(pd.NaT, index=naive.index, dtype="datetime64[ns, UTC]")
    ok = naive.notna()
    if ok.any():
        out[ok] = localize_to_utc(pd.DatetimeIndex(naive[ok]), tz)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Format detection


def detect_format(path: str | Path) -> str:
    """The news format of a file from its header (or first JSON line); raises ``DataError`` when none fits."""
    path = Path(path)
    text = _read_text(path)
    _, body, _ = _split_comments(text)
    first = body.split("\n", 1)[0].strip()
    if first.startswith("{"):
        return "headlines"
    cols = {c.strip().strip('"').lower() for c in re.split(r"[,;\t|]", first)}
    if {"datetime", "new", "actual", "forecast"} <= cols:
        return "forexfactory"
    if {"date", "time", "new", "actual", "forecast"} <= cols:
        return "dailyfx"
    if {"time", "currency", "event", "actual"} <= cols:
        return "mt5calendar"
    if cols & set(_TIME_NAMES) and cols & set(_HEADLINE_NAMES):
        return "headlines"
    raise DataError(
        f"cannot tell the news format from the header {first[:120]!r}",
        path=path,
        line=1,
        hint=f"pass --format, one of {', '.join(FORMATS)}",
    )


# ---------------------------------------------------------------------------------------------------------------------
# Calendar rows


def _clean_value(text: str) -> str:
    return text.replace("%%", "%").strip()


def calendar_headline(currency: str | None, event: str, actual: str, forecast: str, previous: str) -> str:
    """A readable headline for a calendar row: ``USD Non-Farm Employment Change: actual 227K, forecast 175K, ...``."""
    parts = [
        f"{name} {_clean_value(v)}"
        for name, v in (("actual", actual), ("forecast", forecast), ("previous", previous))
        if not is_missing(v)
    ]
    title = f"{currency} {event}" if currency else event
    return f"{title}: {', '.join(parts)}" if parts else title


def _impact(text: str, report: LoadReport, line: int) -> str | None:
    key = text.strip().lower()
    if not key:
        return None
    if key in _IMPACT:
        return _IMPACT[key]
    # Scraping debris such as '???mediumr???': keep the level it names, report it.
    for word in ("high", "medium", "med", "low"):
        if word in key:
            report.add("impact text garbled, level read from it", line)
            return _IMPACT[word]
    report.add("impact not readable, left empty", line)
    return None


def _calendar_items(
    path: Path,
    report: LoadReport,
    table: _Table,
    times: pd.Series,
    source: str,
    currency_col: str,
    event_col: str,
    values: dict[str, Sequence],
) -> list[tuple[NewsItem, int]]:
    """Items from calendar rows whose times were already parsed to UTC (NaT rows are skipped by the caller)."""
    items = []
    for i, (t, row, line) in enumerate(zip(times.tolist(), table.rows, table.lines, strict=True)):
        if pd.isna(t):
            continue
        ccy = row.get(currency_col, "").strip().upper()
        # ForexFactory writes 'All' for events of no single currency (G20 meetings), not the lek.
        currency = ccy if _CCY.match(ccy) and ccy != "ALL" else None
        event = " ".join(row.get(event_col, "").split())
        if currency and event.startswith(currency + " "):
            event = event[len(currency) + 1 :]  # DailyFX repeats the currency in the event name
        if not event:
            report.add("no event name; row skipped", line, skipped=True)
            continue
        texts = {k: values[k][i] for k in ("actual", "forecast", "previous")}
        nums = {}
        for k, txt in texts.items():
            v = parse_value(txt) if not isinstance(txt, float) else txt
            if v is None and isinstance(txt, str) and not is_missing(txt):
                report.add(
                    f"{k} value not a number, e.g. a vote count (kept as text in the headline, None as value)",
                    line,
                    note=True,
                )
            nums[k] = v
        headline = calendar_headline(
            currency, event, *(t if isinstance(t, str) else _fmt_num(t) for t in texts.values())
        )
        item = NewsItem(
            time=t,
            headline=headline,
            source=source,
            currency=currency,
            actual=nums["actual"],
            forecast=nums["forecast"],
            previous=nums["previous"],
            impact=_impact(row.get("impact", row.get("importance", "")), report, line),
            event=event,
        )
        items.append((item, line))
    return items


def _fmt_num(v: float | None) -> str:
    return "" if v is None or pd.isna(v) else f"{v:g}"


def _skip_bad_times(
    report: LoadReport, table: _Table, times: pd.Series, what: str, raw: Sequence[str]
) -> None:
    for i in times.isna().to_numpy().nonzero()[0].tolist():
        report.add(
            f"unparseable {what} (e.g. {raw[i]!r}); fix the value or remove the row",
            table.lines[i],
            skipped=True,
        )


def _load_forexfactory(path: Path, report: LoadReport, tz, delimiter=None) -> list[tuple[NewsItem, int]]:
    table = _read_table(path, report, delimiter)
    _require(path, table, _FF_COLUMNS, "ForexFactory")
    raw = [r["datetime"] for r in table.rows]
    naive = _parse_times(raw, "%Y-%m-%d %H:%M:%S")
    times = _to_utc(naive, tz)
    _skip_bad_times(report, table, times, "datetime", raw)
    values = {k: [r[k] for r in table.rows] for k in ("actual", "forecast", "previous")}
    return _calendar_items(path, report, table, times, "forexfactory", "country", "new", values)


def _load_dailyfx(path: Path, report: LoadReport, tz, delimiter=None) -> list[tuple[NewsItem, int]]:
    table = _read_table(path, report, delimiter)
    _require(path, table, _DFX_COLUMNS, "DailyFX")
    # The date cell sometimes carries a second line listing holidays; the date is its first line.
    dates = [r["date"].split("\n", 1)[0].strip() for r in table.rows]
    day = pd.Series(pd.to_datetime(pd.Series(dates, dtype=object), format="%A, %B %d, %Y", errors="coerce"))
    clock = []
    for r, line in zip(table.rows, table.lines, strict=True):
        t = r["time"].strip()
        if not t:
            if is_missing(r["actual"]):
                report.add("no time given (all-day entry); placed at 00:00 of its date", line)
                clock.append("00:00")
            else:
                report.add(
                    "no time given for a released value; placed at 23:59 of its date (no look-ahead)", line
                )
                clock.append("23:59")
        else:
            clock.append(t)
    hm = pd.to_datetime(pd.Series(clock, dtype=object), format="%H:%M", errors="coerce")
    naive = day + (hm - hm.dt.normalize())
    times = _to_utc(naive, tz)
    raw = [f"{d} {c}" for d, c in zip(dates, clock, strict=True)]
    _skip_bad_times(report, table, times, "date or time", raw)
    values = {k: [r[k] for r in table.rows] for k in ("actual", "forecast", "previous")}
    return _calendar_items(path, report, table, times, "dailyfx", "country", "new", values)


def mt5_header(comments: Sequence[str]) -> dict[str, str]:
    """``key=value`` pairs from the ``#`` lines of an MT5 calendar export."""
    out = {}
    for c in comments:
        for part in re.split(r"[;\s]+", c):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip().lower()] = v.strip()
    return out


def _load_mt5calendar(path: Path, report: LoadReport, tz, delimiter=None) -> list[tuple[NewsItem, int]]:
    table = _read_table(path, report, delimiter)
    _require(path, table, _MT5_COLUMNS, "MT5 calendar export")
    if tz is None:
        header = mt5_header(table.comments)
        spec = header.get("server_tz") or header.get("server_utc_offset")
        if spec is None:
            raise DataError(
                "the export names no server time zone (no '# server_tz=...' or '# server_utc_offset=...' line)",
                path=path,
                line=1,
                hint="pass --tz with the broker's server zone, e.g. America/New_York+7",
            )
        tz = spec
        report.tz = tz_name(tz)
    raw = [r["time"] for r in table.rows]
    naive = _parse_times([t.replace(".", "-", 2) for t in raw])
    times = _to_utc(naive, tz)
    _skip_bad_times(report, table, times, "time", raw)
    values: dict[str, list] = {"actual": [], "forecast": [], "previous": []}
    for r, line in zip(table.rows, table.lines, strict=True):
        mult_name = r.get("multiplier", "").strip().lower()
        if mult_name not in _MT5_MULTIPLIER:
            report.add(f"unknown multiplier {mult_name!r}; read as none", line)
            mult_name = ""
        pct = r.get("unit", "").strip().lower() == "percent"
        for k in values:
            txt = r[k]
            v = parse_value(txt)
            if is_missing(txt) or v is None:
                values[k].append(txt)  # reported as text by _calendar_items
                continue
            # Keep the calendar's own look in the headline (227K, 0.3%) and the scaled number as the value.
            values[k].append(f"{txt}{_MT5_SUFFIX.get(mult_name, '')}{'%' if pct else ''}")
    return _calendar_items(path, report, table, times, "mt5", "currency", "event", values)


# ---------------------------------------------------------------------------------------------------------------------
# Headlines


def _pick(
    header: Sequence[str], given: str | None, names: Sequence[str], what: str, path: Path, required: bool
) -> str | None:
    if given:
        if given not in header:
            raise DataError(
                f"no column {given!r} for the {what} (found: {', '.join(header)})",
                path=path,
                line=1,
                hint=f"name the {what} column with --{what}-col",
            )
        return given
    lower = {h.lower(): h for h in header}
    for n in names:
        if n in lower:
            return lower[n]
    if required:
        raise DataError(
            f"missing column for the {what} (found: {', '.join(header)}; known names: {', '.join(names)})",
            path=path,
            line=1,
            hint=f"name it with --{what}-col, or check the delimiter",
        )
    return None


def _read_jsonl(path: Path, report: LoadReport) -> _Table:
    text = _read_text(path)
    lines = text.split("\n")
    rows, nums, keys = [], [], {}
    for n, ln in enumerate(lines, start=1):
        if not ln.strip():
            continue
        report.rows += 1
        try:
            obj = json.loads(ln)
        except RecursionError:
            report.add("a JSON line nested too deeply", n, skipped=True)
            continue
        except json.JSONDecodeError as exc:
            last = n == len(lines) or (n == len(lines) - 1 and not lines[-1])
            why = "the file may be truncated" if last and not text.endswith("\n") else exc.msg
            report.add(f"invalid JSON ({why})", n, skipped=True)
            continue
        if not isinstance(obj, dict):
            report.add("a JSON line that is not an object", n, skipped=True)
            continue
        rows.append({k: "" if v is None else str(v) for k, v in obj.items()})
        nums.append(n)
        keys.update(dict.fromkeys(obj))
    if not rows and report.rows:
        raise DataError(
            "no line of the JSONL file could be read",
            path=path,
            line=1,
            hint="each line must be one JSON object",
        )
    return _Table(list(keys), rows, nums, "", [])


def _load_headlines(
    path: Path,
    report: LoadReport,
    tz,
    delimiter=None,
    time_col=None,
    headline_col=None,
    currency_col=None,
    source_col=None,
    body_col=None,
    source=None,
) -> list[tuple[NewsItem, int]]:
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or _read_text(path).lstrip().startswith("{"):
        table = _read_jsonl(path, report)
        report.delimiter = "jsonl"
    else:
        table = _read_table(path, report, delimiter)
    header = table.header
    tcol = _pick(header, time_col, _TIME_NAMES, "time", path, True)
    hcol = _pick(header, headline_col, _HEADLINE_NAMES, "headline", path, True)
    ccol = _pick(header, currency_col, _CURRENCY_NAMES, "currency", path, False)
    scol = _pick(header, source_col, _SOURCE_NAMES, "source", path, False)
    bcol = _pick(header, body_col, _BODY_NAMES, "body", path, False)
    raw = [r.get(tcol, "") for r in table.rows]
    parsed = _parse_times(raw)
    aware = parsed.map(lambda t: isinstance(t, pd.Timestamp) and t.tzinfo is not None)
    naive = pd.Series(pd.NaT, index=parsed.index, dtype="datetime64[ns]")
    if (~aware).any():
        naive[~aware] = pd.to_datetime(parsed[~aware].astype("datetime64[ns]"))
    times = _to_utc(naive, tz).astype(object)
    times[aware] = parsed[aware]
    _skip_bad_times(report, table, times, "time", raw)
    default_source = source or path.stem
    items = []
    for t, row, line in zip(times.tolist(), table.rows, table.lines, strict=True):
        if pd.isna(t):
            continue
        headline = " ".join(row.get(hcol, "").split())
        if not headline:
            report.add("empty headline; row skipped", line, skipped=True)
            continue
        ccy = row.get(ccol, "").strip().upper() if ccol else ""
        if ccy and not _CCY.match(ccy):
            report.add(f"currency {ccy!r} is not a 3-letter code; left empty", line)
            ccy = ""
        # A headline file may also carry calendar fields (the bundled demo news does); read them when present so
        # the surprise rule can use the figures instead of the model.
        nums = {k: parse_value(row.get(k, "")) for k in ("actual", "forecast", "previous") if k in header}
        item = NewsItem(
            time=pd.Timestamp(t),
            headline=headline,
            source=(row.get(scol, "").strip() if scol else "") or default_source,
            body=row.get(bcol, "").strip() if bcol else "",
            currency=ccy or None,
            actual=nums.get("actual"),
            forecast=nums.get("forecast"),
            previous=nums.get("previous"),
            impact=_impact(row.get("impact", ""), report, line) if "impact" in header else None,
            event=" ".join(row.get("event", "").split()) or None,
        )
        items.append((item, line))
    return items


_LOADERS = {
    "headlines": _load_headlines,
    "forexfactory": _load_forexfactory,
    "dailyfx": _load_dailyfx,
    "mt5calendar": _load_mt5calendar,
}


# ---------------------------------------------------------------------------------------------------------------------
# Public API


def load_news_report(
    path: str | Path, format: str = "auto", tz=None, **column_options
) -> tuple[list[NewsItem], LoadReport]:
    """Load a news file and account for every row: ``(items, report)``; no warnings are issued.

    ``tz`` is the file's clock (IANA name, fixed offset or shifted zone); ``None`` takes the format's default
    (``DEFAULT_TZ``; for MT5 exports the zone in the file's header). ``column_options`` go to the headline loader
    (``time_col``, ``headline_col``, ``currency_col``, ``source_col``, ``body_col``, ``source``) and ``delimiter`` to
    every CSV reader.
    """
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in _LOADERS:
        raise UserError(f"unknown news format {format!r}", hint=f"use auto or one of {', '.join(FORMATS)}")
    zone = tz if tz is not None else DEFAULT_TZ[fmt]
    if zone is not None:
        parse_tz(zone)  # a bad --tz is a user error before any reading
    report = LoadReport(path=str(path), format=fmt, tz=tz_name(zone) if zone is not None else "")
    allowed = {"delimiter"} | (
        {"time_col", "headline_col", "currency_col", "source_col", "body_col", "source"}
        if fmt == "headlines"
        else set()
    )
    unknown = set(column_options) - allowed
    if unknown:
        raise UserError(
            f"options {sorted(unknown)} do not apply to the {fmt} format", hint=f"allowed: {sorted(allowed)}"
        )
    items = _LOADERS[fmt](path, report, zone, **column_options)
    if not report.rows:
        raise DataError("the file has no news rows", path=path, hint="an empty news file is not news")
    if report.rows and not items:
        first = report.problems[0] if report.problems else None
        raise DataError(
            f"no usable row among {report.rows}" + (f"; {first}" if first else ""),
            path=path,
            line=first.lines[0] if first and first.lines else None,
            hint="check --format, --tz and the column names",
        )
    # Sort by (time, id, line) so that of two duplicates the one earlier in the file is kept.
    items.sort(key=lambda pair: (pair[0].time, pair[0].id, pair[1]))
    unique: list[NewsItem] = []
    seen: set[str] = set()
    for it, line in items:
        if it.id in seen:
            report.duplicates += 1
            report.duplicate_lines.append(line)
            continue
        seen.add(it.id)
        unique.append(it)
    report.duplicate_lines.sort()
    report.items = len(unique)
    return unique, report


def load_news(path: str | Path, format: str = "auto", tz=None, **column_options) -> list[NewsItem]:
    """Load a news file into UTC ``NewsItem``s, sorted by (time, id), de-duplicated by id.

    Problems that were repaired or rows that were skipped are issued as warnings naming the file and lines; use
    ``load_news_report`` to get them as data.
    """
    items, report = load_news_report(path, format, tz, **column_options)
    report.warn()
    return items


def news_frame(items: Iterable[NewsItem]) -> pd.DataFrame:
    """The items as a DataFrame for the backtester: one row per item, ``time`` as UTC timestamps, sorted."""
    rows = [{c: getattr(it, c) for c in FRAME_COLUMNS} for it in items]
    df = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    df["time"] = pd.to_datetime(df["time"], utc=True)
    for c in ("actual", "forecast", "previous"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df.sort_values(["time", "id"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def inspect_text(items: Sequence[NewsItem], report: LoadReport) -> str:
    """The ``inspect`` printout: format, zone, counts, first and last time in UTC, problems."""
    out = [
        f"file:        {report.path}",
        f"format:      {report.format}"
        + (f" (delimiter {report.delimiter!r})" if report.delimiter not in (",", "jsonl") else ""),
        f"source tz:   {report.tz}",
        f"rows:        {report.rows}",
        f"news items:  {report.items}",
        f"duplicates:  {report.duplicates}",
        f"skipped:     {report.skipped}",
    ]
    if items:
        out.append(f"first (UTC): {items[0].time.isoformat()}")
        out.append(f"last (UTC):  {items[-1].time.isoformat()}")
        cal = sum(1 for it in items if it.is_calendar)
        if cal:
            out.append(f"with actual and forecast/previous: {cal}")
        ccy = pd.Series([it.currency or "-" for it in items]).value_counts()
        out.append("currencies:  " + ", ".join(f"{k} {v}" for k, v in ccy.head(10).items()))
    problems = report.lines()
    out.append(f"problems:    {len(problems) or 'none'}")
    out.extend(f"  - {p}" for p in problems)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bridge.news inspect FILE``: check a news file before a backtest."""
    ap = argparse.ArgumentParser(
        prog="python -m bridge.news", description="Inspect news files (headlines, calendars)."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "inspect",
        help="print format, row count, first/last time in UTC and problems",
    )
    p.add_argument("file", type=Path)
    p.add_argument(
        "--format",
        default="auto",
        choices=("auto", *FORMATS),
        help="file format (default: auto, from the header)",
    )
    p.add_argument(
        "--tz",
        default=None,
        help="source clock (IANA name, UTC+4, America/New_York+7); default per format: "
        + ", ".join(f"{k} {v or 'from file header'}" for k, v in DEFAULT_TZ.items()),
    )
    p.add_argument("--delimiter", default=None, help="CSV delimiter (default: detected from the header)")
    for col in ("time", "headline", "currency", "source", "body"):
        p.add_argument(
            f"--{col}-col", default=None, help=f"headline files: the {col} column (default: detected)"
        )
    args = ap.parse_args(argv)
    opts = {
        k: v
        for k, v in {
            "delimiter": args.delimiter,
            "time_col": args.time_col,
            "headline_col": args.headline_col,
            "currency_col": args.currency_col,
            "source_col": args.source_col,
            "body_col": args.body_col,
        }.items()
        if v is not None
    }
    items, report = load_news_report(args.file, args.format, args.tz, **opts)
    print(inspect_text(items, report))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
