"""The wire contract between the server and its clients (the MQL5 Expert Advisor, ``bridge.client``).

Everything about the protocol is defined here and in ``docs/protocol.md``: version, message types, fields, limits,
error codes, timeouts. The server, the Python client and the MQL5 code all follow this module; the golden messages in
``tests/golden/`` are examples of it that every implementation is tested against.

One ZeroMQ frame per message, a UTF-8 JSON object of at most ``MAX_MESSAGE_BYTES``. Every message has ``v``,
``type`` and ``id``; every request gets exactly one reply, carrying the request's ``id``. Times on the wire are integer
seconds since 1970: the EA's ``time`` is its trade server's clock and ``utc_offset`` says how far that clock is ahead of
UTC (so UTC = time - utc_offset); every time the server sends is UTC.
"""

from __future__ import annotations

import json
import math
from typing import Any

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_ID_CHARS = 64
MAX_BARS = 500

DEFAULT_REQUEST_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_NEWS_ENDPOINT = "tcp://127.0.0.1:5557"

# The socket-level limit: a peer sending a frame larger than this is disconnected by libzmq before the server sees it.
# Frames between MAX_MESSAGE_BYTES and this get a ``too_large`` error reply instead, so honest mistakes are told why.
SOCKET_MAX_MESSAGE_BYTES = 4 * MAX_MESSAGE_BYTES

# Per-client rate limit (token bucket keyed by the ROUTER identity): sustained requests per second and burst size.
DEFAULT_RATE_LIMIT = 200.0
DEFAULT_RATE_BURST = 400

# Analysis worker: the most queued news items analysed in one batch.
ANALYSIS_BATCH = 32

# Lazy Pirate client settings, shared by bridge.client and the EA's defaults.
REQUEST_TIMEOUT_MS = 2500
REQUEST_RETRIES = 3
RECONNECT_BACKOFF_MS = (500, 1000, 2000, 5000)

# Request types and the reply type each one gets.
HELLO, SIGNAL, NEWS, PING, STATS = "hello", "signal", "news", "ping", "stats"
REQUEST_TYPES = (HELLO, SIGNAL, NEWS, PING, STATS)
TARGET, ACK, PONG, ERROR = "target", "ack", "pong", "error"
REPLY_TYPES = (TARGET, ACK, PONG, ERROR)
REPLY_FOR = {HELLO: ACK, SIGNAL: TARGET, NEWS: ACK, PING: PONG, STATS: ACK}

# Error codes: stable strings the EA can switch on.
E_MULTIPART = "multipart"  # more than one frame
E_TOO_LARGE = "too_large"
E_BAD_UTF8 = "bad_utf8"
E_BAD_JSON = "bad_json"
E_NOT_OBJECT = "not_object"
E_BAD_VERSION = "bad_version"
E_UNKNOWN_TYPE = "unknown_type"
E_MISSING_FIELD = "missing_field"
E_BAD_FIELD = "bad_field"
E_RATE_LIMITED = "rate_limited"
E_BUSY = "busy"  # the analysis backlog is full: the item was not accepted, send it again later
E_STORAGE = "storage"  # the journal cannot be written (disk full, I/O error): the item was not accepted
E_INTERNAL = "internal"
ERROR_CODES = (
    E_MULTIPART,
    E_TOO_LARGE,
    E_BAD_UTF8,
    E_BAD_JSON,
    E_NOT_OBJECT,
    E_BAD_VERSION,
    E_UNKNOWN_TYPE,
    E_MISSING_FIELD,
    E_BAD_FIELD,
    E_RATE_LIMITED,
    E_BUSY,
    E_STORAGE,
    E_INTERNAL,
)

# Per request type: required fields and optional fields, each with the JSON types it accepts.
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
FIELDS: dict[str, tuple[dict[str, tuple], dict[str, tuple]]] = {
    HELLO: ({}, {"client": (str,), "account": (int, str), "symbols": (list,), "key": (str,)}),
    SIGNAL: (
        {"symbol": (str,), "time": (int,), "utc_offset": (int,)},
        {"position": (dict,), "bars": (list,), "tester": (bool,), "base": (str,), "quote": (str,)},
    ),
    NEWS: (
        {"headline": (str,)},
        {
            "time": (int,),
            "utc_offset": (int,),
            "source": (str,),
            "currency": (str, type(None)),
            "body": (str,),
            "actual": _OPT_NUM,
            "forecast": _OPT_NUM,
            "previous": _OPT_NUM,
            "impact": (str, type(None)),
            "event": (str, type(None)),
        },
    ),
    PING: ({}, {}),
    STATS: ({}, {}),
}
# Text limits in characters, checked before anything else reads the text (no regex ever sees more than this). The
# headline plus body of one item stay well under MAX_MESSAGE_BYTES even at four UTF-8 bytes a character.
MAX_TEXT_CHARS = {
    "headline": 1000,
    "body": 8000,
    "symbol": 32,
    "source": 100,
    "client": 100,
    "event": 200,
    "impact": 20,
    "key": 200,
    "account": 100,
    "base": 3,
    "quote": 3,
    "currency": 3,
}
MAX_HELLO_SYMBOLS = 64  # symbols one ``hello`` may name
MAX_NUMBER = 1e15  # calendar figures beyond this are not economic data (and overflow float arithmetic)


class ProtocolError(Exception):
    """A request that breaks the contract; becomes an ``error`` reply with ``code``."""

    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def _field_error(code: str, message: str, rid: str | None) -> ProtocolError:
    return ProtocolError(code, message, rid)


def decode_request(frame: bytes) -> dict[str, Any]:
    """Parse and validate one request frame; raise ``ProtocolError`` naming the first problem found."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(E_TOO_LARGE, f"message is {len(frame)} bytes, the limit is {MAX_MESSAGE_BYTES}")
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(E_BAD_UTF8, f"message is not valid UTF-8 at byte {exc.start}") from None
    try:
        msg = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(E_BAD_JSON, f"message is not valid JSON: {exc}") from None
    if "\\u" in text:
        _reject_surrogates(msg)  # only a \u escape can make a lone surrogate; valid UTF-8 bytes never do
    if not isinstance(msg, dict):
        raise ProtocolError(E_NOT_OBJECT, f"message must be a JSON object, got {type(msg).__name__}")
    rid = msg.get("id")
    rid = rid if isinstance(rid, str) and 0 < len(rid) <= MAX_ID_CHARS else None
    if "id" not in msg:
        raise ProtocolError(E_MISSING_FIELD, "missing field 'id'")
    if rid is None:
        raise ProtocolError(E_BAD_FIELD, f"field 'id' must be a string of 1..{MAX_ID_CHARS} characters")
    v = msg.get("v")
    if v != PROTOCOL_VERSION or isinstance(v, bool):
        raise ProtocolError(
            E_BAD_VERSION,
            f"protocol version {v!r} is not supported; this server speaks v={PROTOCOL_VERSION}",
            rid,
        )
    mtype = msg.get("type")
    if not isinstance(mtype, str) or mtype not in FIELDS:  # a list or object here is unhashable
        raise ProtocolError(
            E_UNKNOWN_TYPE, f"unknown request type {mtype!r}; expected one of {list(REQUEST_TYPES)}", rid
        )
    required, optional = FIELDS[mtype]
    for name, types in required.items():
        if name not in msg:
            raise _field_error(E_MISSING_FIELD, f"{mtype}: missing field {name!r}", rid)
        _check_type(mtype, name, msg[name], types, rid)
    for name, types in optional.items():
        if name in msg:
            _check_type(mtype, name, msg[name], types, rid)
    for name, limit in MAX_TEXT_CHARS.items():
        value = msg.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise _field_error(E_BAD_FIELD, f"{mtype}: field {name!r} is longer than {limit} characters", rid)
    if mtype == SIGNAL:
        _check_signal(msg, rid)
    if mtype == NEWS:
        _check_news(msg, rid)
    if mtype == HELLO:
        _check_hello(msg, rid)
    return msg


def _reject_surrogates(msg: Any) -> None:
    """The one place text that cannot be encoded again is refused: a lone surrogate (``\\ud800``) parses as JSON but
    no reply, journal record or log line can carry it, so it is a ``bad_utf8`` error at the door."""
    stack = [msg]
    # iterative: the JSON parser already bounds the depth, this walk must not add recursion of its own
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ProtocolError(
                    E_BAD_UTF8, f"message has a lone surrogate (\\u{ord(node[exc.start]):04x}) in a string"
                ) from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _check_type(mtype: str, name: str, value: Any, types: tuple, rid: str | None) -> None:
    # bool is an int subclass in Python; JSON true is never a number here.
    ok = False if isinstance(value, bool) and bool not in types else isinstance(value, types)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        names = "/".join("null" if t is type(None) else t.__name__ for t in types)
        raise _field_error(
            E_BAD_FIELD, f"{mtype}: field {name!r} must be {names}, got {type(value).__name__}", rid
        )
    # A JSON integer has no size limit (10**400 parses); beyond MAX_NUMBER it is no figure and overflows floats.
    if float in types and isinstance(value, _NUM) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
        raise _field_error(E_BAD_FIELD, f"{mtype}: field {name!r} is beyond +-{MAX_NUMBER:g}", rid)


def _check_signal(msg: dict, rid: str | None) -> None:
    symbol = msg["symbol"]
    if not symbol or not symbol.replace(".", "").replace("_", "").replace("#", "").isalnum():
        raise _field_error(E_BAD_FIELD, f"signal: field 'symbol' {symbol!r} is not a symbol name", rid)
    if not -14 * 3600 <= msg["utc_offset"] <= 14 * 3600:
        raise _field_error(
            E_BAD_FIELD, "signal: field 'utc_offset' must be within +-14 hours (in seconds)", rid
        )
    if not 0 <= msg["time"] < 2**33:
        raise _field_error(E_BAD_FIELD, "signal: field 'time' must be seconds since 1970", rid)
    if ("base" in msg) != ("quote" in msg):
        raise _field_error(E_BAD_FIELD, "signal: fields 'base' and 'quote' come together or not at all", rid)
    if "base" in msg and not all(len(msg[k]) == 3 and msg[k].isalpha() for k in ("base", "quote")):
        raise _field_error(
            E_BAD_FIELD, "signal: fields 'base' and 'quote' must be 3-letter currency codes", rid
        )
    pos = msg.get("position")
    if pos is not None:
        d = pos.get("direction", 0)
        vol = pos.get("volume", 0)
        if d not in (-1, 0, 1) or isinstance(d, bool):
            raise _field_error(E_BAD_FIELD, "signal: position.direction must be -1, 0 or 1", rid)
        if isinstance(vol, bool) or not isinstance(vol, _NUM) or not math.isfinite(vol) or vol < 0:
            raise _field_error(E_BAD_FIELD, "signal: position.volume must be a number >= 0", rid)
    bars = msg.get("bars")
    if bars is not None:
        if len(bars) > MAX_BARS:
            raise _field_error(E_BAD_FIELD, f"signal: at most {MAX_BARS} bars", rid)
        for i, bar in enumerate(bars):
            if (
                not isinstance(bar, list)
                or len(bar) != 5
                or any(isinstance(x, bool) or not isinstance(x, _NUM) or not abs(x) < 2**53 for x in bar)
            ):
                raise _field_error(
                    E_BAD_FIELD, f"signal: bars[{i}] must be [time, open, high, low, close]", rid
                )


def _check_hello(msg: dict, rid: str | None) -> None:
    symbols = msg.get("symbols", [])
    if len(symbols) > MAX_HELLO_SYMBOLS:
        raise _field_error(E_BAD_FIELD, f"hello: at most {MAX_HELLO_SYMBOLS} symbols", rid)
    for s in symbols:
        if not isinstance(s, str) or len(s) > MAX_TEXT_CHARS["symbol"]:
            raise _field_error(
                E_BAD_FIELD,
                f"hello: symbols must be strings of up to {MAX_TEXT_CHARS['symbol']} characters",
                rid,
            )


def _check_news(msg: dict, rid: str | None) -> None:
    if not msg["headline"].strip():
        raise _field_error(E_BAD_FIELD, "news: field 'headline' is empty", rid)
    if "time" in msg and not 0 <= msg["time"] < 2**33:
        raise _field_error(E_BAD_FIELD, "news: field 'time' must be seconds since 1970", rid)
    if "utc_offset" in msg and not -14 * 3600 <= msg["utc_offset"] <= 14 * 3600:
        raise _field_error(
            E_BAD_FIELD, "news: field 'utc_offset' must be within +-14 hours (in seconds)", rid
        )
    cur = msg.get("currency")
    if cur is not None and not (len(cur) == 3 and cur.isascii() and cur.isalpha()):
        raise _field_error(
            E_BAD_FIELD, f"news: field 'currency' {cur!r} is not a 3-letter currency code", rid
        )


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split a ROUTER message into (envelope, body).

    A REQ peer's message arrives as [identity, b"", body]; a DEALER's as [identity, body] (or with the empty delimiter
    when the DEALER imitates REQ). The envelope is sent back unchanged in front of the reply so both kinds get it.
    """
    if len(frames) >= 2 and frames[1] == b"":
        return frames[:2], frames[2:]
    return frames[:1], frames[1:]


def decode_frames(body: list[bytes]) -> dict[str, Any]:
    """Validate a request given as its list of body frames: exactly one frame, then ``decode_request``."""
    if len(body) != 1:
        raise ProtocolError(E_MULTIPART, f"a request is exactly one frame, got {len(body)}")
    return decode_request(body[0])


def target_fields(target) -> dict[str, Any]:
    """A ``bridge.types.Target`` in wire form: its ``to_dict`` with times as integer UTC seconds (``expires`` 0 when
    there is none), as the EA reads them."""
    return {
        **target.to_dict(),
        "as_of": int(target.as_of.value // 1_000_000_000),
        "expires": int(target.expires.value // 1_000_000_000) if target.expires is not None else 0,
    }


def encode(msg: dict[str, Any]) -> bytes:
    """Serialise a message compactly; the size limit applies to replies too."""
    data = json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def error_reply(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """An ``error`` reply; ``request_id`` is None when the request's id could not be read."""
    return {"v": PROTOCOL_VERSION, "type": ERROR, "id": request_id, "code": code, "message": message}


def reply(mtype: str, request_id: str, **fields: Any) -> dict[str, Any]:
    """A reply of ``mtype`` to the request ``request_id`` with the given fields."""
    return {"v": PROTOCOL_VERSION, "type": mtype, "id": request_id, **fields}
