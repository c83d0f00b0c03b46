"""The server against real ZeroMQ sockets on random loopback ports: golden exchanges, every request type, both
envelope shapes, the replay clock (property test), intake, publishing, journal restore.

The analyzer is ``doubles.KeywordAnalyzer``, a real deterministic keyword rule, so these tests do not depend on a
trained model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import zmq
from doubles import KeywordAnalyzer, start_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.policy import PolicyConfig, effects_frame, target_for
from bridge.types import NewsItem
from bridge.wire import protocol as P
from bridge.wire.server import BridgeServer

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def replay_server():
    server = start_server(clock="request")
    yield server
    server.stop()


@pytest.fixture
def live_server(tmp_path):
    server = start_server(
        clock="server", pub="tcp://127.0.0.1:*", pull="tcp://127.0.0.1:*", journal=tmp_path / "j.jsonl"
    )
    yield server
    server.stop()


def exchange(endpoint: str, payload: bytes, kind: int = zmq.DEALER, timeout_ms: int = 3000) -> dict:
    """One request on a fresh socket of ``kind``; DEALER sends the bare body, REQ adds the empty delimiter."""
    ctx = zmq.Context.instance()
    with ctx.socket(kind) as sock:
        sock.linger = 0
        sock.connect(endpoint)
        sock.send(payload)
        assert sock.poll(timeout_ms), "no reply within the timeout"
        return json.loads(sock.recv())


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def test_golden_exchanges_in_order(replay_server):
    seq = json.loads(golden("sequence.json"))
    ep = replay_server.endpoints["bind"]
    for req_name, rep_name in seq["exchanges"]:
        got = exchange(ep, golden(req_name))
        want = json.loads(golden(rep_name))
        volatile = set(seq["volatile"].get(rep_name, []))
        assert set(got) == set(want), rep_name
        for key in want:
            if key in volatile:
                assert type(got[key]) is type(want[key]), (rep_name, key)
                if isinstance(want[key], dict):
                    assert set(got[key]) == set(want[key]), (rep_name, key)
            else:
                assert got[key] == want[key], (rep_name, key, got[key])


def test_golden_requests_are_valid_and_error_requests_are_not():
    seq = json.loads(golden("sequence.json"))
    for req_name, rep_name in seq["exchanges"]:
        want = json.loads(golden(rep_name))
        if want["type"] == P.ERROR:
            if want["code"] in (P.E_BAD_FIELD,) and "pair" in want["message"]:
                continue  # valid by shape; the server rejects the symbol
            with pytest.raises(P.ProtocolError) as err:
                P.decode_request(golden(req_name))
            assert err.value.code == want["code"]
        else:
            assert P.decode_request(golden(req_name))["type"] in P.REQUEST_TYPES


def test_req_and_dealer_envelopes_both_answered(replay_server):
    ep = replay_server.endpoints["bind"]
    for kind in (zmq.REQ, zmq.DEALER):
        rep = exchange(ep, golden("ping_request.json"), kind)
        assert rep["type"] == P.PONG and rep["id"] == "ping-1"
    # A DEALER imitating REQ (empty delimiter first) gets the delimiter back.
    with zmq.Context.instance().socket(zmq.DEALER) as sock:
        sock.linger = 0
        sock.connect(ep)
        sock.send_multipart([b"", golden("ping_request.json")])
        assert sock.poll(3000)
        frames = sock.recv_multipart()
        assert frames[0] == b"" and json.loads(frames[1])["type"] == P.PONG


def test_signal_waits_for_queued_analysis_in_replay(tmp_path):
    """Replay clock: an item at or before the request time still being analysed is waited for, never skipped."""
    server = start_server(clock="request", analyzer=KeywordAnalyzer(delay_s=0.3))
    try:
        ep = server.endpoints["bind"]
        exchange(ep, golden("news_request.json"))
        rep = exchange(ep, golden("signal_request.json"))
        assert rep == json.loads(golden("signal_reply.json"))
    finally:
        server.stop()


def test_live_signal_answered_while_batch_is_analysed(tmp_path):
    """Live clock: a signal is answered from current state while the worker is busy with a batch."""
    server = start_server(clock="server", analyzer=KeywordAnalyzer(delay_s=1.0))
    try:
        ep = server.endpoints["bind"]
        now = int(time.time())
        ack = exchange(
            ep,
            P.encode(
                {
                    "v": 1,
                    "type": "news",
                    "id": "n",
                    "headline": "ECB raises rates",
                    "currency": "EUR",
                    "time": now,
                    "utc_offset": 0,
                }
            ),
        )
        assert ack["type"] == P.ACK
        t0 = time.perf_counter()
        rep = exchange(
            ep,
            P.encode({"v": 1, "type": "signal", "id": "s", "symbol": "EURUSD", "time": now, "utc_offset": 0}),
        )
        waited = time.perf_counter() - t0
        assert rep["type"] == P.TARGET and rep["direction"] == 0  # analysis not there yet: flat, not blocked
        assert (
            waited < 1.0
        )  # answered before the 1 s batch finished (a bound on blocking, not a timing benchmark)
        deadline = time.time() + 5
        while exchange(ep, P.encode({"v": 1, "type": "stats", "id": "x"}))["stats"]["news_analysed"] < 1:
            assert time.time() < deadline
            time.sleep(0.05)
        rep = exchange(
            ep,
            P.encode(
                {"v": 1, "type": "signal", "id": "s2", "symbol": "EURUSD", "time": now, "utc_offset": 0}
            ),
        )
        assert rep["direction"] == 1
    finally:
        server.stop()


def test_intake_publishes_changed_target_and_journal_restores(live_server, tmp_path):
    ep = live_server.endpoints
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.SUB) as sub, ctx.socket(zmq.PUSH) as push:
        sub.linger = push.linger = 0
        sub.setsockopt(zmq.SUBSCRIBE, b"EURUSD")
        sub.connect(ep["pub"])
        push.connect(ep["pull"])
        hello = exchange(
            ep["bind"], P.encode({"v": 1, "type": "hello", "id": "h", "symbols": ["EURUSD", "USDJPY"]})
        )
        assert hello["mode"] == "live"
        time.sleep(0.2)  # PUB/SUB: let the subscription reach the server (slow joiner)
        push.send(
            P.encode(
                {
                    "v": 1,
                    "type": "news",
                    "id": "n1",
                    "headline": "Euro area growth beats forecasts",
                    "currency": "EUR",
                    "time": int(time.time()),
                    "utc_offset": 0,
                }
            )
        )
        push.send(b"not json")  # counted as an intake error, never a crash
        assert sub.poll(5000), "no target published after news"
        topic, body = sub.recv_multipart()
        msg = json.loads(body)
        assert topic == b"EURUSD" and msg["type"] == P.TARGET and msg["direction"] == 1
        assert set(msg) == set(json.loads(golden("pub_target.json")))
    stats = exchange(ep["bind"], P.encode({"v": 1, "type": "stats", "id": "s"}))["stats"]
    assert stats["news_accepted"] == 1 and stats["published"] >= 1
    assert live_server.stats.intake_errors == 1
    journal = live_server.journal.path
    live_server.stop()
    again = BridgeServer(KeywordAnalyzer(), bind="tcp://127.0.0.1:*", journal=journal)
    assert again.restore() == 1
    assert len(again.state.analyses) == 1 and not again.state.pending()


def test_news_checks_and_symbol_errors(replay_server):
    ep = replay_server.endpoints["bind"]
    bad_cur = exchange(ep, P.encode({"v": 1, "type": "news", "id": "n", "headline": "x", "currency": "EURO"}))
    assert bad_cur["code"] == P.E_BAD_FIELD and "currency" in bad_cur["message"]
    empty = exchange(ep, P.encode({"v": 1, "type": "news", "id": "n", "headline": "   "}))
    assert empty["code"] == P.E_BAD_FIELD
    bad_sym = exchange(ep, golden("error_not_pair_request.json"))
    assert bad_sym["code"] == P.E_BAD_FIELD and bad_sym["id"] == "err-5"


def test_rate_limit_per_client():
    server = start_server(clock="request", rate_limit=5, rate_burst=5)
    try:
        ctx = zmq.Context.instance()
        with ctx.socket(zmq.DEALER) as greedy:
            greedy.linger = 0
            greedy.connect(server.endpoints["bind"])
            for i in range(20):
                greedy.send(P.encode({"v": 1, "type": "ping", "id": f"p{i}"}))
            replies = []
            while len(replies) < 20 and greedy.poll(2000):
                replies.append(json.loads(greedy.recv()))
        assert len(replies) == 20
        limited = [r for r in replies if r["type"] == P.ERROR]
        assert limited and all(r["code"] == P.E_RATE_LIMITED and r["id"].startswith("p") for r in limited)
        # Another client has its own bucket.
        assert exchange(server.endpoints["bind"], golden("ping_request.json"))["type"] == P.PONG
    finally:
        server.stop()


# -- replay clock: no news item after the request time influences the reply ------------------------------------------

BASE = 1_700_000_000
news_st = st.lists(
    st.tuples(
        st.integers(min_value=-6 * 3600, max_value=6 * 3600),  # seconds from BASE
        st.sampled_from(
            ["ECB raises rates", "Euro data misses", "USD payrolls beat, dollar strong", "fed cuts rates"]
        ),
        st.sampled_from(["EUR", "USD"]),
    ),
    min_size=0,
    max_size=12,
    unique_by=lambda t: (t[0], t[1]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    news=news_st,
    ask=st.integers(min_value=-6 * 3600, max_value=6 * 3600),
    offset=st.sampled_from([0, 7200, -18000]),
)
def test_replay_reply_uses_only_news_at_or_before_request_time(news, ask, offset):
    server = start_server(clock="request")
    try:
        ep = server.endpoints["bind"]
        items = []
        for i, (dt, headline, cur) in enumerate(news):
            headline = f"{headline} #{i}"  # distinct ids for equal headlines at different times
            req = {
                "v": 1,
                "type": "news",
                "id": f"n{i}",
                "headline": headline,
                "currency": cur,
                "time": BASE + dt + offset,
                "utc_offset": offset,
                "source": "test",
            }
            assert exchange(ep, P.encode(req))["type"] == P.ACK
            items.append(server._news_item(req))
        rep = exchange(
            ep,
            P.encode(
                {
                    "v": 1,
                    "type": "signal",
                    "id": "s",
                    "symbol": "EURUSD",
                    "time": BASE + ask + offset,
                    "utc_offset": offset,
                }
            ),
        )
        now = pd.Timestamp((BASE + ask) * 10**9, tz="UTC")
        past = [it for it in items if it.time <= now]
        analyzer = KeywordAnalyzer()
        frame = effects_frame("EURUSD", zip(past, analyzer.analyze(past), strict=True), PolicyConfig())
        want = P.target_fields(target_for("EURUSD", now, frame, PolicyConfig()))
        assert {k: rep[k] for k in want} == want
    finally:
        server.stop()


def test_preload_and_news_items_roundtrip():
    server = BridgeServer(KeywordAnalyzer(), bind="tcp://127.0.0.1:*", clock="request")
    t = pd.Timestamp("2024-01-05 13:30", tz="UTC")
    n = server.preload(
        [
            NewsItem(time=t, headline="Fed cuts rates", currency="USD"),
            NewsItem(time=t, headline="Fed cuts rates", currency="USD"),
        ]
    )
    assert n == 1 and len(server.state.analyses) == 1
    tgt = server.state.target("EURUSD", t + pd.Timedelta(minutes=1))
    assert tgt.direction == 1  # USD-negative news is long EURUSD


# -- python -m bridge.serve: options, --news follow, --replay --------------------------------------------------------


def test_serve_rejects_bad_options(tmp_path, capsys):
    from bridge.errors import run_main
    from bridge.serve import main

    assert run_main(main, ["--ttl", "-1", "--analyzer", "surprise"]) == 2
    assert "bad policy option: ttl must be > 0" in capsys.readouterr().err
    assert run_main(main, ["--replay", "a.csv", "--news", "b.csv"]) == 2
    assert "either --replay" in capsys.readouterr().err
    assert run_main(main, ["--model", str(tmp_path / "no-model"), "--journal", "none"]) == 4
    assert "no-model" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("when,what\n1,2\n")
    assert (
        run_main(main, ["--analyzer", "surprise", "--replay", str(bad), "--bind", "tcp://127.0.0.1:*"]) == 3
    )
    assert "bad.csv" in capsys.readouterr().err


def test_news_follower_submits_new_rows_as_the_file_grows(tmp_path):
    from bridge.serve import NewsFollower

    path = tmp_path / "feed.csv"
    path.write_text("time,headline,currency\n2024-03-01 12:00:00,ECB raises rates,EUR\n")
    server = start_server(clock="server")
    try:
        follower = NewsFollower(server, path)
        assert follower.poll_once() == 1
        assert follower.poll_once() == 0  # unchanged file: nothing read
        with open(path, "a") as fh:
            fh.write("2024-03-01 12:05:00,Fed cuts rates,USD\n2024-03-01 12:00:00,ECB raises rates,EUR\n")
        with pytest.warns(UserWarning, match="duplicate rows"):
            assert (
                follower.poll_once() == 1
            )  # the repeated row has the same id: reported, not submitted twice
        deadline = time.time() + 5
        while server.stats.news_accepted < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert server.stats.news_accepted == 2
    finally:
        server.stop()


def test_serve_replay_answers_as_of_request_time(tmp_path):
    import threading

    from bridge.serve import build_parser, build_server
    from bridge.wire.client import LazyPirateClient

    news = tmp_path / "hist.csv"
    news.write_text("time,headline,currency\n2024-03-01 12:00:00,ECB raises rates,EUR\n")
    args = build_parser().parse_args(["--bind", "tcp://127.0.0.1:*", "--pull", "", "--replay", str(news)])
    server = build_server(args, analyzer=KeywordAnalyzer())
    assert server.mode == "replay" and server.journal is None
    from bridge.news.loading import load_news

    assert server.preload(load_news(news)) == 1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    server.bind()
    thread.start()
    try:
        t_news = int(pd.Timestamp("2024-03-01 12:00", tz="UTC").timestamp())
        with LazyPirateClient(server.endpoints["bind"], timeout_ms=2000, retries=1) as c:
            assert c.signal("EURUSD", t_news - 60 + 3600, 3600)["direction"] == 0  # a minute before: not yet
            assert c.signal("EURUSD", t_news + 3600, 3600)["direction"] == 1  # at the news time: counts
            assert c.signal("EURUSD", t_news + 5 * 3600, 0)["direction"] == 0  # past the 4 h TTL
    finally:
        server.stop_event.set()
        thread.join(5)


def test_calendar_events_use_the_surprise_rule():
    """Calendar items with actual/forecast go to the real surprise analyzer, headlines to the main analyzer."""
    from bridge.news.surprise import SurpriseAnalyzer

    server = start_server(clock="request", calendar_analyzer=SurpriseAnalyzer())
    try:
        ep = server.endpoints["bind"]
        req = json.loads(golden("news_calendar_request.json"))  # US payrolls far above forecast: USD-positive
        assert exchange(ep, P.encode(req)) == json.loads(golden("news_calendar_reply.json"))
        sig = {
            "v": 1,
            "type": "signal",
            "id": "s",
            "symbol": "EURUSD",
            "time": req["time"] + 600,
            "utc_offset": 7200,
        }
        rep = exchange(ep, P.encode(sig))
        assert rep["direction"] == -1 and rep["reasons"][0].startswith(
            json.loads(golden("news_calendar_reply.json"))["news_id"]
        )
        assert exchange(ep, P.encode({**sig, "id": "j", "symbol": "USDJPY"}))["direction"] == 1
        assert server.state.analyses[rep["reasons"][0].split()[0]].analyzer != KeywordAnalyzer.name
    finally:
        server.stop()


def test_pub_pushes_flat_when_the_target_expires():
    """Live PUB: a change of direction by expiry alone is published too, without new news."""
    server = start_server(
        clock="server", pub="tcp://127.0.0.1:*", config=PolicyConfig(ttl=0.03, half_life=60)
    )
    ctx = zmq.Context.instance()
    try:
        with ctx.socket(zmq.SUB) as sub:
            sub.linger = 0
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(server.endpoints["pub"])
            ep = server.endpoints["bind"]
            exchange(ep, P.encode({"v": 1, "type": "hello", "id": "h", "symbols": ["EURUSD"]}))
            time.sleep(0.2)
            exchange(
                ep,
                P.encode(
                    {
                        "v": 1,
                        "type": "news",
                        "id": "n",
                        "headline": "ECB raises rates",
                        "currency": "EUR",
                        "time": int(time.time()),
                        "utc_offset": 0,
                    }
                ),
            )
            directions = []
            deadline = time.time() + 10
            while len(directions) < 2 and time.time() < deadline:
                if sub.poll(500):
                    directions.append(json.loads(sub.recv_multipart()[1])["direction"])
            assert directions == [1, 0]
    finally:
        server.stop()
