"""MQTT 3.1.1 packets, sans-IO: builders, and a stream parser over one preallocated buffer."""
from micropython import const

CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBACK = const(9)
PINGRESP = const(13)
MAX_PAYLOAD = const(8192)  # an envelope is at most 8 KB: a bigger PUBLISH is refused both ways
_CAP = const(8448)  # the parser's buffer: payload + topic + ids + fixed header
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"
# CONNACK return codes 0..5 (MQTT 3.1.1 3.2.2.3)
REFUSED = ("accepted", "unacceptable protocol version", "identifier rejected",
           "server unavailable", "bad user name or password", "not authorized")
# (type, remaining length after the fixed header) of each broker packet; PUBLISH varies.
# A const tuple, not a dict: kept in flash when frozen, nothing built at import.
_SIZES = const(((CONNACK, 2), (PUBACK, 2), (SUBACK, 3), (PINGRESP, 0)))


class MqttError(ValueError):
    """Bytes that are not MQTT 3.1.1 as this client reads them; the message names the part."""


def next_pid(pid):
    """Packet ids run 1..65535 and wrap to 1, never 0 (MQTT-2.3.1-1; umqtt's never wraps)."""
    return pid % 65535 + 1


def _u16(n):
    return bytes((n >> 8 & 255, n & 255))


def _str(s):
    s = s.encode() if isinstance(s, str) else s
    return _u16(len(s)) + s


def vbi(n):
    """Remaining length -> 1..4 bytes of 7 bits, low first, top bit 'more' (MQTT 2.2.3)."""
    if not 0 <= n <= 268435455:
        raise MqttError("remaining length: %d over 4 bytes" % n)
    out = bytearray()
    while True:
        out.append(n & 127 | (128 if n > 127 else 0))
        n >>= 7
        if not n:
            return out


def packet(first, body):
    """Fixed header (type and flags byte, remaining length) + body, as a bytearray."""
    out = bytearray((first,))
    out += vbi(len(body))
    out += body
    return out


def connect(client_id, keepalive_s, user=None, password=None, will=None, clean=False):
    """CONNECT; will = (topic, message), published retained with QoS 1 if the link dies.
    A password goes only with a user name (MQTT-3.1.2-22)."""
    flags = (2 if clean else 0) | (0x2C if will else 0)
    tail = _str(will[0]) + _str(will[1]) if will else b""
    if user is not None:
        flags |= 0x80
        tail += _str(user)
        if password is not None:
            flags |= 0x40
            tail += _str(password)
    return packet(0x10, b"\x00\x04MQTT\x04" + bytes((flags,)) + _u16(keepalive_s)
                  + _str(client_id) + tail)


def publish(topic, payload, qos=0, pid=0, retain=False, dup=False):
    if len(payload) > MAX_PAYLOAD:
        raise MqttError("PUBLISH payload: %d bytes, at most %d" % (len(payload), MAX_PAYLOAD))
    return packet(0x30 | (8 if dup else 0) | qos << 1 | (1 if retain else 0),
                  _str(topic) + (_u16(pid) if qos else b"") + payload)


def puback(pid):
    return b"\x40\x02" + _u16(pid)


def subscribe(pid, topic, qos=1):
    return packet(0x82, _u16(pid) + _str(topic) + bytes((qos,)))


class Parser:
    """feed(bytes) at most room() at a time, then next() until None. next() returns
    (CONNACK, session_present, code), (PUBLISH, topic bytes, payload, qos, pid, retain),
    (PUBACK, pid), (SUBACK, pid, code: 0x80 failure) or (PINGRESP,); MqttError names what
    was wrong (then reset() before the next connection)."""

    def __init__(self):
        self._b = bytearray(_CAP)  # once: no late large allocation on a fragmented heap
        self._n = 0

    def reset(self):
        self._n = 0

    def room(self):
        return _CAP - self._n

    def feed(self, data):
        n = self._n
        if len(data) > _CAP - n:
            raise MqttError("parser: room for %d bytes" % (_CAP - n))
        self._b[n:n + len(data)] = data
        self._n = n + len(data)

    def next(self):
        b, n = self._b, self._n
        x = s = 0
        i = 1
        while True:
            if i >= n:
                return None
            c = b[i]
            i += 1
            x |= (c & 127) << s
            if c < 128:
                break
            s += 7
            if s > 21:
                raise MqttError("remaining length: more than 4 bytes")
        t, f, end = b[0] >> 4, b[0] & 15, i + x
        if end > _CAP:
            raise MqttError("packet type %d: %d bytes, over %d" % (t, x, _CAP - i))
        if end > n:
            return None
        body = bytes(b[i:end])  # a copy: the buffer is reused
        b[:n - end] = b[end:n]
        self._n = n - end
        if t == PUBLISH:
            q = f >> 1 & 3
            k = 2 + (body[0] << 8 | body[1]) if x > 1 else 2
            pid = body[k] << 8 | body[k + 1] if q and x >= k + 2 else 0
            if q > 1 or k > x or q and not pid:
                raise MqttError("PUBLISH: expected QoS 0/1, topic, id 1..65535 (flags %d)" % f)
            return PUBLISH, body[2:k], body[k + (2 if q else 0):], q, pid, f & 1
        if (t, x) not in _SIZES or f:
            raise MqttError("packet type %d: unexpected (%d bytes, flags %d)" % (t, x, f))
        if t == CONNACK:
            return t, body[0] & 1, body[1]
        if t == PINGRESP:
            return (t,)
        return (t, body[0] << 8 | body[1]) + ((body[2],) if t == SUBACK else ())
