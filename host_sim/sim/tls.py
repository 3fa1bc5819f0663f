"""TLS to the hub: the options (--ca, --cert, --key; --tls with the test PKI), the user's PEM
files, the system CA store, and the client context; errors name the option and what to do."""
import os
import ssl

from host_sim import certs as pki


def check(a, error):
    """The TLS options together; error(text) exits 2 naming the option."""
    given = [o for o in ("ca", "cert", "key") if getattr(a, o)]
    if given and a.tls:
        error("--%s: not with --tls (--tls uses the test PKI in --certs DIR)" % given[0])
    if given and not a.hub:
        error("--%s: only with --hub https://... (the embedded hub makes its own with --tls)"
              % given[0])
    if given and not a.hub.startswith("https://"):
        error("--%s: the hub URL is %s; TLS needs an https:// URL" % (given[0], a.hub[:40]))
    if a.tls and a.hub and not a.hub.startswith("https://"):
        error("--tls: the hub URL is %s; TLS needs an https:// URL" % a.hub[:40])
    if a.mqtt and (a.hub or "").startswith("https://") and not (a.cert or a.tls):
        error("--cert, --key: required with --mqtt and an https:// hub (the relay speaks mutual "
              "TLS to it)")
    if bool(a.cert) != bool(a.key):
        error("--%s: --cert and --key go together (the client certificate and its key)"
              % ("key" if a.cert else "cert"))
    if a.hub and "://" not in a.hub:
        error("--hub %s: expected a URL such as http://%s or https://..." % (a.hub, a.hub))


def pem(path, option, what):
    """An absolute path to a readable PEM file, or ValueError naming the option."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise ValueError("%s %s: cannot read it (%s)" % (option, path, e.strerror))
    if b"-----BEGIN " not in head:
        raise ValueError("%s %s: not a PEM file (expected %s between -----BEGIN and -----END "
                         "lines, as openssl writes it)" % (option, path, what))
    return os.path.abspath(path)


def system_ca():
    """The system's CA bundle file (Debian: /etc/ssl/certs/ca-certificates.crt), or None."""
    p = ssl.get_default_verify_paths()
    for f in (p.cafile, p.openssl_cafile):
        if f and os.path.isfile(f):
            return f
    return None


def context(ca, cert, key, option):
    """The client context the chargers' boards build, for the simulator's own calls."""
    try:
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ValueError("%s: cannot load %s (%s); expected PEM files as openssl writes them, "
                         "the key unencrypted and matching the certificate"
                         % (option, ", ".join(f for f in (ca, cert, key) if f), e))
    return ctx


def files(a, state, operator):
    """(charger config TLS keys, their folder, client SSLContext) or Nones for plain HTTP.
    The chargers' config names files in one folder with short names: the user's files are
    linked into <state>/tls/ under ca.pem, cert.pem, key.pem."""
    if a.tls:
        d = os.path.abspath(a.certs or os.path.join(state, "certs"))
        if a.hub is None:
            pki.make_test_pki(d, (operator,))
        cert, key = pki.client_files(d, operator)
        for f in (os.path.join(d, pki.CA), cert, key):
            if not os.path.exists(f):
                raise ValueError("--certs %s: %s is missing" % (d, os.path.basename(f)))
        files = {"ca": pki.CA, "cert": os.path.basename(cert), "key": os.path.basename(key)}
        return files, d, context(os.path.join(d, pki.CA), cert, key, "--certs " + d)
    if not (a.hub or "").startswith("https://"):
        return None, None, None
    ca = pem(a.ca, "--ca", "the CA certificate") if a.ca else system_ca()
    if ca is None:
        raise ValueError("--hub %s: no system CA store found to verify it; give the hub's "
                         "CA with --ca FILE (PEM)" % a.hub)
    src = {"ca": ca}
    if a.cert:
        src["cert"] = pem(a.cert, "--cert", "the client certificate")
        src["key"] = pem(a.key, "--key", "the private key")
    d = os.path.join(state, "tls")
    os.makedirs(d, exist_ok=True)
    files = {}
    for k, path in src.items():
        files[k] = k + ".pem"
        link = os.path.join(d, files[k])
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(path, link)
    return files, d, context(ca, src.get("cert"), src.get("key"),
                             "--cert/--key" if a.cert else "--ca")

