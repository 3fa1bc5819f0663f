"""The agent: board, journal, clock, charger, meter, reader and link as supervised tasks."""
import asyncio

from micropython import const

from cpagent.charger import Charger
from cpagent.clock import Clock
from cpagent.journal import Journal
from cpagent.uplink.link import Link

_BOOT_POLL_S = const(10)  # the first meter poll may take this long (real s); boot goes on without
_MINUTE = const(60000)
_HOUR = const(3600000)
_RESTART_MS = const(2000)  # a crashed task runs again after this (board ms)
_STOP_ROUNDS = const(50)  # loop passes in which stop() cancels the tasks still running


class Agent:
    """One charge point: Agent(cfg, board); `await run()` forever; stats() for a status line.

    Times: sessions, the meter period, the ticker and the link's backoff run on board time
    (board.ticks_ms/sleep_ms, fast in the simulator); readers' debounce and wire timeouts on
    real time. Meter model "none": plug and power come only from plug().
    """

    def __init__(self, cfg, board):
        b = self.board = board
        self.journal = j = Journal(b.fs, b.journal_dir, cfg["journal"]["max_messages"],
                                   lambda: b.rand_hex(4))
        self.clock = c = Clock(b.ticks_ms, b.ticks_diff)
        self.charger = Charger(cfg, j, c)
        u = cfg["uplink"]
        if u["kind"] == "mqtt":  # each uplink imported only where it is used: RAM
            from cpagent.uplink.mqtt import MqttUplink

            self.uplink = MqttUplink(u, cfg["charger_id"], b.connect, b.sleep_ms, b.real_ms,
                                     b.rand_hex, b.log)
        else:
            from cpagent.uplink.http import HttpUplink

            self.uplink = HttpUplink(u, b.connect, b.real_ms, b.log)
        self.link = Link(self.charger, self.uplink, b.sleep_ms, b.rand_hex, show=self._warn,
                         ms=c.ms)
        if hasattr(self.uplink, "on_command"):
            self.uplink.on_command = self.command  # the relay's downlink commands
        self.restarts = 0
        self._said = ("up", 0)  # (link state, dead letters) the log last told
        self.bus = self.reader = None
        m = cfg["meter"]
        if m["model"] != "none":
            from cpagent.drivers.meter import MeterBus

            self.bus = MeterBus(b.meter_port(), m, [e["meter_address"] for e in cfg["evses"]],
                                self, c.ms, cfg["timing"]["poll_s"], b.de, b.sleep_ms,
                                b.txdone, self._warn, cfg["timing"]["stop_power_w"])
        r = cfg["reader"]
        t = r["type"]
        if t != "none":
            if t == "pn532":
                from cpagent.drivers.pn532 import Pn532 as R
            elif t == "rdm6300":
                from cpagent.drivers.rdm6300 import Rdm6300 as R
            else:
                from cpagent.drivers.line_reader import LineReader as R
            self.reader = R(b.reader_port(), b.real_ms, r["hold_ms"], on_error=self._warn)

    # --- the meter's sink and the reader's callback: each event wakes the link ---------------

    def meter(self, i, wh, w):
        self.charger.meter(i, wh, w)
        self.link.kick()

    def fault(self, i, connector, info):
        self._warn(info)
        self.charger.fault(i, connector, info)
        self.link.kick()

    def plug(self, i, plugged):
        """EVSE i's cable went in (True) or out: the board's plug pin, or a test's."""
        self.charger.plug(i, plugged)
        self.link.kick()

    def tap(self, uid):
        self.board.log(2, "tap " + uid)
        self.charger.tap(uid)
        self.link.kick()

    def _warn(self, text):
        self.board.log(1, text)

    # --- tasks -------------------------------------------------------------------------------

    async def run(self):
        """Boot (journal, first meter poll, resume sessions), then the tasks, until cancelled."""
        asyncio.get_event_loop().set_exception_handler(self._unhandled)
        self.clock.boot = self.journal.load().boot  # tokens '@boot:ms' name this boot
        now = [None] * len(self.charger.evses)
        if self.bus:
            try:
                now = [r and r[0] for r in await asyncio.wait_for(self.bus.poll(), _BOOT_POLL_S)]
            except asyncio.TimeoutError:
                self._warn("meter: no reading at boot")
        self.charger.boot(now)
        jobs = [("link", self.link.run), ("ticker", self._tick)]
        if hasattr(self.uplink, "run"):
            from cpagent import relay  # the relay's side: only an MQTT charger, RAM

            jobs.append(("mqtt", self.uplink.run))  # the broker connection's one task
            jobs.append(("status", lambda: relay.publish_status(self)))
            jobs.append(("replies", self.uplink.replies))
        if self.bus:
            jobs.append(("meter", self.bus.run))
        if self.reader:
            jobs.append(("reader", lambda: self.reader.run(self.tap)))
        if hasattr(self.board, "jobs"):  # a device's own tasks: Wi-Fi, watchdog, LED, pins
            jobs.extend(self.board.jobs(self))
        tasks = [asyncio.create_task(self._keep(n, f)) for n, f in jobs]
        try:
            await asyncio.gather(*tasks)
        finally:
            await self._stop(tasks, jobs)

    async def _stop(self, tasks, jobs):
        # MicroPython's wait_for hands a cancel that lands while it cleans up after a timeout
        # (awaiting its helper task) to that helper, which swallows it, and the task runs on: a
        # second meter poller or link on the same UART or socket. Cancel until each one is done.
        for _ in range(_STOP_ROUNDS):
            left = [i for i, t in enumerate(tasks) if not t.done()]
            if not left:
                return
            for i in left:
                tasks[i].cancel()
            await asyncio.sleep(0)
        self.board.log(0, "did not stop: " + ", ".join(jobs[i][0] for i in left))

    async def _keep(self, name, job):
        # The one place a task's unexpected exception lands; CancelledError is no Exception.
        while True:
            try:
                await job()  # runs forever: a return counts as a crash too
            except Exception as e:
                self.board.log(0, "%s crashed: %r" % (name, e))
            self.restarts += 1
            await self.board.sleep_ms(_RESTART_MS)

    def _unhandled(self, loop, ctx):
        self.board.log(0, "unhandled: %r" % (ctx.get("exception") or ctx.get("message"),))

    async def _tick(self):
        b = self.board
        c = self.clock
        ch = self.charger
        due = c.ms()
        while True:
            if c.ms() >= due:  # wall time: each minute until known, then hourly
                t = b.wall_unix()
                if t is not None and c.set_unix(t, "board"):
                    self.link.kick()  # stamps taken before now can be resolved and sent
                due = c.ms() + (_HOUR if c.known else _MINUTE)
            ch.tick()
            self._tell_status()
            while ch.shown:
                i, text = ch.shown.pop(0)
                b.log(2, "%s: %s" % ("-" if i is None else i + 1, text))
            self.link.kick()
            await b.sleep_ms(1000)

    def stats(self):
        """The link's stats (sent, delivered, failed, retries, last_error, foreign, last_foreign,
        held: this boot) and evses (state of each), pending (journal), dead and dead_reasons
        (the dead letters, oldest first), link (state), restarts (of crashed tasks)."""
        d = dict(self.link.stats)
        j = self.journal
        d.update(evses=[s.state for s in self.charger.evses], pending=j.count(),
                 dead=len(j.dead), dead_reasons=[f[2] for f in j.failures],
                 link=self.link.state, restarts=self.restarts)
        return d

    def status(self):
        """One line for a display or the log: the link, what waits, the dead letters."""
        j = self.journal
        t = "link %s, %d pending, %d dead letters" % (self.link.state, j.count(), len(j.dead))
        if j.dead:
            t += " (last: %s)" % j.dead[-1][4]
        if j.dead_full():
            t += "; new sessions refused until they are requeued or discarded"
        if self.link.state == "path":
            t += "; answers are not the hub's: %s" % self.link.stats["last_foreign"]
        return t

    def _tell_status(self):
        now = (self.link.state, len(self.journal.dead))
        if now != self._said:
            self._said = now
            self.board.log(1 if now[1] or now[0] != "up" else 2, self.status())

    # --- a person's way out (the REPL, or the relay's downlink) ------------------------------

    def dead_letters(self, out=print):
        """Print each dead letter as one JSON line (id, kind, path, key, reason, time, attempts,
        body); the same lines are in <journal dir>/dead.jsonl. Returns how many."""
        n = 0
        for line in self.journal.dead_lines():
            out(line)
            n += 1
        return n

    def requeue(self, msg_id=None):
        """Put the dead letters (all, or msg_id) back to be sent, once the cause is fixed;
        returns their new ids."""
        ids = self.journal.requeue(msg_id)
        self.board.log(1, "requeued %d dead letter(s)%s" % (
            len(ids), "" if msg_id is None else " (" + msg_id + ")"))
        self.link.kick()
        return ids

    def discard(self, msg_id):
        """Drop the dead letter msg_id for good (export it first); True if there was one."""
        done = self.journal.discard(msg_id)
        self.board.log(1, "dead letter %s %s" % (msg_id, "discarded" if done else "not found"))
        return done

    def command(self, env):
        """A command envelope from the downlink: {"v":1,"cmd":"requeue","msg_id":null|"<id>"},
        or a remote start or stop (remote.py), answered on the up topic."""
        from cpagent import relay  # only an MQTT charger gets commands: RAM

        relay.command(self, env)
