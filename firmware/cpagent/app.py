"""The application: config.json, then Board(cfg) and the agent; a fatal error resets the board."""
import asyncio
import sys

from cpagent import ConfigError, forget
from cpagent.agent import Agent

CONFIG = "/config.json"
# The webassembly port's asyncio runs on the JS event loop and has no asyncio.run: there the
# agent is a task that the event loop drives. The one place where the ports differ.
_JS_LOOP = sys.platform == "webassembly"


def build(Board, path=CONFIG):
    """(board, agent) from the config file, or None after printing what is wrong with it.

    A bad config (or a board that refuses it: ValueError naming the field) stops here: no
    reset, since a reboot would only fail the same way again. The loader is boot-only: out of
    sys.modules afterwards, the collector frees it.
    """
    from cpagent import loader

    try:
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError("config: cannot read %s (%s)" % (path, e))
        cfg = loader.load(text)
        # Neither the text nor the closed file (littlefs keeps its 1 KB cache with the object)
        # need stay while the board parses the certificates and the agent is built.
        text = f = None
        board = Board(cfg)
        return board, Agent(cfg, board)
    except ValueError as e:
        print("config error, not starting: %s" % e)
        return None
    finally:
        forget("loader")


async def run(board, agent):
    """The agent until it fails. Task crashes are the agent's to restart (and the event loop's
    handler, which agent.run installs, logs the rest); an exception out of run() is fatal."""
    try:
        await agent.run()
    except Exception as e:  # CancelledError is no Exception: a cancel is not a fault
        board.log(0, "fatal: %r: reset" % (e,))
        board.reset()


def start(board, agent):
    """Run the agent: on a device this returns only if board.reset() does; on the webassembly
    port it returns the task at once."""
    if _JS_LOOP:
        return asyncio.create_task(run(board, agent))
    try:
        asyncio.run(run(board, agent))
    finally:
        asyncio.new_event_loop()  # a clean loop for the REPL after a Ctrl-C
    return None


def main(Board, path=CONFIG):
    """main.py calls this with its port's Board class."""
    built = build(Board, path)
    return built and start(*built)
