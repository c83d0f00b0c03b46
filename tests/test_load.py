"""Load: 50 concurrent clients, each sending 2,000 ``signal`` requests to a server in its own process: no lost or
mismatched replies, and the server's resident memory grows by less than 10% over the run."""

from __future__ import annotations

import signal
import threading
import time

import psutil
import pytest
from doubles import free_port, spawn, wait_ready

from bridge.wire.client import LazyPirateClient

N_CLIENTS = 50
N_REQUESTS = 2_000
SYMBOLS = ("EURUSD", "USDJPY", "GBPUSD", "AUDUSD", "EURJPY")


def run_clients(endpoint: str, n_clients: int, n_requests: int) -> tuple[list[int], list[str]]:
    """Start ``n_clients`` threads with their own sockets; returns replies counted per client and any problems."""
    done = [0] * n_clients
    problems: list[str] = []
    start = threading.Barrier(n_clients)

    def one(k: int) -> None:
        symbol = SYMBOLS[k % len(SYMBOLS)]
        with LazyPirateClient(endpoint, timeout_ms=20_000, retries=1) as client:
            start.wait()
            for i in range(n_requests):
                rid = f"c{k}-{i}"
                try:
                    rep = client.request(
                        {
                            "type": "signal",
                            "id": rid,
                            "symbol": symbol,
                            "time": int(time.time()),
                            "utc_offset": 0,
                        }
                    )
                except Exception as exc:  # collected and asserted below, so one thread's failure names itself
                    problems.append(f"client {k} request {i}: {exc}")
                    return
                if rep.get("id") != rid or rep.get("type") != "target" or rep.get("symbol") != symbol:
                    problems.append(f"client {k} request {i}: mismatched reply {rep}")
                    return
                done[k] += 1

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done, problems


@pytest.mark.slow
def test_fifty_clients_two_thousand_signals_each(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = spawn(endpoint, tmp_path / "journal.jsonl", tmp_path / "server.log")
    try:
        with LazyPirateClient(endpoint, timeout_ms=500, retries=2) as c:
            wait_ready(c, proc)
            c.news("Euro area growth beats forecasts", currency="EUR")
        done, problems = run_clients(endpoint, N_CLIENTS, 100)  # warm-up: caches, buffers, allocator arenas
        assert not problems, problems[:3]
        rss_before = psutil.Process(proc.pid).memory_info().rss
        done, problems = run_clients(endpoint, N_CLIENTS, N_REQUESTS)
        rss_after = psutil.Process(proc.pid).memory_info().rss
        assert not problems, problems[:3]
        assert done == [N_REQUESTS] * N_CLIENTS
        assert rss_after < 1.10 * rss_before, (rss_before, rss_after)
        with LazyPirateClient(endpoint, timeout_ms=2000, retries=2) as c:
            stats = c.stats()["stats"]
        assert stats["errors"] == 0 and stats["rate_limited"] == 0
        assert stats["requests"] >= N_CLIENTS * (N_REQUESTS + 100)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
