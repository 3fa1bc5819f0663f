"""Scripted TCP peers for the HTTP client tests: replies in pieces, close, hang, reset."""
import asyncio

CLOSE = "close"  # the peer closes without a reply
HANG = "hang"  # the peer never answers
RESET = "reset"  # the read fails with a reset


def ok(body=b'{"a":1}', extra=""):
    return ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
            % (extra, len(body))).encode() + body


class Stream:
    """Both ends of one fake connection; replies come `piece` bytes per read."""

    def __init__(self, net, replies):
        self.net, self.replies, self.closed = net, list(replies), False
        self.out = self.req = b""

    def write(self, b):
        self.req += b

    async def drain(self):
        pass

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass

    async def read(self, n):
        if not self.out:
            if not self.req:
                return b""
            self.net.requests.append(self.req)
            self.req = b""
            step = self.replies.pop(0) if self.replies else CLOSE
            if step == HANG:
                await asyncio.sleep(30)
            if step == RESET:
                raise OSError(104, "ECONNRESET")
            if step == CLOSE:
                return b""
            self.out = step
        b, self.out = self.out[:min(n, self.net.piece)], self.out[min(n, self.net.piece):]
        return b


class Net:
    """board.connect(): each connection takes the next script (a list of replies, or 'refuse')."""

    def __init__(self, *scripts, piece=7):
        self.scripts, self.piece = list(scripts), piece
        self.connects, self.requests, self.streams = [], [], []

    async def connect(self, host, port, tls):
        self.connects.append((host, port, tls))
        script = self.scripts.pop(0) if self.scripts else "refuse"
        if script == "refuse":
            raise OSError(111, "ECONNREFUSED")
        s = Stream(self, script)
        self.streams.append(s)
        return s, s
