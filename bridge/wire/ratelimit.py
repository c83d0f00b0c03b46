"""Per-client request rate limiting: one token bucket per ROUTER identity."""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    """Token buckets keyed by client identity: ``rate`` tokens per second, at most ``burst`` saved up.

    ``rate <= 0`` turns limiting off. Only the ``max_clients`` most recently seen identities are kept, so a stream of
    new connections cannot grow memory without bound.
    """

    def __init__(
        self, rate: float, burst: float | None = None, max_clients: int = 10_000, clock=time.monotonic
    ):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, 2 * rate))
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, key: bytes) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        if self.rate <= 0:
            return True
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)
