"""A scripted reverse proxy between the charger and the mock hub answers what proxies and load
balancers answer (HTML 404, HTML 502, an empty 401, a 301) for a few seconds each, mid-session:
none of it is the hub's verdict, so every message is still delivered once in effect, in order
per session, and the log names what came back."""
import asyncio

from linkhub import CARDS, Box, check_hub, with_link

from host_sim.hub import Hub

# What each window answers, with no request reaching the hub.
ANSWERS = {
    "404": b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 52\r\n"
           b"\r\n<html><head><title>404 Not Found</title></head></html>",
    "502": b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 37\r\n"
           b"\r\n<html><h1>502 Bad Gateway</h1></html>",
    "401": b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
    "301": b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere.example/\r\n"
           b"Content-Length: 0\r\n\r\n",
}
WINDOW_S = 1.5


class Proxy:
    """Forwards each request to the hub, or answers it itself while a window is open; one
    request per connection (it answers with Connection: close)."""

    def __init__(self, hub_port):
        self.hub_port = hub_port
        self.mode = None  # None: forward; else a key of ANSWERS
        self.answered = {k: 0 for k in ANSWERS}
        self.forwarded = 0

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _read(self, reader):
        head = await reader.readuntil(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        return head, await reader.readexactly(n) if n else b""

    async def _serve(self, reader, writer):
        try:
            head, body = await self._read(reader)
            mode = self.mode
            if mode:
                self.answered[mode] += 1
                writer.write(ANSWERS[mode])
            else:
                self.forwarded += 1
                writer.write(await self._forward(head, body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _forward(self, head, body):
        r, w = await asyncio.open_connection("127.0.0.1", self.hub_port)
        lines = [x for x in head.split(b"\r\n") if not x.lower().startswith(b"connection:")]
        w.write(b"\r\n".join(lines[:1] + [b"Connection: close"] + lines[1:]) + body)
        reply = await r.read()  # the hub closes after its reply
        w.close()
        return reply


def test_proxy_answers_are_retried_until_the_hub_has_every_message(tmp_path):
    async def main():
        hub = Hub(cards=CARDS)
        url = await hub.start()
        proxy = Proxy(int(url.rsplit(":", 1)[1].split("/")[0]))
        box = Box(tmp_path, await proxy.start())
        try:
            await with_link(box, lambda: scenario(hub, proxy, box))
        finally:
            await proxy.stop()
            await hub.stop()

    async def scenario(hub, proxy, box):
        for i in range(3):
            await box.authorize(i, CARDS[i])
        box.event(box.ch.meter, 0, 12000, 7400)  # session 0 starts before the windows
        for i, mode in enumerate(ANSWERS):
            proxy.mode = mode
            if i < 3:  # each session's Start, End and CDR are journaled inside a window
                box.charge_and_stop(i, CARDS[i])
            await asyncio.sleep(WINDOW_S)
            assert proxy.answered[mode] > 0, (mode, proxy.answered)
            # A person sees what answers instead of the hub: the state and the last answer.
            assert box.link.state == "path", (mode, box.link.state)
            assert box.link.stats["last_foreign"].startswith(
                "not the hub's answer: HTTP " + mode), box.link.stats["last_foreign"]
        proxy.mode = None
        await box.until(lambda: not box.pending(), "every message delivered")
        check_hub(hub, 3)
        assert box.link.state == "up" and box.link.stats["foreign"] >= 4 * 3
        assert box.link.stats["failed"] == 0 and box.journal.failures == []
        nothub = [r[1] for r in box.up.results if r[0] == "nothub"]
        for what in ("not the hub's answer: HTTP 404 not found (text/html): <html><head>",
                     "not the hub's answer: HTTP 502 error (text/html): <html><h1>502",
                     "not the hub's answer: HTTP 401 not authorized",
                     "not the hub's answer: HTTP 301 error"):
            assert any(r.startswith(what) for r in nothub), (what, sorted(set(nothub)))
        shown = [t for _i, t in box.ch.shown]
        assert any("not the hub's answer: HTTP 301" in t for t in shown), shown

    asyncio.run(main())
