"""A server you can watch: ``stats`` shows the current target per symbol with its reasons, the last analyses, queue
depths, counts and latency percentiles; the optional status page serves the same over HTTP on loopback with a
Prometheus ``/metrics``, read here with a real HTTP client from a real server."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from doubles import start_server

from bridge.errors import UserError
from bridge.wire.client import LazyPirateClient
from bridge.wire.status_page import StatusPage, parse_address


@pytest.fixture
def watched():
    server = start_server()
    server.monitor.wanted = True
    page = StatusPage(server.monitor.published, "127.0.0.1:0").start()
    with LazyPirateClient(server.endpoints["bind"], timeout_ms=3000, retries=3) as client:
        yield server, page, client
    page.close()
    server.stop()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _feed(client) -> None:
    client.hello(symbols=["EURUSD"])
    now = int(time.time())
    assert client.news("ECB raises rates", currency="EUR", time=now - 30, utc_offset=0)["type"] == "ack"
    assert client.news("ECB raises rates", currency="EUR", time=now - 30, utc_offset=0)["duplicate"] is True
    assert (
        client.news("Euro zone growth strong", currency="EUR", time=now - 20, utc_offset=0)["type"] == "ack"
    )


def _wait(cond, timeout_s: float = 10.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("condition not met in time")


def test_stats_shows_targets_with_reasons_recent_analyses_queues_counts_and_latency(watched):
    server, _, client = watched
    _feed(client)
    stats = _wait(lambda: (s := client.stats()["stats"])["news_analysed"] >= 2 and s)
    assert stats["news_accepted"] == 2 and stats["news_duplicate"] == 1
    target = stats["targets"]["EURUSD"]
    assert target["direction"] == 1 and any("ECB raises rates" in r for r in target["reasons"])
    assert [a["headline"] for a in stats["recent_analyses"]] == [
        "ECB raises rates",
        "Euro zone growth strong",
    ]
    assert stats["recent_analyses"][0]["level"] == 2
    assert set(stats["queues"]) == {"analysis", "intake", "deferred"}
    lat = stats["analysis_latency_ms"]
    assert lat["n"] == 2 and 0 <= lat["p50"] <= lat["p90"] <= lat["p99"]
    assert stats["uptime_s"] > 0


def test_status_page_and_metrics_over_http(watched):
    server, page, client = watched
    _feed(client)
    _wait(lambda: server.monitor.published().get("news_analysed", 0) >= 2)
    status, kind, body = _get(page.address + "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    lines = body.splitlines()
    assert "# TYPE ea_bridge_news_accepted_total counter" in lines
    assert "ea_bridge_news_accepted_total 2" in lines and "ea_bridge_news_duplicate_total 1" in lines
    assert 'ea_bridge_target_direction{symbol="EURUSD"} 1' in lines
    assert any(ln.startswith('ea_bridge_analysis_latency_ms{quantile="0.99"} ') for ln in lines)
    assert any(ln.startswith('ea_bridge_queue_depth{queue="analysis"} ') for ln in lines)
    # Every sample line is NAME{labels} VALUE with a number, as Prometheus parses it.
    for ln in lines:
        if ln and not ln.startswith("#"):
            float(ln.rsplit(" ", 1)[1])

    status, kind, body = _get(page.address + "/stats.json")
    assert status == 200 and kind == "application/json"
    assert json.loads(body)["targets"]["EURUSD"]["direction"] == 1
    status, kind, body = _get(page.address + "/")
    assert status == 200 and "EURUSD" in body and "ECB raises rates" in body and "<script" not in body
    assert _get(page.address + "/nothing")[0] == 404
    req = urllib.request.Request(page.address + "/metrics", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 501  # read-only


def test_status_page_binds_to_loopback_only():
    assert parse_address("127.0.0.1:8765") == ("127.0.0.1", 8765)
    with pytest.raises(UserError, match="loopback"):
        parse_address("0.0.0.0:8765")
    with pytest.raises(UserError, match="HOST:PORT"):
        parse_address("8765")


def test_each_analysis_is_logged_compactly_at_info_without_overriding_the_log_level(watched, caplog):
    server, _, client = watched
    with caplog.at_level("INFO", logger="bridge.wire.analyses"):
        _feed(client)
        _wait(lambda: server.stats.news_analysed >= 2)
        _wait(lambda: len([r for r in caplog.records if r.name == "bridge.wire.analyses"]) >= 2)
    rec = [r for r in caplog.records if r.name == "bridge.wire.analyses"][0]
    assert rec.levelname == "INFO" and rec.getMessage().startswith("analysed +2 ")
    assert "level" not in rec.fields and rec.fields["sentiment"] == 2
