"""What a hostile or unlucky world sends the server: every text and number class at every door, sizes, floods, slow
readers, revisions. Each test runs a real server on loopback (random ports, linger 0) and asserts it answered well."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import zmq
from doubles import KeywordAnalyzer, start_server

from bridge.analysis import NewsAnalyzer
from bridge.news.surprise import _PERIOD, SurpriseAnalyzer, indicator_key, load_indicators
from bridge.prompt import (
    _LEFT_OVER,
    _OVERRIDE,
    _RELATED_SPLIT,
    _RELATED_TOKEN,
    _SECTION,
    _answer_pattern,
    neutralise,
)
from bridge.types import NewsItem
from bridge.wire import protocol as P
from bridge.wire import server as S
from bridge.wire.client import LazyPirateClient

NEWS_TEXT_FIELDS = ("headline", "body", "source", "event", "impact")


@pytest.fixture
def server():
    srv = start_server(clock="server", calendar_analyzer=SurpriseAnalyzer())
    yield srv
    srv.stop()


def _req(sock: zmq.Socket, raw: bytes) -> dict:
    sock.send(raw)
    assert sock.poll(5000), "no reply"
    return json.loads(sock.recv())


@pytest.fixture
def sock(server):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.linger = 0
    s.connect(server.endpoints["bind"])
    yield s
    s.close(0)


def _news(**fields) -> bytes:
    msg = {"v": 1, "type": "news", "id": "n1", "headline": "ECB raises rates", **fields}
    return json.dumps(msg).encode()


# -- text -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v":1,"type":"ping","id":"\\ud800"}',
        b'{"v":1,"type":"news","id":"a","headline":"ECB \\udfff raises"}',
        b'{"v":1,"type":"news","id":"a","headline":"x","body":"\\ud800\\ud800"}',
        b'{"v":1,"type":"news","id":"a","headline":"x","event":"\\udc00","actual":1,"forecast":2}',
        b'{"v":1,"type":"hello","id":"a","symbols":["EURUSD\\ud800"]}',
        b'{"v":1,"type":"ping","id":"a","\\ud800":1}',
    ],
)
def test_lone_surrogate_anywhere_is_a_bad_utf8_reply_and_the_server_lives(server, sock, raw):
    rep = _req(sock, raw)
    assert rep["type"] == "error" and rep["code"] == P.E_BAD_UTF8
    assert _req(sock, b'{"v":1,"type":"ping","id":"p"}')["type"] == "pong"


def test_lone_surrogate_on_intake_is_a_counted_drop(server):
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.linger = 0
    srv = start_server(clock="server", pull="tcp://127.0.0.1:*", journal=None)
    try:
        push.connect(srv.endpoints["pull"])
        push.send(b'{"v":1,"type":"news","id":"a","headline":"ECB \\ud800"}')
        push.send(_news(time=1_700_000_000))
        deadline = time.time() + 5
        while srv.stats.news_accepted < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert srv.stats.intake_errors == 1 and srv.stats.news_accepted == 1
    finally:
        push.close(0)
        srv.stop()


@pytest.mark.parametrize(
    "text",
    [
        "\x00nul\x00",
        "\u202eRTL override\u202c",
        "emoji \U0001f680\U0001f4c9",
        "\ufeffbom",
        "e\u0301\u0301\u0301",
    ],
)
def test_odd_but_valid_unicode_is_accepted_and_journalled(tmp_path, text):
    srv = start_server(clock="server", journal=tmp_path / "j.jsonl")
    try:
        with LazyPirateClient(srv.endpoints["bind"]) as c:
            rep = c.news(text + " ECB raises rates", currency="EUR", time=1_700_000_000, utc_offset=0)
            assert rep["type"] == "ack", rep
            assert c.signal("EURUSD")["type"] == "target"
    finally:
        srv.stop()
    from bridge.wire.journal import Journal

    assert [it.headline for it in Journal(tmp_path / "j.jsonl").load().items][0].startswith(
        text.split()[0][:1]
    )


@pytest.mark.parametrize("field", NEWS_TEXT_FIELDS)
def test_64k_of_whitespace_in_any_field_is_refused_by_length_first(sock, field):
    raw = _news(**{field: " " * (P.MAX_MESSAGE_BYTES - 200) + "x"})
    rep = _req(sock, raw)
    assert rep["code"] == P.E_BAD_FIELD and "longer than" in rep["message"]


def test_every_text_field_has_a_declared_limit():
    _, optional = P.FIELDS[P.NEWS]
    text_fields = {"headline"} | {k for k, t in optional.items() if str in t}
    assert text_fields <= set(P.MAX_TEXT_CHARS)
    for mtype, (req, opt) in P.FIELDS.items():
        for name, types in {**req, **opt}.items():
            assert str not in types or name in P.MAX_TEXT_CHARS, (mtype, name)
    # an item's text fits well under the message limit even at 4 UTF-8 bytes a character
    assert 4 * (P.MAX_TEXT_CHARS["headline"] + P.MAX_TEXT_CHARS["body"]) < P.MAX_MESSAGE_BYTES


ADVERSARIAL = [
    " " * 65_000 + "x",
    "(" * 65_000,
    " " * 65_000 + ")",
    "(oct" + " " * 65_000,
    "a" * 65_536,
    "(" + " " * 65_000 + "p)",
    ", " * 32_000,
    "related: " + "EUR," * 16_000,
    "sentiment:" * 6_000,
    "ignore previous " * 4_000,
    "### " * 16_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_no_regex_backtracks_catastrophically_on_64k_input(text):
    # A quadratic pattern takes tens of seconds on these; the bound is generous, far from any timing measurement.
    table = load_indicators()
    patterns = [r.pattern for r in table.polarity_rules + table.event_rules] + [
        _PERIOD,
        _RELATED_SPLIT,
        _RELATED_TOKEN,
        _SECTION,
        _OVERRIDE,
        _LEFT_OVER,
        _answer_pattern(),
    ]
    item = NewsItem(
        time=pd.Timestamp("2024-01-01", tz="UTC"), headline=text, event=text, actual=1.0, forecast=2.0
    )
    t0 = time.perf_counter()
    indicator_key(item)
    SurpriseAnalyzer().analyze([item])
    for pat in patterns:
        pat.search(text)
        pat.fullmatch(text)
    re.compile(r"\s+").split(text)
    neutralise(text)
    assert time.perf_counter() - t0 < 5.0


# -- numbers ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "figure",
    [b"1" + b"0" * 400, b"-" + b"9" * 300, b"1e400", b"NaN", b"Infinity", b"-Infinity", b"9" * 5000],
)
def test_huge_or_non_finite_figures_are_refused(sock, figure):
    raw = b'{"v":1,"type":"news","id":"a","headline":"CPI","actual":' + figure + b',"forecast":2.5}'
    rep = _req(sock, raw)
    assert rep["type"] == "error" and rep["code"] in (P.E_BAD_FIELD, P.E_BAD_JSON), rep


def test_one_overflowing_item_falls_back_alone_and_the_batch_is_analysed():
    # NewsAnalyzer isolates a failing item: here an actual of 10**400 from a file (the wire refuses it)
    analyzer = NewsAnalyzer(KeywordAnalyzer(), SurpriseAnalyzer())
    t = pd.Timestamp("2024-03-01 12:30", tz="UTC")
    good = [
        NewsItem(time=t, headline=f"CPI {i}", currency="USD", event="CPI", actual=3.0 + i, forecast=3.0)
        for i in range(1, 80)
    ]
    bad = NewsItem(time=t, headline="CPI huge", currency="USD", event="CPI", actual=10**400, forecast=2.5)
    analyzer.observe([*good, bad])  # must not raise either: the server observes on its request thread
    out = analyzer.analyze([*good[:40], bad, *good[40:]])
    assert analyzer.failures == 1
    assert out[40].fallback and out[40].sentiment == 0
    assert all(not a.fallback and a.sentiment > 0 for i, a in enumerate(out) if i != 40)


# -- sizes and symbols -------------------------------------------------------------------------------------------------


def test_invented_symbols_keep_every_cache_and_table_bounded(server, sock):
    for i in range(3000):
        sym = f"EURUSD.x{i}" if i % 2 else f"x{i}EURUSD"
        rep = _req(
            sock,
            json.dumps(
                {
                    "v": 1,
                    "type": "signal",
                    "id": f"s{i}",
                    "symbol": sym,
                    "time": 1_700_000_000,
                    "utc_offset": 0,
                }
            ).encode(),
        )
        assert rep["type"] == "target" and rep["symbol"] == sym
    for i in range(200):
        rep = _req(
            sock,
            json.dumps(
                {"v": 1, "type": "signal", "id": f"b{i}", "symbol": f"QQQ{i}", "time": 1, "utc_offset": 0}
            ).encode(),
        )
        assert rep["code"] == P.E_BAD_FIELD
    stats = _req(sock, b'{"v":1,"type":"stats","id":"st"}')["stats"]
    for name, (used, limit) in stats["bounds"].items():
        assert used <= limit, name
    assert stats["bounds"]["effects_cache"][0] == 1  # every decoration of EURUSD shares one effects frame
    assert stats["symbols"] == S.MAX_WATCHED and stats["watch_refused"] > 0


def test_hello_with_a_thousand_symbols_is_refused_and_watched_stays_bounded(server, sock):
    many = [f"EURUSD.{i}" for i in range(1000)]
    rep = _req(sock, json.dumps({"v": 1, "type": "hello", "id": "h", "symbols": many}).encode())
    assert rep["code"] == P.E_BAD_FIELD and str(P.MAX_HELLO_SYMBOLS) in rep["message"]
    for k in range(20):
        syms = [f"EURUSD.{k}.{i}" for i in range(P.MAX_HELLO_SYMBOLS)]
        assert (
            _req(sock, json.dumps({"v": 1, "type": "hello", "id": f"h{k}", "symbols": syms}).encode())["type"]
            == "ack"
        )
    assert len(server._watched) == S.MAX_WATCHED


def test_busy_when_the_analysis_backlog_is_full(monkeypatch):
    import threading

    gate = threading.Event()

    class Stuck(KeywordAnalyzer):
        def analyze(self, items):
            gate.wait(10)
            return super().analyze(items)

    monkeypatch.setattr(S, "MAX_PENDING", 5)
    srv = start_server(clock="server", analyzer=Stuck())
    try:
        with LazyPirateClient(srv.endpoints["bind"]) as c:
            codes = [
                c.news(f"headline {i}", time=1_700_000_000 + i, utc_offset=0).get("code", "ack")
                for i in range(8)
            ]
            assert codes[:5] == ["ack"] * 5 and set(codes[5:]) == {P.E_BUSY}
            assert c.ping()["type"] == "pong" and c.signal("EURUSD")["type"] == "target"
            gate.set()
            deadline = time.time() + 5
            while srv.stats.news_analysed < 5 and time.time() < deadline:
                time.sleep(0.02)
            assert c.news("after the backlog", time=1_700_000_100, utc_offset=0)["type"] == "ack"
            assert c.stats()["stats"]["busy"] == 3
    finally:
        gate.set()
        srv.stop()


def _golden_exchange(srv, name: str) -> tuple[dict, dict]:
    """Send ``golden/<name>_request.json`` to ``srv`` (then stop it); the reply and ``golden/<name>_reply.json``."""
    golden = Path(__file__).parent / "golden"
    try:
        s = zmq.Context.instance().socket(zmq.REQ)
        s.linger = 0
        s.connect(srv.endpoints["bind"])
        got = _req(s, (golden / f"{name}_request.json").read_bytes())
        s.close(0)
    finally:
        srv.stop()
    return got, json.loads((golden / f"{name}_reply.json").read_text())


def test_golden_busy_reply_is_what_the_server_sends(monkeypatch):
    monkeypatch.setattr(S, "MAX_PENDING", 0)
    got, want = _golden_exchange(start_server(clock="server"), "error_busy")
    assert set(got) == set(want) and {k: got[k] for k in ("v", "type", "id", "code")} == {
        k: want[k] for k in ("v", "type", "id", "code")
    }


def test_golden_storage_reply_is_what_the_server_sends(tmp_path):
    from bridge.wire.journal import StorageError

    srv = start_server(clock="server", journal=tmp_path / "j.jsonl")

    def full(*_a, **_k):
        raise StorageError("No space left on device")

    # the real full disk is tested in test_journal.py; here only the reply shape
    srv.journal.append_news = full
    got, want = _golden_exchange(srv, "error_storage")
    assert got == want


# -- slow readers ------------------------------------------------------------------------------------------------------


def test_clients_that_never_read_have_their_replies_dropped_and_counted(server):
    ctx = zmq.Context.instance()
    peers = []
    for _ in range(3):
        d = ctx.socket(zmq.DEALER)
        d.linger = 0
        d.rcvhwm = 1  # reads nothing: once the kernel buffers are full, replies wait on the server's side
        d.rcvbuf = 4096
        d.connect(server.endpoints["bind"])
        peers.append(d)
    # stats replies are kilobytes each, so the kernel's socket buffers (autotuned, they vary) cannot hold them all
    ask = b'{"v":1,"type":"stats","id":"s"}'
    n = 4000
    for _ in range(n):
        for d in peers:
            d.send(ask)
    deadline = time.time() + 20
    while server.stats.requests < 3 * n and time.time() < deadline:
        time.sleep(0.05)
    assert server.stats.requests == 3 * n
    # beyond REPLY_HWM queued per peer (plus what the kernel buffers hold, which varies) replies are dropped
    assert server.stats.replies_dropped > 0
    for d in peers:
        d.close(0)
    with LazyPirateClient(server.endpoints["bind"]) as c:  # a reading client is still served
        assert c.ping()["type"] == "pong"


# -- ids and revisions -------------------------------------------------------------------------------------------------


def test_the_same_news_without_time_sent_again_is_a_duplicate(server):
    with LazyPirateClient(server.endpoints["bind"]) as c:
        reps = [c.news("ECB raises rates", currency="EUR") for _ in range(2)]
        time.sleep(1.1)
        reps.append(c.news("ECB raises rates", currency="EUR"))
    assert [r["duplicate"] for r in reps] == [False, True, True]
    assert len({r["news_id"] for r in reps}) == 1


def test_client_push_news_sends_a_time(server, capsys):
    from bridge.wire.client import main

    ep = server.endpoints["bind"]
    assert main(["--server", ep, "push-news", "Fed cuts rates", "--currency", "USD"]) == 0
    nid = json.loads(capsys.readouterr().out)["news_id"]
    # a time-based id, not the content id of a message without time (both are 16 hex-like characters: a time-based
    # one starts with "c" one time in 16, so the prefix says nothing)
    assert nid != S.content_id({"source": "cli", "headline": "Fed cuts rates", "currency": "USD"})


def test_a_corrected_calendar_value_replaces_the_earlier_analysis(tmp_path):
    srv = start_server(clock="server", journal=tmp_path / "j.jsonl", calendar_analyzer=SurpriseAnalyzer())
    now = int(time.time())
    base = {
        "headline": "US CPI",
        "event": "CPI m/m",
        "currency": "USD",
        "forecast": 0.2,
        "time": now,
        "utc_offset": 0,
    }
    try:
        with LazyPirateClient(srv.endpoints["bind"]) as c:
            first = c.news(**{**base, "actual": 0.9})
            assert first["type"] == "ack" and not first["duplicate"]
            _wait(lambda: srv.stats.news_analysed >= 1)
            up = c.signal("EURUSD")
            assert up["direction"] == -1  # hot US inflation: USD up, EURUSD down
            again = c.news(**{**base, "actual": 0.9})
            assert again["duplicate"] and "revised" not in again
            fixed = c.news(**{**base, "actual": -0.5})
            assert fixed["type"] == "ack" and fixed["revised"] and fixed["news_id"] == first["news_id"]
            _wait(lambda: srv.stats.news_analysed >= 2)
            down = c.signal("EURUSD")
            assert down["direction"] == 1  # the target follows the corrected figure
            assert c.stats()["stats"]["revisions"] == 1
    finally:
        srv.stop()
    # the journal holds the corrected version, which a restart serves
    from bridge.wire.journal import Journal

    items = Journal(tmp_path / "j.jsonl").load().items
    assert [it.actual for it in items] == [-0.5]


def _wait(cond, timeout=5.0):
    deadline = time.time() + timeout
    while not cond() and time.time() < deadline:
        time.sleep(0.02)
    assert cond()
