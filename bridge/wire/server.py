"""The bridge server: answers the Expert Advisor's requests from the current news state, analyses news off the request path.

Sockets (endpoints in ``bridge.wire.protocol``):

- ROUTER for requests from any number of EAs and charts (REQ or DEALER peers; both envelope shapes are answered);
- PULL for news intake from feeds (same ``news`` message, no reply);
- PUB (optional) pushing a new target for a watched symbol the moment an analysis changes it.

One thread owns the sockets and the state, so a ``signal`` is answered from memory without locks. A worker thread
analyses queued news in batches and hands the results back through a queue plus an ``inproc`` wake-up; the main thread
journals each analysis, updates the state and publishes. Nothing blocks the request loop but the journal's fsync of an
accepted news item, which is what makes its ``ack`` a promise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import zmq

from bridge.analysis import Analyzer, NewsAnalyzer
from bridge.errors import UserError
from bridge.policy import PolicyConfig
from bridge.schema import load_schema
from bridge.symbols import split_symbol
from bridge.types import Analysis, NewsItem
from bridge.wire import protocol as P
from bridge.wire.journal import Journal
from bridge.wire.ratelimit import RateLimiter
from bridge.wire.state import NewsState

log = logging.getLogger("bridge.wire.server")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
POLL_MS = 100  # how often the loop looks at its stop flag when idle
MAX_DRAIN = 256  # requests handled per socket before the loop looks at the others again
HOUSEKEEPING_S = 1.0  # live mode: how often targets are re-checked for a change by decay or expiry
PRUNE_S = 60.0  # live mode: how often items older than the TTL are dropped from memory (their ids are kept)
PRUNE_MARGIN = pd.Timedelta(hours=1)  # keep a little longer than the TTL, for EAs whose clocks run behind


def is_loopback(endpoint: str) -> bool:
    """True for inproc/ipc endpoints and TCP endpoints on a loopback address."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0]
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def load_curve_keys(directory: str | Path) -> tuple[bytes, bytes, Path]:
    """Read ``DIR/server.key_secret`` and check ``DIR/authorized/`` (the allow-list of client public keys)."""
    import zmq.auth

    directory = Path(directory)
    secret = directory / "server.key_secret"
    allowed = directory / "authorized"
    hint = (
        "create them with: python -m bridge.keys generate DIR --name server, then --authorize for each client"
    )
    if not secret.is_file():
        raise UserError("server secret key not found", path=secret, hint=hint)
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise UserError("no authorised client public keys (*.key)", path=allowed, hint=hint)
    try:
        public, secret_key = zmq.auth.load_certificate(secret)
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot read the server key: {exc}", path=secret, hint=hint) from None
    if not secret_key:
        raise UserError("file holds no secret key", path=secret, hint=hint)
    return public, secret_key, allowed


@dataclass
class Stats:
    """Counters reported by the ``stats`` request and the shutdown log line."""

    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    news_accepted: int = 0
    news_duplicate: int = 0
    news_analysed: int = 0
    analysis_fallbacks: int = 0
    analysis_errors: int = 0  # items whose analyzer raised (each fell back to neutral alone)
    published: int = 0
    intake_errors: int = 0


class BridgeServer:
    """The request/intake/publish server around a ``NewsState``.

    ``clock="server"`` (live) answers every ``signal`` as of the server's UTC clock; ``clock="request"`` (replay, the
    Strategy Tester) answers as of the request's own time (``time - utc_offset``), using only news at or before it, and
    waits for the analysis of any such item still queued so an answer never depends on the worker's speed.
    """

    def __init__(
        self,
        analyzer: Analyzer,
        *,
        calendar_analyzer: Analyzer | None = None,
        config: PolicyConfig | None = None,
        bind: str = P.DEFAULT_REQUEST_ENDPOINT,
        pull: str | None = None,
        pub: str | None = None,
        journal: str | Path | None = None,
        clock: str = "server",
        curve_keys: str | Path | None = None,
        rate_limit: float = P.DEFAULT_RATE_LIMIT,
        rate_burst: float | None = None,
        batch_size: int = P.ANALYSIS_BATCH,
        context: zmq.Context | None = None,
    ):
        if clock not in ("server", "request"):
            raise ValueError(f"clock must be 'server' or 'request', got {clock!r}")
        # One routing for live and backtest (bridge.analysis); a bare analyzer (a test double) reads every item
        # the calendar analyzer does not.
        if not isinstance(analyzer, NewsAnalyzer):
            analyzer = NewsAnalyzer(analyzer, calendar_analyzer)
        self.analyzer = analyzer
        self.config = config or PolicyConfig()
        self.schema = load_schema()
        self.state = NewsState(self.config, self.schema)
        self.clock = clock
        self.bind_endpoint, self.pull_endpoint, self.pub_endpoint = bind, pull, pub
        self.journal = Journal(journal) if journal else None
        self.curve_keys = curve_keys
        self.limiter = RateLimiter(rate_limit, rate_burst)
        self.batch_size = max(1, int(batch_size))
        self.ctx = context or zmq.Context.instance()
        self.stats = Stats()
        self.endpoints: dict[str, str] = {}
        self.stop_event = threading.Event()
        self._work: queue.Queue[NewsItem | None] = queue.Queue()
        self._results: queue.Queue[list[tuple[NewsItem, Analysis]]] = queue.Queue()
        self._intake: queue.Queue[NewsItem] = queue.Queue()
        self._pending_times: dict[str, int] = {}  # news id -> UTC ns, accepted but not analysed yet
        self._deferred: list[tuple[list[bytes], dict]] = []
        self._pairs: set[str] = set()  # symbols already checked to be currency pairs
        self._reply_cache: dict[tuple[str, int], tuple[int, bytes]] = {}
        self._watched: set[str] = set()
        self._published: dict[str, tuple[int, float]] = {}
        self._clients: set[bytes] = set()
        self._pub_seq = 0
        self._last_tick = self._last_prune = time.monotonic()
        self._wake_endpoint = f"inproc://bridge-wake-{id(self)}"
        self._sockets: list[zmq.Socket] = []
        self._auth = None
        self._worker: threading.Thread | None = None
        self._bound = False

    # -- setup -------------------------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return "replay" if self.clock == "request" else "live"

    def restore(self) -> int:
        """Rebuild the state from the journal; queue items whose analysis never made it. Returns items restored."""
        if self.journal is None:
            return 0
        contents = self.journal.load()
        self.analyzer.observe(contents.items)
        for item in contents.items:
            self.state.add_item(item)
        for nid, analysis in contents.analyses.items():
            if nid in self.state:
                self.state.add_analysis(nid, analysis)
        for item in self.state.pending():
            self._queue_for_analysis(item)
        if self.clock == "server":
            self.state.prune(
                pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=self.config.ttl) - PRUNE_MARGIN
            )
        log.info(
            "journal restored",
            extra={
                "fields": {
                    "items": len(contents.items),
                    "analysed": len(contents.analyses),
                    "requeued": len(self._pending_times),
                    "path": str(self.journal.path),
                }
            },
        )
        return len(contents.items)

    def preload(self, items: Iterable[NewsItem], progress: bool = False) -> int:
        """Load historical news (``--replay``) and analyse it before serving; these items are not journaled."""
        new = [it for it in items if self.state.add_item(it)]
        self.analyzer.observe(new)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(new), desc="analysing replay news", unit="item")
        for i in range(0, len(new), self.batch_size):
            batch = new[i : i + self.batch_size]
            for item, analysis in zip(batch, self._analyze(batch), strict=True):
                self.state.add_analysis(item.id, analysis)
                self.stats.news_analysed += 1
                self.stats.analysis_fallbacks += int(analysis.fallback)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return len(new)

    def bind(self) -> dict[str, str]:
        """Create and bind the sockets, start the analysis worker; returns the bound endpoints (ports resolved)."""
        if self._bound:
            return self.endpoints
        if self.journal is not None:
            self.journal.open()  # a journal held by another server is refused now, not at the first news item
        curve = None
        if self.curve_keys is not None:
            from zmq.auth.thread import ThreadAuthenticator

            public, secret, allowed = load_curve_keys(self.curve_keys)
            self._auth = ThreadAuthenticator(self.ctx, log=logging.getLogger("bridge.auth"))
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(allowed))
            curve = (public, secret)
        self.router = self._socket(zmq.ROUTER, self.bind_endpoint, curve)
        self.endpoints["bind"] = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pull = self.pub = None
        if self.pull_endpoint:
            self.pull = self._socket(zmq.PULL, self.pull_endpoint, curve)
            self.endpoints["pull"] = self.pull.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.pub_endpoint:
            self.pub = self._socket(zmq.PUB, self.pub_endpoint, curve)
            self.endpoints["pub"] = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.wake = self.ctx.socket(zmq.PULL)
        self.wake.linger = 0
        self.wake.bind(self._wake_endpoint)
        self._sockets.append(self.wake)
        for name, ep in self.endpoints.items():
            if not is_loopback(ep) and curve is None:
                banner = "!" * 78
                log.warning(
                    f"\n{banner}\n  WARNING: {name} socket bound to the non-loopback address {ep} WITHOUT CURVE.\n"
                    f"  Anyone who can reach this port can read targets and inject news.\n"
                    f"  Use --curve-keys DIR (python -m bridge.keys generate) or bind to 127.0.0.1.\n{banner}"
                )
        self._worker = threading.Thread(target=self._work_loop, name="bridge-analysis", daemon=True)
        self._worker.start()
        self._bound = True
        log.info(
            "listening", extra={"fields": {**self.endpoints, "mode": self.mode, "curve": curve is not None}}
        )
        return self.endpoints

    def _socket(self, kind: int, endpoint: str, curve: tuple[bytes, bytes] | None) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, P.SOCKET_MAX_MESSAGE_BYTES)
        if kind == zmq.ROUTER:
            sock.rcvhwm = sock.sndhwm = 100_000
        if curve is not None:
            sock.curve_publickey, sock.curve_secretkey = curve
            sock.curve_server = True
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise UserError(
                f"cannot bind {endpoint}: {exc}", hint="is another server running on that port?"
            ) from None
        self._sockets.append(sock)
        return sock

    # -- running -----------------------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run the request loop until ``stop()``; closes everything on the way out."""
        self.bind()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake, zmq.POLLIN)
        if self.pull is not None:
            poller.register(self.pull, zmq.POLLIN)
        try:
            while not self.stop_event.is_set():
                events = dict(poller.poll(POLL_MS))
                if self.wake in events:
                    self._drain(self.wake, lambda frames: None)
                self._take_intake()
                self._apply_results()
                if self.router in events:
                    self._drain(self.router, self._on_request)
                if self.pull is not None and self.pull in events:
                    self._drain(self.pull, self._on_intake)
                    if self.journal is not None:
                        self.journal.sync()  # group commit for the drained intake (no ack to wait on there)
                self._housekeeping()
        finally:
            self.close()

    def _housekeeping(self) -> None:
        """Once a second in live mode: publish targets whose direction changed by decay or expiry alone; once a
        minute: forget analysed items too old to count any more, so weeks of news do not slow the policy down."""
        if self.clock != "server":
            return
        now = time.monotonic()
        if now - self._last_tick < HOUSEKEEPING_S:
            return
        self._last_tick = now
        if self.pub is not None:
            self._publish_changes(direction_only=True)
        if now - self._last_prune >= PRUNE_S:
            self._last_prune = now
            cutoff = pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=self.config.ttl) - PRUNE_MARGIN
            dropped = self.state.prune(cutoff)
            if dropped:
                log.info(
                    "old news forgotten", extra={"fields": {"items": dropped, "before": cutoff.isoformat()}}
                )

    def start(self) -> threading.Thread:
        """Bind and serve in a background thread (tests, benchmarks); ``stop()`` ends it."""
        self.bind()
        thread = threading.Thread(target=self.serve_forever, name="bridge-server", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to finish; waits for it when it runs in ``start()``'s thread."""
        self.stop_event.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def close(self) -> None:
        self.stop_event.set()
        self._work.put(None)
        if self._worker is not None:
            self._worker.join(5.0)
        for sock in self._sockets:
            sock.close(0)
        self._sockets.clear()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self.journal is not None:
            self.journal.close()
        log.info("stopped", extra={"fields": self.stats_dict()})

    def submit(self, item: NewsItem) -> None:
        """Hand a news item to the server from another thread (the ``--news`` file follower)."""
        self._intake.put(item)

    def _drain(self, sock: zmq.Socket, handle) -> None:
        for _ in range(MAX_DRAIN):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)

    # -- requests ----------------------------------------------------------------------------------------------

    def _send(self, envelope: list[bytes], msg: dict | bytes) -> None:
        try:
            data = msg if isinstance(msg, bytes) else P.encode(msg)
        except (ValueError, TypeError) as exc:
            log.error("reply could not be encoded", extra={"fields": {"error": str(exc)}})
            data = P.encode(P.error_reply(P.E_INTERNAL, "reply could not be encoded", msg.get("id")))
        # A peer that is gone or not reading loses this reply; a Lazy Pirate client asks again.
        with contextlib.suppress(zmq.Again):
            self.router.send_multipart([*envelope, data], zmq.NOBLOCK)

    def _on_request(self, frames: list[bytes]) -> None:
        self.stats.requests += 1
        envelope, body = P.split_envelope(frames)
        msg: dict | None = None
        try:
            msg = P.decode_frames(body)
            if not self.limiter.allow(envelope[0]):
                self.stats.rate_limited += 1
                raise P.ProtocolError(P.E_RATE_LIMITED, "too many requests; slow down", msg["id"])
            out = self._handle(envelope, msg)
        except P.ProtocolError as exc:
            self.stats.errors += 1
            log.debug("bad request", extra={"fields": {"code": exc.code, "message": exc.message}})
            out = P.error_reply(exc.code, exc.message, exc.request_id)
        except Exception as exc:  # a bug must not take the server down; the client gets told
            self.stats.errors += 1
            log.exception("internal error handling a request")
            rid = msg["id"] if msg is not None else None
            out = P.error_reply(P.E_INTERNAL, f"internal error: {type(exc).__name__}", rid)
        if out is not None:
            self._send(envelope, out)

    def _handle(self, envelope: list[bytes], msg: dict) -> dict | None:
        mtype, rid = msg["type"], msg["id"]
        if mtype == P.SIGNAL:
            return self._on_signal(envelope, msg)
        if mtype == P.NEWS:
            item = self._news_item(msg)
            duplicate = not self._accept(item)
            return P.reply(P.ACK, rid, news_id=item.id, duplicate=duplicate)
        if mtype == P.PING:
            return P.reply(P.PONG, rid, time=int(time.time()))
        if mtype == P.HELLO:
            if len(self._clients) < 10_000:
                self._clients.add(envelope[0])
            for sym in msg.get("symbols", []):
                if (
                    isinstance(sym, str)
                    and len(sym) <= P.MAX_TEXT_CHARS["symbol"]
                    and len(self._watched) < 1000
                ):
                    try:
                        split_symbol(sym)
                        self._watched.add(sym)
                    except ValueError:
                        pass
            return P.reply(
                P.ACK,
                rid,
                server="ea-bridge",
                protocol=P.PROTOCOL_VERSION,
                mode=self.mode,
                max_message_bytes=P.MAX_MESSAGE_BYTES,
                policy=self.config.to_dict(),
            )
        if mtype == P.STATS:
            return P.reply(P.ACK, rid, stats=self.stats_dict())
        raise P.ProtocolError(P.E_UNKNOWN_TYPE, f"unknown request type {mtype!r}", rid)

    def _on_signal(self, envelope: list[bytes], msg: dict) -> bytes | None:
        symbol = msg["symbol"]
        pair = None
        if "base" in msg:
            # The terminal's own SYMBOL_CURRENCY_BASE / _PROFIT: no guessing from the name (m.EURUSD, FX.EURUSD ...)
            try:
                base, quote = split_symbol(symbol, msg["base"], msg["quote"])
            except ValueError as exc:
                raise P.ProtocolError(P.E_BAD_FIELD, f"signal: {exc}", msg["id"]) from None
            pair = base + quote
        elif symbol not in self._pairs:
            try:
                split_symbol(symbol)
            except ValueError:
                raise P.ProtocolError(
                    P.E_BAD_FIELD,
                    f"signal: symbol {symbol!r} is not a currency pair such as EURUSD",
                    msg["id"],
                ) from None
            if len(self._pairs) < 1000:
                self._pairs.add(symbol)
                self._watched.add(symbol)
        if self.clock == "request":
            second = msg["time"] - msg["utc_offset"]
            # Replay: an item at or before the request time that is still being analysed must count; wait for it.
            if self._pending_times and min(self._pending_times.values()) <= second * 1_000_000_000:
                self._deferred.append((envelope, msg))
                return None
        else:
            second = int(time.time())
        return self._target_reply(symbol, second, msg["id"], pair)

    def _target_reply(self, symbol: str, second: int, rid: str, pair: str | None = None) -> bytes:
        """The encoded ``target`` reply; the fields' JSON is cached per symbol, second and state version, because
        every chart of every EA asks each timer tick and only the ``id`` differs between their replies. ``pair``
        (``EURUSD``), when the request named the symbol's currencies, is what the policy is asked about."""
        key = (symbol, pair, second)
        hit = self._reply_cache.get(key)
        if hit is None or hit[0] != self.state.version:
            tgt = self.state.target(pair or symbol, pd.Timestamp(second * 1_000_000_000, tz="UTC"))
            fields = P.target_fields(tgt)
            fields["symbol"] = symbol  # the reply names the symbol as the EA asked
            body = P.encode(fields)
            if len(self._reply_cache) > 4096:
                self._reply_cache.clear()
            hit = (self.state.version, body)
            self._reply_cache[key] = hit
        # Byte for byte what P.encode(P.reply(TARGET, rid, **fields)) gives, without re-serialising the fields.
        head = b'{"v":%d,"type":"target","id":' % P.PROTOCOL_VERSION
        return head + json.dumps(rid, ensure_ascii=False).encode() + b"," + hit[1][1:]

    def _news_item(self, msg: dict) -> NewsItem:
        if "time" in msg:
            t = pd.Timestamp((msg["time"] - msg.get("utc_offset", 0)) * 1_000_000_000, tz="UTC")
        else:
            t = pd.Timestamp(int(time.time()) * 1_000_000_000, tz="UTC")
        cur = msg.get("currency")
        return NewsItem(
            time=t,
            headline=" ".join(msg["headline"].split()),
            source=msg.get("source", "ea"),
            body=msg.get("body", ""),
            currency=cur.upper() if cur else None,
            actual=msg.get("actual"),
            forecast=msg.get("forecast"),
            previous=msg.get("previous"),
            impact=msg.get("impact"),
            event=msg.get("event"),
        )

    def _on_intake(self, frames: list[bytes]) -> None:
        try:
            msg = P.decode_frames(frames)
            if msg["type"] != P.NEWS:
                raise P.ProtocolError(
                    P.E_UNKNOWN_TYPE, f"the intake socket takes only news, got {msg['type']!r}"
                )
            self._accept(self._news_item(msg), sync=False)
        except P.ProtocolError as exc:
            self.stats.intake_errors += 1
            # A broken feed must not flood the log: the first ten, then every thousandth (all are counted in stats).
            n = self.stats.intake_errors
            level = logging.WARNING if n <= 10 or n % 1000 == 0 else logging.DEBUG
            log.log(
                level,
                "bad news on intake",
                extra={"fields": {"code": exc.code, "message": exc.message, "count": n}},
            )

    def _take_intake(self) -> None:
        taken = 0
        while True:
            try:
                item = self._intake.get_nowait()
            except queue.Empty:
                break
            taken += self._accept(item, sync=False)
        if taken and self.journal is not None:
            self.journal.sync()

    # -- news and analysis -------------------------------------------------------------------------------------

    def _accept(self, item: NewsItem, sync: bool = True) -> bool:
        """Journal (fsync unless the caller commits a group) and queue a new item; False for a duplicate id."""
        if item.id in self.state:
            self.stats.news_duplicate += 1
            return False
        if self.journal is not None:
            self.journal.append_news(item, sync=sync)
        self.state.add_item(item)
        self.analyzer.observe([item])
        self.stats.news_accepted += 1
        self._queue_for_analysis(item)
        log.info(
            "news accepted",
            extra={
                "fields": {"news_id": item.id, "time": item.time.isoformat(), "headline": item.headline[:80]}
            },
        )
        return True

    def _queue_for_analysis(self, item: NewsItem) -> None:
        self._pending_times[item.id] = item.time.value
        self._work.put(item)

    def _analyze(self, batch: Sequence[NewsItem]) -> list[Analysis]:
        """Analyse a batch through the one routing of ``bridge.analysis``; failures are neutral, never fatal."""
        before = self.analyzer.failures
        out = self.analyzer.analyze(batch)
        self.stats.analysis_errors += self.analyzer.failures - before
        return out

    def _work_loop(self) -> None:
        wake = self.ctx.socket(zmq.PUSH)
        wake.linger = 0
        wake.connect(self._wake_endpoint)
        try:
            while True:
                try:
                    first = self._work.get(timeout=0.2)
                except queue.Empty:
                    if self.stop_event.is_set():
                        return
                    continue
                if first is None:
                    return
                batch = [first]
                while len(batch) < self.batch_size:
                    try:
                        nxt = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._work.put(None)
                        break
                    batch.append(nxt)
                t0 = time.perf_counter()
                analyses = self._analyze(batch)
                log.debug(
                    "batch analysed",
                    extra={"fields": {"n": len(batch), "ms": round(1e3 * (time.perf_counter() - t0), 2)}},
                )
                self._results.put(list(zip(batch, analyses, strict=True)))
                with contextlib.suppress(zmq.Again):
                    wake.send(b"", zmq.NOBLOCK)
        finally:
            wake.close(0)

    def _apply_results(self) -> None:
        changed = False
        while True:
            try:
                pairs = self._results.get_nowait()
            except queue.Empty:
                break
            for item, analysis in pairs:
                if self.journal is not None:
                    self.journal.append_analysis(item.id, analysis)
                self.state.add_analysis(item.id, analysis)
                self._pending_times.pop(item.id, None)
                self.stats.news_analysed += 1
                self.stats.analysis_fallbacks += int(analysis.fallback)
                changed = True
        if not changed:
            return
        if self._deferred:
            waiting, self._deferred = self._deferred, []
            for envelope, msg in waiting:
                try:
                    out = self._on_signal(envelope, msg)
                except P.ProtocolError as exc:
                    out = P.error_reply(exc.code, exc.message, exc.request_id)
                if out is not None:
                    self._send(envelope, out)
        if self.pub is not None and self.clock == "server":
            self._publish_changes()

    def _publish_changes(self, direction_only: bool = False) -> None:
        """Publish the target of every watched symbol whose target changed since it was last published (only its
        direction when ``direction_only``: decay alone moves the strength every second)."""
        now = pd.Timestamp.now(tz="UTC")
        for symbol in sorted(self._watched):
            tgt = self.state.target(symbol, now)
            key = (tgt.direction, round(tgt.strength, 6))
            last = self._published.get(symbol)
            if last == key or (direction_only and (last is None or last[0] == key[0])):
                continue
            self._published[symbol] = key
            self._pub_seq += 1
            msg = P.reply(P.TARGET, f"pub-{self._pub_seq}", **P.target_fields(tgt))
            try:
                self.pub.send_multipart([symbol.encode(), P.encode(msg)], zmq.NOBLOCK)
                self.stats.published += 1
            except zmq.Again:
                pass

    def watch(self, symbols: Iterable[str]) -> None:
        """Symbols whose target is published on change, besides those the EAs name in ``hello`` and ``signal``."""
        for s in symbols:
            split_symbol(s)
            self._watched.add(s)

    def stats_dict(self) -> dict:
        s = self.stats
        return {
            "uptime_s": round(time.monotonic() - s.started, 3),
            "mode": self.mode,
            "requests": s.requests,
            "errors": s.errors,
            "rate_limited": s.rate_limited,
            "news_accepted": s.news_accepted,
            "news_duplicate": s.news_duplicate,
            "news_analysed": s.news_analysed,
            "analysis_queue": len(self._pending_times),
            "analysis_fallbacks": s.analysis_fallbacks,
            "clients": len(self._clients),
            "symbols": len(self._watched),
            "published": s.published,
            "intake_errors": s.intake_errors,
            "analyzer": getattr(self.analyzer, "name", type(self.analyzer).__name__),
        }
