"""Boot: pick this port's board and run the app; the only place that names a board."""
import sys

from cpagent import app

if sys.platform == "esp32":
    from cpagent.boards.esp32 import Board
elif sys.platform == "rp2":
    from cpagent.boards.rp2 import Board
elif sys.platform == "webassembly":
    from cpagent.boards.wasm import Board
else:
    raise ImportError("main.py: no board for sys.platform %r" % sys.platform)

# On a device this runs the agent for good; on webassembly it is the agent's task. None: a bad
# config, which the app printed.
task = app.main(Board)
