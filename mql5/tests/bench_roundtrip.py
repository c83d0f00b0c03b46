"""Benchmark: the EA's request round trip through libzmq to the Python server, next to the Python client's.

    python mql5/tests/bench_roundtrip.py                      # 10,000 requests each, writes runs/bench/ea_roundtrip.json
    python mql5/tests/bench_roundtrip.py --requests 2000 --out /tmp/rt.json

Both clients do what the EA does once per bar against the same ``python -m bridge.serve --replay`` (calendar-surprise
analyzer, loopback TCP), one after the other in this run: encode a ``signal`` request, send it, poll, receive and
decode the ``target``. The EA side is the compiled EA code (Json.mqh, Client.mqh over the #import'ed libzmq) in the
harness; the Python side is ``bridge.client.LazyPirateClient``. The table reports p50/p99 in microseconds and the EA's
ratio to Python's (the issue's goal: within 1.5x). Needs ../shared/data for the replayed calendar.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zmq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import harness_build  # noqa: E402

from bridge.cli import HelpFormatter  # noqa: E402
from bridge.errors import UserError, run_main  # noqa: E402
from bridge.wire.client import LazyPirateClient, ServerDown  # noqa: E402

CALENDAR = ROOT.parent / "shared" / "data" / "calendar" / "forexfactory_2016.csv"
FIRST_TIME = 1456790400  # 2016-03-01 00:00 server time (UTC+4), the harness's parity window
UTC_OFFSET = 4 * 3600


def start_server(port: int) -> subprocess.Popen:
    endpoint = f"tcp://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "bridge.serve", "--bind", endpoint, "--pull", "", "--analyzer", "surprise"]
    cmd += ["--replay", str(CALENDAR), "--journal", "none", "--log-level", "warning", "--rate-limit", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    with LazyPirateClient(endpoint, timeout_ms=500, retries=1) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UserError(f"bridge.serve exited: {proc.stderr.read()[-2000:]}")
            try:
                client.ping()
                return proc
            except ServerDown:
                continue
    proc.kill()
    raise UserError("bridge.serve did not answer within 90 s")


def python_client(endpoint: str, n: int, warmup: int) -> dict:
    samples = []
    with LazyPirateClient(endpoint) as client:
        for i in range(n + warmup):
            t0 = time.perf_counter_ns()
            reply = client.signal("EURUSD", ea_time=FIRST_TIME + 3600 * (i % 240), utc_offset=UTC_OFFSET,
                                  position={"direction": 0, "volume": 0.0})  # fmt: skip
            us = (time.perf_counter_ns() - t0) / 1000
            if reply.get("type") != "target":
                raise UserError(f"unexpected reply {reply}")
            if i >= warmup:
                samples.append(us)
    a = np.array(samples)
    return {
        "n": len(a),
        "p50_us": float(np.percentile(a, 50)),
        "p99_us": float(np.percentile(a, 99)),
        "mean_us": float(a.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="timed requests per client")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first, per client")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "runs" / "bench" / "ea_roundtrip.json", help="JSON result"
    )
    args = parser.parse_args(argv)
    if not CALENDAR.is_file():
        raise UserError("the replayed calendar is missing", path=CALENDAR, hint="run beside ../shared/data")
    reason = harness_build.why_not_buildable()
    if reason:
        raise UserError(reason)
    build = harness_build.build()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    server = start_server(port)
    try:
        py = python_client(endpoint, args.requests, args.warmup)
        proc = subprocess.run(
            [str(build.programs["test_live"]), "bench", endpoint, str(args.requests), str(args.warmup)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if proc.returncode != 0:
            raise UserError(f"the EA benchmark failed: {proc.stderr[-2000:]}")
        ea = json.loads(proc.stdout)
    finally:
        server.kill()
        server.wait(10)
    ratio = {k: ea[k] / py[k] for k in ("p50_us", "p99_us", "mean_us")}
    print(f"{'client':<28}{'n':>8}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}")
    print(
        f"{'Python LazyPirateClient':<28}{py['n']:>8}{py['p50_us']:>10.1f}{py['p99_us']:>10.1f}{py['mean_us']:>10.1f}"
    )
    print(
        f"{'EA (Client.mqh, libzmq)':<28}{ea['n']:>8}{ea['p50_us']:>10.1f}{ea['p99_us']:>10.1f}{ea['mean_us']:>10.1f}"
    )
    print(
        f"{'EA / Python':<28}{'':>8}{ratio['p50_us']:>10.2f}{ratio['p99_us']:>10.2f}{ratio['mean_us']:>10.2f}"
    )
    print(
        f"goal: EA within 1.5x of Python at p50 and p99: {'met' if max(ratio['p50_us'], ratio['p99_us']) <= 1.5 else 'NOT met'}"
    )
    result = {
        "benchmark": "ea_request_round_trip",
        "config": {
            "requests": args.requests,
            "warmup": args.warmup,
            "transport": "tcp loopback",
            "server": "bridge.serve --replay, surprise analyzer",
            "replay": str(CALENDAR.name),
            "cxxflags": harness_build.CXXFLAGS,
            "libzmq": build.libzmq.origin,
        },  # fmt: skip
        "python_client": py,
        "ea_client": ea,
        "ratio_ea_over_python": ratio,
        "versions": {
            "python": platform.python_version(),
            "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },  # fmt: skip
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
