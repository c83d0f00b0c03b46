"""Records: stable ids, UTC times, validation, round trips through dicts."""

from __future__ import annotations

import pandas as pd
import pytest

from bridge.types import Analysis, NewsItem, news_id


def test_news_id_is_stable_and_ignores_whitespace_and_case():
    t = pd.Timestamp("2017-06-14 18:00", tz="UTC")
    assert news_id(t, "Fed", "Fed  raises rates") == news_id(t, "fed", "fed raises rates")
    assert news_id(t, "Fed", "Fed raises rates") != news_id(
        t + pd.Timedelta(seconds=1), "Fed", "Fed raises rates"
    )


def test_news_item_requires_timezone_and_converts_to_utc():
    with pytest.raises(ValueError, match="timezone-aware"):
        NewsItem(time=pd.Timestamp("2017-01-01 10:00"), headline="x")
    item = NewsItem(time=pd.Timestamp("2017-01-01 10:00", tz="America/New_York"), headline="x")
    assert str(item.time.tz) == "UTC" and item.time.hour == 15


def test_news_item_round_trips_through_dict():
    item = NewsItem(
        time=pd.Timestamp("2017-01-06 13:30", tz="UTC"), headline="NFP", currency="USD", actual=156.0
    )
    assert NewsItem.from_dict(item.to_dict()) == item


def test_analysis_validates_and_round_trips():
    a = Analysis({"event": "other"}, -2, ("USD",), confidence=0.5)
    assert Analysis.from_dict(a.to_dict()) == a
    assert a.score == pytest.approx(-2 / 3)
    with pytest.raises(ValueError):
        Analysis({}, 4)
    with pytest.raises(ValueError):
        Analysis({}, 0, confidence=1.5)
