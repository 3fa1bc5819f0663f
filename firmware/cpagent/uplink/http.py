"""Direct OICP uplink: POST to the hub with HttpClient; answers sorted by whose they are."""
from micropython import const

from cpagent.clock import unix_from_http_date
from cpagent.oicp import build as oicp
from cpagent.uplink.http_client import HttpClient
from cpagent.uplink.result import classify

_MAX_RETRY_AFTER_S = const(3600)  # a longer Retry-After is clipped: the link must come back
_DIGITS = const("0123456789")


def parse_url(url):
    """'http[s]://host[:port][/base]' -> (tls, host, port, base without a trailing '/')."""
    tls = url[:8] == "https://"
    if not tls and url[:7] != "http://":
        raise ValueError("uplink.url: expected http:// or https://, got %r" % url[:40])
    rest = url[8 if tls else 7:]
    i = rest.find("/")
    hostport, base = (rest, "") if i < 0 else (rest[:i], rest[i:].rstrip("/"))
    j = hostport.rfind(":")
    host, port = hostport, (443 if tls else 80)
    if j > hostport.rfind("]"):  # a ':' after any IPv6 brackets starts the port
        host, p = hostport[:j], hostport[j + 1:]
        if not p or p.strip(_DIGITS) or not 0 < int(p) < 65536:
            raise ValueError("uplink.url: expected a port 1..65535, got %r" % p[:8])
        port = int(p)
    if host[:1] == "[":
        host = host[1:-1]
    if not host:
        raise ValueError("uplink.url: expected a host name, got %r" % url[:40])
    return tls, host, port, base


def join_path(base, path):
    """A hub URL's path (no trailing '/') + an OICP path, the segments they share said once:
    '/api/oicp' + '/api/oicp/x' and '/hub/api/oicp' + '/api/oicp/x' -> ... '/api/oicp/x',
    '/hub' + '/api/oicp/x' -> '/hub/api/oicp/x'. The one rule of the firmware, the relay and
    the simulator."""
    i = base.find("/")
    while i >= 0:  # leftmost first: the longest suffix of base that path starts with
        tail = base[i:]
        if path == tail or path[:len(tail) + 1] == tail + "/":
            return base[:i] + path
        i = base.find("/", i + 1)
    return base + path


class HttpUplink:
    """HttpUplink(cfg["uplink"], board.connect, ms[, log]); `await send(path, body, msg_id=None)`
    -> Result (msg_id: for the MQTT uplink's envelope; HTTP has no use for it).

    Result is (kind, value, retry_after_ms): ("ok", Reply, 0), ("retry", reason, ms),
    ("hold", reason, 0) (a retry about this message only: see classify), ("nothub", reason, ms)
    (an answer that is not the hub's), ("fail", reason, 0) or ("stop", reason, 0). Never raises
    but for cancellation.
    `last_ms` is the last round trip.
    """

    def __init__(self, cfg, connect, ms, log=None):
        tls, host, port, self.base = parse_url(cfg["url"])
        self.http = HttpClient(connect, host, port, tls, cfg.get("timeout_s", 20) * 1000)
        self._ms = ms
        self.last_ms = None
        if tls and cfg.get("insecure"):
            # Said at every boot, so an insecure charger cannot go unnoticed in the field.
            text = ("uplink.insecure: the hub's certificate is NOT verified (a test setting: "
                    "anyone on the path can read and forge traffic)")
            if log:
                log(1, text)
            else:
                print("WARNING " + text)

    async def send(self, path, body, msg_id=None):
        path = join_path(self.base, path)
        try:
            body = oicp.encode(body)
        except ValueError as e:
            return "fail", "not sendable: %s" % (e,), 0
        t0 = self._ms()
        try:
            status, hdr, data = await self.http.post(path, body)
        except OSError as e:
            return "retry", "hub unreachable: %s" % (e,), 0
        except ValueError as e:  # HttpError
            return "retry", "garbage reply: %s" % (e,), 0
        self.last_ms = self._ms() - t0
        return classify(path, status, data, _after(hdr.get("retry-after"), hdr.get("date")),
                        None, hdr.get("content-type"))


def _after(v, date):
    """Retry-After in seconds, or an HTTP date taken against the same reply's Date -> ms."""
    if not v:
        return 0
    if not v.strip(_DIGITS):
        s = int(v)
    else:
        try:
            s = unix_from_http_date(v) - unix_from_http_date(date)
        except ValueError:
            return 0  # unreadable, or no Date to measure it from: plain backoff
    return max(0, min(s, _MAX_RETRY_AFTER_S)) * 1000
