"""The benchmark's side of tools/bench/rp2_emu.py on the real rp2 firmware (in rp2040js), in a
flash staged by make deploy's code for the Pico W: the agent built from config.json on the rp2
board, as app.build builds it, over the firmware's own machine, network and tls (no stand-in).
rp2_emu.py's IMPORTS, run at the raw REPL, imports the agent's modules first and then this, and
hands over what the benchmark's own code holds, which no figure counts. Nothing here starts the
agent's tasks: the Wi-Fi interface stays down (the emulator has no CYW43 chip).

main() prints micropython.qstr_info(), then one line "RESULT {json}": the baseline step by step
(gc.mem_alloc after gc.collect, bytes), as tools/bench/tls_unix_agent.py's "imports" mode does.
"""
import gc
import json

import micropython

BUILD = ("config dict", "Board(cfg)", "Agent(cfg, board)", "loader dropped", "config dropped")


def used():
    gc.collect()
    return gc.mem_alloc()


def build(marks, n):
    """The agent built as app.build does: marks[n + 1] the heap before, marks[n + 2..] after
    each part (slots made beforehand: measuring allocates nothing); returns (agent, its board,
    the SSL context's share of the board)."""
    from cpagent import app, loader
    from cpagent.agent import Agent
    from cpagent.boards.rp2 import Board

    marks[n + 1] = used()
    with open("config.json", "rb") as f:
        cfg = loader.load(f.read())  # the checked form make deploy wrote
    # A closed littlefs file still holds its cache (1 KB) while referenced; app.build holds it
    # until it returns, which is no part of the baseline.
    f = None
    marks[n + 2] = used()
    b = Board(dict(cfg, uplink=dict(cfg["uplink"], url="http://127.0.0.1:9")))
    without = used()
    b = None
    b = Board(cfg)  # the UARTs keep their ring buffers (same sizes): the difference is TLS
    ssl = used() - without
    marks[n + 3] = used()
    agent = Agent(cfg, b)
    marks[n + 4] = used()
    loader = None
    app.forget("loader")  # boot-only
    marks[n + 5] = used()
    cfg = None  # app.build keeps no reference to it: what the board and the agent keep stays
    marks[n + 6] = used()
    return agent, b, ssl


def main(bare, own, order, marks):
    """From rp2_emu.py's IMPORTS: bare, the heap before the agent's imports (the interpreter,
    the port's asyncio and json); own, what this module holds; order, the modules imported,
    and marks[0..len(order)] the heap before and after each (more slots follow, for build())."""
    n = len(order)
    out = {"interpreter": bare, "bench_code": own, "imports": marks[n] - marks[0]}
    agent, b, out["ssl_context"] = build(marks, n)
    out["baseline"] = used() - own
    out["steps"] = [("import " + order[i], marks[i + 1] - marks[i]) for i in range(n)] + [
        (BUILD[i], marks[n + 2 + i] - marks[n + 1 + i]) for i in range(len(BUILD))]
    out["heap_total"] = gc.mem_alloc() + gc.mem_free()
    out["wlan_active"] = b.wlan.active()
    micropython.qstr_info()
    print("RESULT " + json.dumps(out))
