"""Relay counters as Prometheus text at /metrics, and /health, over a small HTTP server."""
import http.server
import threading

_HELP = {
    "relay_up_messages_total": "MQTT requests received, by result",
    "relay_refused_total": "requests refused for good (down status 400), by reason",
    "relay_hub_requests_total": "requests sent to the hub, by HTTP status (0: unreachable)",
    "relay_hub_seconds_total": "time spent waiting for the hub",
    "relay_down_messages_total": "replies published to chargers",
    "relay_queue_depth": "requests waiting in the queue (rate limits, priority)",
    "relay_inflight": "requests at the hub now",
    "relay_mqtt_connected": "1 while connected to the broker",
    "relay_mqtt_connects_total": "connections made to the broker",
    "relay_hub_connects_total": "TCP/TLS connections opened to the hub",
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
