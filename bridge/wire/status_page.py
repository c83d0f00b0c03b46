"""A small read-only status page over HTTP on loopback: ``/`` (HTML, refreshes itself), ``/stats.json`` (what the
``stats`` request returns) and ``/metrics`` (Prometheus text format, version 0.0.4).

Off by default; ``python -m bridge.serve --status-http 127.0.0.1:8765`` turns it on. It serves only GET and HEAD,
binds only to a loopback address (it has no authentication), and reads the snapshot the server thread publishes
once a second (``bridge.wire.monitor``), so it never touches the server's state itself.
"""

from __future__ import annotations

import html
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bridge.errors import UserError

log = logging.getLogger("bridge.wire.status_page")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
REFRESH_S = 5
# Counters (only ever grow) and gauges of the stats dict exported to /metrics, with their help lines.
COUNTERS = {
    "requests": "requests answered",
    "errors": "requests answered with an error",
    "rate_limited": "requests refused by the rate limit",
    "news_accepted": "news items accepted",
    "news_duplicate": "news items refused as duplicates",
    "news_analysed": "news items analysed",
    "analysis_fallbacks": "analyses that fell back to neutral",
    "analysis_errors": "analyses whose analyzer raised",
    "intake_errors": "news intake messages refused",
    "published": "targets published",
}
GAUGES = {
    "uptime_s": "seconds since the server started",
    "clients": "clients seen",
    "symbols": "symbols watched",
}


def parse_address(text: str) -> tuple[str, int]:
    """``127.0.0.1:8765`` -> (host, port); only loopback hosts are accepted."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"--status-http {text!r} is not HOST:PORT", hint="e.g. --status-http 127.0.0.1:8765")
    if host not in LOOPBACK and not host.startswith("127."):
        raise UserError(
            f"--status-http {text!r}: the status page has no authentication and binds to loopback only",
            hint="use 127.0.0.1:PORT and an SSH tunnel or a reverse proxy to see it from elsewhere",
        )
    return host, int(port)


def _metric_name(key: str) -> str:
    return "ea_bridge_" + "".join(c if c.isalnum() else "_" for c in key)


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(stats: dict) -> str:
    """The stats dict in Prometheus text format: counters, gauges, queue depths, latency quantiles, targets."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {float(v):g}" for labels, v in samples)

    for key, help_ in COUNTERS.items():
        if isinstance(stats.get(key), int | float):
            metric(_metric_name(key) + "_total", "counter", help_, [("", stats[key])])
    for key, help_ in GAUGES.items():
        if isinstance(stats.get(key), int | float):
            metric(_metric_name(key), "gauge", help_, [("", stats[key])])
    queues = stats.get("queues") or {}
    if queues:
        metric(
            "ea_bridge_queue_depth",
            "gauge",
            "items waiting, by queue",
            [(f'{{queue="{_label(k)}"}}', v) for k, v in queues.items()],
        )
    lat = stats.get("analysis_latency_ms") or {}
    if lat.get("n"):
        samples = [
            (f'{{quantile="{q}"}}', lat[k]) for q, k in (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))
        ]
        metric("ea_bridge_analysis_latency_ms", "summary", "analysis time per item, milliseconds", samples)
        lines.append(f"ea_bridge_analysis_latency_ms_count {lat['n']}")
    targets = stats.get("targets") or {}
    if targets:
        metric(
            "ea_bridge_target_direction",
            "gauge",
            "current target per symbol (-1 short, 0 flat, 1 long)",
            [(f'{{symbol="{_label(s)}"}}', t["direction"]) for s, t in targets.items()],
        )
        metric(
            "ea_bridge_target_strength",
            "gauge",
            "strength of the current target",
            [(f'{{symbol="{_label(s)}"}}', t["strength"]) for s, t in targets.items()],
        )
    return "\n".join(lines) + "\n"


def status_html(stats: dict) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(str(k))}</td><td>{esc(str(v))}</td></tr>"
        for k, v in stats.items()
        if not isinstance(v, dict | list)
    )
    targets = "".join(
        f"<tr><td>{esc(s)}</td><td>{t['direction']:+d}</td><td>{t['strength']:.2f}</td>"
        f"<td>{esc(str(t['expires'] or ''))}</td><td>{'<br>'.join(esc(r) for r in t['reasons'])}</td></tr>"
        for s, t in (stats.get("targets") or {}).items()
    )
    recent = "".join(
        f"<tr><td>{esc(a['time'])}</td><td>{a['level']:+d}</td><td>{a['confidence']:.2f}</td>"
        f"<td>{esc(a['analyzer'])}</td><td>{esc(a['headline'])}</td></tr>"
        for a in reversed(stats.get("recent_analyses") or [])
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='{REFRESH_S}'>"
        "<title>EA Bridge status</title><style>body{font-family:system-ui,sans-serif;margin:1em}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;font-size:13px}</style></head><body>"
        "<h1>EA Bridge status</h1>"
        f"<h2>Targets</h2><table><tr><th>symbol</th><th>direction</th><th>strength</th><th>expires</th>"
        f"<th>reasons</th></tr>{targets}</table>"
        f"<h2>Last analyses</h2><table><tr><th>time</th><th>level</th><th>conf</th><th>analyzer</th>"
        f"<th>headline</th></tr>{recent}</table>"
        f"<h2>Counters</h2><table>{rows}</table>"
        f"<p>queues: {esc(json.dumps(stats.get('queues', {})))}; analysis latency ms: "
        f"{esc(json.dumps(stats.get('analysis_latency_ms', {})))}</p>"
        "<p><a href='/stats.json'>stats.json</a> &middot; <a href='/metrics'>metrics</a></p></body></html>"
    )


class StatusPage:
    """The HTTP server in a daemon thread; ``snapshot`` returns the latest stats dict (never blocks)."""

    def __init__(self, snapshot: Callable[[], dict], address: str):
        host, port = parse_address(address)
        self.snapshot = snapshot
        page = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "ea-bridge-status"

            def do_GET(self):  # noqa: N802 (the stdlib's name)
                page._answer(self, body=True)

            def do_HEAD(self):  # noqa: N802
                page._answer(self, body=False)

            def log_message(self, format, *args):  # the JSON log carries requests at debug level only
                log.debug("http " + format % args)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            self.httpd = Server((host, port), Handler)
        except OSError as exc:
            raise UserError(
                f"cannot serve the status page on {address}: {exc}", hint="choose another port"
            ) from None
        self.address = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="bridge-status-http", daemon=True
        )

    def start(self) -> StatusPage:
        self._thread.start()
        log.info("status page", extra={"fields": {"url": self.address}})
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = handler.path.split("?", 1)[0]
        stats = self.snapshot() or {}
        if path == "/":
            data, kind = status_html(stats).encode(), "text/html; charset=utf-8"
        elif path == "/stats.json":
            data, kind = json.dumps(stats, default=str).encode(), "application/json"
        elif path == "/metrics":
            data, kind = metrics_text(stats).encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            data, kind = b"not found\n", "text/plain; charset=utf-8"
            handler.send_response(404)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if body:
                handler.wfile.write(data)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        if body:
            handler.wfile.write(data)
