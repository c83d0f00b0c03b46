"""Bridge latency and throughput, each against a baseline measured in the same run.

    python bench/bridge_latency.py                     # full run (a few minutes on 2 cores)
    python bench/bridge_latency.py --quick             # smaller counts, for a smoke run
    python bench/bridge_latency.py --only-flood        # figure 4 alone
    python bench/bridge_latency.py --only-round-trip   # figure 1 alone

Figures (servers run in their own processes, clients in this one or in worker processes):

1. ``signal`` round trip (cached state), p50/p99 over N requests from one REQ client, against a bare pyzmq REQ/REP
   echo of the same payload. Goal: p99 within 2x the bare echo.
2. Throughput with 50 concurrent clients (REQ sockets spread over worker processes) against a bare ROUTER echo server.
   Goal: at least half of it.
3. News to target: a ``news`` item PUSHed to the intake socket until its ``target`` arrives on the PUB socket (intake,
   journal, analysis, policy, publish), single items and batches, against the analyzer's own ``analyze()`` time for the
   same items. With the shipped LM: torch and ONNX; without it (not installed yet): the calendar surprise rule, said so
   in the output.

4. Signals under an intake flood: an EA asks for a ``signal`` every 10 ms on an idle server, then while 100,000
   calendar items (then, on a fresh server, 100,000 headlines) are PUSHed at its intake as fast as it takes them, until
   all are analysed (surprise analyzer). Goal: p99 under the flood within 5x the same server's idle p99, and the
   server's peak RSS under 300 MB.

Prints a table and writes JSON (config, library versions, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is run as a script

from bench.common import rss_mb, write_results  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from bridge.wire import protocol as P  # noqa: E402

SIGNAL = {
    "v": 1,
    "type": "signal",
    "id": "bench-000000",
    "symbol": "EURUSD",
    "time": 1_700_000_000,
    "utc_offset": 0,
}


# -- servers, each in its own process ---------------------------------------------------------------------------------


def _echo_rep(endpoint_q: mp.Queue, stop: mp.Event) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    endpoint_q.put(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    while not stop.is_set():
        if sock.poll(100):
            sock.send(sock.recv())
    ctx.destroy(0)


def _echo_router(endpoint_q: mp.Queue, stop: mp.Event) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    sock.rcvhwm = sock.sndhwm = 100_000
    sock.bind("tcp://127.0.0.1:*")
    endpoint_q.put(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    while not stop.is_set():
        if sock.poll(100):
            for _ in range(256):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                sock.send_multipart(frames)
    ctx.destroy(0)


def make_analyzer(kind: str, backend: str = "auto"):
    """The analyzer a benchmark run uses: ``lm`` (shipped model) or ``surprise``."""
    if kind == "lm":
        from bridge.lm.analyzer import load_analyzer

        return load_analyzer(None, backend)
    from bridge.news.surprise import SurpriseAnalyzer

    return SurpriseAnalyzer()


def _bridge(endpoint_q: mp.Queue, stop: mp.Event, analyzer: str, backend: str, journal: str) -> None:
    from bridge.news.surprise import SurpriseAnalyzer
    from bridge.wire.server import BridgeServer

    server = BridgeServer(
        make_analyzer(analyzer, backend),
        calendar_analyzer=SurpriseAnalyzer(bounded=True),  # as bridge.serve runs it live
        bind="tcp://127.0.0.1:*",
        pull="tcp://127.0.0.1:*",
        pub="tcp://127.0.0.1:*",
        journal=journal,
        rate_limit=0,
    )
    endpoint_q.put(server.bind())
    threading.Thread(target=lambda: (stop.wait(), server.stop_event.set()), daemon=True).start()
    server.serve_forever()


class Spawned:
    """A server function in its own process; ``endpoint`` is what it bound."""

    def __init__(self, target, *args):
        self.stop = mp.Event()
        q: mp.Queue = mp.Queue()
        self.proc = mp.Process(target=target, args=(q, self.stop, *args), daemon=True)
        self.proc.start()
        self.endpoint = q.get(timeout=300)

    def close(self) -> None:
        self.stop.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


# -- measurements -----------------------------------------------------------------------------------------------------


def round_trips(endpoint: str, payload: bytes, n: int, warmup: int = 500) -> np.ndarray:
    """Microseconds per request/reply on one REQ socket."""
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.REQ) as sock:
        sock.linger = 0
        sock.connect(endpoint)
        out = np.empty(n)
        for i in range(warmup + n):
            t0 = time.perf_counter_ns()
            sock.send(payload)
            sock.recv()
            if i >= warmup:
                out[i - warmup] = (time.perf_counter_ns() - t0) / 1e3
    return out


def _client_worker(endpoint: str, payload: bytes, threads: int, n: int, barrier, out_q: mp.Queue) -> None:
    ctx = zmq.Context()
    socks = []
    for _ in range(threads):
        s = ctx.socket(zmq.REQ)
        s.linger = 0
        s.connect(endpoint)
        socks.append(s)
    counts = [0] * threads

    def run(k: int) -> None:
        s = socks[k]
        for _ in range(n):
            s.send(payload)
            s.recv()
            counts[k] += 1

    barrier.wait()
    t0 = time.time()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out_q.put((t0, time.time(), sum(counts)))
    ctx.destroy(0)


def throughput(endpoint: str, payload: bytes, clients: int, per_client: int, procs: int) -> float:
    """Requests per second for ``clients`` REQ clients spread over ``procs`` worker processes."""
    barrier = mp.Barrier(procs)
    q: mp.Queue = mp.Queue()
    per_proc = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    ps = [
        mp.Process(target=_client_worker, args=(endpoint, payload, k, per_client, barrier, q))
        for k in per_proc
    ]
    for p in ps:
        p.start()
    res = [q.get(timeout=600) for _ in ps]
    for p in ps:
        p.join()
    start, end, total = min(r[0] for r in res), max(r[1] for r in res), sum(r[2] for r in res)
    assert total == clients * per_client, "lost replies"
    return total / (end - start)


def calendar_news(i: int, now: int) -> dict:
    """A US payrolls release whose surprise alternates in sign, so every item moves the EURUSD target."""
    up = i % 2 == 0
    return {
        "v": 1,
        "type": "news",
        "id": f"n{i}",
        "headline": f"USD Non-Farm Employment Change #{i}",
        "source": "bench",
        "currency": "USD",
        "event": "Non-Farm Employment Change",
        "impact": "high",
        "actual": 300.0 if up else 40.0,
        "forecast": 170.0,
        "previous": 150.0,
        "time": now,
        "utc_offset": 0,
    }


def headline_news(i: int, now: int) -> dict:
    text = ["ECB raises rates by 50bp, signals more hikes", "Euro zone economy contracts, ECB to cut rates"][
        i % 2
    ]
    return {
        "v": 1,
        "type": "news",
        "id": f"h{i}",
        "headline": f"{text} ({i})",
        "source": "bench",
        "currency": "EUR",
        "time": now,
        "utc_offset": 0,
    }


def news_to_target(ep: dict, make, n_single: int, batch: int, n_batches: int) -> dict:
    """PUSH -> PUB latency for single items, and items/s for batches (until the stats show them analysed)."""
    ctx = zmq.Context.instance()
    push, sub, req = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB), ctx.socket(zmq.REQ)
    for s in (push, sub, req):
        s.linger = 0
    push.connect(ep["pull"])
    sub.connect(ep["pub"])
    sub.setsockopt(zmq.SUBSCRIBE, b"EURUSD")
    req.connect(ep["bind"])

    def call(msg: dict) -> dict:
        req.send(P.encode(msg))
        return json.loads(req.recv())

    call({"v": 1, "type": "hello", "id": "h", "symbols": ["EURUSD"]})
    time.sleep(0.3)  # slow joiner: let the subscription arrive
    seq = [0]
    lat, missed = [], 0
    for _ in range(n_single):
        seq[0] += 1
        analysed = call({"v": 1, "type": "stats", "id": "s"})["stats"]["news_analysed"]
        t0 = time.perf_counter()
        push.send(P.encode(make(seq[0], int(time.time()))))
        while True:
            # An analysis that leaves the target as it was (the same reading again, strength capped at 1) publishes
            # nothing: counted once the item is analysed and a publish would have had time to arrive.
            done = False
            if (
                sub.poll(5)
                or (done := call({"v": 1, "type": "stats", "id": "s"})["stats"]["news_analysed"] > analysed)
                and sub.poll(100)
            ):
                sub.recv_multipart()
                lat.append((time.perf_counter() - t0) * 1e3)
                break
            if done:
                missed += 1
                break
        while sub.poll(0):
            sub.recv_multipart()
    rates = []
    for _ in range(n_batches):
        base = call({"v": 1, "type": "stats", "id": "s"})["stats"]["news_analysed"]
        t0 = time.perf_counter()
        for _ in range(batch):
            seq[0] += 1
            push.send(P.encode(make(seq[0], int(time.time()))))
        while call({"v": 1, "type": "stats", "id": "s"})["stats"]["news_analysed"] < base + batch:
            time.sleep(0.02)  # a stats reply costs the server; asking faster would slow what is measured
        rates.append(batch / (time.perf_counter() - t0))
        while sub.poll(50):
            sub.recv_multipart()
    for s in (push, sub, req):
        s.close(0)
    return {
        "single_ms_p50": float(np.median(lat)) if lat else None,
        "single_ms_p99": float(np.percentile(lat, 99)) if lat else None,
        "single_unpublished": missed,
        "batch": batch,
        "batch_items_per_s": float(statistics.median(rates)),
    }


def _flood(endpoint: str, style: str, n: int, done: mp.Event) -> None:
    """Push ``n`` news items as fast as the server's intake takes them (ZeroMQ's high-water mark paces it)."""
    make = calendar_news if style == "calendar" else headline_news
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.linger = -1  # every item is delivered before this process ends
    push.connect(endpoint)
    now = int(time.time())
    for i in range(n):
        msg = make(i, now)
        msg["headline"] += " flood"  # not the ids the latency runs used
        push.send(P.encode(msg))
    push.close()
    ctx.term()
    done.set()


def signals_under_flood(
    ep: dict, pid: int, style: str, n_flood: int, interval_ms: float, idle_s: float
) -> dict:
    """An EA's ``signal`` every ``interval_ms`` on an idle server, then while ``n_flood`` items flood its intake (until
    every one of them is analysed): round-trip percentiles of both, the peak RSS, how the flood was taken."""
    ctx = zmq.Context.instance()
    req, ask = ctx.socket(zmq.REQ), ctx.socket(zmq.REQ)
    for s in (req, ask):
        s.linger = 0
        s.connect(ep["bind"])
    payload = P.encode(SIGNAL)

    def stats() -> dict:
        ask.send(P.encode({"v": 1, "type": "stats", "id": "s"}))
        return json.loads(ask.recv())["stats"]

    def ticks(until) -> list[float]:
        out, nxt = [], time.perf_counter()
        while not until():
            t0 = time.perf_counter_ns()
            req.send(payload)
            req.recv()
            out.append((time.perf_counter_ns() - t0) / 1e3)
            nxt += interval_ms / 1e3
            time.sleep(max(0.0, nxt - time.perf_counter()))
        return out

    start = stats()
    t_end = time.perf_counter() + idle_s
    idle = ticks(lambda: time.perf_counter() > t_end)
    done = mp.Event()
    flood = mp.Process(target=_flood, args=(ep["pull"], style, n_flood, done), daemon=True)
    t0 = time.perf_counter()
    flood.start()
    checked = [0.0, False]

    def finished() -> bool:  # all sent, and nothing left to take or analyse (looked at twice a second)
        if time.perf_counter() - checked[0] < 0.5:
            return False
        checked[0] = time.perf_counter()
        if not done.is_set():
            return False
        st = stats()
        return st["news_analysed"] - start["news_analysed"] >= st["news_accepted"] - start[
            "news_accepted"
        ] and (
            st["news_accepted"] + st["news_duplicate"] + st["intake_refused"] + st["intake_errors"]
            >= n_flood + start["news_accepted"]
        )

    loaded = ticks(finished)
    wall = time.perf_counter() - t0
    flood.join(30)
    end = stats()
    for s in (req, ask):
        s.close(0)

    def pct(xs):
        return {"p50": float(np.median(xs)), "p99": float(np.percentile(xs, 99)), "n": len(xs)}

    return {
        "idle_us": pct(idle),
        "flood_us": pct(loaded),
        "flood_items": n_flood,
        "flood_wall_s": wall,
        "accepted": end["news_accepted"] - start["news_accepted"],
        "refused": end["intake_refused"] - start["intake_refused"],
        "analysed": end["news_analysed"] - start["news_analysed"],
        "peak_rss_mb": rss_mb(pid),
    }


def analyzer_baseline(kind: str, backend: str, make, n_single: int, batch: int) -> dict:
    """The analyzer alone on the same items: ms per single item, items/s in batches."""
    from bridge.wire.server import BridgeServer

    an = make_analyzer(kind, backend)
    conv = BridgeServer(an, bind="inproc://unused")._news_item
    now = int(time.time())
    items = [conv(make(i, now)) for i in range(max(n_single, batch))]
    an.analyze(items[:1])
    t = []
    for it in items[:n_single]:
        t0 = time.perf_counter()
        an.analyze([it])
        t.append((time.perf_counter() - t0) * 1e3)
    rates = []
    for _ in range(5):  # median of five: the machine is shared, one timing is noise
        t0 = time.perf_counter()
        an.analyze(items[:batch])
        rates.append(batch / (time.perf_counter() - t0))
    return {"single_ms_p50": float(np.median(t)), "batch_items_per_s": float(np.median(rates))}


def analyzer_runs(results: dict) -> list[tuple[str, str, str]]:
    """Which analyzers the news figures use: the shipped LM (torch and ONNX) when installed, else the surprise rule."""
    runs: list[tuple[str, str, str]] = []
    try:
        make_analyzer("lm", "torch")
        runs.append(("lm", "torch", "headline"))
        try:
            make_analyzer("lm", "onnx")
            runs.append(("lm", "onnx", "headline"))
        except Exception as exc:  # reported, not hidden: no ONNX export next to the model
            results["onnx_unavailable"] = str(exc).replace(str(Path.cwd()) + "/", "")
    except Exception as exc:
        results["lm_unavailable"] = f"{type(exc).__name__}: {exc}"
        runs.append(("surprise", "-", "calendar"))
    return runs


def request_figures(args, results: dict, tmp: str) -> list[tuple[str, float, float, str]]:
    """Round trip and throughput against bare echoes, and news to target against the analyzer alone."""
    runs = analyzer_runs(results)
    first = runs[0]
    payload = P.encode(SIGNAL)
    echo = Spawned(_echo_rep)
    bridge = Spawned(_bridge, first[0], first[1], str(Path(tmp) / "journal.jsonl"))
    # Alternating rounds, each side's percentiles over all its rounds: one round's p99 swings with what else the
    # two cores did just then, the echo's included.
    rt_echo, rt_bridge = [], []
    try:
        for _ in range(args.rounds):
            rt_echo.append(round_trips(echo.endpoint, payload, args.requests))
            rt_bridge.append(round_trips(bridge.endpoint["bind"], payload, args.requests))
    finally:
        echo.close()
    rt_echo, rt_bridge = np.concatenate(rt_echo), np.concatenate(rt_bridge)
    results["round_trip_us"] = {
        "bridge": {"p50": float(np.median(rt_bridge)), "p99": float(np.percentile(rt_bridge, 99))},
        "echo": {"p50": float(np.median(rt_echo)), "p99": float(np.percentile(rt_echo, 99))},
        "rounds": args.rounds,
    }
    if args.only_round_trip:
        bridge.close()
        rt = results["round_trip_us"]
        return [
            ("signal round trip p50 (us)", rt["bridge"]["p50"], rt["echo"]["p50"], "bare REQ/REP echo"),
            (
                "signal round trip p99 (us)",
                rt["bridge"]["p99"],
                rt["echo"]["p99"],
                "bare REQ/REP echo (goal <= 2x)",
            ),
        ]
    router = Spawned(_echo_router)
    try:
        tp_echo = throughput(router.endpoint, payload, args.clients, args.per_client, args.procs)
        tp_bridge = throughput(bridge.endpoint["bind"], payload, args.clients, args.per_client, args.procs)
    finally:
        router.close()
        bridge.close()
    results["throughput_rps"] = {"bridge": tp_bridge, "echo_router": tp_echo}

    results["news_to_target"] = {}
    for kind, backend, style in runs:
        make = calendar_news if style == "calendar" else headline_news
        srv = Spawned(_bridge, kind, backend, str(Path(tmp) / f"journal-{kind}-{backend}.jsonl"))
        try:
            pipe = news_to_target(srv.endpoint, make, args.news, args.batch, args.batches)
        finally:
            srv.close()
        base = analyzer_baseline(kind, backend, make, min(args.news, 20), args.batch)
        results["news_to_target"][f"{kind}/{backend}"] = {"pipeline": pipe, "analyzer_alone": base}

    rt, tp = results["round_trip_us"], results["throughput_rps"]
    rows = [
        ("signal round trip p50 (us)", rt["bridge"]["p50"], rt["echo"]["p50"], "bare REQ/REP echo"),
        (
            "signal round trip p99 (us)",
            rt["bridge"]["p99"],
            rt["echo"]["p99"],
            "bare REQ/REP echo (goal <= 2x)",
        ),
        (
            f"throughput, {args.clients} clients (req/s)",
            tp["bridge"],
            tp["echo_router"],
            "bare ROUTER echo (goal >= 0.5x)",
        ),
    ]
    for name, r in results["news_to_target"].items():
        p, b = r["pipeline"], r["analyzer_alone"]
        if p["single_ms_p50"] is not None:
            rows.append(
                (
                    f"news->PUB target p50 (ms), {name}",
                    p["single_ms_p50"],
                    b["single_ms_p50"],
                    "analyze() alone, 1 item",
                )
            )
            rows.append(
                (
                    f"news->PUB target p99 (ms), {name}",
                    p["single_ms_p99"],
                    b["single_ms_p50"],
                    "analyze() alone p50, 1 item",
                )
            )
        rows.append(
            (
                f"news items/s, batches of {args.batch}, {name}",
                p["batch_items_per_s"],
                b["batch_items_per_s"],
                "analyze() alone, same batch",
            )
        )
    return rows


def flood_figures(args, results: dict, tmp: str) -> list[tuple[str, float, float, str]]:
    """Signal latency under an intake flood of calendar items and of headlines (surprise analyzer, a fresh server
    each), against the same server's idle latency measured just before."""
    rows = []
    results["flood"] = {}
    for style in ("calendar", "headline"):
        srv = Spawned(_bridge, "surprise", "-", str(Path(tmp) / f"journal-flood-{style}.jsonl"))
        try:
            r = signals_under_flood(
                srv.endpoint, srv.proc.pid, style, args.flood, args.signal_interval_ms, args.idle_s
            )
        finally:
            srv.close()
        results["flood"][style] = r
        name = f"{args.flood:,} {style} items"
        rows.append(
            (
                f"signal p99 (us) under {name}",
                r["flood_us"]["p99"],
                r["idle_us"]["p99"],
                "same server idle p99 (goal <= 5x)",
            )
        )
        rows.append((f"signal p50 (us) under {name}", r["flood_us"]["p50"], r["idle_us"]["p50"], "idle p50"))
        rows.append((f"server peak RSS (MB), {name}", r["peak_rss_mb"], 300.0, "limit 300 MB"))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    ap.add_argument(
        "--requests", type=int, default=20_000, help="round trips per round for the latency figure"
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="alternating echo/bridge rounds of the latency figure"
    )
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients for the throughput figure")
    ap.add_argument("--per-client", type=int, default=2_000, help="requests per client")
    ap.add_argument("--procs", type=int, default=5, help="client worker processes")
    ap.add_argument("--news", type=int, default=50, help="single news items timed")
    ap.add_argument("--batch", type=int, default=32, help="news batch size")
    ap.add_argument("--batches", type=int, default=5, help="news batches timed")
    ap.add_argument("--flood", type=int, default=100_000, help="news items in each intake flood (0: none)")
    ap.add_argument(
        "--signal-interval-ms", type=float, default=10.0, help="the EA's signal period in the flood runs"
    )
    ap.add_argument("--idle-s", type=float, default=10.0, help="seconds of idle signals before each flood")
    ap.add_argument("--only-flood", action="store_true", help="run the flood figures alone")
    ap.add_argument("--only-round-trip", action="store_true", help="run the idle round-trip figure alone")
    ap.add_argument("--quick", action="store_true", help="small counts for a smoke run")
    ap.add_argument(
        "--out",
        default=str(default_results_dir("bridge_latency") / "bridge_latency.json"),
        help="JSON results file",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.per_client, args.news, args.batches = 2_000, 200, 10, 2
        args.flood, args.idle_s = 5_000, 2.0
    mp.set_start_method("spawn", force=True)
    tmp = tempfile.mkdtemp(prefix="bridge-bench-")
    results: dict = {"config": vars(args), "versions": {**library_versions(), "libzmq": zmq.zmq_version()}}
    rows: list[tuple[str, float, float, str]] = []
    if not args.only_flood:
        rows += request_figures(args, results, tmp)
    if args.flood and not args.only_round_trip:
        rows += flood_figures(args, results, tmp)
    results["table"] = [
        {"figure": a, "bridge": v, "baseline": bl, "ratio": v / bl if bl else None, "baseline_is": d}
        for a, v, bl, d in rows
    ]
    print(f"\n{'figure':<52} {'bridge':>12} {'baseline':>12} {'ratio':>7}  baseline")
    for r in results["table"]:
        print(
            f"{r['figure']:<52} {r['bridge']:>12.1f} {r['baseline']:>12.1f} {r['ratio']:>7.2f}  {r['baseline_is']}"
        )
    if "lm_unavailable" in results:
        print(
            f"\nnote: the shipped LM is not available ({results['lm_unavailable']}); news figures use the calendar "
            "surprise rule instead."
        )
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
