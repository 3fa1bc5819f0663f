"""The agent's side of tools/bench/tls_unix.py, in MicroPython's unix port, in a folder staged
by make deploy's code for the Pico W: the rp2 board over stand-in machine, network and ntptime
modules, the agent built from config.json, then mutual TLS to the hub through the agent's own
uplink. tls_unix_dev.py starts it (and measured the heap before this module loaded).

Modes (argv[1]): "post" (one AuthorizeStart), "session" (a card, the plug, then unplug: a whole
session, its CDR delivered; tls_unix.py watches the hub for it) or "imports FILE" (the
baseline step by step: each module FILE names, one a line, imported in that order, leaf first,
then the config dict, the board and the agent; a file, since an argument of a few hundred bytes
crashes the unix port at startup). Prints one line "RESULT {json}" with the heap figures
(gc.mem_alloc after gc.collect, bytes), all without this module's own share: its bytecode and
stand-ins are no part of a device's heap (the real machine and network are in its firmware).
"""
import asyncio
import gc
import json
import sys

UID = "04A1B2C3D4E5F6"
SAMPLE_MS = 2


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


class Card:
    """The reader's port: one card line once the session script asks, then nothing."""

    def __init__(self):
        self.due = False

    async def read(self, n):
        while not self.due:
            await asyncio.sleep_ms(20)
        self.due = False
        return (UID + "\n").encode()


sys.modules["machine"] = Machine
sys.modules["network"] = Network
sys.modules["ntptime"] = Ntp


def used():
    gc.collect()
    return gc.mem_alloc()


class Peak:
    """The live heap between task steps (after a collection), sampled by a task of its own:
    what a handshake holds across its reads and writes (not the temporaries within one)."""

    def __init__(self):
        self.top = 0

    async def run(self):
        while True:
            self.top = max(self.top, used())
            await asyncio.sleep_ms(SAMPLE_MS)


async def post(agent, operator_id, out):
    from cpagent.oicp import build as oicp

    path, body = oicp.authorize_start(operator_id, UID)
    before = used()
    peak = Peak()
    task = asyncio.create_task(peak.run())
    res = await agent.uplink.send(path, body)
    task.cancel()
    out["post"] = [res[0], str(res[1])[:200]]
    out["ok"] = res[0] == "ok"
    out["handshake_peak_live"] = peak.top - before  # the first POST: connect, handshake, reply
    out["held_per_connection"] = used() - before  # the keep-alive connection stays open
    before = used()
    res = await agent.uplink.send(path, body)
    out["second_post_ok"] = res[0] == "ok"
    out["held_after_second_post"] = used() - before


async def session(agent, card):
    run = asyncio.create_task(agent.run())
    ev = agent.charger.evses[0]

    async def until(want):
        for _ in range(3000):  # 60 s
            if ev.state == want or run.done():
                break
            await asyncio.sleep_ms(20)
        print("STATE", ev.state)
        if ev.state != want:
            raise SystemExit("stuck in %s, waiting for %s" % (ev.state, want))

    # The board reports the plug inputs' state at boot (two samples): a tap before that would
    # see its session ended by the boot's "unplugged".
    await asyncio.sleep_ms(1000)
    card.due = True
    await until("authorized")
    Pin.plugged = True
    await until("charging")
    await asyncio.sleep_ms(1500)
    Pin.plugged = False
    await until("idle")
    # The agent delivers the End and the CDR in its own time; tls_unix.py ends this process
    # once the hub has the CDR.
    while not run.done():
        await asyncio.sleep_ms(1000)
        print("USED", used())


BUILD = ("config dict", "Board(cfg)", "Agent(cfg, board)", "loader dropped", "config dropped")


def steps(order):
    """[(step, bytes it added)]: each import of order, then the build's parts (BUILD). The
    marks are small ints in a list made beforehand: measuring allocates nothing."""
    marks = [0] * (len(order) + len(BUILD) + 1)
    marks[0] = used()
    for i, m in enumerate(order):
        __import__(m)
        marks[i + 1] = used()
    from cpagent import app, loader
    from cpagent.agent import Agent
    from cpagent.boards.rp2 import Board

    n = len(order)
    with open("config.json", "rb") as f:
        cfg = loader.load(f.read())
    marks[n + 1] = used()
    b = Board(cfg)
    marks[n + 2] = used()
    b.synced = True
    b.journal_dir = "journal"
    agent = Agent(cfg, b)
    marks[n + 3] = used()
    loader = None
    app.forget("loader")
    marks[n + 4] = used()
    cfg = None  # app.build keeps no reference to it either: what the board and agent keep stays
    marks[n + 5] = used()
    names = ["import " + m for m in order] + list(BUILD)
    return [(names[i], marks[i + 1] - marks[i]) for i in range(len(names))], agent


def main(bare):
    """bare: the heap in use before this module loaded (the interpreter, the port's asyncio and
    json): every figure leaves out what this module itself holds."""
    mode = sys.argv[1]
    own = used() - bare
    out = {"interpreter": bare, "bench_code": own}
    if mode == "imports":
        with open(sys.argv[2]) as f:
            out["steps"] = steps(f.read().split())[0]
        out["baseline"] = used() - own
        print("RESULT " + json.dumps(out))
        return
    from cpagent import app, loader
    from cpagent.agent import Agent
    from cpagent.boards.rp2 import Board

    class Bench(Board):
        """The Pico W board with the card reader's port replaced by the scripted card."""
        card = Card()

        def reader_port(self):
            return self.card

    with open("config.json", "rb") as f:
        cfg = loader.load(f.read())  # the checked form make deploy wrote
    out["imports"] = used() - own - bare
    plain = dict(cfg, uplink=dict(cfg["uplink"], url="http://127.0.0.1:9"))
    b = Bench(plain)
    without = used()
    del b
    b = Bench(cfg)
    out["ssl_context"] = used() - without
    b.synced = True  # NTP stands in: the host's clock is right
    # The unix port's "/" is the host's: the journal goes into this run's folder (its flash),
    # not into a /journal that every run would share (and inherit dead letters from).
    b.journal_dir = "journal"
    agent = Agent(cfg, b)
    op = cfg["operator_id"]
    # As app.build: the loader is boot-only, and the config dict is let go once built.
    loader = cfg = plain = None
    app.forget("loader")
    out["baseline"] = used() - own
    if mode == "post":
        asyncio.run(post(agent, op, out))
    else:
        print("RESULT " + json.dumps(out))
        asyncio.run(session(agent, b.card))
    out["heap_total"] = gc.mem_alloc() + gc.mem_free()
    print("RESULT " + json.dumps(out))

