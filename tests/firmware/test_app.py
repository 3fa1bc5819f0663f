"""cpagent.app: a bad or unchecked config stops with the field named and no reset, the boot-only
loader is freed after boot; a fatal error resets."""
import asyncio
import json
import sys

from check import arun
from cpagent import app, config

CFG = "/tmp/cpagent_app_test.json"
GOOD = {"charger_id": "cp-1", "operator_id": "DE*ABC", "evses": [{"evse_id": "DE*ABC*E0001*1"}],
        "reader": {"type": "none"}, "meter": {"model": "none"},
        "uplink": {"kind": "http", "url": "http://hub.test:8080"}}


def write(cfg, checked=True):
    """The config file; a dict as make deploy writes it (checked, defaults filled) unless not
    `checked`."""
    if not isinstance(cfg, str):
        cfg = config.checked(config.load(json.dumps(cfg))) if checked else json.dumps(cfg)
    with open(CFG, "w") as f:
        f.write(cfg)
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
    assert app.build(Board, write(GOOD, checked=False)) is None  # not written by make deploy
    assert app.build(Board, write('{"checked": 1, "charger_id": "x"}')) is None  # cut short
    assert app.build(Board, "/tmp/no/such/config.json") is None
    assert app.build(Board, write(dict(GOOD, charger_id="refused"))) is None
    text = config.checked(config.load(json.dumps(GOOD))).replace('"checked": 1', '"checked": 0')
    assert app.main(Board, write(text)) is None  # an older form: nothing started either
    assert Board.made == []


def test_the_loader_names_what_is_wrong():
    from cpagent import loader

    for text, says in (("{not json", "config: expected UTF-8 JSON"),
                       (json.dumps(GOOD), "config.checked: expected 1, got None"),
                       ('{"checked": 1, "charger_id": "x"}', "config.operator_id: missing")):
        try:
            loader.load(text)
        except ValueError as e:
            assert str(e).startswith(says), (e, says)
        else:
            raise AssertionError("loaded: " + text)
    app.forget("loader")


def test_the_boot_only_loader_is_gone_after_build():
    import cpagent

    board, agent = app.build(Board, write(GOOD))
    assert agent.board is board
    assert "cpagent.loader" not in sys.modules and "loader" not in dir(cpagent)


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
