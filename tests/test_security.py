"""Security: CURVE with an allow-list (a listed client works, an unlisted one and a plain one get nothing), key
generation CLI, loud warning on a public bind without CURVE, missing keys reported clearly."""

from __future__ import annotations

import contextlib
import logging
import time

import pytest
import zmq.auth
from doubles import start_server

from bridge.errors import UserError, run_main
from bridge.wire import keys
from bridge.wire import protocol as P
from bridge.wire.client import LazyPirateClient, ServerDown
from bridge.wire.server import BridgeServer, is_loopback


@pytest.fixture
def curve_setup(tmp_path):
    server_dir = tmp_path / "server"
    assert run_main(keys.main, ["generate", str(server_dir), "--name", "server"]) == 0
    assert (
        run_main(
            keys.main,
            [
                "generate",
                str(tmp_path / "ea1"),
                "--name",
                "ea1",
                "--authorize",
                str(server_dir / "authorized"),
            ],
        )
        == 0
    )
    assert run_main(keys.main, ["generate", str(tmp_path / "stranger"), "--name", "stranger"]) == 0
    server = start_server(clock="request", curve_keys=server_dir, pull="tcp://127.0.0.1:*")
    yield server, tmp_path
    server.stop()


def curve_client(endpoint: str, server_pub: str, client_secret: str) -> LazyPirateClient:
    spub, _ = zmq.auth.load_certificate(server_pub)
    cpub, csec = zmq.auth.load_certificate(client_secret)
    return LazyPirateClient(endpoint, timeout_ms=500, retries=2, curve=(spub, cpub, csec))


def test_listed_client_works_unlisted_gets_nothing(curve_setup, caplog):
    caplog.set_level(logging.WARNING, logger="bridge.auth")
    server, d = curve_setup
    ep = server.endpoints["bind"]
    with curve_client(ep, d / "server/server.key", d / "ea1/ea1.key_secret") as ok:
        assert ok.ping()["type"] == "pong"
        assert ok.signal("EURUSD", 1_700_000_000, 0)["type"] == "target"
    stranger = curve_client(ep, d / "server/server.key", d / "stranger/stranger.key_secret")
    with stranger, pytest.raises(ServerDown):
        stranger.ping()
    with LazyPirateClient(ep, timeout_ms=500, retries=1) as plain, pytest.raises(ServerDown):
        plain.ping()
    assert (
        server.stats.requests == 2
    )  # the stranger's and the plain client's requests never reached the server
    # the operator sees the refused key once, not once per retry
    refused = [r for r in caplog.records if r.name == "bridge.auth" and r.getMessage() == "client refused"]
    stranger_key = (d / "stranger" / "stranger.key").read_text()
    assert len(refused) == 1 and "DENIED" in refused[0].fields["detail"]
    assert refused[0].fields["detail"].rsplit("client_key=", 1)[-1] in stranger_key


def test_keys_cli_refuses_overwrite_and_bad_names(tmp_path):
    assert run_main(keys.main, ["generate", str(tmp_path), "--name", "a"]) == 0
    assert (tmp_path / "a.key_secret").stat().st_mode & 0o077 == 0
    with pytest.raises(UserError, match="already exists"):
        keys.generate(tmp_path, "a")
    with pytest.raises(UserError, match="must be letters"):
        keys.generate(tmp_path, "../evil")


def test_missing_curve_keys_named_with_hint(tmp_path):
    server = BridgeServer(object(), bind="tcp://127.0.0.1:*", curve_keys=tmp_path)
    with pytest.raises(UserError, match=r"server\.key_secret.*bridge\.keys generate"):
        server.bind()
    keys.generate(tmp_path, "server")
    with pytest.raises(UserError, match="no authorised client public keys"):
        server.bind()


def test_public_bind_without_curve_warns_loudly(caplog):
    assert (
        is_loopback("tcp://127.0.0.1:5555")
        and is_loopback("inproc://x")
        and not is_loopback("tcp://0.0.0.0:1")
    )
    with caplog.at_level(logging.WARNING, logger="bridge.wire.server"):
        server = start_server(bind="tcp://0.0.0.0:*")
        server.stop()
    assert any("WITHOUT CURVE" in r.getMessage() for r in caplog.records)


def test_default_endpoints_are_loopback():
    from bridge.wire import protocol as P

    for ep in (P.DEFAULT_REQUEST_ENDPOINT, P.DEFAULT_PUB_ENDPOINT, P.DEFAULT_NEWS_ENDPOINT):
        assert is_loopback(ep)


def test_second_server_on_the_same_journal_is_refused(tmp_path):
    pytest.importorskip("fcntl")
    first = start_server(journal=tmp_path / "j.jsonl")
    try:
        second = BridgeServer(object(), bind="tcp://127.0.0.1:*", journal=tmp_path / "j.jsonl")
        with pytest.raises(UserError, match="in use by another running server"):
            second.bind()
    finally:
        first.stop()


def test_news_intake_refuses_unlisted_keys(curve_setup):
    server, d = curve_setup
    spub, _ = zmq.auth.load_certificate(d / "server/server.key")
    ctx = zmq.Context.instance()
    for name, headline in (("stranger", "Fake: ECB raises rates"), ("ea1", "ECB raises rates")):
        cpub, csec = zmq.auth.load_certificate(d / f"{name}/{name}.key_secret")
        with ctx.socket(zmq.PUSH) as push:
            push.linger = 0
            push.curve_serverkey, push.curve_publickey, push.curve_secretkey = spub, cpub, csec
            push.connect(server.endpoints["pull"])
            data = P.encode({"v": 1, "type": "news", "id": "n", "headline": headline, "currency": "EUR"})
            # The stranger's handshake is refused, so its PUSH may have no peer to queue for: Again is fine.
            with contextlib.suppress(zmq.Again):
                push.send(data, zmq.NOBLOCK if name == "stranger" else 0)
            time.sleep(0.5)
    assert server.stats.news_accepted == 1
    assert [it.headline for it in server.state.items.values()] == ["ECB raises rates"]
