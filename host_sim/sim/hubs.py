"""The hub a fleet talks to: the mock hub in-process (Embedded) or any OICP hub at a URL (Remote).

A Remote hub needs nothing but its OICP endpoints. The mock hub's extras (fault injection for the
scenario's hub events, its own view of the run) are used when a probe finds them (`extras`).
"""
import asyncio
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

from cpagent.uplink.http import parse_url
from host_sim.hub.server import Hub, quiet_tls

_REFUSAL_S = 1.5  # real s to wait for a hub's TLS alert after the handshake


class HubError(ValueError):
    """The hub cannot be used as given; the message names the option and what to do."""


class HubDown(HubError):
    """Nothing answers at the hub's address (it may be in an outage)."""


class Embedded:
    """The mock hub on this event loop at 127.0.0.1:0; tls: a certs dir (ca.pem, server.*)."""
    extras = True

    def __init__(self, cards, tls_dir=None, operators=None):
        self.hub = Hub("127.0.0.1", 0, tls_dir, cards, **({"operators": operators}
                                                           if operators else {}))
        self.url = None

    async def start(self):
        asyncio.get_running_loop().set_exception_handler(quiet_tls)
        self.url = await self.hub.start()
        return self.url

    async def stop(self):
        await self.hub.stop()

    async def refuse(self, seconds):
        await self.hub.refuse(seconds)

    async def fault(self, rule):
        await self.hub.add_fault(**rule)

    async def stats(self):
        return self.hub.stats()


def origin(url):
    """scheme://host:port of a hub URL (the mock hub's /api/... extras live there)."""
    p = urllib.parse.urlsplit(url)
    return "%s://%s" % (p.scheme, p.netloc)


class Remote:
    """A hub at url. ctx: the client's SSLContext for https (the same the chargers use)."""

    def __init__(self, url, ctx=None):
        self.url = url.rstrip("/")
        self.ctx = ctx
        self.extras = False
        try:
            self._tls, self._host, self._port, _base = parse_url(self.url)
        except ValueError as e:
            raise HubError("--hub %s: %s" % (url, str(e).replace("uplink.url: ", "")))

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(origin(self.url) + path, data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30, context=self.ctx) as r:
            return json.loads(r.read())

    async def _api(self, method, path, body=None):
        return await asyncio.to_thread(self._call, method, path, body)

    def _reach(self):
        """Connect (and shake hands, for https) once: a clear error now, not retries later."""
        where = "%s:%d" % (self._host, self._port)
        try:
            s = socket.create_connection((self._host, self._port), timeout=10)
        except OSError as e:
            raise HubDown("--hub %s: nothing answers at %s (%s); is the hub running, and is "
                          "the URL right?" % (self.url, where, e.strerror or e))
        with s:
            if not self._tls:
                return
            try:
                t = self.ctx.wrap_socket(s, server_hostname=self._host)
                # TLS 1.3: a hub that wants a client certificate says so after the handshake;
                # a hub that is content waits for a request (the timeout: fine).
                t.settimeout(_REFUSAL_S)
                try:
                    t.recv(1)
                except (TimeoutError, socket.timeout):
                    pass
                t.close()
            except ssl.SSLCertVerificationError as e:
                raise HubError("--hub %s: the hub's certificate is not trusted (%s); give the "
                               "CA that signed it with --ca FILE (PEM)" % (self.url,
                                                                          e.verify_message))
            except (ssl.SSLError, OSError) as e:
                raise HubError("--hub %s: TLS handshake failed (%s); a hub that wants a client "
                               "certificate needs --cert FILE --key FILE (PEM), and a plain "
                               "http hub an http:// URL" % (self.url, getattr(e, "reason", 0)
                                                            or e))

    def _probe(self):
        try:
            stats = self._call("GET", "/api/stats")
        except (OSError, ValueError, urllib.error.HTTPError):
            return False
        return isinstance(stats, dict) and "requests" in stats

    async def start(self, extras_if_down=None):
        """Check the hub and look for the mock hub's extras. extras_if_down (a resumed run:
        what the first run found) lets a hub that does not answer now pass (HubDown else)."""
        try:
            await asyncio.to_thread(self._reach)
        except HubDown:
            if extras_if_down is None:
                raise
            self.extras = extras_if_down
            return self.url
        self.extras = await asyncio.to_thread(self._probe)
        return self.url

    async def stop(self):
        pass

    async def refuse(self, seconds):
        await self.fault({"kind": "refuse", "seconds": seconds})

    async def fault(self, rule):
        await self._api("POST", "/api/faults", rule)

    async def stats(self):
        return await self._api("GET", "/api/stats")
