"""cpagent.app: a bad config stops with the field named and no reset; a fatal error resets."""
import asyncio
import json

from check import arun
from cpagent import app

CFG = "/tmp/cpagent_app_test.json"
GOOD = {"charger_id": "cp-1", "operator_id": "DE*ABC", "evses": [{"evse_id": "DE*ABC*E0001*1"}],
        "reader": {"type": "none"}, "meter": {"model": "none"},
        "uplink": {"kind": "http", "url": "http://hub.test:8080"}}


def write(cfg):
    with open(CFG, "w") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return CFG


class BadFlash:
    """A flash that fails at once: the journal cannot load, so the agent cannot boot."""

    def mkdir(self, d):
        raise OSError(5, "flash gone")


class Board:
    """Just enough board for Agent(cfg, board); counts resets instead of doing one."""

    made = []

    def __init__(self, cfg):
        if cfg["charger_id"] == "refused":
            raise ValueError("uplink.ca: cannot load")
        self.cfg = cfg
        self.fs = BadFlash()
        self.journal_dir = "/j"
        self.de = self.txdone = None
        self.lines = []
        self.resets = 0
        Board.made.append(self)

    def ticks_ms(self):
        return 0

    def ticks_diff(self, a, b):
        return a - b

    real_ms = ticks_ms

    async def sleep_ms(self, ms):
        await asyncio.sleep(0)

    async def connect(self, host, port, tls):
        raise OSError("no network here")

    def rand_hex(self, n):
        return "00" * n

    def log(self, level, text):
        self.lines.append(text)

    def reset(self):
        self.resets += 1


def test_a_bad_or_missing_config_or_a_refusing_board_builds_nothing():
    Board.made = []
    assert app.build(Board, write("{not json")) is None
    assert app.build(Board, write(dict(GOOD, log_level=9))) is None
    assert app.build(Board, "/tmp/no/such/config.json") is None
    assert app.build(Board, write(dict(GOOD, charger_id="refused"))) is None
    assert app.main(Board, write(dict(GOOD, evses=[]))) is None  # nothing started either
    assert Board.made == []


def test_build_gives_the_board_and_its_agent():
    board, agent = app.build(Board, write(GOOD))
    assert agent.board is board and board.cfg["charger_id"] == "cp-1"
    assert board.cfg["timing"]["poll_s"] == 10  # validated: the defaults are filled in


def test_an_exception_out_of_the_agent_is_logged_and_resets_the_board():
    board, agent = app.build(Board, write(GOOD))

    async def go():
        await app.run(board, agent)
        assert board.resets == 1
        assert [t for t in board.lines if t.startswith("fatal: ") and "flash gone" in t]
    return arun(go())


class Cancelled:
    async def run(self):
        raise asyncio.CancelledError()


def test_a_cancelled_agent_is_no_fault():
    board, _ = app.build(Board, write(GOOD))

    async def go():
        try:
            await app.run(board, Cancelled())
        except asyncio.CancelledError:  # passed on to whoever cancelled, not made a reset
            assert board.resets == 0
            return
        raise AssertionError("the cancel was swallowed")
    return arun(go())


def test_main_starts_the_agent_on_this_port():
    Board.made = []
    r = app.main(Board, write(GOOD))

    def check():
        assert len(Board.made) == 1 and Board.made[0].resets == 1

    if r is None:  # CPython: asyncio.run came back once the (counted) reset returned
        check()
        return None

    async def finish():  # webassembly: main gave the agent's task to the event loop
        await r
        check()
    return finish()
