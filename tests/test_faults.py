"""Faults: the server is killed with SIGKILL mid-run and restarted on the same port and journal. The EA emulator's
Lazy Pirate client recovers by itself, no acknowledged news item is lost, and no target is ever doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from doubles import EAEmulator, free_port, spawn, wait_ready

from bridge.wire.client import LazyPirateClient, ServerDown
from bridge.wire.journal import Journal

HERE = Path(__file__).parent


@pytest.mark.slow
def test_sigkill_restart_recovers_without_loss_or_doubling(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    journal, log = tmp_path / "journal.jsonl", tmp_path / "server.log"
    proc = spawn(endpoint, journal, log)
    client = LazyPirateClient(endpoint, timeout_ms=250, retries=2)
    ea = EAEmulator(client, ("EURUSD", "USDJPY"))
    acked: dict[str, dict] = {}  # news id -> the news request, for every item the server acknowledged
    unsent: list[dict] = []
    try:
        wait_ready(client, proc)
        for i in range(40):
            if i == 12:
                proc.send_signal(signal.SIGKILL)  # no goodbye, no flush: only what was fsync'd survives
                proc.wait(10)
            if i == 17:
                proc = spawn(
                    endpoint, journal, log
                )  # same port, same journal; the client object is unchanged
            now = int(time.time())
            news = {
                "headline": f"ECB {'raises' if (i // 5) % 2 == 0 else 'cuts'} rates, item {i}",
                "currency": "EUR",
                "time": now,
                "utc_offset": 0,
                "source": "fault-test",
            }
            unsent.append(news)
            while (
                unsent
            ):  # oldest first; stop at the first failure, as a feed would, and try again next round
                try:
                    ack = client.news(**unsent[0])
                except ServerDown:
                    break
                assert ack["type"] == "ack" and not ack["duplicate"], ack
                acked[ack["news_id"]] = unsent.pop(0)
            ea.tick()
            if 12 <= i < 17:
                assert proc.poll() is not None  # really down in this stretch
        assert not unsent and len(acked) == 40
        assert ea.server_down_ticks >= 4 and client.reconnects > 0
        # Every acknowledged item survived the SIGKILL: resending it is recognised as a duplicate.
        for nid, msg in acked.items():
            again = client.news(**msg)
            assert again["news_id"] == nid and again["duplicate"] is True
        stats = client.stats()["stats"]
        items = {it.id for it in Journal(journal).load().items}
        assert set(acked) <= items
        deadline = time.time() + 20
        while stats["analysis_queue"] and time.time() < deadline:
            time.sleep(0.1)
            stats = client.stats()["stats"]
        assert stats["analysis_queue"] == 0
        contents = Journal(journal).load()
        assert set(acked) <= set(contents.analyses)
        # No target doubled: the EA held at most one unit per symbol and every trade moved to a new target.
        assert all(p in (-1, 0, 1) for p in ea.positions.values())
        assert len(ea.trades) >= 2  # the news flipped the target, so the EA really traded through the kill
        held: dict[str, int] = {}
        for sym, before, after in ea.trades:
            assert before == held.get(sym, 0) and after != before
            held[sym] = after
        assert held == {s: p for s, p in ea.positions.items() if p or s in held}
        log_lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        assert any(rec["msg"] == "journal restored" and rec["items"] >= 12 for rec in log_lines)
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_sigterm_shuts_down_cleanly(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = spawn(endpoint, tmp_path / "j.jsonl", tmp_path / "log")
    client = LazyPirateClient(endpoint, timeout_ms=250, retries=2)
    try:
        wait_ready(client, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        lines = [json.loads(x) for x in (tmp_path / "log").read_text().splitlines() if x.startswith("{")]
        assert [r["msg"] for r in lines][-2:] == ["shutting down", "stopped"]
    finally:
        client.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
