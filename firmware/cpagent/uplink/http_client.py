"""HTTP/1.1 JSON POST over one keep-alive connection from board.connect(): every wait bounded."""
import asyncio

from micropython import const

_MAX_LINE = const(512)  # status and header lines; longer: the reply is refused
_MAX_HEADERS = const(32)  # more header lines: the reply is refused
MAX_BODY = const(16384)  # bigger bodies are refused (OICP replies are a few hundred bytes)
_CHUNK = const(1024)  # one read


class HttpError(ValueError):
    """The reply is not HTTP/1.x as this client reads it; the message names the part."""


class HttpClient:
    """One connection, owned by one task: `await post(path, body)` -> (status, headers, body).

    Raises OSError (connect, timeout, reset, closed mid-reply) or HttpError; either closes the
    connection, and the next post opens a new one.
    """

    def __init__(self, connect, host, port, tls, timeout_ms):
        self._connect = connect
        self.host, self.port, self.tls = host, port, tls
        self._t = timeout_ms / 1000
        self._r = self._w = None
        self._in = b""
        self._got = False  # a byte of the reply arrived
        # Host carries the port unless it is the scheme's default (RFC 9110 7.2).
        self._host = host if port == (443 if tls else 80) else "%s:%d" % (host, port)

    def close(self):
        w, self._r, self._w = self._w, None, None
        if w:
            try:
                w.close()
            except OSError:
                pass  # already dead: nothing to release

    async def post(self, path, body, headers=None):
        head = "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" \
               "Content-Length: %d\r\nConnection: keep-alive\r\n" % (path, self._host, len(body))
        for k in headers or ():
            head += "%s: %s\r\n" % (k, headers[k])
        head = (head + "\r\n").encode()
        retry = self._w is not None
        while True:
            if self._w is None:
                try:
                    self._r, self._w = await asyncio.wait_for(
                        self._connect(self.host, self.port, self.tls), self._t)
                except asyncio.TimeoutError:
                    raise OSError("connect to %s: no answer in %d ms"
                                  % (self._host, self._t * 1000))
            self._in, self._got = b"", False
            try:
                return await asyncio.wait_for(self._exchange(head, body), self._t)
            except asyncio.TimeoutError:
                self.close()
                raise OSError("%s: no complete reply in %d ms" % (self._host, self._t * 1000))
            except (EOFError, OSError) as e:
                self.close()
                # A kept-alive connection the server dropped while idle: send again, once,
                # if not a byte of the reply came (a fresh connection failing is the answer).
                if self._got or not retry:
                    raise OSError("%s: %s" % (self._host, "connection closed" if
                                  isinstance(e, EOFError) else e))
                retry = False
            except BaseException:  # HttpError, or cancelled: the stream's state is unknown
                self.close()
                raise

    async def _exchange(self, head, body):
        self._w.write(head)
        self._w.write(body)
        await self._w.drain()
        line = await self._line("status line")
        p = line.split(" ", 2)
        if len(p) < 2 or p[0][:7] != "HTTP/1." or len(p[1]) != 3 or p[1].strip("0123456789"):
            raise HttpError("status line: expected 'HTTP/1.x NNN reason', got %r" % line[:40])
        status = int(p[1])
        hdr = {}
        n = 0
        while True:
            line = await self._line("header line")
            if not line:
                break
            n += 1
            if n > _MAX_HEADERS:
                raise HttpError("headers: more than %d" % _MAX_HEADERS)
            i = line.find(":")
            k = line[:i]
            if i < 1 or k != k.strip():
                raise HttpError("header line: expected 'Name: value', got %r" % line[:40])
            hdr[k.lower()] = line[i + 1:].strip()
        conn = hdr.get("connection", "").lower()
        keep = "close" not in conn and (p[0] == "HTTP/1.1" or "keep-alive" in conn)
        if "chunked" in hdr.get("transfer-encoding", "").lower():
            data = await self._chunked()
        elif "content-length" in hdr:
            n = hdr["content-length"]
            if not n or n.strip("0123456789"):
                raise HttpError("Content-Length: expected digits, got %r" % n[:20])
            data = await self._exact(_cap(int(n)))
        elif status in (204, 304) or status < 200:
            data = b""
        else:  # the body runs to the end of the connection
            keep = False
            while True:
                try:
                    await self._more(_CHUNK)
                except EOFError:
                    break
                _cap(len(self._in))
            data, self._in = self._in, b""
        if not keep or self._in:  # asked to close, or bytes beyond the reply: out of step
            self.close()
        return status, hdr, data

    async def _more(self, n):
        b = await self._r.read(n)
        if not b:  # the peer closed: EOFError, a builtin, so no class of our own
            raise EOFError()
        self._got = True
        self._in += b

    async def _line(self, what):
        while True:
            i = self._in.find(b"\n")
            if i > _MAX_LINE or (i < 0 and len(self._in) > _MAX_LINE):
                raise HttpError("%s: over %d bytes" % (what, _MAX_LINE))
            if i >= 0:
                line, self._in = self._in[:i], self._in[i + 1:]
                try:
                    return line.decode().rstrip("\r")
                except UnicodeError:
                    raise HttpError("%s: expected text, got %r" % (what, line[:40]))
            await self._more(_CHUNK)

    async def _exact(self, n):
        while len(self._in) < n:
            await self._more(max(_CHUNK, n - len(self._in)))
        data, self._in = self._in[:n], self._in[n:]
        return data

    async def _chunked(self):
        out = b""
        while True:
            s = (await self._line("chunk size")).split(";")[0].strip()
            if not s or s.lower().strip("0123456789abcdef"):
                raise HttpError("chunk size: expected hex digits, got %r" % s[:20])
            n = int(s, 16)
            if not n:
                while await self._line("trailer"):
                    pass  # trailers: none that matter here
                return out
            out += await self._exact(_cap(len(out) + n) - len(out))
            if await self._line("chunk end"):
                raise HttpError("chunk end: expected CRLF after %d bytes" % n)


def _cap(n):
    if n > MAX_BODY:
        raise HttpError("body: %d bytes, at most %d taken" % (n, MAX_BODY))
    return n
