"""The uplinks' results: an answer sorted by whose it is, and the one retry delay (the link,
the MQTT client and the board's Wi-Fi)."""
from micropython import const

from cpagent.oicp import replies as oicp_replies

_RAND_MAX = const(65535)  # rand(2): 4 hex digits
_MAX_SHIFT = const(16)  # base << 16 is past any cap: the shift stays a small int


def classify(path, status, data, after_ms=0, error=None, ctype=None):
    """The answer to a POST of `path` -> Result; both uplinks and the relay sort with this.

    Only the hub's own answer can refuse a message: a 2xx with an OICP body, or an HTTP error
    whose body is the hub's error form (oicp_replies.hub_fault). Anything else (an HTML or
    empty 404 from a proxy, a 502 from a load balancer, a redirect, a 2xx that is not OICP) is
    ("nothub", reason, ms): the path to the hub is wrong or down, retried like a hub outage.
    408 and 429 are retried whatever their body. From the relay: status 0 with its error text,
    the hub was not reached or did not give its own answer (retried); a status with an error
    text, the relay's own refusal of the envelope (4xx: a retry does not change it)."""
    if not status:
        return "retry", "relay: %s" % error if error else "hub not reached", after_ms
    if error:
        retry = status in (408, 429) or status >= 500
        return "retry" if retry else "fail", "relay: %s" % error, after_ms if retry else 0
    if 200 <= status < 300:
        try:
            r = (oicp_replies.parse_authorization if "/authorize/" in path
                 else oicp_replies.parse_acknowledgement)(data)
        except ValueError as e:
            return "nothub", "not the hub's answer: HTTP %d: %s" % (status, e), 0
        if r.ok:
            return "ok", r, 0
        kind = oicp_replies.classify(r.code)
        # 000 with Result false or NotAuthorized: a plain no, which a retry does not change.
        return "fail" if kind == "ok" else kind, "%s %s" % (r.code, r.description), 0
    reason = oicp_replies.parse_http_error(status, data, ctype)
    # "hold": the hub's answer about this message (its 408, or a 5xx in its error form); it
    # holds back only the message's session, unless a Retry-After asks the whole link to wait.
    hold = "retry" if after_ms else "hold"
    if status in (408, 429):
        return hold if status == 408 else "retry", reason, after_ms
    code = oicp_replies.hub_fault(data)
    if code is None:
        return "nothub", "not the hub's answer: " + reason, after_ms
    if status >= 500:
        return hold, reason, after_ms
    kind = oicp_replies.classify(code) if code else "fail"
    return "fail" if kind == "ok" else kind, reason, after_ms if kind == "retry" else 0


def delay(n, base_ms, cap_ms, rand=None, part=1):
    """The wait in ms before retry n (0: the first): a ceiling of base_ms * 2**n, stopped at
    cap_ms. With rand (board.rand_hex) its last 1/part is random, so that chargers cut off
    together do not come back together: part 1 is full jitter, 2 half fixed and half random.
    Without rand: the ceiling."""
    c = min(cap_ms, base_ms << min(n, _MAX_SHIFT))
    if rand is None:
        return c
    r = c // part
    return c - r + int(rand(2), 16) * r // _RAND_MAX
