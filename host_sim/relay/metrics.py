"""Relay counters as Prometheus text at /metrics, and /health, over a small HTTP server;
rate-limited logging (Throttle) and the recent hub answers /health judges (Recent)."""
import collections
import http.server
import threading
import time

_HELP = {
    "relay_up_messages_total": "MQTT requests received, by result",
    "relay_refused_total": "requests refused for good (down status 400), by reason",
    "relay_not_reached_total": "requests answered status 0 without the hub's answer, by reason",
    "relay_hub_answers_total": "hub answers by the firmware classifier's kind and code "
                               "(OICP code of a 2xx, else the HTTP status; 0: unreachable)",
    "relay_hub_requests_total": "requests sent to the hub, by HTTP status (0: unreachable)",
    "relay_hub_seconds_total": "time spent waiting for the hub",
    "relay_down_messages_total": "replies published to chargers",
    "relay_stale_status_total": "EVSE status records not pushed: older than one the hub took "
                                "for that EVSE (same charger journal, lower seq)",
    "relay_queue_depth": "requests waiting in the queue (rate limits, priority)",
    "relay_inflight": "requests at the hub now",
    "relay_mqtt_connected": "1 while connected to the broker",
    "relay_mqtt_connects_total": "connections made to the broker",
    "relay_hub_connects_total": "TCP/TLS connections opened to the hub",
    "relay_chargers_online": "chargers whose last status (cp/<id>/status) is online",
    "relay_remote_commands_total": "Hubject's remote starts/stops answered, by operation and "
                                   "OICP code",
    "relay_remote_seconds_bucket": "remote command answer time (request in to answer out), "
                                   "cumulative buckets",
    "relay_remote_refused_total": "requests to the CPO endpoint refused before any charger "
                                  "(tls, certificate, schema, path, size)",
    "relay_python_heap_blocks": "memory blocks the Python allocator holds (flat: no leak, "
                                "whatever the RSS does)",
}


class Metrics:
    """Thread-safe counters {(name, label tuple): value}; gauges come from callables."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = {}
        self.gauges = {}

    def inc(self, name, n=1, **labels):
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def get(self, name, **labels):
        with self._lock:
            return self.counts.get((name, tuple(sorted(labels.items()))), 0)

    def text(self):
        with self._lock:
            items = sorted(self.counts.items())
        rows = [(n, ls, v) for (n, ls), v in items]
        rows += [(n, (), fn()) for n, fn in sorted(self.gauges.items())]
        out, seen = [], set()
        for name, labels, value in rows:
            if name not in seen:
                seen.add(name)
                kind = "counter" if name.endswith("_total") else "gauge"
                out.append("# HELP %s %s" % (name, _HELP.get(name, name)))
                out.append("# TYPE %s %s" % (name, kind))
            lab = ",".join('%s="%s"' % (k, str(v).replace('"', "'")) for k, v in labels)
            out.append("%s%s %s" % (name, "{%s}" % lab if lab else "", _num(value)))
        return "\n".join(out) + "\n"


def _num(v):
    return ("%.6f" % v).rstrip("0").rstrip(".") if isinstance(v, float) else str(int(v))


class Throttle:
    """log(key, fmt, *args) logs at most once per period_s per key, saying how many were held
    back since. Overflow policy: past cap keys the table is cleared (at worst a line more)."""

    def __init__(self, logger, period_s=60.0, cap=256, clock=time.monotonic):
        self.logger, self.period_s, self.cap, self.clock = logger, period_s, cap, clock
        self._lock = threading.Lock()
        self._last = {}  # key -> [time logged, held back since]

    def log(self, key, fmt, *args, **kw):
        now = self.clock()
        with self._lock:
            seen = self._last.get(key)
            if seen is not None and now - seen[0] < self.period_s:
                seen[1] += 1
                return
            if len(self._last) >= self.cap:
                self._last.clear()
            held = seen[1] if seen else 0
            self._last[key] = [now, 0]
        if held:
            fmt += " (and %d more like it in the last %.0f s)" % (held, self.period_s)
        self.logger.warning(fmt, *args, **kw)


class Recent:
    """The last n hub answers and when; problem() names it when the recent ones are mostly
    failures: at least `least` answers in the last window_s, a share >= `share` of them bad."""

    def __init__(self, n=50, window_s=300.0, share=0.8, least=10, clock=time.monotonic):
        self.window_s, self.share, self.least, self.clock = window_s, share, least, clock
        self._q = collections.deque(maxlen=n)
        self._lock = threading.Lock()

    def add(self, bad, why):
        with self._lock:
            self._q.append((self.clock(), bad, why))

    def problem(self):
        now = self.clock()
        with self._lock:
            recent = [(b, w) for t, b, w in self._q if now - t <= self.window_s]
        bad = [w for b, w in recent if b]
        if len(recent) < self.least or len(bad) < self.share * len(recent):
            return ""
        return ("hub: %d of the last %d answers (within %.0f s) failed or were not the hub's; "
                "last: %s" % (len(bad), len(recent), self.window_s, bad[-1]))


class Server:
    """GET /metrics (Prometheus text 0.0.4) and /health (200 "ok" or 503 with the reason)."""

    def __init__(self, metrics, health, host, port):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/metrics":
                    code, body = 200, metrics.text()
                    ctype = "text/plain; version=0.0.4; charset=utf-8"
                elif self.path == "/health":
                    problem = health()
                    code, body = (503, problem + "\n") if problem else (200, "ok\n")
                    ctype = "text/plain; charset=utf-8"
                else:
                    code, body, ctype = 404, "try /metrics or /health\n", "text/plain"
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass  # scrapes every few seconds would drown the relay's own log

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       name="relay-metrics")

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
