"""HTTPS to the hub: mutual TLS, a small pool of kept-alive connections, bounded retries.

http.client with one blocking connection per forwarding worker: paho-mqtt already runs its own
thread, the hub's answer is what a worker waits for, and a pool of N connections bounds the
requests in flight at the hub to N without an event loop to bridge to.
Retries happen only where the request cannot have reached the hub, or most likely did not:
a refused or failed connect, and a kept-alive connection found closed when reused (the hub's
idle timeout), which is retried at once on a new connection. Anything else (timeout, reset
mid-reply) is reported as unreachable (status 0) and the charger retries later with the same
message id: the hub answers a byte-identical repeat of a notification or CDR as the first.
"""
import http.client
import json
import queue
import socket
import ssl
import time


class Unreachable(Exception):
    pass


class Reply:
    __slots__ = ("status", "body", "retry_after", "error")

    def __init__(self, status, body, retry_after=None, error=None):
        self.status, self.body, self.retry_after, self.error = status, body, retry_after, error


def _retry_after(value):
    # Seconds only; an HTTP date is rare from an API and is dropped rather than guessed.
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if 0 <= n <= 86400 else None


class Hub:
    MAX_REPLY = 1 << 20

    def __init__(self, cfg, sleep=time.sleep):
        self.cfg, self.sleep = cfg, sleep
        self.ctx = None
        if cfg["scheme"] == "https":
            self.ctx = ssl.create_default_context(cafile=cfg["ca"])
            self.ctx.load_cert_chain(cfg["cert"], cfg["key"])
        self.pool = queue.LifoQueue(cfg["connections"])
        for _ in range(cfg["connections"]):
            self.pool.put(None)
        self.connects = 0

    def _connect(self):
        self.connects += 1
        host, port, t = self.cfg["host"], self.cfg["port"], self.cfg["timeout_s"]
        if self.ctx is None:
            return http.client.HTTPConnection(host, port, timeout=t)
        return http.client.HTTPSConnection(host, port, timeout=t, context=self.ctx)

    def post(self, path, data):
        """Reply from the hub, or raises Unreachable naming why."""
        conn = self.pool.get()
        try:
            conn, reply = self._post(conn, self.cfg["prefix"] + path, data)
            return reply
        except BaseException:
            conn = None  # closed by _post; the next request connects anew
            raise
        finally:
            self.pool.put(conn)

    def _post(self, conn, path, data):
        attempt, delay = 0, 0.2
        while True:
            reused = conn is not None
            conn = conn or self._connect()
            try:
                conn.request("POST", path, data, {"Content-Type": "application/json",
                                                  "Accept": "application/json"})
                resp = conn.getresponse()
                raw = resp.read(self.MAX_REPLY + 1)
            except (ConnectionRefusedError, socket.gaierror, ssl.SSLError) as e:
                conn.close()
                conn = None
                if attempt >= self.cfg["retries"]:
                    raise Unreachable("hub %s unreachable: %s" % (self.cfg["url"], _why(e)))
                attempt += 1
                self.sleep(delay)
                delay *= 2
                continue
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as e:
                conn.close()
                conn = None
                if reused:
                    continue  # the hub closed an idle kept-alive connection: once more, fresh
                raise Unreachable("hub %s closed the connection: %s" % (self.cfg["url"], _why(e)))
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise Unreachable("hub %s: %s" % (self.cfg["url"], _why(e)))
            if resp.will_close:
                conn.close()
                conn = None
            return conn, self._reply(resp, raw)

    def _reply(self, resp, raw):
        ra = _retry_after(resp.getheader("Retry-After"))
        if len(raw) > self.MAX_REPLY:
            return Reply(resp.status, None, ra, "hub reply over %d bytes" % self.MAX_REPLY)
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            return Reply(resp.status, None, ra, "hub reply is not JSON (%d bytes)" % len(raw))
        return Reply(resp.status, body, ra)

    def close(self):
        while True:
            try:
                conn = self.pool.get_nowait()
            except queue.Empty:
                return
            if conn is not None:
                conn.close()


def _why(e):
    return "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
