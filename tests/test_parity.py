"""What was measured is what trades: the live server and the backtester read the same news the same way.

A whole year of the ForexFactory 2016 calendar goes through the real ``python -m bridge.serve`` twice, as a user would
run it: followed live (``--news``, analyses read back from its journal) and replayed (``--replay``, a ``signal`` asked
as of every release). The backtester's library (``backtest.pipeline``, what ``backtest.run`` calls) reads the same
file. Every item must get the identical analysis, and every release the identical target.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from doubles import free_port

from backtest.engine import targets_from_effects
from backtest.pipeline import analyse, load_all_news, news_analyzer
from bridge.policy import PolicyConfig, effects_frame, target_for
from bridge.wire.client import LazyPirateClient, ServerDown
from bridge.wire.journal import Journal

ROOT = Path(__file__).resolve().parents[1]
CALENDAR = "calendar/forexfactory_2016.csv"
SYMBOL = "EURUSD"
ASK_AFTER_S = 60  # each target is asked for a minute after its release


def _serve(*args: str, log: Path) -> tuple[subprocess.Popen, str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "bridge.serve", "--bind", endpoint, "--pull", "", "--model", "none", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))  # noqa: SIM115
    with LazyPirateClient(endpoint, timeout_ms=500, retries=1) as client:
        deadline = time.monotonic() + 300  # a cold start imports torch; a loaded machine is slow
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                client.ping()
                return proc, endpoint
            except ServerDown:
                continue
    proc.kill()
    pytest.fail("bridge.serve did not answer within 300 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


@pytest.fixture(scope="module")
def backtest_side(shared_data):
    """The items, their analyses and the policy's effects exactly as ``backtest.run --model none`` computes them."""
    path = shared_data / CALENDAR
    items = load_all_news([path])
    analyzer, _ = news_analyzer(items, "none", cache_dir=None)
    pairs, _ = analyse(items, analyzer, progress=False)
    return path, items, dict((it.id, a) for it, a in pairs), effects_frame(SYMBOL, pairs, PolicyConfig())


@pytest.mark.slow
def test_live_server_analyses_every_item_as_the_backtest_does(backtest_side, tmp_path):
    path, items, analyses, _ = backtest_side
    journal = tmp_path / "journal.jsonl"
    proc, endpoint = _serve("--news", str(path), "--journal", str(journal), log=tmp_path / "live.log")
    try:
        with LazyPirateClient(endpoint, timeout_ms=2000, retries=3) as client:
            deadline = time.monotonic() + 300
            while client.stats()["stats"]["news_analysed"] < len(items):
                assert time.monotonic() < deadline, "the live server did not analyse every item in time"
                time.sleep(0.2)
    finally:
        _stop(proc)
    live = Journal(journal).load().analyses
    assert set(live) == {it.id for it in items}
    # Calendar items with figures by the surprise rule (with the history it learnt), the rest "not analysed".
    differ = [nid for nid, a in analyses.items() if live[nid] != a]
    assert not differ, f"{len(differ)} of {len(analyses)} analyses differ, e.g. {differ[:3]}"
    assert len(analyses) > 2500


@pytest.mark.slow
def test_replay_server_gives_the_backtests_target_after_every_release(backtest_side, tmp_path):
    path, items, _, effects = backtest_side
    policy = PolicyConfig()
    times = sorted({it.time for it in items if it.is_calendar})
    asof = [t + pd.Timedelta(seconds=ASK_AFTER_S) for t in times]
    expected = targets_from_effects(pd.DatetimeIndex(asof).as_unit("ns").asi8, effects, policy)
    proc, endpoint = _serve("--replay", str(path), "--rate-limit", "0", log=tmp_path / "replay.log")
    try:
        with LazyPirateClient(endpoint, timeout_ms=5000, retries=2) as client:
            replies = [client.signal(SYMBOL, int(t.timestamp())) for t in asof]
    finally:
        _stop(proc)
    served = [int(r["direction"]) for r in replies]
    assert len(served) > 2000
    mismatched = [(str(t), s, int(e)) for t, s, e in zip(asof, served, expected, strict=True) if s != e]
    assert not mismatched, f"{len(mismatched)} of {len(asof)} targets differ, e.g. {mismatched[:3]}"
    assert {-1, 1} <= set(served)  # both directions occur: the comparison is not between two flat books
    strengths = [target_for(SYMBOL, t, effects, policy).strength for t in asof]
    assert [r["strength"] for r in replies] == pytest.approx(strengths, abs=1e-6)
