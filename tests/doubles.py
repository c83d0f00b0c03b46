"""Test doubles shared by the tests (through ``conftest.py`` fixtures or a plain import of ``doubles``).

- ``KeywordAnalyzer``: a real, deterministic analyzer (a headline keyword rule implementing
  ``bridge.analysis.Analyzer``), so server tests do not depend on a trained model.
- ``LexiconAnalyzer``: a cheap word-list rule for FX headlines with a market guess, standing in for the language
  model in backtests over thousands of real headlines.
- ``start_server``: a ``BridgeServer`` on a random loopback port, serving in a thread.
- ``spawn``/``wait_ready``/``free_port``: ``bridge.serve`` with the keyword analyzer in its own process
  (``python tests/doubles.py serve ARGS``), for kill-and-restart tests.
- ``EAEmulator``: the Expert Advisor's request sequence and reconciliation, in Python.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.schema import load_schema
from bridge.types import Analysis
from bridge.wire import protocol as P
from bridge.wire.client import LazyPirateClient, ServerDown
from bridge.wire.server import BridgeServer

HERE = Path(__file__).parent


POSITIVE = ("raises", "hikes", "beats", "strong", "surges")
NEGATIVE = ("cuts", "misses", "weak", "falls", "plunges")


class KeywordAnalyzer:
    """Headline keyword rule: +2 for a positive word, -2 for a negative one, else neutral; confidence 1."""

    name = "keyword-rule"

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s  # lets a test hold the worker busy, as a real model would be
        self.schema = load_schema()
        self.calls = 0

    def analyze(self, items):
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        out = []
        for item in items:
            words = item.headline.lower().split()
            level = 2 if any(w in words for w in POSITIVE) else -2 if any(w in words for w in NEGATIVE) else 0
            out.append(Analysis(self.schema.defaults(), level, confidence=1.0, analyzer=self.name))
        return out


class LexiconAnalyzer:
    """A cheap lexicon rule for headlines, standing in for the language model to keep this test fast (the full model
    run over the same headlines is in the project's notes). It is a real analyzer, not a mock: it reads the text."""

    name = "test-keywords-v1"
    UP = re.compile(
        r"\b(rise|rises|rising|gain|gains|higher|strong|stronger|hawkish|beat|beats|rall(y|ies)|jump)\b", re.I
    )
    DOWN = re.compile(
        r"\b(fall|falls|falling|drop|drops|lower|weak|weaker|dovish|miss|misses|slump|slides?)\b", re.I
    )

    def analyze(self, items):
        out = []
        for it in items:
            text = it.headline
            market = (
                "EU"
                if re.search(r"\b(euro|EUR|ECB|Draghi)\b", text, re.I)
                else ("US" if re.search(r"\b(dollar|USD|Fed|Yellen|U\.S\.)\b", text, re.I) else "global")
            )
            level = (1 if self.UP.search(text) else 0) - (1 if self.DOWN.search(text) else 0)
            out.append(
                Analysis(
                    labels={"event": "market move", "market": market, "sector": "FX"},
                    sentiment=level,
                    confidence=0.6,
                    analyzer=self.name,
                )
            )
        return out


def start_server(**kw) -> BridgeServer:
    """A server on a random loopback port, serving in a thread."""
    kw.setdefault("bind", "tcp://127.0.0.1:*")
    kw.setdefault("rate_limit", 0)
    server = BridgeServer(kw.pop("analyzer", None) or KeywordAnalyzer(), **kw)
    server.start()
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(endpoint: str, journal: Path, log: Path) -> subprocess.Popen:
    """``bridge.serve`` in its own process, with the tests' keyword analyzer ."""
    args = [
        sys.executable,
        str(HERE / "doubles.py"),
        "serve",
        "--bind",
        endpoint,
        "--pull",
        "",
        "--journal",
        str(journal),
        "--rate-limit",
        "0",
        "--log-level",
        "info",
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))  # noqa: SIM115


def wait_ready(client: LazyPirateClient, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert proc.poll() is None, "server process exited"
        try:
            client.ping()
            return
        except ServerDown:
            continue
    pytest.fail("server did not come up")


@dataclass
class EAEmulator:
    """Follows the EA's sequence: ``hello`` once, then one ``signal`` per symbol per timer tick, trading the difference.

    The EA holds at most one position per symbol of ``lots`` volume in the target's direction; it compares the target
    with what it holds and closes/opens only the difference, so a repeated target changes nothing. When the server is
    down it makes no new trades (the position stays as it is) and tries again next tick.
    """

    client: LazyPirateClient
    symbols: tuple[str, ...] = ("EURUSD",)
    utc_offset: int = 0
    lots: float = 0.1
    positions: dict[str, int] = field(default_factory=dict)
    trades: list[tuple[str, int, int]] = field(default_factory=list)  # (symbol, from, to)
    server_down_ticks: int = 0
    greeted: bool = False

    def tick(self, ea_time: int | None = None) -> dict[str, dict]:
        """One ``OnTimer``: greet if needed, ask for every symbol, reconcile. Returns the replies by symbol."""
        replies: dict[str, dict] = {}
        try:
            if not self.greeted:
                self.client.hello(self.symbols)
                self.greeted = True
            for sym in self.symbols:
                held = self.positions.get(sym, 0)
                pos = {"direction": held, "volume": self.lots if held else 0.0}
                rep = self.client.signal(sym, ea_time, self.utc_offset, pos)
                replies[sym] = rep
                if rep.get("type") == P.TARGET:
                    self._reconcile(sym, int(rep["direction"]))
        except ServerDown:
            self.server_down_ticks += 1
            self.greeted = False  # greet again after the server comes back, as the EA does after a reconnect
        return replies

    def _reconcile(self, symbol: str, target: int) -> None:
        held = self.positions.get(symbol, 0)
        if target != held:
            self.trades.append((symbol, held, target))
            self.positions[symbol] = target


def _serve_main(argv: list[str]) -> int:
    """``python tests/doubles.py serve ARGS``: ``bridge.serve`` with the keyword analyzer (other processes' tests)."""
    from bridge.serve import build_parser, serve

    return serve(build_parser().parse_args(argv), analyzer=KeywordAnalyzer(), calendar_analyzer=None)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "serve":
    sys.exit(_serve_main(sys.argv[2:]))
