"""The hub a fleet talks to: the mock hub in-process (Embedded) or one at a URL (Remote)."""
import asyncio
import json
import ssl
import urllib.request

from host_sim import certs as pki
from host_sim.hub.server import Hub, quiet_tls


class Embedded:
    """The mock hub on this event loop at 127.0.0.1:0; tls: a certs dir (ca.pem, server.*)."""

    def __init__(self, cards, tls_dir=None):
        self.hub = Hub("127.0.0.1", 0, tls_dir, cards)
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

    async def exchanges(self):
        return self.hub.exchanges

    async def stats(self):
        return self.hub.stats()


class Remote:
    """A hub at url (e.g. `python -m host_sim hub`), controlled through its /api endpoints.
    ctx: the client's SSLContext for an https hub (its control plane wants the certificate too)."""

    def __init__(self, url, ctx=None):
        self.url = url.rstrip("/")
        self.ctx = ctx

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30, context=self.ctx) as r:
            return json.loads(r.read())

    async def _api(self, method, path, body=None):
        return await asyncio.to_thread(self._call, method, path, body)

    async def start(self):
        await self.stats()  # fail early and clearly when nothing answers there
        return self.url

    async def stop(self):
        pass

    async def refuse(self, seconds):
        await self.fault({"kind": "refuse", "seconds": seconds})

    async def fault(self, rule):
        await self._api("POST", "/api/faults", rule)

    async def exchanges(self):
        return await self._api("GET", "/api/exchanges?since=0")

    async def stats(self):
        return await self._api("GET", "/api/stats")


def client_context(certs_dir, cert, key):
    ctx = ssl.create_default_context(cafile=certs_dir + "/" + pki.CA)
    ctx.load_cert_chain(cert, key)
    return ctx
