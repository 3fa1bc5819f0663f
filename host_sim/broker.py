"""A real Mosquitto broker for tests and `make sim MODE=mqtt`: password file, ACL, persistence.

    with Broker(tmpdir, users={"cp-1": "pw", "relay": "pw"}) as b:
        ... connect to b.host:b.port ...

Every user is a charger whose username is its charger id, except the relay users (default
"relay"). The ACL lets a charger write only cp/<its id>/up and cp/<its id>/status and read only
cp/<its id>/down; a relay user reads cp/+/up and cp/+/status and writes cp/+/down. Persistence is
on (mosquitto.db in tmpdir): restart() stops Mosquitto with SIGTERM, which writes the database,
and starts it again on the same port, so persistent sessions and their queued QoS 1 messages
survive. kill() is the crash (SIGKILL: only what the last autosave wrote survives).
tls: a directory with ca.pem, server.pem, server.key (host_sim/certs.py) for a TLS listener.
No process is left behind: stop() at exit (atexit), and on Linux Mosquitto gets SIGTERM when the
process that started it dies (PR_SET_PDEATHSIG).
"""
import atexit
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
        if not isinstance(users, dict) or not users:
            raise BrokerError("users: expected a dict {username: password}, got %r" % (users,))
        for u, p in users.items():
            # The ACL patterns put the username in a topic: no wildcards or separators there.
            if not isinstance(u, str) or not u or any(c in u for c in "/+#: \n"):
                raise BrokerError("users: %r is not a valid charger id / username" % (u,))
            if not isinstance(p, str) or not p:
                raise BrokerError("users[%r]: expected a non-empty password" % u)
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
        passwd = os.path.join(self.dir, "passwd")
        if os.path.exists(passwd):
            os.remove(passwd)
        tool = _tool("mosquitto_passwd")
        for i, (u, p) in enumerate(self.users.items()):
            args = [tool] + (["-c"] if i == 0 else []) + ["-b", passwd, u, p]
            r = subprocess.run(args, capture_output=True, text=True)
            if r.returncode:
                raise BrokerError("mosquitto_passwd for %r failed: %s" % (u, r.stderr.strip()))
        acl = os.path.join(self.dir, "acl")
        lines = []
        for u in self.relay_users:
            lines += ["user " + u, "topic read cp/+/up", "topic read cp/+/status",
                      "topic write cp/+/down", "topic readwrite relay/#", ""]
        # Patterns apply to every user: %u is the username, i.e. the charger id.
        lines += ["pattern write cp/%u/up", "pattern write cp/%u/status",
                  "pattern read cp/%u/down", ""]
        with open(acl, "w") as f:
            f.write("\n".join(lines))
        conf = ["listener %d %s" % (self.port, self.host),
                "allow_anonymous false",
                "password_file " + passwd,
                "acl_file " + acl,
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
