"""A real Mosquitto for tests and `make sim MODE=mqtt`: users, a locked-down ACL, persistence.

    with Broker(tmpdir, users={"cp-1": "pw", "relay": "pw"}) as b:
        ... connect to b.host:b.port ...

Every user is a charger whose username is its charger id, except the relay users (default
"relay"). Users and rights live in Mosquitto's dynamic-security plugin (dynsec_config()), not in
a password and ACL file: Mosquitto 2.0's acl_file never checks a SUBSCRIBE (any client may
subscribe to anything, and only the delivery is filtered), so a charger could join the relays'
shared subscription `$share/<group>/cp/+/up` and take its round-robin share of every charger's
requests, which the broker then drops; nor can a password file bind a client id to a user. With
the plugin: a charger connects only with its own charger id as client id, publishes only
cp/<id>/up and cp/<id>/status, subscribes to and receives only cp/<id>/down (no wildcard, no
$share); a relay user (any client id a charger cannot take) subscribes to
$share/<any group>/cp/+/up, cp/+/up and cp/+/status, publishes cp/+/down, and alone reads and
writes relay/# (the relays' shared session records). Anything else is denied. Persistence is
on (mosquitto.db in tmpdir): restart() stops Mosquitto with SIGTERM, which writes the database,
and starts it again on the same port, so persistent sessions and their queued QoS 1 messages
survive. kill() is the crash (SIGKILL: only what the last autosave wrote survives).
tls: a directory with ca.pem, server.pem, server.key (host_sim/certs.py) for a TLS listener.
No process is left behind: stop() at exit (atexit), and on Linux Mosquitto gets SIGTERM when the
process that started it dies (PR_SET_PDEATHSIG).
"""
import atexit
import base64
import glob
import hashlib
import json
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time

_LIVE = set()
_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    pass


def _tool(name):
    # Debian puts mosquitto in /usr/sbin, which is not on every user's PATH.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if not path:
        raise BrokerError("%s not found: install the Debian package mosquitto (make system)"
                          % name)
    return path


def _plugin():
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")
                   + glob.glob("/usr/lib/mosquitto_dynamic_security.so")
                   + glob.glob("/usr/local/lib/mosquitto_dynamic_security.so"))
    if not found:
        raise BrokerError("mosquitto_dynamic_security.so not found: it ships with the Debian "
                          "package mosquitto 2.x (make system)")
    return found[0]


def _hash(password, iterations=101):
    # The plugin's own form: PBKDF2-HMAC-SHA512 of a 12-byte salt, 64 bytes, base64 (what
    # `mosquitto_ctrl dynsec setClientPassword` stores; 101 iterations is its default).
    salt = os.urandom(12)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {"salt": base64.b64encode(salt).decode(), "password": base64.b64encode(key).decode(),
            "iterations": iterations}


def _acl(kind, topic):
    return {"acltype": kind, "topic": topic, "allow": True}


def dynsec_config(users, relay_users=("relay",)):
    """The dynamic-security plugin's config (its JSON file) for these users: see the module
    docstring. One role per charger: the plugin of Mosquitto 2.0 has no %u/%c in topics."""
    clients, roles = [], []
    relay_acls = [_acl("subscribePattern", t) for t in
                  ("$share/+/cp/+/up", "cp/+/up", "cp/+/status", "relay/#")]
    relay_acls += [_acl("publishClientReceive", t) for t in ("cp/+/up", "cp/+/status",
                                                             "relay/#")]
    relay_acls += [_acl("publishClientSend", t) for t in ("cp/+/down", "relay/#")]
    roles.append({"rolename": "relay", "acls": relay_acls})
    for u, p in users.items():
        c = dict(username=u, roles=[{"rolename": "relay" if u in relay_users
                                     else "charger:" + u}], **_hash(p))
        if u not in relay_users:
            c["clientid"] = u  # this user connects with this client id only
            roles.append({"rolename": "charger:" + u, "acls": [
                _acl("publishClientSend", "cp/%s/up" % u),
                _acl("publishClientSend", "cp/%s/status" % u),
                _acl("subscribeLiteral", "cp/%s/down" % u),
                _acl("publishClientReceive", "cp/%s/down" % u)]})
        clients.append(c)
    return {"clients": clients, "roles": roles, "groups": [],
            "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                                 "subscribe": False, "unsubscribe": True}}


def main(argv=None):
    """`python -m host_sim.broker --users FILE [--relay-user NAME ...]`: the plugin's JSON file
    for a broker of one's own, on stdout (FILE: {"user": "password", ...}, chargers and relays)."""
    import argparse
    import sys
    ap = argparse.ArgumentParser(prog="python -m host_sim.broker",
                                 description="Mosquitto dynamic-security config (docs/relay.md)")
    ap.add_argument("--users", required=True, help='JSON file {"user": "password", ...}')
    ap.add_argument("--relay-user", action="append", help="a relay user (default: relay)")
    args = ap.parse_args(argv)
    try:
        with open(args.users, encoding="utf-8") as f:
            users = json.load(f)
    except (OSError, ValueError) as e:
        print("broker: --users %s: %s" % (args.users, e), file=sys.stderr)
        return 2
    relays = tuple(args.relay_user or ("relay",))
    try:
        check_users(users)
    except BrokerError as e:
        print("broker: --users %s: %s" % (args.users, str(e).replace("users: ", "")),
              file=sys.stderr)
        return 2
    json.dump(dynsec_config(users, relays), sys.stdout, indent=1)
    print()
    return 0


def check_users(users):
    """BrokerError naming the first user name or password that will not do."""
    if not isinstance(users, dict) or not users:
        raise BrokerError("users: expected a dict {username: password}, got %r" % (users,))
    for u, p in users.items():
        # The ACL puts the username in a topic: no wildcards or separators there.
        if not isinstance(u, str) or not u or any(c in u for c in "/+#: \n"):
            raise BrokerError("users: %r is not a valid charger id / username" % (u,))
        if not isinstance(p, str) or not p:
            raise BrokerError("users[%r]: expected a non-empty password" % u)


def _free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: atexit still stops it on a normal exit


class Broker:
    def __init__(self, tmpdir, users, relay_users=("relay",), host="127.0.0.1", port=0,
                 tls=None, autosave_s=1, max_queued=100_000):
        check_users(users)
        self.dir = os.path.abspath(str(tmpdir))
        self.users, self.relay_users = dict(users), tuple(relay_users)
        self.host, self.port = host, port or _free_port(host)
        self.tls, self.autosave_s, self.max_queued = tls, autosave_s, max_queued
        self.proc = None
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.log = os.path.join(self.dir, "mosquitto.log")

    # ---- config ---------------------------------------------------------------------------

    def _write_config(self):
        os.makedirs(self.dir, exist_ok=True)
        dynsec = os.path.join(self.dir, "dynamic-security.json")
        with open(dynsec, "w") as f:
            json.dump(dynsec_config(self.users, self.relay_users), f, indent=1)
        os.chmod(dynsec, 0o600)  # password hashes
        conf = ["listener %d %s" % (self.port, self.host),
                "allow_anonymous false",
                "plugin " + _plugin(),
                "plugin_opt_config_file " + dynsec,
                "persistence true",
                "persistence_location " + self.dir + "/",
                "persistence_file mosquitto.db",
                "autosave_interval %d" % self.autosave_s,
                "max_queued_messages %d" % self.max_queued,
                # Small request/reply packets: Nagle plus delayed ACKs would add ~40 ms each.
                "set_tcp_nodelay true",
                "log_dest file " + self.log,
                "log_type error", "log_type warning", "log_type notice",
                # Run as whoever started us (as root Mosquitto would switch to `mosquitto`,
                # which cannot write the temporary directory).
                "user " + pwd.getpwuid(os.getuid()).pw_name]
        if self.tls:
            conf += ["cafile " + os.path.join(self.tls, "ca.pem"),
                     "certfile " + os.path.join(self.tls, "server.pem"),
                     "keyfile " + os.path.join(self.tls, "server.key")]
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self, timeout=10.0):
        if self.proc is not None:
            raise BrokerError("broker already running (pid %d)" % self.proc.pid)
        self._write_config()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([_tool("mosquitto"), "-c", self.conf],
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                _LIVE.discard(self)
                raise BrokerError("mosquitto exited with %d at start; log: %s"
                                  % (code, self.log_tail()))
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError("mosquitto did not accept on %s:%d within %.0f s; log: %s"
                                      % (self.host, self.port, timeout, self.log_tail()))
                time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops Mosquitto (SIGTERM writes the persistence file); SIGKILL if it hangs."""
        p, self.proc = self.proc, None
        _LIVE.discard(self)
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def kill(self):
        """The crash: SIGKILL, no final save."""
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=2000):
        try:
            with open(self.log, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - n))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _stop_all():
    for b in list(_LIVE):
        b.stop()


class BrokerClient:
    """A small synchronous paho client for tests and tools: a charger or the relay by hand.

    c = BrokerClient(broker, "cp-1", "pw"); c.subscribe("cp/cp-1/down"); c.publish(t, b)
    c.get(timeout) -> the next message (topic, payload bytes), or raises queue.Empty.
    clean=False keeps a persistent session (MQTT 3.1.1 clean_session=0).
    """

    def __init__(self, broker, user, password, client_id=None, clean=True, will=None):
        import paho.mqtt.client as mqtt
        self.messages = queue.Queue(maxsize=100_000)  # a test that overflows it is broken
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user,
                                  clean_session=clean, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, password)
        if will:
            self.client.will_set(*will)
        if broker.tls:
            self.client.tls_set(ca_certs=os.path.join(broker.tls, "ca.pem"))
        self.connack = queue.Queue(1)
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_socket_open = lambda c, u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        rc = self.connack.get(timeout=10)
        if rc.is_failure:
            self.close()
            raise BrokerError("connect as %r refused: %s" % (user, rc))

    def subscribe(self, topic, qos=1):
        got, done = [], threading.Event()

        def on_sub(c, u, mid, codes, p):
            got.extend(codes)
            done.set()
        self.client.on_subscribe = on_sub
        rc, _ = self.client.subscribe(topic, qos)
        if rc or not done.wait(10):
            raise BrokerError("subscribe %s: no SUBACK" % topic)
        return got[0]  # a paho ReasonCode: .is_failure when the ACL refused the filter

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(10)
        return info

    def get(self, timeout=10):
        return self.messages.get(timeout=timeout)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


if __name__ == "__main__":
    raise SystemExit(main())
