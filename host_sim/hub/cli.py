"""`python -m host_sim hub`: run the mock hub until Ctrl-C/SIGTERM; the URL is the first line."""
import argparse
import asyncio
import json
import signal
import sys
import tempfile

from host_sim import certs
from host_sim.hub.faults import KINDS, FaultError
from host_sim.hub.remote import Cpo
from host_sim.hub.server import Hub, quiet_tls, tls_context


def read_cards(path):
    """Cards file: JSON (a list of UIDs/EvcoIDs, or an object to ProviderIDs), or text lines
    `UID [ProviderID]` with `#` comments."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip()[:1] in ("[", "{"):
        return json.loads(text)
    cards = {}
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if len(words) > 2:
            raise ValueError("%s:%d: expected `UID [ProviderID]`, got %r" % (path, n, line))
        if words:
            cards[words[0]] = words[1] if len(words) == 2 else None
    return cards


def parse_fault(spec):
    """`kind[:key=value,...]`, values as JSON where they parse (count=3, match=AuthorizeStart)."""
    kind, _, rest = spec.partition(":")
    rule = {"kind": kind}
    for item in filter(None, rest.split(",")):
        k, sep, v = item.partition("=")
        if not sep:
            raise FaultError("--fault %s: expected key=value, got %r" % (spec, item))
        try:
            rule[k] = json.loads(v)
        except ValueError:
            rule[k] = v
    return rule


def _subs(items):
    out = {}
    for item in items:
        hub, sep, sub = item.partition("=")
        if not (sep and hub and sub):
            raise ValueError("--sub-operator: expected HUB=SUB, got %r" % item)
        out.setdefault(hub, []).append(sub)
    return out


def _args(argv):
    p = argparse.ArgumentParser(prog="python -m host_sim hub", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    p.add_argument("--tls", action="store_true", help="mutual TLS (client certificate required)")
    p.add_argument("--certs", help="directory with ca.pem, server.pem/.key (made if missing; "
                                   "default: a new temporary directory)")
    p.add_argument("--operator", action="append", default=None,
                   help="accepted OperatorID (repeatable; default: any); with --tls a client "
                        "certificate is made for each")
    p.add_argument("--sub-operator", action="append", default=[], metavar="HUB=SUB",
                   help="EvseIDs of operator SUB may be pushed by HUB (repeatable)")
    p.add_argument("--cards", help="file of authorized UIDs/EvcoIDs (text or JSON)")
    p.add_argument("--card", action="append", default=[], help="an authorized UID (repeatable)")
    p.add_argument("--provider-id", default="DE-EMP", help="ProviderID of authorized cards")
    p.add_argument("--log", help="append every exchange as a JSON line to this file")
    p.add_argument("--progress-interval", type=float, default=300,
                   help="minimum seconds between Progress notifications (message time)")
    p.add_argument("--cpo", metavar="URL", help="the CPO endpoint this hub calls as Hubject "
                   "(POST /api/remote, the page's buttons); with an https URL the hub presents "
                   "the client certificate --cpo-cert (default: CN=HUBJECT from --certs)")
    p.add_argument("--cpo-cert", help="client certificate toward the CPO (PEM)")
    p.add_argument("--cpo-key", help="its key")
    p.add_argument("--cpo-ca", help="CA of the CPO endpoint's server certificate")
    p.add_argument("--rate-limits", action="store_true",
                   help="answer 429 past Hubject's acceptable-use limits per operation")
    p.add_argument("--fault", action="append", default=[],
                   help="queue a fault: kind[:key=value,...]; kinds: " + ", ".join(KINDS))
    return p.parse_args(argv)


async def _serve(a):
    cards = dict.fromkeys(a.card)
    if a.cards:
        more = read_cards(a.cards)
        cards.update(more if isinstance(more, dict) else dict.fromkeys(more))
    tls = None
    if a.tls:
        d = a.certs or tempfile.mkdtemp(prefix="hub-certs-")
        certs.make_test_pki(d, a.operator or ())
        tls = tls_context(d)
    cpo = None
    if a.cpo:
        cert, key, ca = a.cpo_cert, a.cpo_key, a.cpo_ca
        if a.cpo.startswith("https:") and not cert:
            d = a.certs or (tls and d) or tempfile.mkdtemp(prefix="hub-certs-")
            cert, key = certs.make_client(d, "HUBJECT")
            ca = ca or certs.make_ca(d)
        cpo = Cpo(a.cpo, cert=cert, key=key, ca=ca)
    hub = Hub(a.host, a.port, tls, cards, a.log, provider_id=a.provider_id,
              operators=a.operator, progress_interval=a.progress_interval,
              sub_operators=_subs(a.sub_operator), cpo=cpo, rate_limits=a.rate_limits)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_tls)
    url = await hub.start()
    print(url, flush=True)
    if a.tls:
        print("certificates in %s (client certificates: CN = OperatorID)" % d, file=sys.stderr)
    for spec in a.fault:
        await hub.add_fault(**parse_fault(spec))
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await hub.stop()
    print("hub stopped: %s" % json.dumps(hub.stats()), file=sys.stderr)


def main(argv):
    a = _args(argv)
    try:
        asyncio.run(_serve(a))
    except (OSError, ValueError) as e:  # a busy port, a bad cards file or fault spec
        print("hub: %s" % e, file=sys.stderr)
        return 2
    return 0
