"""The wire contract and the server's small parts: validation, envelopes, wire form of targets, journal, rate limit,
news state."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bridge.errors import DataError
from bridge.types import Analysis, NewsItem, Target
from bridge.wire import protocol as P
from bridge.wire.journal import Journal
from bridge.wire.ratelimit import RateLimiter
from bridge.wire.state import NewsState

GOLDEN = Path(__file__).parent / "golden"


def test_every_golden_file_is_one_message_within_the_limit():
    for path in GOLDEN.glob("*.json"):
        data = path.read_bytes()
        assert len(data) <= P.MAX_MESSAGE_BYTES, path.name
        if path.name.endswith("_reply.json") or path.name == "pub_target.json":
            msg = json.loads(data)
            assert msg["v"] == P.PROTOCOL_VERSION and msg["type"] in P.REPLY_TYPES and "id" in msg, path.name
            if msg["type"] == P.ERROR:
                assert msg["code"] in P.ERROR_CODES


def test_reply_type_matches_request_type():
    seq = json.loads((GOLDEN / "sequence.json").read_text())
    for req_name, rep_name in seq["exchanges"]:
        rep = json.loads((GOLDEN / rep_name).read_text())
        try:
            req = P.decode_request((GOLDEN / req_name).read_bytes())
        except P.ProtocolError:
            assert rep["type"] == P.ERROR
            continue
        assert rep["type"] in (P.REPLY_FOR[req["type"]], P.ERROR) and rep["id"] == req["id"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"x" * (P.MAX_MESSAGE_BYTES + 1), P.E_TOO_LARGE),
        (b"\xff\xfe", P.E_BAD_UTF8),
        (b"{", P.E_BAD_JSON),
        (b'{"v":1,"type":"ping","id":"a","x":NaN}', P.E_BAD_JSON),
        (b"[]", P.E_NOT_OBJECT),
        (b'{"v":1,"type":"ping"}', P.E_MISSING_FIELD),
        (b'{"v":1,"type":"ping","id":""}', P.E_BAD_FIELD),
        (b'{"v":true,"type":"ping","id":"a"}', P.E_BAD_VERSION),
        (b'{"v":1,"type":["ping"],"id":"a"}', P.E_UNKNOWN_TYPE),
        (b'{"v":1,"type":"news","id":"a","headline":"x","currency":"EU"}', P.E_BAD_FIELD),
        (b'{"v":1,"type":"news","id":"a","headline":"x","time":-1}', P.E_BAD_FIELD),
        (b'{"v":1,"type":"news","id":"a","headline":"x","actual":true}', P.E_BAD_FIELD),
        (
            b'{"v":1,"type":"signal","id":"a","symbol":"EURUSD","time":1,"utc_offset":0,"tester":1}',
            P.E_BAD_FIELD,
        ),
    ],
)
def test_decode_request_rejects(frame, code):
    with pytest.raises(P.ProtocolError) as err:
        P.decode_request(frame)
    assert err.value.code == code and err.value.message


def test_split_envelope_shapes():
    assert P.split_envelope([b"id", b"", b"body"]) == ([b"id", b""], [b"body"])
    assert P.split_envelope([b"id", b"body"]) == ([b"id"], [b"body"])
    assert P.split_envelope([b"id", b"a", b"b"]) == ([b"id"], [b"a", b"b"])
    with pytest.raises(P.ProtocolError) as err:
        P.decode_frames([b"a", b"b"])
    assert err.value.code == P.E_MULTIPART


def test_target_fields_are_integer_utc_seconds():
    t = Target(
        "EURUSD", -1, 0.51234567, 0.003, 0.006, pd.Timestamp("2023-11-14 20:00", tz="UTC"), None, ("r",)
    )
    wire = P.target_fields(t)
    assert wire["as_of"] == 1699992000 and wire["expires"] == 0 and wire["strength"] == 0.512346
    assert P.decode_request(P.encode({"v": 1, "type": "ping", "id": "x"}))["type"] == "ping"
    with pytest.raises(ValueError, match="exceeds"):
        P.encode({"pad": "x" * P.MAX_MESSAGE_BYTES})


def _item(minutes: int, headline: str = "ECB raises rates", cur: str = "EUR") -> NewsItem:
    return NewsItem(
        time=pd.Timestamp("2024-03-01 12:00", tz="UTC") + pd.Timedelta(minutes=minutes),
        headline=headline,
        currency=cur,
    )


def _analysis(level: int) -> Analysis:
    return Analysis({"event": "central_bank", "market": "EU", "sector": "rates"}, level, analyzer="t")


def test_journal_roundtrip_and_truncated_tail(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    a, b = _item(0), _item(5, "ECB cuts rates")
    j.append_news(a)
    j.append_analysis(a.id, _analysis(2))
    j.append_news(b)
    j.close()
    with open(path, "ab") as fh:
        fh.write(b'{"kind":"analysis","id":"' + b.id.encode())  # killed mid-write
    got = Journal(path).load()
    assert [it.id for it in got.items] == [a.id, b.id] and set(got.analyses) == {a.id} and got.truncated_tail
    j2 = Journal(path)
    j2.append_analysis(b.id, _analysis(-1))  # the cut line is closed off first
    j2.close()
    got = Journal(path).load()
    assert set(got.analyses) == {a.id, b.id} and got.analyses[b.id].sentiment == -1


def test_journal_bad_middle_line_is_a_data_error(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"kind":"news"}\n{"kind":"analysis","id":"x","analysis":{"labels":{},"sentiment":0}}\n')
    with pytest.raises(DataError, match=r"j\.jsonl:1: .*restore it from a backup"):
        Journal(path).load()
    assert Journal(tmp_path / "absent.jsonl").load().items == []


def test_rate_limiter_token_bucket():
    now = [0.0]
    rl = RateLimiter(rate=2, burst=3, max_clients=2, clock=lambda: now[0])
    assert [rl.allow(b"a") for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back
    assert rl.allow(b"a") and not rl.allow(b"a")
    assert rl.allow(b"b") and rl.allow(b"c") and len(rl) == 2  # oldest identity forgotten
    assert all(RateLimiter(0).allow(b"x") for _ in range(1000))


def test_news_state_duplicates_cache_and_as_of():
    s = NewsState()
    a, b = _item(0), _item(30, "ECB cuts rates")
    assert s.add_item(a) and not s.add_item(_item(0)) and s.add_item(b)
    assert [it.id for it in s.pending()] == [a.id, b.id]
    s.add_analysis(a.id, _analysis(3))
    before_b = s.target("EURUSD", a.time + pd.Timedelta(minutes=10))
    assert before_b.direction == 1
    s.add_analysis(b.id, _analysis(-3))
    assert s.target("EURUSD", a.time + pd.Timedelta(minutes=10)) == before_b  # b is later: no influence
    assert s.target("USDCHF", a.time).direction == 0
    with pytest.raises(ValueError):
        s.target("US500", a.time)
    with pytest.raises(KeyError):
        s.add_analysis("nope", _analysis(0))


def test_news_state_prune_forgets_old_items_and_keeps_pending_ones():
    s = NewsState()
    a, b, c = _item(0), _item(10, "ECB cuts rates"), _item(300, "ECB holds rates")
    for it in (a, b, c):
        s.add_item(it)
    s.add_analysis(a.id, _analysis(2))
    s.add_analysis(c.id, _analysis(1))
    assert (
        s.prune(a.time + pd.Timedelta(minutes=60)) == 1
    )  # a dropped; b is old but still waiting for analysis
    assert set(s.items) == {b.id, c.id} and a.id not in s
    assert s.target("EURUSD", a.time + pd.Timedelta(minutes=1)).direction == 0
    assert s.add_item(_item(0))  # a late copy is held again (pending), and counts for nothing until analysed
    assert s.target("EURUSD", a.time + pd.Timedelta(minutes=1)).direction == 0


def test_news_state_kept_up_to_date_equals_the_policy_over_all_news():
    """The server's effects are updated in place (analysis, revision, prune); its targets must equal the policy run
    from scratch over every analysed item, as the backtester does, whatever the order of events."""
    import random

    from bridge.policy import effects_frame, target_for

    rng = random.Random(7)
    s = NewsState()
    pairs = ["EURUSD", "USDJPY", "GBPUSD", "EURGBP"]
    s.target("EURUSD", _item(0).time)  # followed from the start; the others are built mid-stream
    clock = 0
    for step in range(600):
        clock += rng.choice([0, 0, 1, 5, 20])  # ties in time on purpose
        cur = rng.choice(["EUR", "USD", "GBP", "JPY", "CHF"])
        item = _item(clock, f"item {step}", cur)
        s.add_item(item)
        s.add_analysis(item.id, _analysis(rng.randint(-3, 3)))
        roll = rng.random()
        if roll < 0.05 and s.analyses:  # a corrected figure: the analysis goes, then a new one lands
            old = s.items[rng.choice(list(s.analyses))]
            revised = NewsItem(**{**old.__dict__, "actual": float(step)})
            assert s.revise(revised)
            s.add_analysis(old.id, _analysis(rng.randint(-3, 3)))
        elif roll < 0.08:
            s.prune(_item(clock - 300).time)
        if step % 25 == 0:
            now = _item(clock + rng.choice([0, 1, 30, 200])).time
            for pair in pairs:
                frame = effects_frame(
                    pair, ((s.items[i], a) for i, a in s.analyses.items()), s.config, s.schema
                )
                want = target_for(pair, now, frame, s.config)
                got = s.target(pair, now)
                assert (got.direction, got.expires) == (want.direction, want.expires), (step, pair)
                assert got.strength == pytest.approx(want.strength, abs=1e-12), (step, pair)
                assert got.reasons == want.reasons, (step, pair)


def test_journal_refuses_a_second_writer(tmp_path):
    pytest.importorskip("fcntl")
    from bridge.errors import UserError

    first, second = Journal(tmp_path / "j.jsonl"), Journal(tmp_path / "j.jsonl")
    first.append_news(_item(0))
    with pytest.raises(UserError, match="in use by another running server"):
        second.append_news(_item(1))
    first.close()
    second.append_news(_item(1))  # free again once the first server is gone
    second.close()
    assert len(Journal(tmp_path / "j.jsonl").load().items) == 2
