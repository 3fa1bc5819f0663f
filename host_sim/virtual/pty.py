"""Virtual devices as serial ports: a raw pty pair, and a thread pumping bytes through a device."""
import os
import select
import threading
import tty

_CHUNK = 256


def open_pty():
    """A raw pty pair: (master_fd, slave_fd, slave_path). The device side keeps master_fd (made
    non-blocking); a driver opens slave_path like a serial port. Keep slave_fd open while the pty
    is in use: without an open slave the master reads EIO between a driver's close and reopen."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing, no CR/LF translation: bytes as on a UART
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class _Pump:
    """A daemon thread serving some pty masters until stop(); closes its fds exactly once."""

    def __init__(self, ptys):
        self._ptys = ptys
        self._stop_r, self._stop_w = os.pipe()
        self._fds = [fd for p in ptys for fd in p[:2]] + [self._stop_r, self._stop_w]
        self._thread = None
        self._lock = threading.Lock()
        self.dropped = 0  # bytes lost because the reading side left its pty full (an overrun)

    def _put(self, fd, data):
        with self._lock:
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                n = 0
            self.dropped += len(data) - n

    def _serve(self):
        masters = [p[0] for p in self._ptys]
        while True:
            ready, _, _ = select.select(masters + [self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for m in masters:
                if m in ready:
                    try:
                        data = os.read(m, _CHUNK)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        return  # EIO: the pty is gone
                    if not self._got(m, data):
                        return

    def start(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop the thread (joined within a second) and close the ptys; harmless twice."""
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(1.0)
            self._thread = None
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def __exit__(self, *exc):
        self.stop()


class PtyDevice(_Pump):
    """Runs `device.handle(bytes_in) -> bytes_out` behind a pty so a driver sees a serial port.

    `with PtyDevice(dev) as path:` or start()/stop(). inject(data) sends unsolicited bytes (a
    line reader's line, noise). Replies the driver does not read are dropped when the pty is full
    (as a UART overruns): the pump never blocks on the driver. If handle() raises, the pump stops
    and keeps the exception in .error for the test to see.
    """

    def __init__(self, device):
        pty = open_pty()
        _Pump.__init__(self, [pty])
        self.device = device
        self.path = pty[2]
        self.error = None

    def inject(self, data):
        self._put(self._ptys[0][0], data)

    def _got(self, master, data):
        try:
            reply = self.device.handle(data)
        except Exception as e:  # a broken virtual device must show in the test, not hang it
            self.error = e
            return False
        if reply:
            self._put(master, reply)
        return True

    def __enter__(self):
        self.start()
        return self.path


class NullModem(_Pump):
    """Two ptys wired back to back (what `socat PTY PTY` does): what a program writes to one
    path, a program on the other reads. `with NullModem() as (path_a, path_b):`."""

    def __init__(self):
        a, b = open_pty(), open_pty()
        _Pump.__init__(self, [a, b])
        self.paths = (a[2], b[2])
        self._other = {a[0]: b[0], b[0]: a[0]}

    def _got(self, master, data):
        self._put(self._other[master], data)
        return True

    def __enter__(self):
        self.start()
        return self.paths
