"""mql5/Include/EABridge/Protocol.mqh holds the same protocol constants as bridge/wire/protocol.py."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.wire import protocol as P

MQH = Path(__file__).resolve().parents[1] / "mql5" / "Include" / "EABridge" / "Protocol.mqh"
DEFINE = re.compile(r"^#define\s+(BRIDGE_\w+)\s+(\"[^\"]*\"|-?\d+)\s*(?://.*)?$")


def _defines() -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for line in MQH.read_text(encoding="utf-8").splitlines():
        m = DEFINE.match(line.strip())
        if m:
            name, value = m.groups()
            out[name] = value[1:-1] if value.startswith('"') else int(value)
    return out


def test_protocol_mqh_numbers_equal_the_python_module():
    d = _defines()
    assert d["BRIDGE_PROTOCOL_VERSION"] == P.PROTOCOL_VERSION
    assert d["BRIDGE_MAX_MESSAGE_BYTES"] == P.MAX_MESSAGE_BYTES
    assert d["BRIDGE_MAX_ID_CHARS"] == P.MAX_ID_CHARS
    assert d["BRIDGE_MAX_BARS"] == P.MAX_BARS
    assert d["BRIDGE_REQUEST_TIMEOUT_MS"] == P.REQUEST_TIMEOUT_MS
    assert d["BRIDGE_REQUEST_RETRIES"] == P.REQUEST_RETRIES
    backoff = [d[f"BRIDGE_BACKOFF_{i}_MS"] for i in (1, 2, 3)] + [d["BRIDGE_BACKOFF_MAX_MS"]]
    assert tuple(backoff) == tuple(P.RECONNECT_BACKOFF_MS)


def test_protocol_mqh_message_types_and_error_codes_equal_the_python_module():
    d = _defines()
    types = {v for k, v in d.items() if k.startswith("BRIDGE_TYPE_")}
    assert types == set(P.REQUEST_TYPES) | set(P.REPLY_TYPES)
    for name in ("HELLO", "SIGNAL", "NEWS", "PING", "STATS", "TARGET", "ACK", "PONG", "ERROR"):
        assert d[f"BRIDGE_TYPE_{name}"] == getattr(P, name)
    codes = {k.removeprefix("BRIDGE_E_"): v for k, v in d.items() if k.startswith("BRIDGE_E_")}
    assert set(codes.values()) == set(P.ERROR_CODES)
    for name, value in codes.items():
        assert getattr(P, f"E_{name}") == value


def test_every_define_in_protocol_mqh_is_checked():
    # a constant added to one side only fails here
    checked = {
        "VERSION",
        "MAX_MESSAGE_BYTES",
        "MAX_ID_CHARS",
        "MAX_BARS",
        "REQUEST_TIMEOUT_MS",
        "REQUEST_RETRIES",
    }
    for name in _defines():
        short = name.removeprefix("BRIDGE_").removeprefix("PROTOCOL_")
        assert short in checked or short.startswith(("TYPE_", "E_", "BACKOFF_")), name
