"""The benchmark's side of tools/bench/tls_unix.py in MicroPython's unix port, in a folder
staged by make deploy's code for the Pico W: the agent built from config.json on the rp2 board
(over tls_unix_ports.py's stand-ins), then mutual TLS to the hub through the agent's own uplink.
tls_unix_dev.py imports the agent's modules first and then this, and hands over what the
benchmark's own code holds, which no figure counts.

Modes (argv[1]): "post" (one AuthorizeStart), "session" (a card, the plug, then unplug: a whole
session, its CDR delivered; tls_unix.py watches the hub for it) or "imports" (the baseline step
by step: each import, then the config dict, the board and the agent). Prints one line
"RESULT {json}" with the heap figures (gc.mem_alloc after gc.collect, bytes).
"""
import asyncio
import gc
import json
import sys

import tls_unix_ports

UID = "04A1B2C3D4E5F6"
SAMPLE_MS = 2


class Card:
    """The reader's port: one card line once the session script asks, then nothing."""

    def __init__(self):
        self.due = False

    async def read(self, n):
        while not self.due:
            await asyncio.sleep_ms(20)
        self.due = False
        return (UID + "\n").encode()


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
    tls_unix_ports.Pin.plugged = True
    await until("charging")
    await asyncio.sleep_ms(1500)
    tls_unix_ports.Pin.plugged = False
    await until("idle")
    # The agent delivers the End and the CDR in its own time; tls_unix.py ends this process
    # once the hub has the CDR.
    while not run.done():
        await asyncio.sleep_ms(1000)
        print("USED", used())


BUILD = ("config dict", "Board(cfg)", "Agent(cfg, board)", "loader dropped", "config dropped")


def build(marks, n):
    """The agent built as app.build does: marks[n + 1] the heap before, marks[n + 2..] after
    each part (slots made beforehand: measuring allocates nothing); returns (agent, its board,
    the SSL context's share of the board, the OperatorID)."""
    from cpagent import app, loader
    from cpagent.agent import Agent
    from cpagent.boards.rp2 import Board

    class Bench(Board):
        """The Pico W board with the card reader's port replaced by the scripted card."""
        card = Card()

        def reader_port(self):
            return self.card

    marks[n + 1] = used()
    with open("config.json", "rb") as f:
        cfg = loader.load(f.read())  # the checked form make deploy wrote
    marks[n + 2] = used()
    b = Bench(dict(cfg, uplink=dict(cfg["uplink"], url="http://127.0.0.1:9")))
    without = used()
    b = None
    b = Bench(cfg)
    ssl = used() - without
    marks[n + 3] = used()
    b.synced = True  # NTP stands in: the host's clock is right
    # The unix port's "/" is the host's: the journal goes into this run's folder (its flash),
    # not into a /journal that every run would share (and inherit dead letters from).
    b.journal_dir = "journal"
    agent = Agent(cfg, b)
    marks[n + 4] = used()
    op = cfg["operator_id"]
    loader = None
    app.forget("loader")  # boot-only
    marks[n + 5] = used()
    cfg = None  # app.build keeps no reference to it: what the board and the agent keep stays
    marks[n + 6] = used()
    return agent, b, ssl, op


def main(bare, own, order, marks, rom=0):
    """From tls_unix_dev.py: bare, the heap before the benchmark's code (the interpreter, the
    port's asyncio and json, a ROMFS image); own, what that code holds; order, the modules
    imported, and marks[0..len(order)] the heap before and after each (more slots follow, for
    build()); rom, the heap of the ROMFS image (0: none), flash on a device."""
    mode = sys.argv[1]
    n = len(order)
    out = {"interpreter": bare - rom, "bench_code": own, "rom_image": rom,
           "imports": marks[n] - marks[0]}
    agent, b, out["ssl_context"], op = build(marks, n)
    out["baseline"] = used() - own - rom
    if mode == "imports":
        out["steps"] = [("import " + order[i], marks[i + 1] - marks[i]) for i in range(n)] + [
            (BUILD[i], marks[n + 2 + i] - marks[n + 1 + i]) for i in range(len(BUILD))]
        print("RESULT " + json.dumps(out))
        return
    if mode == "post":
        asyncio.run(post(agent, op, out))
    else:
        print("RESULT " + json.dumps(out))
        asyncio.run(session(agent, b.card))
    out["heap_total"] = gc.mem_alloc() + gc.mem_free()
    print("RESULT " + json.dumps(out))
