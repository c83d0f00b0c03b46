"""Restart time and memory of the server after a long uptime, against the same after a short one (same run).

    python bench/journal_restart.py                 # 10,000 against 1,000,000 items (about 10 minutes on 2 cores)
    python bench/journal_restart.py --quick         # 2,000 against 50,000

For each count N, a real ``python -m bridge.serve`` (live mode, ``--model none``: calendar items by the surprise rule)
takes N calendar items on its intake, their times spread over the year before now (a year of news in minutes), so
all but the last few hours' are pruned as it runs and its journal is compacted as it grows. When every item is
accepted the server is killed with SIGKILL (no clean shutdown: the journal is what it is mid-run), then started again
on the same journal. Reported per N: journal bytes at the kill, the restore's own time (its log line), time from
process start to the first answered ``ping``, and the restarted process's peak RSS once ready. Goal: at 1,000,000
items each within 2x of the figure at 10,000.

Prints a table and writes JSON (config, versions, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is run as a script

from bench.bridge_latency import calendar_news  # noqa: E402
from bench.common import rss_mb, write_results  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from bridge.wire import protocol as P  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
YEAR_S = 365 * 86_400


def start_server(journal: Path, req: str, pull: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bridge.serve", "--bind", req, "--pull", pull, "--journal", str(journal)]
    cmd += ["--model", "none", "--rate-limit", "0", "--log-level", "info"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))  # noqa: SIM115


def ask(endpoint: str, msg: dict, timeout_ms: int = 1000) -> dict | None:
    """One request on a fresh socket; None when no reply came in time (the server is not up yet)."""
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.REQ) as sock:
        sock.linger = 0
        sock.connect(endpoint)
        sock.send(P.encode(msg))
        if sock.poll(timeout_ms):
            return json.loads(sock.recv())
    return None


def wait_ready(proc: subprocess.Popen, endpoint: str, limit_s: float = 600) -> float:
    """Seconds until the server answers a ping."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        if ask(endpoint, {"v": 1, "type": "ping", "id": "p"}, 200) is not None:
            return time.perf_counter() - t0
    raise RuntimeError("the server did not answer within the limit")


def feed(pull: str, req: str, n: int, now: int) -> None:
    """N calendar items over the year before ``now``, oldest first, until the server has accepted them all."""
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.linger = -1
    push.connect(pull)
    for i in tqdm(range(n), desc=f"feeding {n:,} items", unit="item", mininterval=2):
        push.send(P.encode(calendar_news(i, now - YEAR_S + (i * YEAR_S) // n)))
    push.close()
    while True:
        stats = ask(req, {"v": 1, "type": "stats", "id": "s"}, 5000)["stats"]
        if stats["news_accepted"] + stats["intake_refused"] + stats["intake_errors"] >= n:
            return
        time.sleep(0.5)


def restored_ms(log: Path) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        if '"journal restored"' in line:
            return json.loads(line).get("ms")
    return None


def one_count(n: int, work: Path, port: int) -> dict:
    req, pull = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}"
    journal = work / f"journal-{n}.jsonl"
    first = start_server(journal, req, pull, work / f"first-{n}.log")
    try:
        wait_ready(first, req)
        t0 = time.perf_counter()
        feed(pull, req, n, int(time.time()))
        feed_s = time.perf_counter() - t0
        stats = ask(req, {"v": 1, "type": "stats", "id": "s"}, 5000)["stats"]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    size = journal.stat().st_size
    log = work / f"restart-{n}.log"
    second = start_server(journal, req, pull, log)
    try:
        ready_s = wait_ready(second, req)
        rss = rss_mb(second.pid)
        held = ask(req, {"v": 1, "type": "stats", "id": "s"}, 5000)["stats"]
    finally:
        second.terminate()
        second.wait(30)
    return {
        "items": n,
        "feed_s": feed_s,
        "accepted": stats["news_accepted"],
        "refused": stats["intake_refused"] + stats["intake_errors"],
        "journal_bytes_at_kill": size,
        "restore_ms": restored_ms(log),
        "ready_s": ready_s,
        "peak_rss_mb": rss,
        "journal_bytes_after_restart": held["bounds"]["journal_bytes"][0],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--small", type=int, default=10_000, help="items of the short uptime (the baseline)")
    ap.add_argument("--large", type=int, default=1_000_000, help="items of the long uptime")
    ap.add_argument("--port", type=int, default=47_610, help="first of the two loopback ports used")
    ap.add_argument("--quick", action="store_true", help="2,000 against 50,000 items")
    ap.add_argument(
        "--out",
        default=str(default_results_dir("journal_restart") / "journal_restart.json"),
        help="JSON results file",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.small, args.large = 2_000, 50_000
    work = Path(tempfile.mkdtemp(prefix="bridge-restart-"))
    results = {"config": vars(args), "versions": {**library_versions(), "libzmq": zmq.zmq_version()}}
    small = one_count(args.small, work, args.port)
    large = one_count(args.large, work, args.port)
    results["runs"] = [small, large]
    rows = [
        ("journal bytes at the kill", "journal_bytes_at_kill"),
        ("restore (ms, its log line)", "restore_ms"),
        ("start to first ping (s)", "ready_s"),
        ("peak RSS after restart (MB)", "peak_rss_mb"),
    ]
    results["table"] = [
        {
            "figure": name,
            "small": small[k],
            "large": large[k],
            "ratio": large[k] / small[k] if small[k] else None,
        }
        for name, k in rows
    ]
    print(f"\n{'figure':<32} {args.small:>14,} {args.large:>14,} {'ratio':>7}  (goal <= 2x)")
    for r in results["table"]:
        print(f"{r['figure']:<32} {r['small']:>14,.1f} {r['large']:>14,.1f} {r['ratio']:>7.2f}")
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
