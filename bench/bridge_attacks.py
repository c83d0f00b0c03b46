"""Server memory under each attack of the reliability table, against the same server's memory at rest.

    python bench/bridge_attacks.py                  # every attack (a few minutes on 2 cores)
    python bench/bridge_attacks.py --quick          # a tenth of the counts

Each attack runs against a fresh server in its own process (surprise analyzer for calendar items, a PULL intake, a
PUB socket and a journal, as ``bridge.serve`` runs it), and is followed by a ``ping`` that must be answered. Reported
per attack: the server's peak RSS (VmHWM), its RSS after the attack, and its RSS at rest before it (the baseline).
Goal: every peak under 300 MB; after the non-reading clients leave, memory returns to near the baseline.

The intake floods (100,000 items) are in ``bench/bridge_latency.py --only-flood``, with their RSS.
Prints a table and writes JSON (config, versions, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import zmq
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not a package: run as a script

from bench.bridge_latency import Spawned, _bridge  # noqa: E402
from bench.common import rss_mb, write_results  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from bridge.wire import protocol as P  # noqa: E402

LIMIT_MB = 300.0


def _req(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.linger = 0
    sock.connect(endpoint)
    return sock


def call_raw(sock: zmq.Socket, data: bytes) -> dict:
    sock.send(data)
    if not sock.poll(10_000):
        raise RuntimeError("no reply within 10 s")
    return json.loads(sock.recv())


def news(i: int, **fields) -> dict:
    return {
        "v": 1,
        "type": "news",
        "id": f"a{i}",
        "headline": f"ECB raises rates {i}",
        "currency": "EUR",
        **fields,
    }


# -- the attacks: each takes the endpoints and a count -----------------------------------------------------------------


def lone_surrogates(ep: dict, n: int) -> None:
    sock = _req(ep["bind"])
    for i in range(n):
        call_raw(sock, b'{"v":1,"type":"ping","id":"\\ud800%d"}' % i)
        call_raw(sock, b'{"v":1,"type":"news","id":"s%d","headline":"ECB \\udfff %d"}' % (i, i))


def whitespace_fields(ep: dict, n: int) -> None:
    sock = _req(ep["bind"])
    for i in range(n):
        msg = news(i, event=" " * 60_000 + "x", actual=1.0, forecast=2.0)
        call_raw(sock, P.encode(msg))


def hello_many_symbols(ep: dict, n: int) -> None:
    sock = _req(ep["bind"])
    symbols = [
        f"{a}{b}" for a in ("EUR", "USD", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD") for b in ("SEK", "NOK")
    ]
    for i in range(n):
        call_raw(sock, P.encode({"v": 1, "type": "hello", "id": f"h{i}", "symbols": symbols * 20}))
        call_raw(sock, P.encode(news(i, time=int(time.time()))))


def huge_numbers(ep: dict, n: int) -> None:
    sock = _req(ep["bind"])
    for i in range(n):
        call_raw(
            sock,
            b'{"v":1,"type":"news","id":"x","headline":"US CPI %d","actual":1%s,"forecast":2.5}'
            % (i, b"0" * 400),
        )


def resends_without_time(ep: dict, n: int) -> None:
    sock = _req(ep["bind"])
    msg = P.encode(news(0))
    for _ in range(n):
        call_raw(sock, msg)


def invented_symbols(ep: dict, n: int) -> None:
    sock = _req(ep["bind"])
    codes = ["EUR", "USD", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD"]
    for i in range(n):
        sym = (
            f"{codes[i % 8]}{codes[(i // 8) % 8]}.x{i}"  # a real pair with a new suffix, or an invented name
        )
        call_raw(
            sock,
            P.encode({"v": 1, "type": "signal", "id": f"s{i}", "symbol": sym if i % 2 else f"ZZ{i:08d}"}),
        )


def items_at_the_size_limit(ep: dict, n: int) -> None:
    sock = _req(ep["bind"])
    for i in range(n):
        msg = news(i, time=int(time.time()) - i, body="€" * P.MAX_TEXT_CHARS["body"])
        msg["headline"] = f"{i} " + "é" * (P.MAX_TEXT_CHARS["headline"] - 10)
        call_raw(sock, P.encode(msg))


def clients_that_never_read(ep: dict, n: int) -> None:
    ctx = zmq.Context.instance()
    socks = []
    stats = P.encode(
        {"v": 1, "type": "stats", "id": "s"}
    )  # kilobyte replies: they outgrow the socket buffers
    for _ in range(20):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.sndhwm = 0
        s.connect(ep["bind"])
        socks.append(s)
    for _ in range(n):
        for s in socks:
            s.send_multipart([b"", stats])
    time.sleep(2)  # let the server answer (or drop) what it was sent
    for s in socks:
        s.close(0)
    time.sleep(1)


ATTACKS = [
    ("lone surrogates in id and headline", lone_surrogates, 2_000),
    ("60,000 spaces in event, with figures", whitespace_fields, 500),
    ("hello naming 320 symbols, then news", hello_many_symbols, 500),
    ("actual = 10**400", huge_numbers, 2_000),
    ("the same news without time, resent", resends_without_time, 5_000),
    ("signals for invented symbols", invented_symbols, 50_000),
    ("items at the headline and body limits", items_at_the_size_limit, 8_000),
    ("20 clients that never read replies", clients_that_never_read, 1_000),
]


def run_attack(name: str, attack, n: int, tmp: str) -> dict:
    srv = Spawned(_bridge, "surprise", "-", str(Path(tmp) / f"journal-{attack.__name__}.jsonl"))
    pid = srv.proc.pid
    try:
        sock = _req(srv.endpoint["bind"])
        call_raw(sock, P.encode({"v": 1, "type": "ping", "id": "p"}))
        rest = rss_mb(pid, "VmRSS")
        t0 = time.perf_counter()
        attack(srv.endpoint, n)
        seconds = time.perf_counter() - t0
        alive = call_raw(sock, P.encode({"v": 1, "type": "ping", "id": "p2"}))["type"] == P.PONG
        stats = call_raw(sock, P.encode({"v": 1, "type": "stats", "id": "s"}))["stats"]
        return {
            "attack": name,
            "count": n,
            "seconds": seconds,
            "rss_rest_mb": rest,
            "rss_peak_mb": rss_mb(pid, "VmHWM"),
            "rss_after_mb": rss_mb(pid, "VmRSS"),
            "answered_after": alive,
            "errors": stats["errors"],
            "replies_dropped": stats["replies_dropped"],
        }
    finally:
        srv.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of every count")
    ap.add_argument(
        "--out",
        default=str(default_results_dir("bridge_attacks") / "bridge_attacks.json"),
        help="JSON results file",
    )
    args = ap.parse_args(argv)
    mp.set_start_method("spawn", force=True)
    tmp = tempfile.mkdtemp(prefix="bridge-attacks-")
    rows = []
    for name, attack, n in tqdm(ATTACKS, desc="attacks", unit="attack"):
        rows.append(run_attack(name, attack, max(1, n // 10) if args.quick else n, tmp))
    results = {
        "config": vars(args),
        "versions": {**library_versions(), "libzmq": zmq.zmq_version()},
        "rows": rows,
    }
    print(f"\n{'attack':<42} {'count':>7} {'rest MB':>8} {'peak MB':>8} {'after MB':>9} {'ok':>4}")
    for r in rows:
        ok = r["answered_after"] and r["rss_peak_mb"] < LIMIT_MB
        print(
            f"{r['attack']:<42} {r['count']:>7,} {r['rss_rest_mb']:>8.1f} {r['rss_peak_mb']:>8.1f} "
            f"{r['rss_after_mb']:>9.1f} {'yes' if ok else 'NO':>4}"
        )
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
