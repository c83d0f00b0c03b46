"""``python -m bridge.serve``: the bridge's long-running service for MetaTrader 5 Expert Advisors.

Examples::

    python -m bridge.serve                                   # live, shipped model, loopback, journal in ./bridge-journal.jsonl
    python -m bridge.serve --model none --news calendar.csv --pub tcp://127.0.0.1:5556
    python -m bridge.serve --replay news_2023.csv --model none   # for MT5's Strategy Tester
    python -m bridge.serve --bind tcp://0.0.0.0:5555 --curve-keys keys  # remote EAs, encrypted, allow-listed

Logs are JSON lines on stderr. SIGINT and SIGTERM stop it cleanly (sockets closed, journal flushed).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from bridge.analysis import NO_MODEL, add_analysis_arguments, build_analyzer
from bridge.cli import HelpFormatter, non_negative_float
from bridge.errors import UserError, run_main
from bridge.policy import add_policy_arguments, policy_from_args
from bridge.wire import logqueue
from bridge.wire import protocol as P
from bridge.wire.server import BridgeServer

log = logging.getLogger("bridge.serve")

DEFAULT_JOURNAL = "bridge-journal.jsonl"
FOLLOW_INTERVAL_S = 1.0  # how often a --news file is checked for growth


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's structured ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each write, not as it was at start: an embedding program (or a test
    runner capturing output) may swap it, and a handler holding the old, closed stream would print errors."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: str = "info") -> None:
    """JSON-lines logging on stderr for the ``bridge`` loggers, through a bounded queue: a stderr nobody reads
    makes the server drop log lines (counted in ``stats`` as ``log_dropped``), never stop serving."""
    root = logging.getLogger("bridge")
    logqueue.install(root, StderrHandler(), JsonLogFormatter())
    root.setLevel(level.upper())
    root.propagate = False
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep what is not the user's business out of the terminal and the JSON log: libraries' FutureWarnings and
    deprecation notices, transformers' and the hub's progress bars and advice."""
    import os
    import warnings

    for category in (FutureWarning, DeprecationWarning, UserWarning):
        for module in ("transformers", "peft", "torch", "huggingface_hub", "onnxruntime", "accelerate"):
            warnings.filterwarnings("ignore", category=category, module=module)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("transformers", "huggingface_hub", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)


class NewsFollower(threading.Thread):
    """Loads a news file, then re-reads it whenever it grows and hands the new items to the server.

    A bad line (an impossible date, a broken quote) is reported with its number once and skipped; the lines after it
    are still read. The thread never dies of a bad file: any failure is logged, counted in ``status()`` (which the
    server's ``stats`` shows) and retried at the next look.
    """

    def __init__(self, server: BridgeServer, path: str | Path, fmt: str = "auto", tz=None):
        super().__init__(name="bridge-news-follower", daemon=True)
        self.server, self.path, self.fmt, self.tz = server, Path(path), fmt, tz
        self.seen: set[str] = set()
        self._sig: tuple[int, int] | None = None
        self.bad_lines: dict[int, str] = {}  # line number -> why, each reported once
        self.failures = 0
        self.last_error = ""
        self.submitted = 0
        server.followers.append(self)

    def status(self) -> dict:
        return {
            "path": str(self.path),
            "alive": self.is_alive(),
            "submitted": self.submitted,
            "bad_lines": len(self.bad_lines),
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def check(self) -> None:
        """Read the file once, so a bad file is a clear error at start. Its items go to the server from the thread
        (``run``): handed over here, before the server serves, a file larger than the bounded intake would wait
        for a reader that has not started."""
        from bridge.news.loading import load_news_report

        load_news_report(self.path, format=self.fmt, tz=self.tz)

    def poll_once(self) -> int:
        """Submit the items not seen yet when the file changed; returns how many were submitted."""
        from bridge.news.loading import load_news_report

        st = self.path.stat()
        sig = (st.st_size, st.st_mtime_ns)
        if sig == self._sig:
            return 0
        items, report = load_news_report(self.path, format=self.fmt, tz=self.tz)
        self._sig = sig
        report.warn()
        for problem in report.problems:
            fresh = [n for n in problem.lines if n not in self.bad_lines]
            for n in fresh:
                self.bad_lines[n] = problem.message
            if fresh:
                log.warning(
                    "news file: lines skipped or repaired",
                    extra={
                        "fields": {"path": str(self.path), "problem": problem.message, "lines": fresh[:20]}
                    },
                )
        new = [it for it in items if it.id not in self.seen]
        for it in new:
            if not self.server.submit(it):
                break
            self.seen.add(it.id)
            self.submitted += 1
        if new:
            log.info("news file read", extra={"fields": {"path": str(self.path), "new": len(new)}})
        return len(new)

    def run(self) -> None:
        while not self.server.stop_event.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the follower must outlive any file; the failure is shown
                # A writer may be half-way through a line; the next look will see the whole file.
                self.failures += 1
                self.last_error = str(exc)
                level = logging.WARNING if isinstance(exc, (UserError, OSError)) else logging.ERROR
                log.log(
                    level,
                    "news file not readable yet",
                    extra={"fields": {"path": str(self.path), "error": str(exc)}},
                    exc_info=level == logging.ERROR,
                )
            if self.server.stop_event.wait(FOLLOW_INTERVAL_S):
                return


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bridge.serve",
        description="Serve news-driven targets to MetaTrader 5 Expert Advisors over ZeroMQ.",
        formatter_class=HelpFormatter,
    )
    net = ap.add_argument_group("sockets")
    net.add_argument("--bind", default=P.DEFAULT_REQUEST_ENDPOINT, help="ROUTER endpoint for EA requests")
    net.add_argument(
        "--pull", default=P.DEFAULT_NEWS_ENDPOINT, help="PULL endpoint for news intake ('' = off)"
    )
    net.add_argument(
        "--pub", default="", help=f"PUB endpoint pushing changed targets, e.g. {P.DEFAULT_PUB_ENDPOINT}"
    )
    net.add_argument(
        "--curve-keys", default=None, help="CURVE key dir (server.key_secret, authorized/); none = plain"
    )
    net.add_argument(
        "--rate-limit",
        type=non_negative_float,
        default=None,
        help=f"requests per second per client (0 = off; default {P.DEFAULT_RATE_LIMIT:g} live, off with --replay, "
        "where the Strategy Tester asks as fast as it simulates)",
    )
    mod = ap.add_argument_group("analysis")
    add_analysis_arguments(mod)
    # Before --model none there was --analyzer surprise; still read, not shown.
    mod.add_argument("--analyzer", choices=("lm", "surprise"), default="lm", help=argparse.SUPPRESS)
    mod.add_argument(
        "--batch-size", type=int, default=P.ANALYSIS_BATCH, help="most news items analysed at once"
    )
    news = ap.add_argument_group("news")
    news.add_argument("--news", default=None, help="headline or calendar file to load and follow as it grows")
    news.add_argument("--replay", default=None, help="historical news file: answer as of each request's time")
    news.add_argument("--news-format", default="auto", help="format of --news/--replay (see bridge.news)")
    news.add_argument(
        "--news-tz", default=None, help="time zone of --news/--replay times (default: the format's)"
    )
    news.add_argument(
        "--journal",
        default=None,
        help=f"journal file ('none' = off; default {DEFAULT_JOURNAL} live, off in replay)",
    )
    add_policy_arguments(ap.add_argument_group("policy"))
    ap.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    ap.add_argument(
        "--status-http",
        default=None,
        metavar="HOST:PORT",
        help="serve a read-only status page and Prometheus /metrics on this loopback address, "
        "e.g. 127.0.0.1:8765 (off by default)",
    )
    return ap


def replay_rate_limit(args: argparse.Namespace) -> float:
    """The per-client rate limit: as given, else off in replay mode and the protocol default live.

    A Strategy Tester run asks once per simulated bar as fast as the tester runs (thousands per second); throttling it
    would leave bars without a target, so replay does not limit unless told to.
    """
    if args.rate_limit is not None:
        return args.rate_limit
    return 0.0 if args.replay else P.DEFAULT_RATE_LIMIT


def build_server(args: argparse.Namespace, analyzer=None, calendar_analyzer=None) -> BridgeServer:
    """Make the server from parsed options; ``analyzer`` overrides ``--model`` (used by tests)."""
    config = policy_from_args(args)
    if args.batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    if args.replay and args.news:
        raise UserError("use either --replay (historical, request clock) or --news (live), not both")
    if analyzer is None:
        model = NO_MODEL if args.analyzer == "surprise" else args.model
        # Live, the surprise rule forgets old history as it goes; a replay analyses old items and keeps it all.
        analyzer, _ = build_analyzer(model, args.backend, live=not args.replay)
    journal = args.journal
    if journal is None:
        journal = None if args.replay else DEFAULT_JOURNAL
    elif journal.lower() in ("", "none"):
        journal = None
    return BridgeServer(
        analyzer,
        calendar_analyzer=calendar_analyzer,
        config=config,
        bind=args.bind,
        pull=args.pull or None,
        pub=args.pub or None,
        journal=journal,
        clock="request" if args.replay else "server",
        curve_keys=args.curve_keys,
        rate_limit=replay_rate_limit(args),
        batch_size=args.batch_size,
    )


def serve(args: argparse.Namespace, analyzer=None, calendar_analyzer=None) -> int:
    """Build, load news, install signal handlers and run until SIGINT/SIGTERM."""
    setup_logging(args.log_level)
    server = build_server(args, analyzer, calendar_analyzer)
    if args.replay:
        from bridge.news.loading import load_news

        items = load_news(args.replay, format=args.news_format, tz=args.news_tz)
        n = server.preload(items, progress=False)  # a progress bar on stderr would mix into the JSON log
        log.info("replay news loaded", extra={"fields": {"path": args.replay, "items": n}})
    server.restore()
    follower = None
    if args.news:
        follower = NewsFollower(server, args.news, args.news_format, args.news_tz)
        follower.check()  # a bad file is reported now, as a clear error, not later in a log
    server.bind()
    status = None
    if args.status_http:
        from bridge.wire.status_page import StatusPage

        server.monitor.wanted = True
        server.monitor.publish(server.stats_dict)
        status = StatusPage(server.monitor.published, args.status_http).start()

    def _stop(signum, _frame):
        log.info("shutting down", extra={"fields": {"signal": signal.Signals(signum).name}})
        server.stop_event.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if follower is not None:
        follower.start()
    try:
        server.serve_forever()
    finally:
        if status is not None:
            status.close()
    return 0


def main(argv=None) -> int:
    """``python -m bridge.serve``."""
    return serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_main(main))
