"""The calendar surprise rule: signs on real rows of both polarities, agreement with the calendars' own marks,
magnitudes, labels, and the analyzer interface."""

from __future__ import annotations

import csv
import dataclasses
import json

import pandas as pd
import pytest

from bridge.analysis import Analyzer
from bridge.errors import UserError
from bridge.news.loading import load_news
from bridge.news.surprise import (
    SurpriseAnalyzer,
    indicator_key,
    load_indicators,
    surprise_analysis,
    typical_surprises,
)
from bridge.news.values import parse_value
from bridge.prompt import format_output, parse_output
from bridge.schema import load_schema
from bridge.types import NewsItem

T0 = pd.Timestamp("2016-01-08 13:30", tz="UTC")


def _item(event, currency="USD", actual=None, forecast=None, previous=None):
    return NewsItem(
        time=T0,
        headline=f"{currency} {event}",
        event=event,
        currency=currency,
        actual=actual,
        forecast=forecast,
        previous=previous,
    )


@pytest.fixture(scope="module")
def ff2016(shared_data):
    return load_news(shared_data / "calendar/forexfactory_2016.csv")


def _row(items, event, day):
    return next(it for it in items if it.event == event and it.time.date().isoformat() == day)


def test_real_nfp_beat_is_usd_positive(ff2016):
    nfp = _row(ff2016, "Non-Farm Employment Change", "2016-08-05")  # 255K against 180K expected
    a = SurpriseAnalyzer().analyze([nfp])[0]
    assert a.sentiment > 0
    assert a.labels == {"event": "economic data", "market": "US", "sector": "FX"}
    assert a.related == ("USD",) and a.analyzer == "surprise-rule"


def test_real_nfp_miss_is_usd_negative(ff2016):
    nfp = _row(ff2016, "Non-Farm Employment Change", "2016-09-02")  # 151K against 180K expected
    assert SurpriseAnalyzer().analyze([nfp])[0].sentiment < 0


def test_real_unemployment_above_forecast_is_negative(ff2016):
    rows = [
        it for it in ff2016 if it.event == "Unemployment Rate" and it.is_calendar and it.forecast is not None
    ]
    above = [it for it in rows if it.actual > it.forecast]
    below = [it for it in rows if it.actual < it.forecast]
    assert above and below
    analyzer = SurpriseAnalyzer()
    assert all(a.sentiment < 0 for a in analyzer.analyze(above))
    assert all(a.sentiment > 0 for a in analyzer.analyze(below))


def test_real_jobless_claims_are_inverted(ff2016):
    claims = [
        it for it in ff2016 if it.event == "Unemployment Claims" and it.forecast is not None and it.actual
    ]
    for it, a in zip(claims, SurpriseAnalyzer().analyze(claims), strict=True):
        if it.actual != it.forecast:
            assert (a.sentiment > 0) == (it.actual < it.forecast), it.headline


def test_real_rate_decision_is_central_bank_rates(shared_data):
    items = load_news(shared_data / "calendar/forexfactory_2015.csv")
    fed = next(it for it in items if it.event == "Federal Funds Rate" and it.time.month == 12)
    a = surprise_analysis(fed)
    assert a.labels["event"] == "central bank decision" and a.labels["sector"] == "rates"
    assert a.labels["market"] == "US" and a.related == ("USD",)


def _marked_rows(path, fmt):
    """Rows where the calendar marked the release better or worse for the currency, as (item, better)."""
    good = {"better": True, "worse": False, "u": True, "d": False}
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            mark = good.get(r["forecast_error"])
            a, fc = parse_value(r["actual"]), parse_value(r["forecast"])
            if mark is None or a is None or fc is None or a == fc:
                continue
            name = r["new"][4:] if fmt == "dailyfx" else r["new"]
            yield _item(name, r["country"], a, fc), mark


def _agreement(paths, fmt):
    table = load_indicators()
    agree = total = 0
    for p in paths:
        for it, better in _marked_rows(p, fmt):
            level = surprise_analysis(it, table=table).sentiment
            if level == 0:
                continue  # no direction (energy inventories)
            total += 1
            agree += (level > 0) == better
    return agree, total


def test_sign_agrees_with_forexfactory_marks(shared_data):
    # ForexFactory marks each release better/worse for its currency; the polarity table must reproduce it.
    agree, total = _agreement(sorted((shared_data / "calendar").glob("forexfactory_*.csv")), "forexfactory")
    assert total > 20_000
    assert agree == total


def test_sign_mostly_agrees_with_dailyfx_marks(shared_data):
    # DailyFX marks inventories, productivity and UK public borrowing the other way round from ForexFactory.
    agree, total = _agreement(sorted((shared_data / "calendar").glob("dailyfx_*.csv")), "dailyfx")
    assert total > 15_000
    assert agree / total > 0.95


def test_no_actual_or_nothing_to_compare_is_low_confidence_neutral():
    for it in (_item("CPI m/m", forecast=0.2), _item("CPI m/m", actual=0.2), _item("Bank Holiday")):
        a = surprise_analysis(it)
        assert a.sentiment == 0 and a.confidence <= 0.1


def test_headline_without_calendar_fields_is_neutral():
    it = NewsItem(time=T0, headline="Euro rallies after ECB", source="wire")
    a = SurpriseAnalyzer().analyze([it])[0]
    assert a.sentiment == 0 and a.related == () and a.labels["market"] == "global"


def test_on_expectation_is_neutral_with_some_confidence():
    a = surprise_analysis(_item("CPI m/m", actual=0.2, forecast=0.2))
    assert a.sentiment == 0 and a.confidence == 0.5


def test_previous_used_when_no_forecast_with_lower_confidence():
    with_fc = surprise_analysis(_item("Retail Sales m/m", actual=0.8, forecast=0.5, previous=0.5))
    prev_only = surprise_analysis(_item("Retail Sales m/m", actual=0.8, previous=0.5))
    assert with_fc.sentiment == prev_only.sentiment > 0
    assert prev_only.confidence < with_fc.confidence


@pytest.mark.parametrize(
    "actual, level", [(101.0, 1), (115.0, 2), (140.0, 2), (150.0, 3), (99.0, -1), (85.0, -2), (60.0, -3)]
)
def test_relative_magnitude_thresholds(actual, level):
    # r = |a - f| / max(|f|, |prev|, |a|) against the bounds 0.10 and 0.30:
    # 1/101 slight, 15/115 = 0.13 moderate, 40/140 = 0.29 moderate, 50/150 = 0.33 extreme, 40/100 extreme.
    it = _item("Industrial Production", actual=actual, forecast=100.0, previous=100.0)
    assert surprise_analysis(it).sentiment == level


def test_scaled_magnitude_uses_the_indicators_typical_surprise():
    history = [
        dataclasses.replace(
            _item("Non-Farm Employment Change", actual=f + d, forecast=f),
            time=T0 - pd.Timedelta(days=30 * k),
            id="",
        )
        for k, (f, d) in enumerate([(180e3, 20e3), (170e3, -20e3), (200e3, 20e3), (190e3, -20e3)], start=1)
    ]
    typical = typical_surprises(history)
    assert typical == {"USD|non-farm employment change": 20e3}
    small = _item("Non-Farm Employment Change", actual=195e3, forecast=180e3)  # z = 0.75
    mid = _item("Non-Farm Employment Change", actual=220e3, forecast=180e3)  # z = 2
    big = _item("Non-Farm Employment Change", actual=130e3, forecast=180e3)  # z = 2.5
    analyzer = SurpriseAnalyzer(history=history, causal=False)
    assert [a.sentiment for a in analyzer.analyze([small, mid, big])] == [1, 2, -3]
    confs = [a.confidence for a in analyzer.analyze([small, mid, big])]
    assert confs[0] < confs[1] < confs[2] <= 0.95


def test_indicator_key_drops_the_reference_period():
    assert indicator_key(_item("Initial Jobless Claims (DEC 27)")) == "USD|initial jobless claims"
    assert indicator_key(_item("German CPI (YoY) (OCT P)", "EUR")) == "EUR|german cpi (yoy)"
    assert indicator_key(_item("GDP (3Q A)")) == "USD|gdp"
    # Measures in parentheses are part of the indicator: year-on-year and month-on-month are different series.
    assert indicator_key(_item("CPI (YOY) (Mar-26)")) == "USD|cpi (yoy)"
    assert indicator_key(_item("CPI (MoM) (June)")) == "USD|cpi (mom)"


def test_unknown_currency_maps_to_global_market():
    a = surprise_analysis(_item("CPI y/y", "SEK", actual=1.5, forecast=1.2))
    assert a.labels["market"] == "global" and a.related == ("SEK",) and a.sentiment > 0


def test_energy_inventories_have_no_direction():
    a = surprise_analysis(_item("Crude Oil Inventories", actual=5.0e6, forecast=-1.0e6))
    assert a.sentiment == 0 and a.labels["event"] == "commodity" and a.labels["sector"] == "energy"


def test_analysis_formats_and_parses_back():
    a = surprise_analysis(_item("Federal Funds Rate", actual=0.5, forecast=0.25, previous=0.25))
    assert a.sentiment == 3
    parsed = parse_output(format_output(a)).analysis
    assert (parsed.labels, parsed.sentiment, parsed.related) == (a.labels, a.sentiment, a.related)


def test_is_an_analyzer():
    assert isinstance(SurpriseAnalyzer(), Analyzer)
    assert SurpriseAnalyzer().name == "surprise-rule"


def test_schema_without_market_is_refused():
    with pytest.raises(UserError, match="market"):
        SurpriseAnalyzer(schema="cn_ashare")


def test_bad_indicator_table_is_a_user_error(tmp_path):
    p = tmp_path / "ind.json"
    p.write_text(json.dumps({"polarity": [{"pattern": "(", "polarity": 1}]}), encoding="utf-8")
    with pytest.raises(UserError, match="invalid indicator table"):
        load_indicators(p)
    p.write_text(
        json.dumps({**json.loads(_table_text()), "polarity": [{"pattern": "x", "polarity": 5}]}),
        encoding="utf-8",
    )
    with pytest.raises(UserError, match="polarity must be"):
        load_indicators(p)


def _table_text() -> str:
    from bridge.news.surprise import INDICATORS_FILE

    return INDICATORS_FILE.read_text(encoding="utf-8")


def test_schema_labels_are_in_vocabulary():
    schema = load_schema()
    table = load_indicators()
    for rule in table.event_rules:
        assert rule.value["event"] in schema.field("event").values
        assert rule.value["sector"] in schema.field("sector").values


def _at(day, event="Non-Farm Employment Change", **kw):
    return NewsItem(
        time=pd.Timestamp(day, tz="UTC"), headline=f"USD {event}", event=event, currency="USD", **kw
    )


def test_causal_history_uses_only_earlier_releases():
    history = [_at(f"2016-0{m}-05", actual=200e3, forecast=190e3) for m in range(1, 5)]  # typical 10K
    # Five later 90K misses must not shape June's label.
    history += [_at(f"2016-{m:02d}-02", actual=100e3, forecast=190e3) for m in range(7, 12)]
    june = _at("2016-06-03", actual=205e3, forecast=190e3)  # 15K beat: z = 1.5 on the earlier history
    analyzer = SurpriseAnalyzer(history=history)
    assert analyzer.scale_for(june) == 10e3
    assert analyzer.analyze([june])[0].sentiment == 2
    # Before three earlier releases exist there is no scale; the relative magnitude applies.
    assert analyzer.scale_for(_at("2016-02-10")) is None
    # The non-causal form (for labelling finished history) uses everything, the later misses included.
    assert SurpriseAnalyzer(history=history, causal=False).scale_for(june) == 90e3
    assert typical_surprises(history) == {"USD|non-farm employment change": 90e3}


def test_causal_scale_on_a_real_year(shared_data):
    items = load_news(shared_data / "calendar/forexfactory_2016.csv")
    analyzer = SurpriseAnalyzer(history=items)
    nfp = [it for it in items if it.event == "Non-Farm Employment Change"]
    scales = [analyzer.scale_for(it) for it in nfp]
    assert scales[:3] == [None, None, None] and all(s and s > 0 for s in scales[4:])
    levels = [a.sentiment for a in analyzer.analyze(nfp)]
    assert all((lv > 0) == (it.actual > it.forecast) for lv, it in zip(levels, nfp, strict=True) if lv)


def _releases(n: int, event: str = "Initial Jobless Claims", start: str = "2010-01-07") -> list[NewsItem]:
    """Weekly releases whose surprise grows, so the median of any window says which releases it holds."""
    t0 = pd.Timestamp(start, tz="UTC")
    return [
        NewsItem(
            time=t0 + pd.Timedelta(weeks=k),
            headline=f"USD {event}",
            event=event,
            currency="USD",
            actual=float(200 + k % 7 + k / 10),
            forecast=200.0,
        )  # fmt: skip
        for k in range(n)
    ]


def test_the_typical_surprise_is_the_median_of_the_last_releases_before_the_item(monkeypatch):
    from bridge.news import surprise as mod

    monkeypatch.setattr(mod, "RECENT", 5)
    items = _releases(40)
    full = SurpriseAnalyzer(history=items)
    last_five = sorted(size for _, _, size in mod._surprises(items[25:30]))
    assert full.scale_for(items[30]) == pytest.approx(last_five[2])  # releases 25..29, not 0..29
    assert full.scale_for(items[2]) is None  # fewer than MIN_HISTORY before it


def test_live_history_is_bounded_and_gives_new_releases_the_backtests_scale(monkeypatch):
    """An uptime of months, or a feed inventing event names, must not grow the surprise rule's memory; a release that
    arrives after its history still gets exactly the scale the backtester (whole history) gives it."""
    from bridge.news import surprise as mod

    monkeypatch.setattr(mod, "RECENT", 8)
    monkeypatch.setattr(mod, "KEEP_INDICATORS", 3)
    items = _releases(200)
    backtest = SurpriseAnalyzer(history=items)
    live = SurpriseAnalyzer(bounded=True)
    for item in items:  # the server observes each item as it is accepted, then analyses it
        live.observe([item])
        assert live.scale_for(item) == backtest.scale_for(item)
    assert len(live._history["USD|initial jobless claims"]) == 16 and len(live._seen) == 16
    for k in range(10):  # invented indicators: the least recently updated go first
        live.observe(_releases(2, event=f"Invented Index {k}"))
    assert len(live._history) == 3 and len(live._seen) <= 3 * 16
    assert "USD|initial jobless claims" not in live._history
