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


class PtyDevice:
    """Runs `device.handle(bytes_in) -> bytes_out` behind a pty so a driver sees a serial port.

    Use as `with PtyDevice(dev) as path:` or start()/stop(). inject(data) sends unsolicited bytes
    (a line reader's line, noise). Replies the driver does not read are dropped when the pty is
    full (as a UART overruns), counted in .dropped; the pump never blocks on the driver.
    """

    def __init__(self, device):
        self.device = device
        self.dropped = 0
        self.error = None  # the exception that stopped the pump, if device.handle() raised
        self.master, self._slave, self.path = open_pty()
        self._stop_r, self._stop_w = os.pipe()
        self._lock = threading.Lock()
        self._thread = None

    def inject(self, data):
        with self._lock:
            try:
                n = os.write(self.master, data)
            except BlockingIOError:
                n = 0
            self.dropped += len(data) - n

    def _pump(self):
        while True:
            ready, _, _ = select.select([self.master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self.master, _CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return  # EIO: the pty is gone
            try:
                reply = self.device.handle(data)
            except Exception as e:  # a broken virtual device must show up in the test, not hang it
                self.error = e
                return
            if reply:
                self.inject(reply)

    def start(self):
        self._thread = threading.Thread(target=self._pump, name="pty " + self.path, daemon=True)
        self._thread.start()
        return self.path

    def stop(self):
        """Stop the pump (joins the thread within a second) and close the pty."""
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(1.0)
            self._thread = None
        for fd in (self.master, self._slave, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self._slave = self._stop_r = self._stop_w = -1

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
