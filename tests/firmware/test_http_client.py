"""HttpClient and scripted peers: keep-alive, chunked, close, garbage, caps, timeout."""
import asyncio

from fakenet import CLOSE, HANG, RESET, Net, ok

from check import arun
from cpagent.uplink.http_client import MAX_BODY, HttpClient, HttpError


def client(net, port=8080, tls=False, timeout_ms=200):
    return HttpClient(net.connect, "hub.example", port, tls, timeout_ms)


async def fails(exc, coro, text=""):
    try:
        await coro
    except exc as e:
        assert text in str(e), str(e)
        return e
    raise AssertionError("expected %s (%s)" % (exc.__name__, text))


def test_post_sends_a_keep_alive_request_and_reuses_the_connection():
    async def go():
        net = Net([ok(b'{"x":1}'), ok(b"{}", "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n")])
        c = client(net)
        st, hdr, body = await c.post("/api/p", b'{"q":2}')
        assert (st, body) == (200, b'{"x":1}')
        assert hdr["content-type"] == "application/json"
        st, hdr, body = await c.post("/api/p", b"{}", {"X-Try": "2"})
        assert (st, body, hdr["date"]) == (200, b"{}", "Sun, 06 Nov 1994 08:49:37 GMT")
        assert net.connects == [("hub.example", 8080, False)]
        assert net.requests[0] == (b"POST /api/p HTTP/1.1\r\nHost: hub.example:8080\r\n"
                                   b"Content-Type: application/json\r\nContent-Length: 7\r\n"
                                   b"Connection: keep-alive\r\n\r\n{\"q\":2}")
        assert b"X-Try: 2\r\n" in net.requests[1]
    return arun(go())


def test_host_header_omits_the_default_port():
    async def go():
        net = Net([ok()])
        await client(net, port=443, tls=True).post("/", b"{}")
        assert b"\r\nHost: hub.example\r\n" in net.requests[0]
        assert net.connects == [("hub.example", 443, True)]
    return arun(go())


def test_chunked_reply_with_extensions_and_trailers():
    async def go():
        net = Net([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"4;ext=1\r\n{\"a\"\r\nA\r\n:[1,2,3,4]\r\n1\r\n}\r\n0\r\nX-T: 1\r\n\r\n", ok()])
        c = client(net)
        assert await c.post("/", b"{}") == (200, {"transfer-encoding": "chunked"},
                                            b'{"a":[1,2,3,4]}')
        assert (await c.post("/", b"{}"))[0] == 200  # still in step on the same connection
        assert len(net.connects) == 1
    return arun(go())


def test_connection_close_reply_reconnects_on_the_next_post():
    async def go():
        net = Net([ok(extra="Connection: close\r\n")], [ok(b"[2]")])
        c = client(net)
        await c.post("/", b"{}")
        assert net.streams[0].closed
        assert (await c.post("/", b"{}"))[2] == b"[2]"
        assert len(net.connects) == 2
    return arun(go())


def test_http_1_0_and_body_to_end_of_stream():
    async def go():
        net = Net([b"HTTP/1.0 200 OK\r\n\r\n{\"till\":\"eof\"}"], [ok()])
        c = client(net)
        assert (await c.post("/", b"{}"))[2] == b'{"till":"eof"}'
        assert net.streams[0].closed
        await c.post("/", b"{}")
        assert len(net.connects) == 2
    return arun(go())


def test_stale_keep_alive_is_retried_once_on_a_new_connection():
    async def go():
        net = Net([ok()], [ok(b"[2]")])
        c = client(net)
        await c.post("/", b"{}")
        # The peer dropped the idle connection: the request goes again, on a fresh one.
        assert (await c.post("/", b'{"n":2}'))[2] == b"[2]"
        assert len(net.connects) == 2 and net.requests[1] == net.requests[2]
        net = Net([ok(), RESET], [ok(b"[3]")])
        c = client(net)
        await c.post("/", b"{}")
        assert (await c.post("/", b"{}"))[2] == b"[3]"
    return arun(go())


def test_never_retried_twice_nor_on_a_fresh_connection():
    async def go():
        net = Net([ok()], [CLOSE], [ok()])
        c = client(net)
        await c.post("/", b"{}")
        await fails(OSError, c.post("/", b"{}"), "connection closed")
        assert len(net.connects) == 2 and len(net.requests) == 3
        net = Net([CLOSE], [ok()])
        await fails(OSError, client(net).post("/", b"{}"), "connection closed")
        assert len(net.connects) == 1
    return arun(go())


def test_close_after_part_of_the_reply_is_not_retried():
    async def go():
        net = Net([ok(), ok()[:20]], [ok()])
        c = client(net)
        await c.post("/", b"{}")
        await fails(OSError, c.post("/", b"{}"), "connection closed")
        assert len(net.connects) == 1
        assert (await c.post("/", b"{}"))[0] == 200  # the next post reconnects
    return arun(go())


def test_refused_connect_and_timeouts_raise_oserror():
    async def go():
        net = Net("refuse")
        await fails(OSError, client(net).post("/", b"{}"))
        net = Net([HANG], [ok()])
        c = client(net, timeout_ms=30)
        await fails(OSError, c.post("/", b"{}"), "no complete reply in 30 ms")
        assert net.streams[0].closed
        assert (await c.post("/", b"{}"))[0] == 200

        async def never(host, port, tls):
            await asyncio.sleep(30)
        c = HttpClient(never, "h", 80, False, 30)
        await fails(OSError, c.post("/", b"{}"), "connect to h: no answer in 30 ms")
    return arun(go())


def test_malformed_replies_name_what_was_wrong_and_close():
    cases = (
        (b"<html>hello</html>\r\n", "status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 600 + b"\r\n\r\n", "header line: over 512"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 33 + b"\r\n", "headers: more than 32"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n", "body: 99999 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "chunk end"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"4000\r\n" + b"a" * 0x4000
         + b"\r\n1\r\nb\r\n0\r\n\r\n", "body: 16385 bytes"),
        (b"HTTP/1.1 200 \xff\xfe\r\n\r\n", "status line: expected text"),
    )

    async def go():
        for raw, text in cases:
            net = Net([raw], [ok()], piece=4096)
            c = client(net)
            await fails(HttpError, c.post("/", b"{}"), text)
            assert net.streams[0].closed, text
            assert (await c.post("/", b"{}"))[0] == 200 and len(net.connects) == 2
    return arun(go())


def test_largest_body_is_taken():
    async def go():
        big = b"x" * MAX_BODY
        net = Net([ok(big)], piece=4096)
        assert (await client(net).post("/", b"{}"))[2] == big
    return arun(go())


def test_extra_bytes_after_a_reply_drop_the_connection():
    async def go():
        net = Net([ok() + b"junk"], [ok()])
        c = client(net, timeout_ms=200)
        net.piece = 4096
        assert (await c.post("/", b"{}"))[0] == 200
        assert net.streams[0].closed
    return arun(go())
