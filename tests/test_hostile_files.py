"""Files an unlucky user hands the server: a bad CURVE allow-list entry, a news file with bad lines appended while it
is followed, and a stderr nobody reads. Real processes, real files, real sockets on loopback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doubles import free_port, start_server

from bridge.errors import UserError
from bridge.wire import keys
from bridge.wire.client import LazyPirateClient
from bridge.wire.server import load_curve_keys

HERE = Path(__file__).resolve().parent


def test_bad_file_in_the_curve_allow_list_refuses_start_naming_it(tmp_path, caplog):
    server_dir = tmp_path / "server"
    keys.generate(server_dir, "server")
    keys.generate(tmp_path / "ea1", "ea1", authorize=server_dir / "authorized")
    load_curve_keys(server_dir)  # valid as generated
    bad = server_dir / "authorized" / "broken.key"
    bad.write_text("this is not a certificate\n")
    with pytest.raises(UserError, match=r"broken\.key: not a readable client public key"):
        load_curve_keys(server_dir)
    bad.write_text('metadata\ncurve\n    public-key = "short"\n')
    with pytest.raises(UserError, match=r"broken\.key"):
        load_curve_keys(server_dir)
    bad.unlink()
    (server_dir / "server.key_secret").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bridge.wire.server"):
        load_curve_keys(server_dir)
    assert "readable by other users" in caplog.text


def test_followed_news_file_skips_a_bad_appended_line_and_keeps_following(tmp_path):
    from bridge.serve import NewsFollower

    path = tmp_path / "feed.csv"
    path.write_text("time,headline,currency\n2024-03-01 12:00:00,ECB raises rates,EUR\n")
    server = start_server(clock="server")
    try:
        follower = NewsFollower(server, path)
        assert follower.poll_once() == 1
        with open(path, "a") as fh:
            fh.write("9999-12-31 10:00:00,From the far future,USD\n2024-03-01 12:05:00,Fed cuts rates,USD\n")
        with pytest.warns(UserWarning, match="line 3"):
            assert follower.poll_once() == 1  # the good line after the bad one is read
        assert 3 in follower.bad_lines
        with open(path, "a") as fh:
            fh.write("2024-03-01 12:10:00,BoE holds rates,GBP\n")
        assert follower.poll_once() == 1  # still following
        deadline = time.time() + 5
        while server.stats.news_accepted < 3 and time.time() < deadline:
            time.sleep(0.02)
        stats = server.stats_dict()
        assert stats["news_accepted"] == 3
        assert stats["followers"][0]["bad_lines"] == 1 and stats["followers"][0]["submitted"] == 3
    finally:
        server.stop()


def test_follower_thread_outlives_a_file_that_breaks_and_shows_it_in_stats(tmp_path):
    from bridge import serve

    path = tmp_path / "feed.csv"
    path.write_text("time,headline,currency\n2024-03-01 12:00:00,ECB raises rates,EUR\n")
    server = start_server(clock="server")
    old = serve.FOLLOW_INTERVAL_S
    serve.FOLLOW_INTERVAL_S = 0.05
    try:
        follower = serve.NewsFollower(server, path)
        follower.start()
        time.sleep(0.3)
        path.write_text("time,headline\n")  # truncated to its header by a careless writer: an error, not news
        time.sleep(0.3)
        status = server.stats_dict()["followers"][0]
        assert status["alive"] and status["failures"] >= 1 and "no news rows" in status["last_error"]
        path.write_text("time,headline,currency\n2024-03-01 12:30:00,Fed cuts rates,USD\n")
        deadline = time.time() + 5
        while server.stats.news_accepted < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert server.stats.news_accepted == 2 and follower.is_alive()
    finally:
        serve.FOLLOW_INTERVAL_S = old
        server.stop()


def test_a_stderr_nobody_reads_never_stops_the_server(tmp_path):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    args = [sys.executable, str(HERE / "doubles.py"), "serve", "--bind", endpoint, "--pull", "", "--journal",
            str(tmp_path / "j.jsonl"), "--rate-limit", "0", "--log-level", "debug"]  # fmt: skip
    # stderr is a pipe this test never reads: about 64 KiB of log lines fill it
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with LazyPirateClient(endpoint, timeout_ms=5000, retries=3) as c:
            deadline = time.time() + 30
            while True:
                try:
                    c.ping()
                    break
                except Exception:
                    assert time.time() < deadline and proc.poll() is None
            for i in range(3000):
                rep = c.news(
                    f"Headline number {i} about the euro " + "x" * 100, time=1_700_000_000 + i, utc_offset=0
                )
                assert rep["type"] == "ack", rep
            stats = c.stats()["stats"]
            assert c.signal("EURUSD")["type"] == "target"
        assert stats["news_accepted"] == 3000
        # the writer is stuck on the full pipe: lines wait in the bounded queue (then are dropped, counted)
        waiting, limit = stats["bounds"]["log_queue"]
        assert waiting > 0 or stats["log_dropped"] > 0
        assert waiting <= limit
    finally:
        proc.kill()
        proc.wait(10)
        proc.stderr.close()


def test_per_item_log_lines_are_debug_and_a_summary_is_info(tmp_path, caplog, monkeypatch):
    from bridge.wire import server as S

    monkeypatch.setattr(S, "SUMMARY_S", 0.0)
    srv = start_server(clock="server")
    try:
        with caplog.at_level(logging.INFO, logger="bridge.wire.server"):
            with LazyPirateClient(srv.endpoints["bind"]) as c:
                for i in range(20):
                    c.news(f"headline {i}", time=1_700_000_000 + i, utc_offset=0)
            time.sleep(0.3)
    finally:
        srv.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert "news accepted" not in messages
    summaries = [r for r in caplog.records if r.getMessage() == "summary"]
    assert summaries and sum(getattr(r, "fields", {}).get("news_accepted", 0) for r in summaries) == 20
    assert json.dumps(summaries[0].fields)
