"""News loading on the real calendar and headline files, and on the bad inputs users send."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import DataError, UserError
from bridge.news.loading import (
    FRAME_COLUMNS,
    detect_format,
    inspect_text,
    load_news,
    load_news_report,
    main,
    news_frame,
)
from bridge.news.values import is_missing, parse_value

ROOT = Path(__file__).resolve().parents[1]

# Data rows per file, from SOURCES.md of the shared data.
SOURCE_ROWS = {
    "calendar/forexfactory_2007.csv": 3958,
    "calendar/forexfactory_2008.csv": 4369,
    "calendar/forexfactory_2009.csv": 4500,
    "calendar/forexfactory_2010.csv": 4490,
    "calendar/forexfactory_2011.csv": 4504,
    "calendar/forexfactory_2012.csv": 4450,
    "calendar/forexfactory_2013.csv": 4476,
    "calendar/forexfactory_2014.csv": 4432,
    "calendar/forexfactory_2015.csv": 4495,
    "calendar/forexfactory_2016.csv": 4474,
    "calendar/forexfactory_2017.csv": 4566,
    "calendar/dailyfx_2009.csv": 1344,
    "calendar/dailyfx_2010.csv": 6321,
    "calendar/dailyfx_2011.csv": 6571,
    "calendar/dailyfx_2012.csv": 6687,
    "calendar/dailyfx_2013.csv": 77,
    "calendar/dailyfx_2014.csv": 7434,
    "calendar/dailyfx_2015.csv": 7274,
    "calendar/dailyfx_2016.csv": 7926,
    "headlines/@TopForexNewsCom.csv": 2059,
    "headlines/@TopForexNewsCom_EURUSD.csv": 994,
}


def _expected_format(name: str) -> str:
    return name.split("/")[1].split("_")[0] if name.startswith("calendar/") else "headlines"


def test_every_shared_news_file_is_listed(shared_data):
    on_disk = {
        f"{p.parent.name}/{p.name}"
        for d in ("calendar", "headlines")
        for p in (shared_data / d).glob("*.csv")
    }
    assert on_disk == set(SOURCE_ROWS)


@pytest.mark.parametrize("name", sorted(SOURCE_ROWS))
def test_shared_file_loads_with_every_row_accounted_for(shared_data, name):
    path = shared_data / name
    assert detect_format(path) == _expected_format(name)
    items, report = load_news_report(path)
    assert report.format == _expected_format(name)
    assert report.rows == SOURCE_ROWS[name]
    # Nothing is lost: every data row is an item or a reported duplicate; no real row is unusable.
    assert report.skipped == 0
    assert report.items + report.duplicates == report.rows
    assert len(items) == report.items == len({it.id for it in items})
    assert len(report.duplicate_lines) == report.duplicates
    keys = [(it.time, it.id) for it in items]
    assert keys == sorted(keys)
    assert all(str(it.time.tz) == "UTC" for it in items)


def test_forexfactory_duplicates_are_the_identical_rows(shared_data):
    path = shared_data / "calendar/forexfactory_2010.csv"
    raw = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns="Unnamed: 0")
    _, report = load_news_report(path)
    assert report.duplicates == int(raw.duplicated().sum()) == 3


def test_holiday_rows_without_time_stay_news_items(shared_data):
    items, report = load_news_report(shared_data / "calendar/dailyfx_2011.csv")
    untimed = [p for p in report.problems if p.message.startswith("no time given")]
    assert untimed and not any(p.skipped for p in untimed)
    # A released value of unknown time is placed at the end of its day, never before it could be known.
    late = next(p for p in untimed if "released value" in p.message)
    assert late.lines


@pytest.mark.parametrize("year", range(2007, 2017))
def test_forexfactory_nonfarm_payrolls_land_at_830_new_york(shared_data, year):
    items, _ = load_news_report(shared_data / f"calendar/forexfactory_{year}.csv")
    nfp = [it for it in items if it.event == "Non-Farm Employment Change"]
    assert len(nfp) >= 11
    for it in nfp:
        ny = it.time.tz_convert("America/New_York")
        assert (ny.hour, ny.minute) == (8, 30), it
        # 13:30 UTC in winter, 12:30 UTC in summer.
        summer = bool(ny.dst())
        assert (it.time.hour, it.time.minute) == ((12, 30) if summer else (13, 30)), it


def test_known_nonfarm_payroll_rows_2016(shared_data):
    items = load_news(shared_data / "calendar/forexfactory_2016.csv")
    by_day = {it.time.date().isoformat(): it for it in items if it.event == "Non-Farm Employment Change"}
    winter, summer = by_day["2016-12-02"], by_day["2016-11-04"]
    assert winter.time == pd.Timestamp("2016-12-02 13:30", tz="UTC")
    assert summer.time == pd.Timestamp("2016-11-04 12:30", tz="UTC")
    assert winter.headline == "USD Non-Farm Employment Change: actual 178K, forecast 177K, previous 142K"
    assert (winter.actual, winter.forecast, winter.previous) == (178_000.0, 177_000.0, 142_000.0)
    assert winter.currency == "USD" and winter.impact == "high" and winter.source == "forexfactory"


def test_dailyfx_nonfarm_payrolls_in_utc(shared_data):
    items, _ = load_news_report(shared_data / "calendar/dailyfx_2016.csv")
    nfp = [it for it in items if it.event and it.event.lower().startswith("change in non-farm payrolls")]
    assert nfp
    for it in nfp:
        assert it.time.tz_convert("America/New_York").strftime("%H:%M") == "08:30"
        assert it.currency == "USD" and not it.headline.startswith("USD USD")


def test_headline_file_range_matches_sources(shared_data):
    items = load_news(shared_data / "headlines/@TopForexNewsCom.csv")
    assert items[0].time == pd.Timestamp("2014-07-29 15:15:42", tz="UTC")
    assert items[-1].time.date().isoformat() == "2016-12-24"
    assert items[0].headline == "Hawkish Fed Sends Dollar Higher Against Counterparts"
    assert items[0].source == "@TopForexNewsCom"


def test_tz_override_moves_times(shared_data):
    path = shared_data / "calendar/forexfactory_2016.csv"
    base = load_news(path)
    as_utc = load_news(path, tz="UTC")
    assert base[0].time - as_utc[0].time == pd.Timedelta(hours=5)


def test_news_frame_columns_and_types(shared_data):
    items = load_news(shared_data / "calendar/forexfactory_2015.csv")
    df = news_frame(items)
    assert list(df.columns) == FRAME_COLUMNS
    assert len(df) == len(items)
    assert str(df["time"].dt.tz) == "UTC"
    assert df["actual"].dtype == "float64"
    assert df["time"].is_monotonic_increasing
    empty = news_frame([])
    assert list(empty.columns) == FRAME_COLUMNS and len(empty) == 0


# ---------------------------------------------------------------------------------------------------------------------
# Bad input


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


FF_HEADER = ",actual,country,datetime,forecast,forecast_error,impact,new,previous,previous_error,week\n"


def test_empty_file_is_an_error(tmp_path):
    p = _write(tmp_path, "news.csv", "")
    with pytest.raises(DataError, match="empty"):
        load_news(p)


def test_header_only_file_is_an_error_naming_it(tmp_path):
    # an empty news file is an error, as an empty bars file is (issue 10, row 18)
    p = _write(tmp_path, "ff.csv", FF_HEADER)
    with pytest.raises(DataError, match=r"ff\.csv: the file has no news rows"):
        load_news_report(p)


def test_truncated_last_line_warns_and_keeps_good_rows(tmp_path):
    p = _write(
        tmp_path,
        "h.csv",
        'publish_date,headline_text\n2016-01-04 10:00:00,"Euro rises"\n2016-01-04 11:00:00,"Dollar falls"\n2016-01-04 1',
    )
    with pytest.warns(UserWarning, match=r"h\.csv: .*truncated.*line 4"):
        items = load_news(p)
    assert [it.headline for it in items] == ["Euro rises", "Dollar falls"]


def test_semicolon_delimiter_is_detected(tmp_path):
    p = _write(tmp_path, "h.csv", "publish_date;headline_text\n2016-01-04 10:00:00;Euro rises\n")
    items, report = load_news_report(p)
    assert report.delimiter == ";" and items[0].headline == "Euro rises"
    assert "delimiter ';'" in inspect_text(items, report)


def test_unknown_delimiter_names_the_delimiter(tmp_path):
    p = _write(tmp_path, "h.csv", "publish_date headline_text\n2016-01-04 Euro\n")
    with pytest.raises(DataError) as exc:
        load_news(p, format="headlines")
    assert "line 1" in str(exc.value) or ":1:" in str(exc.value)
    assert "delimiter" in str(exc.value)


def test_missing_column_names_it(tmp_path):
    p = _write(
        tmp_path,
        "ff.csv",
        ",actual,country,datetime,impact,new,previous\n0,1%,USD,2016-01-04 08:30:00,High,CPI,1%\n",
    )
    with pytest.raises(DataError, match="missing column forecast") as exc:
        load_news(p, format="forexfactory")
    assert exc.value.line == 1 and exc.value.path == p


def test_unparseable_date_warns_with_line_and_keeps_other_rows(tmp_path):
    p = _write(
        tmp_path,
        "ff.csv",
        FF_HEADER
        + "0,227K,USD,2016-01-08 08:30:00,175K,,High,Non-Farm Employment Change,252K,,1\n"
        + "1,5.0%,USD,not a date,5.0%,,High,Unemployment Rate,5.0%,,1\n",
    )
    with pytest.warns(UserWarning, match=r"unparseable datetime.*line 3"):
        items = load_news(p)
    assert len(items) == 1 and items[0].time == pd.Timestamp("2016-01-08 13:30", tz="UTC")


def test_all_dates_unparseable_is_an_error(tmp_path):
    p = _write(tmp_path, "h.csv", "time,headline\nyesterday,Euro rises\nsoon,Dollar falls\n")
    with pytest.raises(DataError, match="no usable row") as exc:
        load_news(p)
    assert exc.value.line == 2


def test_na_values_are_none_not_errors(tmp_path):
    p = _write(
        tmp_path,
        "ff.csv",
        FF_HEADER + "0,n/a,EUR,2016-01-08 05:00:00,n/a,,Low,German Trade Balance,19.7B,,1\n",
    )
    items, report = load_news_report(p)
    assert items[0].actual is None and items[0].forecast is None and items[0].previous == 19.7e9
    assert items[0].headline == "EUR German Trade Balance: previous 19.7B"
    assert report.problems == []


def test_duplicates_are_counted_not_silent(tmp_path):
    row = "0,227K,USD,2016-01-08 08:30:00,175K,,High,Non-Farm Employment Change,252K,,1\n"
    p = _write(tmp_path, "ff.csv", FF_HEADER + row + row.replace("0,", "1,", 1))
    with pytest.warns(UserWarning, match="1 duplicate rows.*line 3"):
        items = load_news(p)
    assert len(items) == 1


def test_out_of_order_rows_are_sorted(tmp_path):
    p = _write(tmp_path, "h.csv", "time,headline\n2016-01-05 10:00:00,Later\n2016-01-04 10:00:00,Earlier\n")
    assert [it.headline for it in load_news(p)] == ["Earlier", "Later"]


def test_bad_tz_is_a_user_error(tmp_path):
    p = _write(tmp_path, "h.csv", "time,headline\n2016-01-05 10:00:00,Later\n")
    with pytest.raises(UserError, match="unknown time zone"):
        load_news(p, tz="Mars/Olympus")


def test_unknown_header_asks_for_format(tmp_path):
    p = _write(tmp_path, "x.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="--format"):
        load_news(p)


def test_headline_jsonl_with_named_columns_offsets_and_bad_line(tmp_path):
    p = _write(
        tmp_path,
        "n.jsonl",
        '{"ts": "2016-06-23T22:00:00+01:00", "title": "Brexit vote count begins", "ccy": "gbp", "src": "wire"}\n'
        '{"ts": "2016-06-24 04:40:00", "title": "Leave wins", "ccy": "GBP", "src": "wire"}\n'
        "{not json}\n",
    )
    with pytest.warns(UserWarning, match="invalid JSON.*line 3"):
        items = load_news(p, time_col="ts", headline_col="title", currency_col="ccy", source_col="src")
    assert [it.time for it in items] == [
        pd.Timestamp("2016-06-23 21:00", tz="UTC"),
        pd.Timestamp("2016-06-24 04:40", tz="UTC"),
    ]
    assert {it.currency for it in items} == {"GBP"} and {it.source for it in items} == {"wire"}


def test_named_column_that_does_not_exist(tmp_path):
    p = _write(tmp_path, "h.csv", "time,headline\n2016-01-05 10:00:00,Later\n")
    with pytest.raises(DataError, match="no column 'title'"):
        load_news(p, headline_col="title")


def test_headlines_in_a_dst_zone(tmp_path):
    p = _write(tmp_path, "h.csv", "time,headline\n2016-01-05 08:30:00,Winter\n2016-07-05 08:30:00,Summer\n")
    items = load_news(p, tz="America/New_York")
    assert [it.time.hour for it in items] == [13, 12]


MT5_TEXT = """# ea-bridge calendar v1
# server_tz=America/New_York+7
# server_utc_offset=+02:00; exported_utc=2024-01-05T08:00:00Z
time,country,currency,event,importance,actual,forecast,previous,revised_previous,unit,multiplier,event_id,value_id
2024.01.05 15:30,US,USD,Nonfarm Payrolls,high,216,170,173,,people,thousands,840030016,165734
2024.01.05 15:30,US,USD,Unemployment Rate,high,3.7,3.8,3.7,,percent,none,840030005,165735
2023.07.07 15:30,US,USD,Nonfarm Payrolls,high,209,225,306,,people,thousands,840030016,160001
2024.01.01 00:00,JP,JPY,New Year's Day,none,,,,,none,none,392010001,165701
"""


def test_mt5_calendar_export_uses_the_header_zone(tmp_path):
    p = _write(tmp_path, "cal.csv", MT5_TEXT)
    assert detect_format(p) == "mt5calendar"
    items, report = load_news_report(p)
    assert report.tz == "America/New_York+7" and report.problems == []
    nfp = [it for it in items if it.event == "Nonfarm Payrolls"]
    # Server time 15:30 is 08:30 New York: 13:30 UTC in January, 12:30 UTC in July.
    assert [it.time for it in nfp] == [
        pd.Timestamp("2023-07-07 12:30", tz="UTC"),
        pd.Timestamp("2024-01-05 13:30", tz="UTC"),
    ]
    jan = nfp[1]
    assert jan.headline == "USD Nonfarm Payrolls: actual 216K, forecast 170K, previous 173K"
    assert jan.actual == 216_000.0 and jan.impact == "high"
    ue = next(it for it in items if it.event == "Unemployment Rate")
    assert ue.headline.endswith("actual 3.7%, forecast 3.8%, previous 3.7%") and ue.actual == 3.7
    holiday = next(it for it in items if it.currency == "JPY")
    assert holiday.actual is None and holiday.impact == "none"


def test_mt5_calendar_fixed_offset_and_override(tmp_path):
    text = MT5_TEXT.replace("# server_tz=America/New_York+7\n", "")
    p = _write(tmp_path, "cal.csv", text)
    items = load_news(p)
    assert items[-1].time == pd.Timestamp("2024-01-05 13:30", tz="UTC")
    items = load_news(p, tz="UTC+3")
    assert items[-1].time == pd.Timestamp("2024-01-05 12:30", tz="UTC")


def test_mt5_calendar_without_zone_is_refused(tmp_path):
    text = "\n".join(line for line in MT5_TEXT.splitlines() if "server_" not in line) + "\n"
    p = _write(tmp_path, "cal.csv", text)
    with pytest.raises(DataError, match="server time zone") as exc:
        load_news(p)
    assert "--tz" in str(exc.value)


def test_mt5_calendar_utf16_as_metatrader_writes_it(tmp_path):
    p = tmp_path / "cal.csv"
    p.write_bytes(MT5_TEXT.encode("utf-16"))
    assert len(load_news(p)) == 4


# ---------------------------------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize(
    "text, value",
    [
        ("227K", 227_000.0),
        ("-0.3%", -0.3),
        ("1.2B", 1.2e9),
        ("0.54T", 0.54e12),
        ("<0.10%", 0.10),
        ("-$45.6B", -45.6e9),
        ("-£7768", -7768.0),
        ("¥990.2B", 990.2e9),
        ("A$43.8B", 43.8e9),
        ("EU80b", 80e9),
        ("254k", 254_000.0),
        ("3.0%%", 3.0),
        ("1,234.5K", 1_234_500.0),
        ("62.08", 62.08),
        ("n/a", None),
        ("", None),
        ("-", None),
        ("0-0-9", None),
        ("4.35|2.3", None),
        ("Pass", None),
        ("0..699", None),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == (pytest.approx(value) if value is not None else None)


def test_is_missing_tells_blank_from_text():
    assert is_missing("n/a") and is_missing(" ") and is_missing(None)
    assert not is_missing("0-0-9")


# ---------------------------------------------------------------------------------------------------------------------
# inspect


def test_inspect_prints_format_counts_and_range(shared_data, capsys):
    assert main(["inspect", str(shared_data / "calendar/forexfactory_2016.csv")]) == 0
    out = capsys.readouterr().out
    assert "format:      forexfactory" in out
    assert "rows:        4474" in out
    assert "source tz:   UTC-05:00" in out
    assert "first (UTC): 2016-01-01T05:00:00+00:00" in out


def test_inspect_lists_problems_with_lines(tmp_path, capsys):
    p = _write(tmp_path, "h.csv", "time,headline\n2016-01-05 10:00:00,Fine\nbad,Broken\n")
    assert main(["inspect", str(p)]) == 0
    out = capsys.readouterr().out
    assert "skipped:     1" in out and "line 3" in out


def test_inspect_error_is_one_line_without_traceback(tmp_path):
    p = _write(tmp_path, "empty.csv", "")
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.news", "inspect", str(p)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ") and "empty" in proc.stderr


def test_loading_real_files_issues_only_line_warnings(shared_data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_news(shared_data / "calendar/dailyfx_2013.csv")
    assert all("line" in str(w.message) for w in caught)


# ---------------------------------------------------------------------------------------------------------------------
# Robustness: whatever a user points the loader at, the answer is items or a UserError, never a traceback


_HEADERS = [
    "publish_date,headline_text\n",
    FF_HEADER,
    ",actual,country,date,forecast,forecast_error,impact,new,previous,previous_error,time\n",
    "# server_tz=UTC+2\ntime,currency,event,actual,forecast,previous,multiplier,unit\n",
    "",
]
_CELLS = st.sampled_from(
    [
        "2016-01-08 08:30:00",
        "Friday, January 8, 2016",
        "08:30",
        "2016.01.08 15:30",
        "227K",
        "n/a",
        "<0.10%",
        "USD",
        "All",
        "High",
        "???med???",
        "Non-Farm Employment Change",
        "",
        '"',
        '"a,b"',
        "x",
        "-",
        "0-0-9",
        "\u00e9",
        "\t",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.sampled_from(_HEADERS),
    rows=st.lists(st.lists(_CELLS, min_size=1, max_size=12), max_size=6),
    sep=st.sampled_from([",", ";"]),
    end=st.sampled_from(["\n", "\r\n", ""]),
    fmt=st.sampled_from(["auto", "headlines", "forexfactory", "dailyfx", "mt5calendar"]),
)
def test_loader_never_raises_anything_but_user_errors(tmp_path, header, rows, sep, end, fmt):
    p = tmp_path / "fuzz.csv"
    p.write_text(header + end.join(sep.join(r) for r in rows) + end, encoding="utf-8")
    try:
        items, report = load_news_report(p, format=fmt)
    except UserError:
        return
    assert report.items + report.duplicates + report.skipped == report.rows
    assert len(items) == report.items


def test_headline_file_with_calendar_columns_keeps_the_figures(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text(
        "time_utc,source,currency,headline,event,actual,forecast,previous,impact\n"
        "2017-01-06 13:30:00,BLS,USD,US payrolls rise by 156K,Non-Farm Payrolls,156K,,178K,high\n"
        "2017-02-01 19:00:00,Federal Reserve,USD,Fed holds rates,FOMC decision,,,,high\n"
    )
    nfp, fed = load_news(path)
    assert (nfp.actual, nfp.forecast, nfp.previous, nfp.event, nfp.impact) == (
        156000.0,
        None,
        178000.0,
        "Non-Farm Payrolls",
        "high",
    )
    assert nfp.is_calendar and not fed.is_calendar and fed.actual is None


def test_an_unclosed_quote_refuses_the_file_naming_its_line(tmp_path):
    rows = [f"2017-01-0{i} 10:00:00,wire,USD,Headline {i}" for i in range(1, 4)]
    rows += ['2017-01-04 10:00:00,wire,USD,"Broken quote here']
    rows += [f"2017-01-0{i} 10:00:00,wire,USD,Headline {i}" for i in range(5, 9)]
    p = _write(tmp_path, "quote.csv", "time_utc,source,currency,headline\n" + "\n".join(rows) + "\n")
    # Read leniently, the quote would swallow the four good rows after it into one headline, with true-looking counts.
    with pytest.raises(DataError, match="never closed") as exc:
        load_news(p)
    assert exc.value.line == 5
