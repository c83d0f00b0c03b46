"""What a trader watches while the server runs: the last analyses, analysis latency, queue depths, the current target
per symbol with its reasons, and a compact, rate-limited log line per analysis.

Everything here is bounded (fixed-length deques). The analysis worker records latencies and the server's thread
records analyses; the server's thread alone builds snapshots, and publishes one a second (``published``) for readers
on other threads (the HTTP status page), so no reader ever walks the server's state while it changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np
import pandas as pd

from bridge.types import Analysis, NewsItem

log = logging.getLogger("bridge.wire.analyses")

RECENT = 20  # last analyses shown
LATENCIES = 2000  # analysis latencies kept for the percentiles
LOG_PER_S = 2.0  # analysis log lines per second at most (a burst of a calendar week must not flood the log)
LOG_BURST = 20.0
PUBLISH_S = 1.0


class Monitor:
    def __init__(self):
        self.recent: deque[dict] = deque(maxlen=RECENT)
        self.latency_ms: deque[float] = deque(maxlen=LATENCIES)
        self._tokens = LOG_BURST
        self._last = time.monotonic()
        self.log_suppressed = 0
        self._published: dict = {}
        self._published_at = 0.0
        self._lock = threading.Lock()
        self.wanted = False  # set by a reader (the status page): only then is a snapshot built each second

    def batch_done(self, n: int, seconds: float) -> None:
        """Worker thread: ``n`` items took ``seconds`` to analyse; each counts the batch's time per item."""
        per = 1e3 * seconds / max(n, 1)
        self.latency_ms.extend([per] * n)

    def analysed(self, item: NewsItem, analysis: Analysis) -> None:
        """Server thread: keep the analysis for ``stats`` and log it compactly, at most ``LOG_PER_S`` a second."""
        row = {
            "time": item.time.isoformat(),
            "id": item.id,
            "headline": item.headline[:120],
            "analyzer": analysis.analyzer,
            "event": analysis.event,
            "market": analysis.market,
            "level": int(analysis.sentiment),
            "confidence": round(float(analysis.confidence), 3),
            "fallback": bool(analysis.fallback),
        }
        self.recent.append(row)
        now = time.monotonic()
        self._tokens = min(LOG_BURST, self._tokens + (now - self._last) * LOG_PER_S)
        self._last = now
        if self._tokens < 1:
            self.log_suppressed += 1
            return
        self._tokens -= 1
        # "sentiment", not "level": the JSON log's own "level" is the record's (info).
        fields = {"id": row["id"], "sentiment": row["level"], "confidence": row["confidence"]}
        fields["analyzer"] = row["analyzer"]
        if self.log_suppressed:
            fields["suppressed_before"], self.log_suppressed = self.log_suppressed, 0
        log.info(
            f"analysed {row['level']:+d} {row['market']} {row['headline'][:80]}", extra={"fields": fields}
        )

    def latency_percentiles(self) -> dict:
        # list() of a deque runs in C under the GIL, so the worker's appends cannot interleave with it.
        values = np.array(list(self.latency_ms), dtype=np.float64)
        if not len(values):
            return {"n": 0}
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {"n": len(values), "p50": round(p50, 2), "p90": round(p90, 2), "p99": round(p99, 2)}

    def targets(self, state, symbols, now: pd.Timestamp) -> dict:
        """Current target of each symbol with its reasons (the policy as of ``now``)."""
        out = {}
        for symbol in sorted(symbols):
            t = state.target(symbol, now)
            out[symbol] = {
                "direction": int(t.direction),
                "strength": round(float(t.strength), 4),
                "expires": t.expires.isoformat() if t.expires is not None else None,
                "reasons": list(t.reasons),
            }
        return out

    def publish(self, snapshot_fn) -> None:
        """Server thread: refresh the snapshot other threads read, at most once per ``PUBLISH_S``."""
        if not self.wanted:
            return
        now = time.monotonic()
        if now - self._published_at < PUBLISH_S and self._published:
            return
        snap = snapshot_fn()
        with self._lock:
            self._published, self._published_at = snap, now

    def published(self) -> dict:
        """Any thread: the latest snapshot (a dict the server thread no longer touches)."""
        with self._lock:
            return self._published
