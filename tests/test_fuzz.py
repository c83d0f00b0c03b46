"""Fuzzing the request socket: 10,000+ malformed messages, each answered with an ``error`` (or, for frames over the
socket's size limit, the connection dropped) within the timeout; no crash; a valid request is answered afterwards."""

from __future__ import annotations

import json
import random
import time

import zmq
from doubles import start_server

from bridge.wire import protocol as P

N_MESSAGES = 10_000
TIMEOUT_MS = 3000
VALID = {"v": 1, "type": "signal", "id": "ok", "symbol": "EURUSD", "time": 1_700_000_000, "utc_offset": 0}
JUNK_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**70,
    "",
    "x" * 70,
    [],
    {},
    [1, 2],
    {"a": 1},
    "EURUSD",
    -(2**40),
]


def _is_valid(msg: dict) -> bool:
    try:
        P.decode_request(json.dumps(msg).encode())
    except P.ProtocolError:
        return False
    return True


def malformed(rng: random.Random) -> tuple[str, list[bytes]]:
    """One malformed request as (category, frames)."""
    kind = rng.randrange(11)
    if kind == 0:
        return "random_bytes", [rng.randbytes(rng.randrange(0, 300))]
    if kind == 1:
        good = P.encode({**VALID, "id": "u"})
        i = rng.randrange(len(good))
        return "bad_utf8", [
            good[:i] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + good[i:]
        ]
    if kind == 2:
        good = P.encode({**VALID, "id": "j"}).decode()
        cut = rng.randrange(1, len(good))
        text = rng.choice(
            [
                good[:cut],
                good.replace(":", "", 1),
                good + "}",
                "{'v': 1}",
                "NaN",
                "{" * 5000,
                good.replace("1700000000", "Infinity"),
            ]
        )
        return "bad_json", [text.encode()]
    if kind == 3:
        return "not_object", [json.dumps(rng.choice([[1, 2], "x", 3, None, True, [VALID]])).encode()]
    if kind == 4:
        msg = dict(VALID, id=f"w{rng.randrange(10**6)}")
        field = rng.choice(["v", "type", "id", "symbol", "time", "utc_offset", "position", "bars", "tester"])
        msg[field] = rng.choice(JUNK_VALUES)
        if _is_valid(msg):  # some junk values happen to be valid (time 0, empty bars): break another field
            msg["time"] = "soon"
        return "wrong_type", [json.dumps(msg).encode()]
    if kind == 5:
        msg = dict(VALID, id=f"m{rng.randrange(10**6)}")
        del msg[rng.choice(["v", "type", "id", "symbol", "time", "utc_offset"])]
        return "missing_field", [json.dumps(msg).encode()]
    if kind == 6:
        msg = dict(VALID, id="ver", v=rng.choice([0, 2, 99, "1", 1.5, None]))
        return "bad_version", [json.dumps(msg).encode()]
    if kind == 7:
        msg = dict(
            VALID, id="typ", type=rng.choice(["order", "SIGNAL", "", "sig nal", "hello!", "target", "error"])
        )
        return "unknown_type", [json.dumps(msg).encode()]
    if kind == 8:
        return "multi_frame", [P.encode({**VALID, "id": "mf"}) for _ in range(rng.randrange(2, 5))]
    if kind == 9:
        bad = rng.choice(
            [
                {"position": {"direction": 5, "volume": 1}},
                {"position": {"direction": 1, "volume": -1}},
                {"bars": [[1, 2, 3]]},
                {"bars": [[0, 1, 1, 1, 1]] * (P.MAX_BARS + 1)},
                {"symbol": "EUR/USD!"},
                {"utc_offset": 10**6},
                {"time": -5},
                {"symbol": "x" * 40},
                {"bars": [["a", 1, 1, 1, 1]]},
            ]
        )
        return "bad_field", [json.dumps({**VALID, "id": "bf", **bad}).encode()]
    return "too_large", [
        b'{"v":1,"type":"ping","id":"big","pad":"' + b"x" * (P.MAX_MESSAGE_BYTES + 10) + b'"}'
    ]


def test_fuzz_ten_thousand_malformed_messages():
    server = start_server(clock="request")
    ctx = zmq.Context.instance()
    ep = server.endpoints["bind"]
    rng = random.Random(20240521)

    def dealer():
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(ep)
        return s

    sock = dealer()
    counts: dict[str, int] = {}
    try:
        for n in range(N_MESSAGES):
            if n % 1000 == 999:
                # 1 MiB frames: over the socket limit, libzmq drops the connection; the client reconnects.
                sock.send(b"x" * (1 << 20))
                assert not sock.poll(300), "a frame over the socket limit must not be answered"
                sock.close(0)
                sock = dealer()
                counts["one_mib"] = counts.get("one_mib", 0) + 1
                continue
            cat, frames = malformed(rng)
            counts[cat] = counts.get(cat, 0) + 1
            sock.send_multipart(frames)
            assert sock.poll(TIMEOUT_MS), f"no reply to {cat} message #{n}: {frames[0][:80]!r}"
            # An empty frame from a DEALER reads as REQ's delimiter, so the reply comes back behind one: take the last.
            reply = json.loads(sock.recv_multipart()[-1])
            assert reply["type"] == P.ERROR and reply["code"] in P.ERROR_CODES, (cat, reply)
            assert reply["code"] != P.E_INTERNAL, (cat, frames[0][:200], reply)
        sock.send(P.encode(VALID))
        assert sock.poll(TIMEOUT_MS)
        assert json.loads(sock.recv())["type"] == P.TARGET
        assert server._thread.is_alive()
        assert sum(counts.values()) == N_MESSAGES and min(counts.values()) > 5, counts
        assert server.stats.errors == N_MESSAGES - counts["one_mib"]
    finally:
        sock.close(0)
        server.stop()


def test_fuzz_intake_socket():
    """The PULL intake never replies; malformed news is counted, logged and dropped, and good news still gets in."""
    server = start_server(clock="request", pull="tcp://127.0.0.1:*")
    ctx = zmq.Context.instance()
    rng = random.Random(7)
    try:
        with ctx.socket(zmq.PUSH) as push:
            push.linger = 0
            push.connect(server.endpoints["pull"])
            sent = 0
            for _ in range(1000):
                _, frames = malformed(rng)
                push.send_multipart(frames)
                sent += 1
            push.send(
                P.encode(
                    {"v": 1, "type": "news", "id": "n", "headline": "ECB raises rates", "currency": "EUR"}
                )
            )
            deadline = time.time() + 20
            while server.stats.news_accepted < 1 and time.time() < deadline:
                time.sleep(0.05)
        assert server.stats.news_accepted == 1
        # Messages over the socket limit never arrive (the connection is dropped); everything else is counted.
        assert 0 < server.stats.intake_errors <= sent
        assert server._thread.is_alive()
    finally:
        server.stop()
