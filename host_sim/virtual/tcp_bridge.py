"""Virtual devices behind TCP ports: bytes in -> device.handle(bytes) -> bytes out, one thread.

For a charger that is not in this process (MicroPython in Node, tools/mpy_agent.mjs): its board
connects to 127.0.0.1:<port> where the serial line would be. Each device gets a listening
socket; a new connection stands for the charger powering up, so a device with reset() (the
PN532: it sleeps until woken) is reset then, and an older connection to it is dropped.
"""
import selectors
import socket
import threading

_CHUNK = 512


class TcpBridge:
    """TcpBridge({"reader": VirtualPn532(), "meter": bus}); start() -> {name: port}; stop().

    Also `with TcpBridge(devices) as ports:`. handle() runs on the bridge's thread: a test
    changing a device (a card on the antenna, an EV) from its own thread only sets attributes.
    If handle() raises, the bridge stops and keeps the exception in .error for the test to see.
    """

    def __init__(self, devices, host="127.0.0.1"):
        self.devices = dict(devices)
        self.host = host
        self.ports = {}
        self.error = None
        self.connections = dict((name, 0) for name in self.devices)  # accepted, per device
        self._sel = selectors.DefaultSelector()
        self._conn = {}  # device name -> its current connection
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = None

    def start(self):
        for name in self.devices:
            s = socket.create_server((self.host, 0))
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ, ("listen", name))
            self.ports[name] = s.getsockname()[1]
        self._sel.register(self._stop_r, selectors.EVENT_READ, ("stop", None))
        self._thread = threading.Thread(target=self._serve, daemon=True, name="tcp-bridge")
        self._thread.start()
        return dict(self.ports)

    def _serve(self):
        try:
            while True:
                for key, _ in self._sel.select():
                    what, name = key.data
                    if what == "stop":
                        return
                    if what == "listen":
                        self._accept(key.fileobj, name)
                    else:
                        self._pump(key.fileobj, name)
        except Exception as e:  # a broken virtual device must show in the test, not hang it
            self.error = e
        finally:
            for key in list(self._sel.get_map().values()):
                if key.fileobj is not self._stop_r:
                    key.fileobj.close()
            self._sel.close()

    def _accept(self, listener, name):
        conn, _ = listener.accept()
        old = self._conn.get(name)
        if old is not None:
            self._drop(old)
        conn.setblocking(True)  # replies are a few hundred bytes: sendall never waits long
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn[name] = conn
        self.connections[name] += 1
        reset = getattr(self.devices[name], "reset", None)
        if reset:
            reset()
        self._sel.register(conn, selectors.EVENT_READ, ("conn", name))

    def _drop(self, conn):
        self._sel.unregister(conn)
        conn.close()

    def _pump(self, conn, name):
        try:
            data = conn.recv(_CHUNK)
        except OSError:
            data = b""
        if not data:  # the charger went away (power cut): wait for the next connection
            self._drop(conn)
            if self._conn.get(name) is conn:
                del self._conn[name]
            return
        reply = self.devices[name].handle(data)
        if reply:
            try:
                conn.sendall(reply)
            except OSError:
                self._drop(conn)
                self._conn.pop(name, None)

    def stop(self):
        """Stop the thread (joined within a second) and close every socket; harmless twice."""
        if self._thread is not None:
            self._stop_w.send(b"x")
            self._thread.join(1.0)
            self._thread = None
            self._stop_r.close()
            self._stop_w.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
