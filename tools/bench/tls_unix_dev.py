"""Started by tools/bench/tls_unix.py in MicroPython's unix port. No figure may hold the
benchmark's own code: the heap is noted before the stand-ins for the port's machine, network
and ntptime load (tls_unix_ports.py), the agent's modules are imported next (imports.txt, in
import order), and only then the benchmark's code (tls_unix_agent.py): the names it shares with
the agent are interned by the agent first, as on a device, and only its own count as its.
A rom.img in the folder (a ROMFS image of make deploy ROMFS=1) is mounted at /rom first, as a
firmware with a ROMFS partition mounts its flash; its bytes are on this port's heap (a device
maps its flash) and no figure counts them."""
import gc
import sys

import vfs

gc.collect()
_ROM = gc.mem_alloc()
try:
    with open("rom.img", "rb") as _f:
        vfs.mount(vfs.VfsRom(_f.read()), "/rom")
    sys.path.append("/rom")
except OSError:  # no image: the modules are files in the folder
    pass
gc.collect()
_ROM = gc.mem_alloc() - _ROM
import asyncio  # noqa: E402,F401  (the port's modules the agent imports first: the interpreter's)
import json  # noqa: E402,F401

gc.collect()
_BARE = gc.mem_alloc()
import tls_unix_ports  # noqa: E402,F401

gc.collect()
_PORTS = gc.mem_alloc()
with open("imports.txt") as _f:
    _ORDER = _f.read().split()
_MARKS = [0] * (len(_ORDER) + 7)  # each import's mark, then build()'s
gc.collect()
_MARKS[0] = gc.mem_alloc()
for _i in range(len(_ORDER)):
    __import__(_ORDER[_i])
    gc.collect()
    _MARKS[_i + 1] = gc.mem_alloc()
import tls_unix_agent  # noqa: E402

gc.collect()
tls_unix_agent.main(_BARE, _MARKS[0] - _BARE + gc.mem_alloc() - _MARKS[len(_ORDER)], _ORDER,
                    _MARKS, _ROM)
