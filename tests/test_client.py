"""The reference client and CLI against a real server: every command, the EA emulator's sequence, and a clear
report when the server is down."""

from __future__ import annotations

import json
import time

import pytest
from doubles import EAEmulator, start_server

from bridge.errors import run_main
from bridge.wire import client as C


@pytest.fixture
def server():
    s = start_server(clock="server")
    yield s
    s.stop()


def cli(capsys, *argv) -> tuple[int, dict]:
    rc = run_main(C.main, list(argv))
    out = capsys.readouterr().out
    return rc, json.loads(out) if out.strip() else {}


def test_cli_commands(server, capsys):
    ep = server.endpoints["bind"]
    rc, rep = cli(capsys, "--server", ep, "ping")
    assert rc == 0 and rep["type"] == "pong"
    rc, rep = cli(capsys, "--server", ep, "push-news", "Fed cuts rates by 50bp", "--currency", "USD")
    assert rc == 0 and rep["type"] == "ack" and rep["duplicate"] is False
    rc, rep = cli(capsys, "--server", ep, "signal", "EURUSD")
    assert rc == 0 and rep["type"] == "target" and rep["symbol"] == "EURUSD"
    rc, rep = cli(capsys, "--server", ep, "stats")
    assert rc == 0 and rep["stats"]["news_accepted"] == 1
    rc, rep = cli(capsys, "--server", ep, "signal", "US500")
    assert rc == 1 and rep["code"] == "bad_field"


def test_cli_reports_server_down_without_traceback(capsys):
    rc = run_main(C.main, ["--server", "tcp://127.0.0.1:1", "--timeout-ms", "100", "--retries", "2", "ping"])
    err = capsys.readouterr().err
    assert rc == C.ServerDown.exit_code
    assert "no reply from tcp://127.0.0.1:1 after 2 attempts" in err and "Traceback" not in err


def test_cli_rejects_bad_options(capsys):
    assert run_main(C.main, ["--timeout-ms", "0", "ping"]) == 2
    assert run_main(C.main, ["--server-key", "nope.key", "ping"]) == 2
    assert "needs --client-key" in capsys.readouterr().err


def test_ea_emulator_trades_only_the_difference(server):
    ep = server.endpoints["bind"]
    with C.LazyPirateClient(ep, timeout_ms=1000, retries=2) as client:
        ea = EAEmulator(client, ("EURUSD", "USDJPY"))
        ea.tick()
        assert ea.greeted and ea.trades == []  # flat targets: nothing to trade
        client.news("Euro area growth beats forecasts", currency="EUR")
        for _ in range(100):  # until the worker has analysed it
            if client.stats()["stats"]["news_analysed"]:
                break
            time.sleep(0.02)
        for _ in range(5):  # the same target five times: one trade
            ea.tick()
        assert ea.trades == [("EURUSD", 0, 1)]
        assert client.stats()["stats"]["clients"] == 1


def test_lazy_pirate_recovers_when_server_appears_late():
    import socket
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = f"tcp://127.0.0.1:{port}"
    holder = {}
    timer = threading.Timer(0.5, lambda: holder.setdefault("server", start_server(bind=ep)))
    timer.start()
    try:
        with C.LazyPirateClient(ep, timeout_ms=300, retries=6) as client:
            assert client.ping()["type"] == "pong"
            assert client.reconnects >= 1
    finally:
        timer.join()
        holder["server"].stop()
