"""The data sets the project ships: the hand-labelled FX/macro headlines (the split set and the training-only extra
set) and the 2017 demo news calendar.

Both are read by path (they are data files, not modules) and checked against the label schema, the prompt parser and
the public record of 2017 (meeting dates and the local release times of each institution).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from bridge.news.surprise import surprise_analysis
from bridge.prompt import format_output, parse_output
from bridge.schema import load_schema
from bridge.types import NewsItem

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "finetune" / "datasets"
HEADLINES = DATASETS / "fx_macro_headlines.jsonl"
# written after HEADLINES was split for the shipped model, trained on only (scripts/make_split.sh)
HEADLINES_EXTRA = DATASETS / "fx_macro_headlines_extra.jsonl"
# the least of each set (records, rate decisions, calendar-style lines), so that no check below passes on nothing
MINIMUM = {HEADLINES.name: (500, 20, 15), HEADLINES_EXTRA.name: (250, 10, 5)}
NEWS_2017 = ROOT / "backtest" / "demo" / "news_2017.csv"
NEWS_COLUMNS = [
    "time_utc",
    "source",
    "currency",
    "headline",
    "event",
    "actual",
    "forecast",
    "previous",
    "impact",
]
UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
FRANKFURT = ZoneInfo("Europe/Berlin")
LUXEMBOURG = ZoneInfo("Europe/Luxembourg")
# Daylight saving in 2017, as the release calendars state it: US from 12 March, EU from 26 March to 29 October.
US_DST = (date(2017, 3, 12), date(2017, 11, 5))
EU_DST = (date(2017, 3, 26), date(2017, 10, 29))
# The eight scheduled policy meetings of each central bank in 2017 (Federal Reserve and ECB meeting calendars).
FOMC_2017 = {date(2017, 2, 1), date(2017, 3, 15), date(2017, 5, 3), date(2017, 6, 14), date(2017, 7, 26),
             date(2017, 9, 20), date(2017, 11, 1), date(2017, 12, 13)}  # fmt: skip
ECB_2017 = {date(2017, 1, 19), date(2017, 3, 9), date(2017, 4, 27), date(2017, 6, 8), date(2017, 7, 20),
            date(2017, 9, 7), date(2017, 10, 26), date(2017, 12, 14)}  # fmt: skip
VALUE = re.compile(r"^-?\d+(\.\d+)?[%K]$")
# The calendar-style inputs of the labelled set, as bridge.news.loading.calendar_headline writes them.
CALENDAR_INPUT = re.compile(
    r"^([A-Z]{3}) (.+): actual (-?[\d.]+)[%K]?, forecast (-?[\d.]+)[%K]?, previous (-?[\d.]+)[%K]?$"
)


# --- labelled headlines -------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{path.name}:{n}: blank line"
        rows.append(json.loads(line))
    return rows


@pytest.fixture(scope="module", params=[HEADLINES, HEADLINES_EXTRA], ids=lambda p: p.stem)
def headlines_file(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def records(headlines_file) -> list[dict]:
    return _read_jsonl(headlines_file)


@pytest.fixture(scope="module")
def parsed(records):
    schema = load_schema()
    return [parse_output(rec["output"], schema) for rec in records]


@pytest.fixture(scope="module")
def analyses(parsed):
    return [result.analysis for result in parsed]


def test_headlines_are_instruction_records(headlines_file, records):
    schema = load_schema()
    assert len(records) >= MINIMUM[headlines_file.name][0]
    for n, rec in enumerate(records, 1):
        assert set(rec) == {"instruction", "input", "output"}, f"line {n}: keys {sorted(rec)}"
        assert rec["instruction"] == schema.instruction, f"line {n}: not the schema's instruction"
        assert rec["input"] == " ".join(rec["input"].split()) and len(rec["input"]) >= 15, f"line {n}: input"
        assert "\n" not in rec["output"], f"line {n}: output must be one line"


def test_every_output_parses_and_is_canonical(records, parsed):
    # format_output(parse(x)) == x: the training target is exactly what the server's formatter writes.
    for n, (rec, result) in enumerate(zip(records, parsed, strict=True), 1):
        assert result.ok and not result.analysis.fallback, f"line {n}: {result.problems} in {rec['output']!r}"
        analysis = result.analysis
        assert format_output(analysis) == rec["output"], (
            f"line {n}: {rec['output']!r} is not in canonical form"
        )


def test_every_label_value_appears(analyses):
    schema = load_schema()
    for field in schema.fields:
        seen = Counter(a.labels[field.name] for a in analyses)
        missing = set(field.values) - set(seen)
        assert not missing, f"{field.name} values never used: {sorted(missing)}"
    levels = Counter(a.sentiment for a in analyses)
    assert set(levels) == set(range(-3, 4))
    # Balanced enough to learn from: every level has at least 5% of the records, none more than 30%.
    for level, count in levels.items():
        assert 0.05 <= count / len(analyses) <= 0.30, f"sentiment {level}: {count} of {len(analyses)}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_no_duplicate_inputs_in_either_set():
    both = _read_jsonl(HEADLINES) + _read_jsonl(HEADLINES_EXTRA)
    normalised = Counter(" ".join(r["input"].lower().split()) for r in both)
    dupes = [text for text, count in normalised.items() if count > 1]
    assert not dupes, f"duplicate headlines: {dupes[:5]}"


def test_extra_set_has_no_near_copy_of_a_split_record():
    # The extra set is trained on beside the split set's training part; a headline that shares most of its words
    # with one in the split set (in its test part, say) would leak that item into training. Jaccard similarity of
    # the word sets must stay below 0.55 (rephrasings of one real event in the two sets scored 0.55-0.9).
    split_words = [_words(r["input"]) for r in _read_jsonl(HEADLINES)]
    for rec in _read_jsonl(HEADLINES_EXTRA):
        words = _words(rec["input"])
        closest = max(len(words & w) / len(words | w) for w in split_words)
        assert closest < 0.55, f"{rec['input']!r} is close to a record of {HEADLINES.name} ({closest:.2f})"


def test_related_names_the_markets_currency(analyses, records):
    # "Sentiment is for the market's currency", so that currency (or a pair containing it) must be related.
    schema = load_schema()
    for n, (a, rec) in enumerate(zip(analyses, records, strict=True), 1):
        currency = schema.currency_of_market(a.labels["market"])
        if currency is None:
            continue
        aliases = {currency, "CNH"} if currency == "CNY" else {currency}
        assert any(c in token for token in a.related for c in aliases), (
            f"line {n}: {rec['input']!r} {a.related}"
        )


def test_rate_decisions_point_the_right_way(headlines_file, analyses, records):
    # A hike is positive for the currency, a cut negative: the schema's own example, checked on every decision.
    hike = re.compile(r"\b(raises|hikes|lifts)\b.*\b(rate|rates|OCR|Bank Rate)\b", re.I)
    cut = re.compile(r"\b(cuts|slashes)\b.*\b(rate|rates|OCR|ratio)\b", re.I)
    checked = 0
    for a, rec in zip(analyses, records, strict=True):
        if a.labels["event"] != "central bank decision":
            continue
        if hike.search(rec["input"]):
            assert a.sentiment > 0, rec["input"]
            checked += 1
        elif cut.search(rec["input"]):
            assert a.sentiment < 0, rec["input"]
            checked += 1
    assert checked >= MINIMUM[headlines_file.name][1]


def test_calendar_style_records_agree_with_the_surprise_rule(headlines_file, analyses, records):
    # The set's calendar-style headlines are labelled by hand; they must say what the project's own surprise rule
    # says, or the model would learn two conventions from the two sources of calendar training data.
    checked = 0
    for a, rec in zip(analyses, records, strict=True):
        m = CALENDAR_INPUT.match(rec["input"])
        if not m:
            continue
        currency, event, actual, forecast, previous = m.groups()
        item = NewsItem(
            pd.Timestamp("2020-01-01", tz="UTC"),
            rec["input"],
            currency=currency,
            actual=float(actual),
            forecast=float(forecast),
            previous=float(previous),
            event=event,
        )
        rule = surprise_analysis(item)
        assert (rule.sentiment, rule.labels) == (a.sentiment, a.labels), rec["input"]
        checked += 1
    assert checked >= MINIMUM[headlines_file.name][2]


# --- demo news 2017 -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def news() -> list[dict]:
    with NEWS_2017.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == NEWS_COLUMNS
        rows = list(reader)
    for row in rows:
        row["t"] = datetime.strptime(row["time_utc"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return rows


def _local(row, zone) -> str:
    return row["t"].astimezone(zone).strftime("%H:%M")


def _in(d: date, window: tuple[date, date]) -> bool:
    return window[0] <= d < window[1]


def test_news_rows_are_complete_and_sorted(news):
    assert len(news) >= 60
    times = [r["t"] for r in news]
    assert times == sorted(times)
    assert all(t.year == 2017 for t in times)
    for n, row in enumerate(news, 2):
        assert row["currency"] in {"USD", "EUR"}, f"line {n}"
        assert row["source"] and len(row["headline"]) >= 20, f"line {n}"
        assert row["impact"] in {"high", "medium", "low"}, f"line {n}"
        for col in ("actual", "forecast", "previous"):
            assert row[col] == "" or VALUE.match(row[col]), f"line {n}: {col}={row[col]!r}"
    assert len({(r["time_utc"], r["headline"]) for r in news}) == len(news)


def test_fomc_decisions_at_2pm_new_york(news):
    rows = [r for r in news if r["event"] == "FOMC rate decision"]
    assert {r["t"].date() for r in rows} == FOMC_2017
    for r in rows:
        d = r["t"].date()
        assert r["t"].strftime("%H:%M") == ("18:00" if _in(d, US_DST) else "19:00"), r["time_utc"]
        assert _local(r, NEW_YORK) == "14:00"
        assert r["currency"] == "USD" and r["source"] == "Federal Reserve"
    hikes = {r["t"].date() for r in rows if "raises" in r["headline"]}
    assert hikes == {date(2017, 3, 15), date(2017, 6, 14), date(2017, 12, 13)}


def test_ecb_decisions_at_1345_frankfurt(news):
    rows = [r for r in news if r["event"] == "ECB rate decision"]
    assert {r["t"].date() for r in rows} == ECB_2017
    for r in rows:
        d = r["t"].date()
        assert r["t"].strftime("%H:%M") == ("11:45" if _in(d, EU_DST) else "12:45"), r["time_utc"]
        assert _local(r, FRANKFURT) == "13:45"
        assert r["currency"] == "EUR"


def test_payrolls_at_830_new_york(news):
    rows = [r for r in news if r["event"] == "Non-Farm Payrolls"]
    assert len(rows) == 12 and len({r["t"].month for r in rows}) == 12
    for r in rows:
        d = r["t"].date()
        assert d.weekday() == 4, f"{d}: payrolls are released on a Friday"
        assert r["t"].strftime("%H:%M") == ("12:30" if _in(d, US_DST) else "13:30"), r["time_utc"]
        assert r["actual"].endswith("K")


def test_cpi_and_flash_hicp_times(news):
    cpi = [r for r in news if r["event"] == "CPI m/m"]
    hicp = [r for r in news if r["event"] == "HICP flash y/y"]
    assert len(cpi) >= 10 and len(hicp) >= 10
    for r in cpi:
        assert _local(r, NEW_YORK) == "08:30", r["time_utc"]
    for r in hicp:
        assert r["t"].strftime("%H:%M") == ("09:00" if _in(r["t"].date(), EU_DST) else "10:00"), r["time_utc"]
        assert _local(r, LUXEMBOURG) == "11:00"
        assert r["currency"] == "EUR" and r["source"] == "Eurostat"
