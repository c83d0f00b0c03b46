"""Reference client: the Lazy Pirate pattern of the ZeroMQ guide.

Lazy Pirate (``lpclient``): send on a REQ socket, poll for the reply with a timeout; on timeout close the socket with
linger 0, open a new one, send again; after ``retries`` attempts report the server down. Requests are idempotent on
the server side (a ``signal`` reply is a target, a repeated ``news`` item is a recognised duplicate), so resending is
always safe. The MQL5 client in ``mql5/`` mirrors this class step for step, with the same constants.

Commands (``python -m bridge.client --help``)::

    python -m bridge.client ping
    python -m bridge.client signal EURUSD
    python -m bridge.client push-news "ECB raises rates" --currency EUR
    python -m bridge.client stats
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import zmq

from bridge.cli import HelpFormatter
from bridge.errors import UserError, run_main
from bridge.wire import protocol as P


class ServerDown(UserError):
    """No reply after every retry: the server is down or unreachable."""

    exit_code = 5


class LazyPirateClient:
    """A REQ client that survives server restarts: poll with timeout, close and reopen, retry, then give up."""

    def __init__(
        self,
        endpoint: str = P.DEFAULT_REQUEST_ENDPOINT,
        timeout_ms: int = P.REQUEST_TIMEOUT_MS,
        retries: int = P.REQUEST_RETRIES,
        curve: tuple[bytes, bytes, bytes] | None = None,
        context: zmq.Context | None = None,
        client_name: str = "bridge.client",
    ):
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.curve = curve  # (server public, client public, client secret)
        self.ctx = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{id(self) & 0xFFFF:x}"
        self.client_name = client_name
        self.reconnects = 0
        self.socket: zmq.Socket | None = None
        self._open()

    def _open(self) -> None:
        sock = self.ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, P.SOCKET_MAX_MESSAGE_BYTES)
        # A REQ send blocks while the socket has no pipe to a peer, as when a server refuses the handshake (CURVE
        # against plain) and tears the connection down: bounded, it is one failed attempt like a lost reply.
        sock.sndtimeo = self.timeout_ms
        if self.curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.curve
        sock.connect(self.endpoint)
        self.socket = sock

    def _reopen(self) -> None:
        # The guide's recipe: a REQ socket that missed its reply is stuck; throw it away (linger 0) and start over.
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.close()
        self.reconnects += 1
        self._open()

    def next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def request(self, msg: dict) -> dict:
        """Send ``msg`` (``v`` and ``id`` filled in when missing) and return the reply; raise ``ServerDown``."""
        msg = {"v": P.PROTOCOL_VERSION, **msg}
        msg.setdefault("id", self.next_id())
        data = P.encode(msg)
        for attempt in range(1, self.retries + 1):
            try:
                self.socket.send(data)
            except zmq.Again:  # no peer took it within the timeout
                sent = False
            else:
                sent = True
            if sent and self.socket.poll(self.timeout_ms, zmq.POLLIN):
                reply = json.loads(self.socket.recv())
                if reply.get("id") == msg["id"] or (reply.get("type") == P.ERROR and reply.get("id") is None):
                    return reply
                # A reply to an earlier request cannot arrive on a fresh REQ socket; treat a mismatch as lost.
            if attempt < self.retries:
                self._reopen()
        self._reopen()
        raise ServerDown(
            f"no reply from {self.endpoint} after {self.retries} attempts of {self.timeout_ms} ms",
            hint="is python -m bridge.serve running there, and are the CURVE keys right?",
        )

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None

    def __enter__(self) -> LazyPirateClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Convenience wrappers, one per request type.
    def hello(self, symbols=(), account: int | str = 0) -> dict:
        return self.request(
            {"type": P.HELLO, "client": self.client_name, "account": account, "symbols": list(symbols)}
        )

    def signal(
        self, symbol: str, ea_time: int | None = None, utc_offset: int = 0, position: dict | None = None
    ) -> dict:
        t = int(time.time()) + utc_offset if ea_time is None else int(ea_time)
        msg = {"type": P.SIGNAL, "symbol": symbol, "time": t, "utc_offset": int(utc_offset)}
        if position is not None:
            msg["position"] = position
        return self.request(msg)

    def news(self, headline: str, **fields) -> dict:
        return self.request(
            {"type": P.NEWS, "headline": headline, **{k: v for k, v in fields.items() if v is not None}}
        )

    def ping(self) -> dict:
        return self.request({"type": P.PING})

    def stats(self) -> dict:
        return self.request({"type": P.STATS})


def _curve_from_args(args) -> tuple[bytes, bytes, bytes] | None:
    if not args.server_key:
        return None
    import zmq.auth

    if not args.client_key:
        raise UserError("--server-key needs --client-key (this client's NAME.key_secret)")
    for path in (args.server_key, args.client_key):
        if not Path(path).is_file():
            raise UserError(
                "key file not found", path=path, hint="create keys with python -m bridge.keys generate"
            )
    server_public, _ = zmq.auth.load_certificate(args.server_key)
    public, secret = zmq.auth.load_certificate(args.client_key)
    if not secret:
        raise UserError("this file holds no secret key", path=args.client_key, hint="pass NAME.key_secret")
    return server_public, public, secret


def main(argv=None) -> int:
    """``python -m bridge.client``: talk to a running server."""
    ap = argparse.ArgumentParser(
        prog="python -m bridge.client",
        description="Talk to a running bridge server (Lazy Pirate: retries, then reports the server down).",
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--server", default=P.DEFAULT_REQUEST_ENDPOINT, help="request endpoint of the server")
    ap.add_argument(
        "--timeout-ms", type=int, default=P.REQUEST_TIMEOUT_MS, help="wait this long for each reply"
    )
    ap.add_argument(
        "--retries", type=int, default=P.REQUEST_RETRIES, help="attempts before reporting the server down"
    )
    ap.add_argument("--server-key", default=None, help="server public key file (CURVE); none = plain TCP")
    ap.add_argument(
        "--client-key", default=None, help="this client's secret key file NAME.key_secret (CURVE)"
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("ping", help="check the server answers")
    sub.add_parser("stats", help="print the server's counters")
    sp = sub.add_parser("signal", help="ask for the current target of a symbol")
    sp.add_argument("symbol")
    sp.add_argument(
        "--time", type=int, default=None, help="EA server time, seconds since 1970 (default: now)"
    )
    sp.add_argument("--utc-offset", type=int, default=0, help="seconds the EA's clock is ahead of UTC")
    np_ = sub.add_parser("push-news", help="send a news headline to the server")
    np_.add_argument("headline")
    np_.add_argument("--currency", default=None, help="3-letter currency the news is about, e.g. EUR")
    np_.add_argument("--source", default="cli", help="source name (part of the news id)")
    np_.add_argument("--time", type=int, default=None, help="publication time, UTC seconds (default: now)")
    np_.add_argument("--actual", type=float, default=None)
    np_.add_argument("--forecast", type=float, default=None)
    np_.add_argument("--previous", type=float, default=None)
    np_.add_argument("--event", default=None, help="calendar indicator name")
    args = ap.parse_args(argv)
    if args.timeout_ms <= 0 or args.retries <= 0:
        raise UserError("--timeout-ms and --retries must be > 0")
    with LazyPirateClient(args.server, args.timeout_ms, args.retries, _curve_from_args(args)) as client:
        if args.command == "ping":
            rep = client.ping()
        elif args.command == "stats":
            rep = client.stats()
        elif args.command == "signal":
            rep = client.signal(args.symbol, args.time, args.utc_offset)
        else:
            rep = client.news(
                args.headline,
                currency=args.currency,
                source=args.source,
                # Always a time: without one the server derives the id from the content, but a resend of a
                # headline an hour later is then a duplicate too; the time the user pushed it is the better id.
                time=args.time if args.time is not None else int(time.time()),
                utc_offset=0,
                actual=args.actual,
                forecast=args.forecast,
                previous=args.previous,
                event=args.event,
            )
    print(json.dumps(rep, indent=2, ensure_ascii=False))
    return 1 if rep.get("type") == P.ERROR else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
