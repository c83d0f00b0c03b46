"""The bridge server: answers the Expert Advisor's requests from the current news state, analyses news off the request path.

Sockets (endpoints in ``bridge.wire.protocol``):

- ROUTER for requests from any number of EAs and charts (REQ or DEALER peers; both envelope shapes are answered);
- PULL for news intake from feeds (same ``news`` message, no reply);
- PUB (optional) pushing a new target for a watched symbol the moment an analysis changes it.

One thread owns the sockets and the state, so a ``signal`` is answered from memory without locks. A worker thread
analyses queued news in batches and hands the results back through a queue plus an ``inproc`` wake-up; the main thread
journals each analysis, updates the state and publishes. Nothing blocks the request loop but the journal's fsync of an
accepted news item, which is what makes its ``ack`` a promise. The loop reads requests first and again between small
slices of other work (intake, applying analyses, publishing coalesced to one re-check per 20 ms), so under a flood
of news a ``signal`` waits for one slice at most, and the state answers it from the TTL window alone.

Every resource is bounded and counted in ``stats`` (``bounds``): the analysis backlog (``MAX_PENDING``; beyond it
``news`` gets ``busy`` and the intake socket is left to ZeroMQ's high-water mark), replies queued to a peer that does
not read (``REPLY_HWM``, then dropped and counted), watched symbols, clients, caches. A journal that cannot be written
refuses items with ``storage`` and recovers by itself when the disk does. In live mode news older than the TTL is
forgotten and the journal compacted to a snapshot of what is held, so memory and restart time follow the live news,
not the uptime.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
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
from bridge.types import Analysis, NewsItem, Target
from bridge.wire import logqueue
from bridge.wire import protocol as P
from bridge.wire.journal import Journal, StorageError
from bridge.wire.monitor import Monitor
from bridge.wire.ratelimit import RateLimiter
from bridge.wire.state import NewsState, figures, pair_of

log = logging.getLogger("bridge.wire.server")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
POLL_MS = 100  # how often the loop looks at its stop flag when idle
MAX_DRAIN = 256  # requests handled per socket before the loop looks at the others again
INTAKE_PER_TURN = 8  # intake messages taken per loop turn, between two looks at the request socket
APPLY_PER_TURN = 8  # analyses applied per loop turn, likewise
SWITCH_INTERVAL_S = 0.0002  # the longest a request waits for the GIL held by the analysis thread
HOUSEKEEPING_S = 1.0  # live mode: how often targets are re-checked for a change by decay or expiry
PRUNE_S = 60.0  # live mode: how often items older than the TTL are dropped from memory, their ids with them
PRUNE_MARGIN = pd.Timedelta(hours=1)  # keep a little longer than the TTL, for EAs whose clocks run behind
# live mode: the journal is rewritten as a snapshot of the items held once it is this many times the size of the
# last snapshot (and at least COMPACT_MIN_BYTES), so restart reads about the live state whatever the uptime
COMPACT_RATIO = 2
COMPACT_MIN_BYTES = 8 << 20
# the periodic INFO line (per-item lines are DEBUG) and the most often a storage error is logged
SUMMARY_S = 60.0
MAX_PENDING = 10_000  # items accepted but not analysed yet; beyond this news is refused with ``busy``
INTAKE_QUEUE = 1_000  # items handed over by the --news follower, waiting for the request thread
INTAKE_HWM = 10_000  # messages ZeroMQ holds on the PULL socket (then the feed's PUSH blocks or drops)
REPLY_HWM = 100  # replies queued to one peer that is not reading; more are dropped and counted
REQUEST_HWM = 1_000  # requests queued from one peer before ZeroMQ stops reading it
MAX_WATCHED = 64  # symbols whose target is published on change, over all clients
MAX_CLIENTS = 10_000  # identities remembered for ``stats``
AUTH_LOG_S = 60.0  # a refused CURVE client is logged again after this many seconds
MAX_DEFERRED = 10_000  # replay: signal requests waiting for the analysis of an earlier item
REPLY_CACHE = 4_096  # encoded target replies kept (symbol, second)
# watched targets recomputed per loop turn, so publishing never holds up a request for long
PUBLISH_PER_LOOP = 8
# the most often watched targets are re-checked while analyses stream in: a flood of news is coalesced into at most
# this many publishes per second and symbol, not one target computation per analysis
PUBLISH_EVERY_S = 0.02


def content_id(msg: dict) -> str:
    """The id of a news message without ``time``: from its content (source, headline, event, currency, figures), so
    sending the same bytes again is a duplicate rather than a new item that counts twice."""
    parts = [
        str(msg.get("source", "ea")).strip().lower(),
        " ".join(msg["headline"].split()).lower(),
        str(msg.get("event") or ""),
        str(msg.get("currency") or "").upper(),
        *(repr(msg.get(k)) for k in ("actual", "forecast", "previous")),
    ]
    return "c" + hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()[:15]


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
    if os.name == "posix" and secret.stat().st_mode & 0o077:
        log.warning(
            "server secret key is readable by other users; chmod 600 it",
            extra={"fields": {"path": str(secret), "mode": oct(secret.stat().st_mode & 0o777)}},
        )
    # The authenticator thread reads the folder itself, and one unreadable file there makes it refuse everyone,
    # listed clients included: check every file now and refuse to start naming the bad one.
    for key_file in sorted(allowed.glob("*.key")):
        try:
            client_public, _ = zmq.auth.load_certificate(key_file)
            if len(client_public or b"") != 40:
                raise ValueError("no 40-character public key")
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise UserError(
                f"not a readable client public key: {exc}",
                path=key_file,
                hint="replace it with a key from python -m bridge.keys generate, or remove it",
            ) from None
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
    intake_refused: int = 0  # intake items not taken: storage error or full backlog (counted, never acked)
    busy: int = 0  # news requests refused because the analysis backlog was full
    # journal writes that failed: news refused with 'storage', and analyses of accepted items not journaled (redone
    # on restart)
    storage_errors: int = 0
    replies_dropped: int = 0  # replies to peers that were gone or not reading
    revisions: int = 0  # items that replaced an earlier version with the same id (corrected figures)
    watch_refused: int = 0  # symbols not watched because the watched set was full


class AuthLog(logging.LoggerAdapter):
    """pyzmq's authenticator logs every decision at DEBUG; a refused client is the operator's business, so each
    ``DENIED`` line becomes a WARNING, at most once per client key per ``AUTH_LOG_S`` (a refused peer retries)."""

    def __init__(self, logger: logging.Logger):
        super().__init__(logger, {})
        self._last: dict[str, float] = {}

    def debug(self, msg, *args, **kwargs) -> None:
        args = tuple(a.decode(errors="replace") if isinstance(a, bytes) else a for a in args)  # z85 keys
        text = msg % args if args else str(msg)
        if not text.startswith("DENIED"):
            self.logger.debug(text)
            return
        key = text.rsplit("client_key=", 1)[-1]
        now = time.monotonic()
        if now - self._last.get(key, -AUTH_LOG_S) >= AUTH_LOG_S:
            if len(self._last) > MAX_CLIENTS:
                self._last.clear()
            self._last[key] = now
            self.logger.warning("client refused", extra={"fields": {"detail": text}})


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
        self.monitor = Monitor()  # last analyses, latency, targets for stats and the status page
        self.endpoints: dict[str, str] = {}
        self.stop_event = threading.Event()
        self._work: queue.Queue[NewsItem | None] = queue.Queue()
        self._results: queue.Queue[list[tuple[NewsItem, Analysis]]] = queue.Queue()
        self._analysed: deque[tuple[NewsItem, Analysis]] = deque()  # taken from _results, not applied yet
        self._intake: queue.Queue[NewsItem] = queue.Queue(INTAKE_QUEUE)
        self._intake_retry: NewsItem | None = None  # a follower item the journal refused, tried again first
        self._pending_times: dict[str, int] = {}  # news id -> UTC ns, accepted but not analysed yet
        self._deferred: list[tuple[list[bytes], dict]] = []
        self._pairs: set[str] = set()  # symbols already checked to be currency pairs
        # (symbol, pair, second) -> the pair's stamp, the target, its fields' JSON
        self._reply_cache: dict[tuple, tuple[int, Target, bytes]] = {}
        self._watched: set[str] = set()
        self._dirty: list[
            str
        ] = []  # watched symbols still to re-check after an analysis, a few per loop turn
        self._storage_down_since: float | None = None
        self._last_storage_log = 0.0
        self._last_summary = time.monotonic()
        self._summary_base: dict[str, int] = {}
        self.followers: list = []  # --news followers, reported in stats
        self._published: dict[str, tuple[int, float]] = {}
        self._clients: set[bytes] = set()
        self._pub_seq = 0
        self._next_publish = 0.0
        self._live_journal_bytes = 0  # the journal's size after its last compaction
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
        t0 = time.monotonic()
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
            self._forget_old_news()
        log.info(
            "journal restored",
            extra={
                "fields": {
                    "ms": round(1e3 * (time.monotonic() - t0), 1),
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
            self._auth = ThreadAuthenticator(self.ctx, log=AuthLog(logging.getLogger("bridge.auth")))
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
            # A peer that sends and never reads must not make the server queue replies without limit: past the
            # high-water mark a reply is dropped (ROUTER_MANDATORY makes that visible, so it is counted).
            sock.sndhwm, sock.rcvhwm = REPLY_HWM, REQUEST_HWM
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        elif kind == zmq.PULL:
            sock.rcvhwm = INTAKE_HWM
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
        # The analysis thread holds the GIL while it computes; a request arriving then waits for Python's switch
        # interval (5 ms by default) before this thread can even read it. A shorter interval bounds that wait.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        # Everything made so far (imported libraries, restored state) lives as long as the server: out of the
        # collector's sight, a full collection no longer walks it, which is a pause a request would wait out.
        gc.collect()
        gc.freeze()
        try:
            while not self.stop_event.is_set():
                # Work left over from the last turn (results, intake that can be taken now) means look again at
                # once, not after POLL_MS; a full backlog or a full disk waits for the poll, never spins.
                busy = (
                    bool(self._analysed)
                    or not self._results.empty()
                    or (
                        (not self._intake.empty() or self._intake_retry is not None)
                        and not self._backlog_full()
                        and self._storage_down_since is None
                    )
                )
                wait_ms = 0 if busy else POLL_MS
                if self._dirty:  # a publish held back by PUBLISH_EVERY_S is due then
                    wait_ms = min(wait_ms, max(0, int(1e3 * (self._next_publish - time.monotonic())) + 1))
                events = dict(poller.poll(wait_ms))
                if self.wake in events:
                    self._drain(self.wake, lambda frames: None)
                # Requests first and again between the slices of other work, so a flood of news (or of results)
                # delays a signal by one slice at most. A turn woken by requests alone does nothing else.
                self._drain(self.router, self._on_request)
                if busy or len(events) > (self.router in events):
                    self._take_intake()
                    self._apply_results()
                    self._drain(self.router, self._on_request)
                    # A full backlog leaves intake in ZeroMQ's queue (its high-water mark then holds the feed back).
                    if self.pull is not None and self._drain(
                        self.pull, self._on_intake, INTAKE_PER_TURN, self._backlog_full
                    ):
                        self._group_commit()
                self._publish_some()
                self._housekeeping()
                self.monitor.publish(self.stats_dict)
        finally:
            self.close()

    def _backlog_full(self) -> bool:
        return len(self._pending_times) >= MAX_PENDING

    def _group_commit(self) -> None:
        """fsync the intake drained this turn (no ack waits on it); a failure is a storage error like any other."""
        if self.journal is None:
            return
        try:
            self.journal.sync()
        except StorageError as exc:
            self._storage_failed(exc)

    def _summary(self) -> None:
        """Once a minute, one INFO line with what changed: per-item lines are DEBUG, so the log stays small."""
        now = time.monotonic()
        if now - self._last_summary < SUMMARY_S:
            return
        self._last_summary = now
        current = self.stats_dict()
        counts = {k: v for k, v in current.items() if isinstance(v, int) and not isinstance(v, bool)}
        delta = {k: v - self._summary_base.get(k, 0) for k, v in counts.items()}
        self._summary_base = counts
        log.info("summary", extra={"fields": {"last_s": SUMMARY_S, **{k: v for k, v in delta.items() if v}}})

    def _housekeeping(self) -> None:
        """Once a second in live mode: publish targets whose direction changed by decay or expiry alone; once a
        minute: forget analysed items too old to count any more, so weeks of news do not slow the policy down."""
        self._summary()
        if self._intake_retry is not None or not self._intake.empty():
            self._take_intake()  # items the journal refused before, or left while the backlog was full
        if self.clock != "server":
            return
        now = time.monotonic()
        if now - self._last_tick < HOUSEKEEPING_S:
            return
        self._last_tick = now
        if self.pub is not None:
            self._publish_changes(direction_only=True)
        # A fast feed can fill the journal between two prunes: reaching the compaction size prunes at once.
        if now - self._last_prune >= PRUNE_S or self._journal_bytes() >= self._compact_at():
            self._last_prune = now
            self._forget_old_news()

    def _journal_bytes(self) -> int:
        return self.journal.size() if self.journal is not None else 0

    def _compact_at(self) -> int:
        """The journal size at which it is next compacted: twice its live part, and at least COMPACT_MIN_BYTES."""
        return max(COMPACT_MIN_BYTES, COMPACT_RATIO * self._live_journal_bytes)

    def _forget_old_news(self) -> None:
        """Live mode: drop analysed items too old to count, then compact the journal if most of it is now dead."""
        cutoff = pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=self.config.ttl) - PRUNE_MARGIN
        dropped = self.state.prune(cutoff)
        if dropped:
            log.info("old news forgotten", extra={"fields": {"items": dropped, "before": cutoff.isoformat()}})
        if self.journal is None:
            return
        before = self.journal.size()
        if before < self._compact_at():
            return
        t0 = time.monotonic()
        try:
            self.journal.compact(list(self.state.items.values()), self.state.analyses)
        except StorageError as exc:  # the old journal stays in use, whole; tried again at the next prune
            log.error("journal compaction failed", extra={"fields": {"error": str(exc)}})
            return
        self._live_journal_bytes = self.journal.size()
        log.info(
            "journal compacted",
            extra={
                "fields": {
                    "bytes_before": before,
                    "bytes_after": self._live_journal_bytes,
                    "items": len(self.state.items),
                    "ms": round(1e3 * (time.monotonic() - t0), 1),
                }
            },
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

    def submit(self, item: NewsItem) -> bool:
        """Hand a news item to the server from another thread (the ``--news`` file follower).

        Waits while the bounded hand-over queue is full (a file can wait; memory cannot grow); False when the server
        stopped first."""
        while not self.stop_event.is_set():
            try:
                self._intake.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _drain(self, sock: zmq.Socket, handle, limit: int = MAX_DRAIN, full=lambda: False) -> int:
        """Handle up to ``limit`` waiting messages, fewer when ``full()`` says to stop (what is left stays in ZeroMQ's
        queue); returns how many were handled."""
        for n in range(limit):
            if full():
                return n
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return n
            handle(frames)
        return limit

    # -- requests ----------------------------------------------------------------------------------------------

    def _send(self, envelope: list[bytes], msg: dict | bytes) -> None:
        try:
            data = msg if isinstance(msg, bytes) else P.encode(msg)
        except (ValueError, TypeError) as exc:
            log.error("reply could not be encoded", extra={"fields": {"error": str(exc)}})
            try:
                data = P.encode(P.error_reply(P.E_INTERNAL, "reply could not be encoded", msg.get("id")))
            except (ValueError, TypeError):  # the id itself cannot be sent: answer without it
                data = P.encode(P.error_reply(P.E_INTERNAL, "reply could not be encoded"))
        # A peer that is gone (EHOSTUNREACH) or not reading (past REPLY_HWM) loses this reply, counted; a Lazy
        # Pirate client asks again.
        try:
            self.router.send_multipart([*envelope, data], zmq.NOBLOCK)
        except zmq.ZMQError:
            self.stats.replies_dropped += 1

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
            try:
                outcome = self._accept(item)
            except P.ProtocolError as exc:
                exc.request_id = rid
                raise
            if (
                outcome == "revised"
            ):  # a corrected figure: the field appears only then, so older readers see an ack
                return P.reply(P.ACK, rid, news_id=item.id, duplicate=False, revised=True)
            return P.reply(P.ACK, rid, news_id=item.id, duplicate=outcome == "duplicate")
        if mtype == P.PING:
            return P.reply(P.PONG, rid, time=int(time.time()))
        if mtype == P.HELLO:
            if len(self._clients) < MAX_CLIENTS:
                self._clients.add(envelope[0])
            for sym in msg.get("symbols", []):  # at most P.MAX_HELLO_SYMBOLS, checked at decoding
                with contextlib.suppress(ValueError):
                    split_symbol(sym)
                    self._watch(sym)
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
            self._watch(symbol)
        if self.clock == "request":
            second = msg["time"] - msg["utc_offset"]
            # Replay: an item at or before the request time that is still being analysed must count; wait for it.
            if self._pending_times and min(self._pending_times.values()) <= second * 1_000_000_000:
                if len(self._deferred) >= MAX_DEFERRED:
                    raise P.ProtocolError(P.E_BUSY, "the server is still analysing; ask again", msg["id"])
                self._deferred.append((envelope, msg))
                return None
        else:
            second = int(time.time())
        return self._target_reply(symbol, second, msg["id"], pair)

    def _target(self, symbol: str, second: int, pair: str | None = None) -> tuple[Target, bytes]:
        """The target for ``symbol`` as of ``second`` and its reply fields' JSON, cached per symbol and second until
        news moving its pair lands: every chart of every EA asks each timer tick, the publisher re-checks after each
        analysis, and one computation serves them all. ``pair`` (``EURUSD``), when the request named the symbol's
        currencies, is what the policy is asked about."""
        key = (symbol, pair, second)
        hit = self._reply_cache.get(key)
        stamp = self.state.stamp(pair or symbol)
        if hit is None or hit[0] != stamp:
            tgt = self.state.target(pair or symbol, pd.Timestamp(second * 1_000_000_000, tz="UTC"))
            tgt = dataclasses.replace(tgt, symbol=symbol)  # the reply names the symbol as the EA asked
            if len(self._reply_cache) >= REPLY_CACHE:
                self._reply_cache.clear()  # bounded; refilled within a second by the symbols actually asked
            hit = (stamp, tgt, P.encode(P.target_fields(tgt)))
            self._reply_cache[key] = hit
        return hit[1], hit[2]

    def _target_reply(self, symbol: str, second: int, rid: str, pair: str | None = None) -> bytes:
        """The encoded ``target`` reply to request ``rid``."""
        _, body = self._target(symbol, second, pair)
        # Byte for byte what P.encode(P.reply(TARGET, rid, **fields)) gives, without re-serialising the fields.
        head = b'{"v":%d,"type":"target","id":' % P.PROTOCOL_VERSION
        return head + json.dumps(rid, ensure_ascii=False).encode() + b"," + body[1:]

    def _news_item(self, msg: dict) -> NewsItem:
        cur = msg.get("currency")
        if "time" in msg:
            t = pd.Timestamp((msg["time"] - msg.get("utc_offset", 0)) * 1_000_000_000, tz="UTC")
            nid = ""  # the usual id: time, source and headline
        else:
            # No time: the arrival second would make every resend a new item, so the id comes from the content.
            t = pd.Timestamp(int(time.time()) * 1_000_000_000, tz="UTC")
            nid = content_id(msg)
        return NewsItem(
            id=nid,
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
            try:
                self._accept(self._news_item(msg), sync=False)
            except P.ProtocolError:  # storage or backlog: no ack is owed on PULL, the drop is counted
                self.stats.intake_refused += 1
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
        """Accept what the follower handed over; an item the journal or the backlog refuses waits for a retry."""
        taken = 0
        for _ in range(INTAKE_PER_TURN):  # the rest next turn: requests are looked at in between
            if self._backlog_full():
                break
            item, self._intake_retry = self._intake_retry, None
            if item is None:
                try:
                    item = self._intake.get_nowait()
                except queue.Empty:
                    break
            try:
                taken += self._accept(item, sync=False) != "duplicate"
            except P.ProtocolError:
                self._intake_retry = item  # from a file: nothing may be lost, so it is tried again later
                break
        if taken:
            self._group_commit()

    # -- news and analysis -------------------------------------------------------------------------------------

    def _accept(self, item: NewsItem, sync: bool = True) -> str:
        """Journal (fsync unless the caller commits a group) and queue an item: ``accepted``, ``duplicate`` (an id
        seen before with the same figures) or ``revised`` (a held item with the same id and new figures: it replaces the earlier one,
        analysis included). ``ProtocolError`` ``busy`` or ``storage`` when it cannot be taken now."""
        revision = item.id in self.state
        held = self.state.items.get(item.id)
        if revision and (held is None or figures(held) == figures(item)):
            self.stats.news_duplicate += 1
            return "duplicate"
        if self._backlog_full():
            self.stats.busy += 1
            raise P.ProtocolError(
                P.E_BUSY, f"{MAX_PENDING} items are waiting for analysis; send it again later"
            )
        if self.journal is not None:
            try:
                self.journal.append_news(
                    item, sync=sync
                )  # the revision's record replaces the first on restart
            except StorageError as exc:
                self._storage_failed(exc)
                raise P.ProtocolError(
                    P.E_STORAGE, "the journal cannot be written (disk full?); the item was not accepted"
                ) from None
            self._storage_recovered()
        if revision:
            self.state.revise(item)
            self.stats.revisions += 1
        else:
            self.state.add_item(item)
            self.stats.news_accepted += 1
        self.analyzer.observe([item])
        self._queue_for_analysis(item)
        if sync:
            # An acked item from the request socket: let the worker take it now (this releases the GIL), so a fast
            # analyzer's result is in before the same EA's next signal, as when this thread used to log each item.
            time.sleep(0)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "news revised" if revision else "news accepted",
                extra={
                    "fields": {
                        "news_id": item.id,
                        "time": item.time.isoformat(),
                        "headline": item.headline[:80],
                    }
                },
            )
        return "revised" if revision else "accepted"

    def _storage_failed(self, exc: Exception) -> None:
        """Count a journal write that failed; log it at most once a minute (a full disk fails every item)."""
        self.stats.storage_errors += 1
        now = time.monotonic()
        if self._storage_down_since is None:
            self._storage_down_since = now
        if now - self._last_storage_log >= SUMMARY_S:
            self._last_storage_log = now
            log.error(
                "journal write failed; news is refused with 'storage' until it can be written",
                extra={"fields": {"error": str(exc), "refused": self.stats.storage_errors}},
            )

    def _storage_recovered(self) -> None:
        if self._storage_down_since is not None:
            log.warning(
                "journal writable again",
                extra={"fields": {"down_s": round(time.monotonic() - self._storage_down_since, 1)}},
            )
            self._storage_down_since = None
            self._last_storage_log = 0.0

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
                self.monitor.batch_done(len(batch), time.perf_counter() - t0)
                log.debug(
                    "batch analysed",
                    extra={"fields": {"n": len(batch), "ms": round(1e3 * (time.perf_counter() - t0), 2)}},
                )
                self._results.put(list(zip(batch, analyses, strict=True)))
                with contextlib.suppress(zmq.Again):
                    wake.send(b"", zmq.NOBLOCK)
        finally:
            wake.close(0)

    def _apply_results(self, limit: int = APPLY_PER_TURN) -> None:
        """Journal and apply up to ``limit`` finished analyses; the rest wait for the next loop turn."""
        while len(self._analysed) < limit:
            try:
                self._analysed.extend(self._results.get_nowait())
            except queue.Empty:
                break
        changed = False
        for _ in range(min(limit, len(self._analysed))):
            item, analysis = self._analysed.popleft()
            if self.state.items.get(item.id) != item:
                continue  # an earlier version of a revised item (its new version is queued), or pruned
            if self.journal is not None:
                try:
                    self.journal.append_analysis(item.id, analysis)
                except StorageError as exc:  # not fatal: an analysis missing from the journal is redone
                    self._storage_failed(exc)
            self.state.add_analysis(item.id, analysis)
            self._pending_times.pop(item.id, None)
            self.stats.news_analysed += 1
            self.stats.analysis_fallbacks += int(analysis.fallback)
            self.monitor.analysed(item, analysis)
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
            self._dirty = sorted(self._watched)  # re-checked a few per loop turn by _publish_some

    def _publish_some(self) -> None:
        """Re-check up to ``PUBLISH_PER_LOOP`` watched symbols after an analysis, so that however many symbols are
        watched a request never waits for more than a few target computations."""
        now = time.monotonic()
        if not self._dirty or now < self._next_publish:
            return
        self._next_publish = now + PUBLISH_EVERY_S
        batch, self._dirty = self._dirty[:PUBLISH_PER_LOOP], self._dirty[PUBLISH_PER_LOOP:]
        self._publish_changes(symbols=batch)

    def _watch(self, symbol: str) -> None:
        if symbol in self._watched:
            return
        if len(self._watched) >= MAX_WATCHED:
            self.stats.watch_refused += 1
            return
        self._watched.add(symbol)

    def _publish_changes(self, direction_only: bool = False, symbols: Iterable[str] | None = None) -> None:
        """Publish the target of every watched symbol (or of ``symbols``) whose target changed since it was last
        published (only its direction when ``direction_only``: decay alone moves the strength every second)."""
        now = int(time.time())
        for symbol in sorted(self._watched) if symbols is None else symbols:
            tgt, _ = self._target(symbol, now)
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
            pair_of(s)
            if len(self._watched) >= MAX_WATCHED:
                raise ValueError(f"at most {MAX_WATCHED} watched symbols")
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
            "intake_refused": s.intake_refused,
            "busy": s.busy,
            "storage_errors": s.storage_errors,
            "storage_ok": self._storage_down_since is None,
            "replies_dropped": s.replies_dropped,
            "revisions": s.revisions,
            "watch_refused": s.watch_refused,
            "analysis_errors": s.analysis_errors,
            "log_dropped": logqueue.dropped(),
            "followers": [f.status() for f in self.followers],
            "analyzer": getattr(self.analyzer, "name", type(self.analyzer).__name__),
            # each bound as [in use, limit]
            "bounds": {
                "analysis_queue": [len(self._pending_times), MAX_PENDING],
                "intake_queue": [self._intake.qsize(), INTAKE_QUEUE],
                "watched": [len(self._watched), MAX_WATCHED],
                "clients": [len(self._clients), MAX_CLIENTS],
                "rate_buckets": [len(self.limiter), self.limiter.max_clients],
                "deferred": [len(self._deferred), MAX_DEFERRED],
                "reply_cache": [len(self._reply_cache), REPLY_CACHE],
                "effects_cache": [len(self.state._effects), self.state._effects.limit],
                "log_queue": [logqueue.size(), logqueue.LOG_QUEUE],
                # bytes now, and the size at which the next compaction rewrites it (live mode)
                "journal_bytes": [self._journal_bytes(), self._compact_at()],
            },
            # ZeroMQ's queues, whose use the server cannot read: replies per peer, intake messages
            "hwm": {"reply": REPLY_HWM, "intake": INTAKE_HWM},
            # What a trader watches (bridge.wire.monitor): targets with reasons, last analyses, latency, queues.
            "targets": self.monitor.targets(self.state, self._watched, pd.Timestamp.now(tz="UTC")),
            "recent_analyses": list(self.monitor.recent),
            "analysis_latency_ms": self.monitor.latency_percentiles(),
            "queues": {
                "analysis": len(self._pending_times),
                "intake": self._intake.qsize(),
                "deferred": len(self._deferred),
            },
            "analysis_log_suppressed": self.monitor.log_suppressed,
        }
