"""boards/mcu.py (and the ESP32's and Pico W's boards over it) on fake machine, network, ntptime,
tls and esp32 modules: UARTs and pins from the config, refusals naming the field, the TLS context
in each port's certificate form, the heap logged before each TLS setup and one retry of a setup
that failed for memory, Wi-Fi, NTP and the port's epoch, plug and enable pins, LED, watchdog,
and its time."""
import asyncio
import json
import os
import sys

from check import arun, raises_naming
from cpagent import config


class Pin:
    OUT = 1
    IN = 0
    PULL_UP = 2
    bad = ()  # ids the fake port refuses

    def __init__(self, pid, mode, pull=None, value=None):
        if pid in Pin.bad:
            raise ValueError("invalid pin")
        self.id, self.mode, self.pull = pid, mode, pull
        self.v = 1 if value is None else value  # an input with its pull-up reads 1

    def __call__(self, v):
        self.v = v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class UART:
    made = []

    def __init__(self, n, **kw):
        self.n, self.kw = n, kw
        UART.made.append(self)

    def txdone(self):
        return True


class WDT:
    made = []

    def __init__(self, timeout):
        self.timeout, self.fed = timeout, 0
        WDT.made.append(self)

    def feed(self):
        self.fed += 1


class Machine:
    Pin, UART, WDT = Pin, UART, WDT
    resets = []

    @staticmethod
    def reset():
        Machine.resets.append(1)


class WLAN:
    """Joins as `plan` says, one entry per connect(): "ok" or a status number."""

    def __init__(self, i):
        self.plan, self.up, self.st, self.joins = [], False, 0, []

    def active(self, on=None):
        self.on = on

    def connect(self, ssid, key):
        self.joins.append((ssid, key))
        r = self.plan.pop(0) if self.plan else -2
        self.up, self.st = r == "ok", 3 if r == "ok" else r

    def disconnect(self):
        self.up = False

    def isconnected(self):
        return self.up

    def status(self):
        return self.st

    def ifconfig(self):
        return ("10.0.0.7", "255.255.255.0", "10.0.0.1", "10.0.0.1")


class Network:
    STA_IF = 0
    STAT_IDLE = 0
    STAT_CONNECTING = 1
    STAT_GOT_IP = 3
    STAT_NO_AP_FOUND = -2
    STAT_WRONG_PASSWORD = -3
    WLAN = WLAN
    names = []

    @staticmethod
    def hostname(n):
        Network.names.append(n)


class Ntp:
    fail = False
    calls = 0

    @staticmethod
    def settime():
        Ntp.calls += 1
        if Ntp.fail:
            raise OSError(110)


class Context:
    def __init__(self, proto):
        self.loaded = []

    def load_verify_locations(self, data):
        self.loaded.append(("ca", data))

    def load_cert_chain(self, cert, key):
        self.loaded.append(("cert", cert, key))


class Tls:
    PROTOCOL_TLS_CLIENT = 0
    CERT_NONE = 0
    CERT_REQUIRED = 2
    SSLContext = Context


class Esp32:
    HEAP_DATA = 4

    @staticmethod
    def idf_heap_info(caps):  # (total, free, largest free block, least free) per region
        return [(100000, 30000, 12000, 2000), (50000, 20000, 18000, 1000)] if caps == 4 else []


class Gc:
    free = 65536
    collects = 0

    @staticmethod
    def mem_free():
        return Gc.free

    @staticmethod
    def collect():
        Gc.collects += 1


class Net:
    """asyncio.open_connection for connect(): fails as `plan` says (an exception per attempt),
    then hands back a pair of stand-in streams; records each call."""
    plan = []
    calls = []

    @staticmethod
    async def open_connection(host, port, ssl=None):
        Net.calls.append((host, port, ssl))
        if Net.plan:
            raise Net.plan.pop(0)
        return "reader", "writer"


class Time:
    """time with ticks_ms wrapping at 2**30 as on the ESP32; year 2000 epoch unless told."""
    now = 0
    epoch_year = 2000

    @staticmethod
    def ticks_ms():
        return Time.now & (2 ** 30 - 1)

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + 2 ** 29) & (2 ** 30 - 1)) - 2 ** 29

    @staticmethod
    def time():
        return 800000000 + Time.now // 1000

    @staticmethod
    def gmtime(s):
        return (Time.epoch_year, 1, 1, 0, 0, 0, 5, 1)


_FAKES = (("machine", Machine), ("network", Network), ("ntptime", Ntp), ("tls", Tls),
          ("esp32", Esp32))
for _name, _mod in _FAKES:
    sys.modules[_name] = _mod
from cpagent.boards import esp32, mcu, rp2  # noqa: E402  (after the fakes)

for _name, _mod in _FAKES:
    del sys.modules[_name]  # the boards hold them; nothing else in this process sees them

_init = mcu.McuBoard.__init__


def _init_with_fakes(self, c):
    # boards/setup.py (boot-only, imported for each build and dropped) imports machine and tls
    # then: the fakes are there for that while only.
    for name, mod in _FAKES:
        sys.modules[name] = mod
    try:
        _init(self, c)
    finally:
        for name, _ in _FAKES:
            del sys.modules[name]


mcu.McuBoard.__init__ = _init_with_fakes

mcu.time = Time  # the real time module has no ticks on CPython; the fake wraps as the ESP32's
mcu.gc = Gc  # a heap of a known size, on both runtimes


class Board(mcu.McuBoard):
    UARTS = {1: (27, 26), 2: (17, 16)}
    DE = 4
    LED = 2

    async def sleep_ms(self, ms):  # virtual time: a sleep moves the clock on
        Time.now += ms
        await asyncio.sleep(0)


def cfg(**over):
    c = {"charger_id": "cp-1", "operator_id": "DE*ABC",
         "evses": [{"evse_id": "DE*ABC*E1", "meter_address": 1}],
         "reader": {"type": "line"}, "meter": {"model": "sdm630"},
         "uplink": {"kind": "http", "url": "http://hub.test"},
         "wifi": {"ssid": "depot", "password": "secret-1"}}
    c.update(over)
    return config.load(json.dumps(c))


def test_uarts_de_and_led_from_the_config_and_the_boards_defaults():
    UART.made.clear()
    b = Board(cfg())
    meter, reader = [u for u in UART.made if u.n == 2][0], [u for u in UART.made if u.n == 1][0]
    # A meter only answers: one reply (at most 255 bytes) waits in its buffer. A line reader's
    # device sends unasked: a second of 9600 baud.
    assert meter.kw == {"baudrate": 9600, "bits": 8, "parity": None, "stop": 1, "tx": 17,
                        "rx": 16, "rxbuf": 256, "txbuf": 256, "timeout": 0}
    assert (reader.kw["tx"], reader.kw["rx"], reader.kw["baudrate"]) == (27, 26, 9600)
    assert reader.kw["rxbuf"] == 1024
    for kind, rxbuf in (("pn532", 256), ("rdm6300", 1024)):
        UART.made.clear()
        Board(cfg(reader={"type": kind}))
        assert [u.kw["rxbuf"] for u in UART.made if u.n == 1] == [rxbuf], kind
    # The Pico W's UART buffers are on the Python heap: the transmit one fits the longest write.
    UART.made.clear()
    rp2.Board(cfg(reader={"type": "pn532", "uart": 0}, meter={"model": "sdm630", "uart": 1}))
    assert [u.kw["txbuf"] for u in UART.made] == [32, 32]
    assert b.txdone == meter.txdone and (b.de.id, b.de.mode, b.de.v) == (4, Pin.OUT, 0)
    assert b.led.id == 2 and b.evse == [] and b.tls is None
    # The boot-only half that built all this is gone again (sys.modules and the package).
    import cpagent.boards

    assert "cpagent.boards.setup" not in sys.modules and "setup" not in dir(cpagent.boards)
    UART.made.clear()
    b = Board(cfg(meter={"model": "abb_b23", "parity": "E", "baud": 19200},
                  reader={"type": "none"},
                  board={"meter_tx": 5, "meter_rx": 18, "de_pin": False, "led_pin": False}))
    assert [(u.n, u.kw["tx"], u.kw["rx"], u.kw["parity"], u.kw["baudrate"])
            for u in UART.made] == [(2, 5, 18, 0, 19200)]
    assert b.de is None and b.led is None


def test_what_the_board_cannot_do_is_refused_naming_the_field():
    Pin.bad = (40,)
    for over, words in (
        ({"board": {"de_pin": 17}}, "board.de_pin: pin 17 is already board.meter_tx"),
        ({"board": {"led_pin": 40}}, "board.led_pin: pin 40 cannot be used on this board"),
        ({"board": {"reader_rx": False}}, "board.reader_rx: a UART needs both its pins"),
        ({"reader": {"type": "line", "uart": 0}}, "reader.uart: expected one of 1, 2"),
        ({"wifi": None}, "wifi: required on this board"),
        ({"uplink": {"kind": "http", "url": "https://hub.test", "ca": "no/such.pem"}},
         "uplink.ca: cannot read no/such.pem"),
    ):
        raises_naming(ValueError, words, Board, cfg(**over))
    Pin.bad = ()


def test_a_pin_the_boards_own_hardware_holds_is_refused_naming_the_field():
    # A Pico W's GP23 switches its Wi-Fi chip's power (GP24, GP25, GP29: its data, select and
    # clock); an ESP32's GPIO6-11 are its flash. Pin() takes them all: the board must not.
    for board, pin, words in ((rp2.Board, 23, "pin 23 is the Wi-Fi chip's (GP23 power"),
                              (rp2.Board, 29, "pin 29 is the Wi-Fi chip's"),
                              (esp32.Board, 6, "pin 6 is the module's flash (GPIO6-11)")):
        for field, pins in (("enable", {"enable": pin, "plug": None}),
                            ("plug", {"enable": 3, "plug": pin})):
            raises_naming(ValueError, "board.evse_pins[0].%s: %s" % (field, words),
                          board, cfg(meter={"model": "none"}, reader={"type": "none"},
                                     board={"evse_pins": [pins]}))
        raises_naming(ValueError, "board.led_pin: " + words, board,
                      cfg(meter={"model": "none"}, reader={"type": "none"},
                          board={"led_pin": pin}))
    # the rp2's names for a GPIO are that pin, to the reserved check and to "each pin once"
    for name in ("GP23", "GPIO23"):
        raises_naming(ValueError, "board.evse_pins[0].enable: pin 23 is the Wi-Fi chip's",
                      rp2.Board, cfg(meter={"model": "none"}, reader={"type": "none"},
                                     board={"evse_pins": [{"enable": name, "plug": None}]}))
    raises_naming(ValueError, "board.evse_pins[0].plug: pin 21 is already board.evse_pins[0].",
                  rp2.Board, cfg(meter={"model": "none"}, reader={"type": "none"},
                                 board={"evse_pins": [{"enable": "GP21", "plug": 21}]}))
    # the pins beside them are anyone's
    b = rp2.Board(cfg(meter={"model": "none"}, reader={"type": "none"},
                      board={"evse_pins": [{"enable": 22, "plug": "GPIO26"}]}))
    assert (b.evse[0].id, b.evse[1].id) == (22, 26)


def test_gpio_0_is_a_pin_like_any_other():
    # The Pico W's UART0 sits on GP0/GP1: a pin number 0 is taken, claimed and built.
    UART.made.clear()
    b = rp2.Board(cfg(meter={"model": "sdm630", "uart": 0}, reader={"type": "none"},
                      board={"evse_pins": [{"enable": 3, "plug": None}]}))
    assert [(u.n, u.kw["tx"], u.kw["rx"]) for u in UART.made] == [(0, 0, 1)]
    assert b.de.id == 2 and b.evse[0].id == 3 and b.evse[1] is None
    raises_naming(ValueError, "board.evse_pins[0].enable: pin 0 is already board.meter_tx",
                  rp2.Board, cfg(meter={"model": "sdm630", "uart": 0}, reader={"type": "none"},
                                 board={"evse_pins": [{"enable": 0, "plug": None}]}))

def _files(contents):
    """Writes {name: bytes} to a fresh folder; returns {name: path}."""
    d = "/" if sys.implementation.name == "micropython" else __import__("tempfile").mkdtemp()
    out = {}
    for name, data in contents.items():
        out[name] = d.rstrip("/") + "/" + name
        with open(out[name], "wb") as f:
            f.write(data)
    return out


PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
DER = b"\x30\x82\x01\xbb\x30\x82"  # how a DER certificate or key starts (a SEQUENCE)
PICO = {"meter": {"model": "none"}, "reader": {"type": "none"}}  # no UART2 on a Pico W


def _tls(paths, ca, cert, key):
    return {"kind": "http", "url": "https://hub.test", "ca": paths[ca], "cert": paths[cert],
            "key": paths[key]}


def test_tls_context_loads_the_files_the_uplink_names_in_the_ports_form():
    paths = _files({"ca.pem": PEM + b"ca", "c.pem": PEM + b"c", "c.key": b"-----BEGIN EC "
                    b"PRIVATE KEY-----\nk", "ca.der": DER + b"ca", "c.der": DER + b"c",
                    "c.key.der": DER + b"k"})
    # ESP32: the IDF's mbedTLS parses PEM (and DER).
    b = esp32.Board(cfg(uplink=_tls(paths, "ca.pem", "c.pem", "c.key")))
    assert b.tls.verify_mode == Tls.CERT_REQUIRED
    assert b.tls.loaded == [("ca", PEM + b"ca"),
                            ("cert", PEM + b"c", b"-----BEGIN EC PRIVATE KEY-----\nk")]
    # Pico W: DER, as make deploy converts it.
    b = rp2.Board(cfg(uplink=_tls(paths, "ca.der", "c.der", "c.key.der"), **PICO))
    assert b.tls.loaded == [("ca", DER + b"ca"), ("cert", DER + b"c", DER + b"k")]
    b = Board(cfg(uplink={"kind": "http", "url": "https://hub.test", "insecure": True}))
    assert b.tls.verify_mode == Tls.CERT_NONE and b.tls.loaded == []
    for p in paths.values():
        os.remove(p)


def test_a_pem_file_on_the_pico_w_is_a_config_error_naming_the_file():
    paths = _files({"ca.pem": PEM, "c.pem": PEM, "k.pem": b"-----BEGIN PRIVATE KEY-----\n",
                    "ca.der": DER, "c.der": DER})
    for over, words in (
        (_tls(paths, "ca.pem", "c.der", "c.der"), "uplink.ca: %s is PEM" % paths["ca.pem"]),
        (_tls(paths, "ca.der", "c.pem", "c.der"), "uplink.cert: %s is PEM" % paths["c.pem"]),
        (_tls(paths, "ca.der", "c.der", "k.pem"), "uplink.key: %s is PEM" % paths["k.pem"]),
    ):
        e = raises_naming(config.ConfigError, words, rp2.Board, cfg(uplink=over, **PICO))
        assert "loads DER" in str(e)
    for p in paths.values():
        os.remove(p)


class Refusing(Context):
    """A context whose mbedTLS refuses what it is given, as the real one says it."""

    def load_verify_locations(self, data):
        raise ValueError("invalid cert")


def test_a_file_mbedtls_refuses_is_a_config_error_naming_the_field():
    paths = _files({"ca.der": DER, "c.der": DER})
    Tls.SSLContext = Refusing
    try:
        raises_naming(config.ConfigError, "uplink.ca: not a certificate or key this port's TLS "
                      "can load (invalid cert)", rp2.Board,
                      cfg(uplink=_tls(paths, "ca.der", "c.der", "c.der"), **PICO))
    finally:
        Tls.SSLContext = Context
    for p in paths.values():
        os.remove(p)


def _secure_board(cls=None, **over):
    b = (cls or Board)(cfg(uplink={"kind": "http", "url": "https://hub.test", "insecure": True},
                           log_level=2, **over))
    b.wlan.up, b.synced = True, True
    logs = []
    b.log = lambda lv, t: logs.append((lv, t))
    return b, logs


def test_the_heap_is_logged_before_each_tls_setup_and_one_that_ran_out_is_tried_again():
    async def go():
        real = mcu.asyncio
        mcu.asyncio = Net
        try:
            b, logs = _secure_board()
            Net.calls, Net.plan, Gc.collects, Gc.free = [], [], 0, 65536
            assert await b.connect("hub.test", 443, True) == ("reader", "writer")
            assert Net.calls == [("hub.test", 443, b.tls)] and Gc.collects == 0
            assert len(logs) == 1 and logs[0][0] == 2 and logs[0][1].startswith(
                "tls: to hub.test:443, heap 65536 B free, largest block ")
            # Plain TCP: no TLS setup, nothing logged.
            logs.clear()
            assert await b.connect("hub.test", 80, False) == ("reader", "writer")
            assert Net.calls[-1] == ("hub.test", 80, None) and logs == []
            # Below log level 2 the heap line (and its probing) is left out.
            quiet, quiet_logs = _secure_board()
            quiet.log_level = 1
            assert await quiet.connect("hub.test", 443, True) == ("reader", "writer")
            assert quiet_logs == []
            # Out of memory, as mbedTLS reports it at setup (ENOMEM), during a handshake (its
            # own code) or as MicroPython does: tried once more, after a collection.
            for fail in (OSError(12), OSError(-0x7F00), MemoryError("memory allocation failed")):
                Net.calls, Net.plan, Gc.collects = [], [fail], 0
                logs.clear()
                assert await b.connect("hub.test", 443, True) == ("reader", "writer")
                assert len(Net.calls) == 2 and Gc.collects == 1
                assert logs[1][0] == 1 and logs[1][1].startswith(
                    "tls: out of memory (%r), once more after a collection: heap " % (fail,))
            # Twice out of memory: the second failure is the caller's (the link's supervisor).
            Net.calls, Net.plan = [], [OSError(12), OSError(12)]
            e = await _raises(b.connect("hub.test", 443, True))
            assert e.args[0] == 12 and len(Net.calls) == 2
            # Any other failure is not retried.
            for fail in (OSError(113), ValueError("invalid cert")):
                Net.calls, Net.plan, Gc.collects = [], [fail], 0
                assert await _raises(b.connect("hub.test", 443, True)) is fail
                assert len(Net.calls) == 1 and Gc.collects == 0
        finally:
            mcu.asyncio = real
    return arun(go())


async def _raises(coro):
    try:
        await coro
    except Exception as e:  # noqa: BLE001  (the test looks at which)
        return e
    raise AssertionError("no exception")


def test_the_esp32_logs_its_idf_heap_too_where_the_port_has_it():
    b, _ = _secure_board(esp32.Board)
    Gc.free = 40960
    text = b.heap()
    assert text.startswith("heap 40960 B free, largest block ")
    assert text.endswith("; IDF heap 50000 B free, largest block 18000 B")
    esp32.esp32 = OldEsp32
    try:
        assert "IDF" not in b.heap() and b.heap().startswith("heap 40960 B free")
    finally:
        esp32.esp32 = Esp32


class OldEsp32:
    """An esp32 module without idf_heap_info (before MicroPython 1.20)."""
    HEAP_DATA = 4


def test_the_largest_block_is_found_to_a_kilobyte_within_the_free_heap():
    b = Board(cfg())
    for free in (0, 1023, 5000, 65536):
        Gc.free = free
        text = b.heap()
        assert text.startswith("heap %d B free, largest block " % free) and text[-2:] == " B"
        n = int(text.split()[-2])
        assert n % 1024 == 0 and 0 <= n <= free
        if sys.implementation.name != "micropython":  # CPython always has the memory
            assert n == free // 1024 * 1024


def test_board_time_unwraps_the_ports_ticks_and_wall_time_uses_its_epoch():
    Time.now = 2 ** 30 - 500  # half a second before ticks_ms wraps
    b = Board(cfg())
    t0 = b.ticks_ms()
    Time.now += 1500
    assert b.ticks_ms() - t0 == 1500 and b.real_ms() - t0 == 1500
    assert b.wall_unix() is None  # not before NTP
    b.synced = True
    assert b.wall_unix() == Time.time() + 946684800  # ESP32: seconds since 2000
    Time.epoch_year = 1970
    assert Board(cfg()).wall_unix() is None
    c = Board(cfg())
    c.synced = True
    assert c.wall_unix() == Time.time()  # rp2: since 1970
    Time.epoch_year = 2000


async def _spin(n=50):
    for _ in range(n):
        await asyncio.sleep(0)


def test_wifi_joins_backs_off_names_statuses_and_ntp_sets_the_clock():
    async def go():
        logs = []
        b = Board(cfg(log_level=2))
        b.log = lambda lv, t: logs.append(t)
        b.wlan.plan = [-3, -2, "ok"]  # wrong password, then no AP, then in
        Ntp.fail, Ntp.calls = True, 0
        wifi = asyncio.create_task(b._wifi())
        ntp = asyncio.create_task(b._ntp())
        t = Time.now
        for _ in range(200):
            await _spin(5)
            if b.wifi == "up" and Ntp.calls >= 1:
                break
        assert Network.names == ["cp-1"] and b.wlan.joins == [("depot", "secret-1")] * 3
        fails = [x for x in logs if x.startswith("wifi: ")]
        assert fails[0] == "wifi: wrong_password to 'depot', again in 2 s", logs
        assert fails[1] == "wifi: no_ap_found to 'depot', again in 4 s", logs
        assert "wifi: up, address 10.0.0.7" in logs and Time.now - t >= 6000
        assert b.wall_unix() is None and [x for x in logs if x.startswith("ntp: ")]
        Ntp.fail = False
        for _ in range(100):
            await _spin(5)
            if b.synced:
                break
        assert b.wall_unix() == Time.time() + 946684800 and "ntp: wall clock set" in logs
        b.wlan.up, b.wlan.st, b.wlan.plan = False, -2, ["ok"]
        for _ in range(100):
            await _spin(5)
            if "wifi: lost (no_ap_found)" in logs and b.wifi == "up":
                break
        assert "wifi: lost (no_ap_found)" in logs and b.wifi == "up"
        for task in (wifi, ntp):
            task.cancel()
        await _spin()
    return arun(go())


class Agent:
    """The board's side of the agent: plug events in, the charger's contactor decision out."""

    def __init__(self, n):
        self.charger = self
        self.closed = [False] * n
        self.link = self
        self.state = "up"
        self.plugs = []

    def plug(self, i, plugged):
        self.plugs.append((i, plugged))

    def contactor(self, i):
        return self.closed[i]


def test_plug_inputs_are_debounced_and_enable_follows_the_session():
    async def go():
        c = cfg(evses=[{"evse_id": "DE*ABC*E1", "meter_address": 1},
                       {"evse_id": "DE*ABC*E2", "meter_address": 2}],
                board={"evse_pins": [{"enable": 21, "plug": 22}, {"enable": 23}]})
        b = Board(c)
        a = Agent(2)
        en0, plug0, en1, none = b.evse
        assert plug0.mode == Pin.IN and plug0.pull == Pin.PULL_UP and none is None
        task = asyncio.create_task(b._pins(a))
        await _spin(10)
        assert a.plugs == [(0, False)]  # the state at boot, once two samples agree
        plug0.v = 0  # one sample low: contact bounce, nothing
        await _spin(1)
        plug0.v = 1
        await _spin(5)
        assert a.plugs == [(0, False)]
        plug0.v = 0  # plugged in (reads 0: plug_low)
        await _spin(5)
        assert a.plugs == [(0, False), (0, True)]
        assert (en0.v, en1.v) == (0, 0)
        a.closed = [True, True]
        await _spin(3)
        assert (en0.v, en1.v) == (1, 1)
        a.closed[0] = False
        await _spin(3)
        assert (en0.v, en1.v) == (0, 1)
        task.cancel()
        await _spin()
    return arun(go())


def test_led_shows_wifi_then_hub_then_steady():
    async def go():
        b = Board(cfg())
        a = Agent(1)
        seen = []
        led = b.led
        b.led = lambda v: (seen.append((v, Time.now)), led(v))
        task = asyncio.create_task(b._blink(a.link))
        await _spin(8)
        on_off = [seen[i + 1][1] - seen[i][1] for i in range(3)]
        assert [v for v, _ in seen[:4]] == [1, 0, 1, 0] and on_off == [100, 100, 100]
        b.wifi, a.state = "up", "backoff"
        seen.clear()
        await _spin(8)
        assert [seen[i + 1][1] - seen[i][1] for i in range(2)] in ([100, 900], [900, 100])
        a.state = "up"
        await _spin(4)
        seen.clear()
        await _spin(6)
        assert seen and all(v == 1 for v, _ in seen)  # steady
        task.cancel()
        await _spin()
    return arun(go())


def test_watchdog_is_fed_while_the_loop_runs_and_held_off_by_the_deploy_flag():
    async def go():
        here = os.getcwd()
        if sys.implementation.name != "micropython":
            os.chdir(__import__("tempfile").mkdtemp())  # the flag is relative to the cwd
        try:
            b = Board(cfg(board={"wdt_s": 8}))
            a = Agent(1)
            assert [n for n, _ in b.jobs(a)] == ["wifi", "ntp", "led", "watchdog"]
            WDT.made.clear()
            task = asyncio.create_task(dict(b.jobs(a))["watchdog"]())
            t = Time.now
            await _spin(6)
            w = WDT.made[0]
            assert len(WDT.made) == 1 and w.timeout == 8000 and w.fed >= 3
            assert (Time.now - t) // w.fed == 2000  # fed four times per timeout
            task.cancel()
            await _spin()
            with open(mcu.NOWDT, "w") as f:
                f.write("")
            logs = []
            b.log = lambda lv, s: logs.append(s)
            assert "watchdog" not in [n for n, _ in b.jobs(a)]
            assert logs == ["watchdog off: /nowdt is there (a deploy in progress)"]
            os.remove(mcu.NOWDT)
            assert [n for n, _ in Board(cfg(board={"wdt_s": 0})).jobs(a)] == ["wifi", "ntp",
                                                                               "led"]
        finally:
            os.chdir(here)
    return arun(go())


def test_connect_needs_wifi_and_for_tls_the_wall_clock():
    async def go():
        b = Board(cfg(uplink={"kind": "http", "url": "https://hub.test", "insecure": True}))
        for up, synced, words in ((False, True, "no Wi-Fi (down)"),
                                  (True, False, "waits for the wall clock")):
            b.wlan.up, b.synced = up, synced
            try:
                await b.connect("hub.test", 443, True)
                raise AssertionError("connected")
            except OSError as e:
                assert words in str(e), e
        b.reset()
        assert Machine.resets == [1]
    return arun(go())
