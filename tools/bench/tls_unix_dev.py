"""Started by tools/bench/tls_unix.py in MicroPython's unix port: notes the heap in use before
the benchmark's own code loads, then runs it (tls_unix_agent.py), which leaves that code out of
every figure."""
import asyncio  # noqa: F401  (the port's modules the agent imports first: the interpreter's share)
import gc
import json  # noqa: F401

gc.collect()
_BARE = gc.mem_alloc()

import tls_unix_agent  # noqa: E402

tls_unix_agent.main(_BARE)
