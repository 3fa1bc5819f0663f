"""Stand-ins for the Pico W's machine, network and ntptime in MicroPython's unix port, for
tools/bench/tls_unix.py: tls_unix_dev.py imports this first and leaves its heap out of every
figure."""
import sys


# The rp2 port's Pin, UART and WLAN objects are static in its firmware (no heap): the stand-ins
# below are made with this module (left out of every figure), and building the board takes
# them from tables as the port does. What the port does allocate, the UARTs' ring buffers, is
# allocated here too.
class Pin:
    OUT, IN, PULL_UP = 1, 0, 2
    plugged = False  # what the plug input shows (the session script moves it)

    def __init__(self):
        self.mode = self.v = 0

    def __call__(self, v):
        self.v = v

    def value(self, v=None):
        if self.mode == Pin.IN:
            return 0 if Pin.plugged else 1  # pulled up; the plug pulls it low (plug_low)
        if v is None:
            return self.v
        self.v = v


class Pins:
    """machine.Pin: GP0..GP29 and the Pico W's "LED"."""
    OUT, IN, PULL_UP = Pin.OUT, Pin.IN, Pin.PULL_UP

    def __init__(self):
        self.table = {k: Pin() for k in list(range(30)) + ["LED"]}

    def __call__(self, pid, mode, pull=None, value=None):
        p = self.table[pid]
        p.mode, p.v = mode, value or 0
        return p


class Uart:
    def __init__(self):
        self.rx = self.tx = None

    def txdone(self):
        return True


class Uarts:
    """machine.UART: UART0 and UART1, each with its ring buffers on the Python heap as the rp2
    port allocates them (ringbuf_alloc of rxbuf + 1 and txbuf + 1 bytes, 256 each unless
    given)."""

    def __init__(self):
        self.table = [Uart(), Uart()]

    def __call__(self, n, **kw):
        u = self.table[n]
        u.rx = u.tx = None  # the port frees the old buffers first
        u.rx = bytearray(kw.get("rxbuf", 256) + 1)
        u.tx = bytearray(kw.get("txbuf", 256) + 1)
        return u


class Machine:
    Pin, UART = Pins(), Uarts()

    @staticmethod
    def reset():
        raise SystemExit("reset")


class Wlan:
    def active(self, on=None):
        pass

    def connect(self, ssid, key):
        pass

    def disconnect(self):
        pass

    def isconnected(self):
        return True

    def status(self):
        return 3

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")


_WLAN = Wlan()


class Network:
    STA_IF, STAT_GOT_IP = 0, 3

    @staticmethod
    def WLAN(i):
        return _WLAN

    @staticmethod
    def hostname(n):
        pass


class Ntp:
    @staticmethod
    def settime():
        pass  # the host's clock is right


sys.modules["machine"] = Machine
sys.modules["network"] = Network
sys.modules["ntptime"] = Ntp
