"""Test PKI made on the fly with the `openssl` CLI: a CA, a hub server certificate, client certs.

Client certificates carry the charger's OperatorID as the subject's commonName (CN); that is the
field the mock hub matches against the OperatorID of each request (see host_sim/hub/server.py).
Keys are EC P-256 (fast to make) unless RSA-2048 is asked for; everything is valid for 30 days and
meant for tests only.
"""
import os
import subprocess

CA = "ca.pem"
SERVER = ("server.pem", "server.key")


def _run(*args, cwd):
    r = subprocess.run(("openssl",) + args, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.strip()[-400:]))


def _key(name, cwd, rsa=False):
    if rsa:  # RSA-2048: heavier on a device's heap and CPU than P-256 (tools/bench/tls_unix.py)
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name,
             cwd=cwd)
    else:
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name, cwd=cwd)


def _safe(operator_id):
    # OperatorIDs hold `*` and `+`, which are awkward in file names.
    return operator_id.replace("*", "_").replace("+", "p")


def client_files(directory, operator_id):
    """(certificate, key) paths of the client certificate for operator_id in directory."""
    base = os.path.join(directory, "client-" + _safe(operator_id))
    return base + ".pem", base + ".key"


def _sign(directory, csr, out, ext):
    extfile = out + ".ext"
    with open(os.path.join(directory, extfile), "w") as f:
        f.write(ext + "\n")
    _run("x509", "-req", "-in", csr, "-CA", CA, "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "30", "-sha256", "-extfile", extfile, "-out", out, cwd=directory)
    for tmp in (csr, extfile):
        os.remove(os.path.join(directory, tmp))


def make_ca(directory):
    """Creates ca.pem/ca.key and the server certificate (localhost, 127.0.0.1) if missing."""
    os.makedirs(directory, exist_ok=True)
    if not os.path.exists(os.path.join(directory, CA)):
        _key("ca.key", directory)
        _run("req", "-x509", "-new", "-key", "ca.key", "-days", "30", "-sha256",
             "-subj", "/O=cpagent test/CN=cpagent test CA", "-out", CA, cwd=directory)
    if not os.path.exists(os.path.join(directory, SERVER[0])):
        _key(SERVER[1], directory)
        _run("req", "-new", "-key", SERVER[1], "-subj", "/O=cpagent test/CN=localhost",
             "-out", "server.csr", cwd=directory)
        _sign(directory, "server.csr", SERVER[0],
              "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth")
    return os.path.join(directory, CA)


def make_client(directory, operator_id, ca_dir=None, rsa=False):
    """A client certificate with CN=operator_id, signed by the CA in ca_dir (default: directory).

    Returns (certificate, key) paths. Pass another directory's CA to make a certificate the hub
    must refuse (a stranger's CA); rsa: an RSA-2048 key instead of P-256.
    """
    ca_dir = ca_dir or directory
    make_ca(ca_dir)
    cert, key = client_files(directory, operator_id)
    if os.path.exists(cert):
        return cert, key
    os.makedirs(directory, exist_ok=True)
    _key(key, ca_dir, rsa)
    # -subj reads `+` as a multi-valued RDN separator unless escaped (`+49*536`).
    _run("req", "-new", "-key", key, "-subj", "/O=cpagent test/CN=" + operator_id.replace(
        "+", "\\+"),
         "-out", "client.csr", cwd=ca_dir)
    _sign(ca_dir, "client.csr", cert, "extendedKeyUsage=clientAuth")
    return cert, key


def make_test_pki(directory, operator_ids=("DE*ABC",)):
    """CA, server and one client certificate per OperatorID; returns a dict of paths."""
    out = {"ca": make_ca(directory), "dir": directory,
           "server": tuple(os.path.join(directory, n) for n in SERVER)}
    out["clients"] = dict((o, make_client(directory, o)) for o in operator_ids)
    return out
