"""Energy meters on one Modbus bus: poll each EVSE's meter, feed the charger, report faults."""
import asyncio

from cpagent.drivers.meter_maps import decode, model, plan, step
from cpagent.drivers.modbus import ModbusError
from cpagent.drivers.modbus_client import ModbusClient


async def _sleep(ms):
    await asyncio.sleep(ms / 1000)


class MeterHealth:
    """The fault rules of one meter, pure. failed() and reading() return a fault text or None.

    A condition ("dead", "backwards", "frozen") is reported once, is then listed in .active,
    and is cleared by a reading that no longer shows it.
    """

    def __init__(self, unit, dead_polls=3, idle_w=0):
        self.unit = unit
        self.dead_polls = dead_polls
        self.idle_w = idle_w  # power at or below it is no session's: a still register is right
        self.active = ()  # a tuple: none costs no RAM, and it changes only with a fault
        self.fails = 0
        self.wh = None  # the last good energy, its time and power
        self.t = 0
        self.w = 0
        self.implied = 0  # W*ms the reported power implies since the energy last changed

    def _fault(self, key, text):
        if key in self.active:
            return None
        self.active += (key,)
        return "meter %d: %s" % (self.unit, text)

    def _clear(self, key):
        a = self.active
        if key in a:
            i = a.index(key)
            self.active = a[:i] + a[i + 1:]

    def failed(self, reason):
        """A poll gave no usable reading (timeout, exception, garbage, "not available")."""
        self.fails += 1
        if self.fails >= self.dead_polls:
            return self._fault("dead", "no valid reading in %d polls in a row (last: %s)"
                               % (self.fails, reason))
        return None

    def reading(self, now, wh, w, res=1):
        """A decoded reading at ms `now`; res is the energy register's step in Wh."""
        self.fails = 0
        self._clear("dead")
        last = self.wh
        if last is not None and wh < last:  # kept until the register is back above `last`
            return self._fault("backwards", "energy register went backwards (%d -> %d Wh)"
                               % (last, wh))
        self._clear("backwards")
        text = None
        # A moving register, or no power through the meter since the last reading (the session
        # over, the contactor open), leaves nothing the still register contradicts: a "frozen"
        # that outlived its session would keep the EVSE out of order for good, since only a
        # session could show the register moving again.
        if last is None or wh > last or w <= self.idle_w and self.w <= self.idle_w:
            self.implied = 0
            self._clear("frozen")
        else:
            self.implied += (max(w, 0) + max(self.w, 0)) * (now - self.t) // 2
            limit = max(3 * res, 100)
            if self.implied > limit * 3600000:
                text = self._fault("frozen", "energy register frozen at %d Wh while its power "
                                   "implies over %d Wh more" % (wh, limit))
        self.wh, self.t, self.w = wh, now, w
        return text


class MeterBus:
    """Polls the meter of every EVSE (Modbus unit addresses[i]) and feeds sink.meter/fault.

    last[i] is the last good Reading (wh, w, volts, amps) of EVSE i; client is the ModbusClient
    (de, txdone: see there). sleep_ms: `await sleep_ms(ms)` between polls, on the same clock as
    `ms` (the simulator's board time); None: asyncio.sleep. Wire timeouts stay real time.
    on_error(text): an unexpected error of a poll (a sink's bug), each new text once.
    idle_w: the power (W) at or below which no session draws (timing.stop_power_w): a meter
    that shows a few watts of standby or noise there is no frozen register.
    """

    def __init__(self, port, meter_cfg, addresses, sink, ms, poll_s=10, de=None, sleep_ms=None,
                 txdone=None, on_error=None, idle_w=0):
        m = meter_cfg
        g = m.get
        name = m["model"]
        # config.load() lets only known models through; model() names any other
        if name == "custom":
            from cpagent.drivers.map_custom import custom

            self.model = custom(m["map"])
        else:
            self.model = model(name)
        self.plan = plan(self.model)  # one read per block (gaps=False) only if a meter wants it
        # The receive buffer fits the longest read of either plan: a block split from a gapped
        # read by the model's `most` can be longer than any read of the default plan.
        most = max(q[2] for q in self.plan + plan(self.model, False))
        self.client = ModbusClient(port, g("baud", 9600), g("timeout_ms", 500), g("retries", 2),
                                   de, txdone, most)
        self._tight = False  # that plan was tried
        self.sink = sink
        self.ms = ms
        self.poll_ms = poll_s * 1000
        self.health = [MeterHealth(u, g("dead_polls", 3), idle_w) for u in addresses]
        self.last = [None] * len(addresses)
        self.error = None  # the text of the last unexpected error run() survived
        self._sleep = sleep_ms or _sleep
        self._err = on_error

    async def _replies(self, unit):
        while True:
            out = []
            try:
                for q in self.plan:
                    out.append((q, await self.client.read(unit, q[0], q[1], q[2])))
                return out
            except ModbusError as e:
                # A meter that refuses reads spanning unused registers gets one read per block.
                # Worked out once: a meter that goes on refusing does not pay for it each poll.
                if e.code not in (2, 3) or self._tight:
                    raise
                self._tight = True
                tight = plan(self.model, False)
                if self.plan == tight:
                    raise
                self.plan = tight

    async def poll(self):
        """Reads every meter once, in turn; returns a Reading or None per EVSE."""
        out = []
        for i, h in enumerate(self.health):
            r = None
            # The meter samples its registers when asked: stamped then, a reply that waited in
            # a busy event loop does not look like time in which the energy stood still.
            t = self.ms()
            try:
                rep = await self._replies(h.unit)
                r = decode(self.model, rep)
                why = "%s register not available" % ("energy" if r[0] is None else "power")
                if r[0] is None or r[1] is None:
                    r = None
            except (ValueError, OSError) as e:  # ModbusError is a ValueError
                why = str(e) or repr(e)
            if r:
                text = h.reading(t, r[0], r[1], step(self.model, rep, r[0]))
                if h.active:  # backwards or frozen: the bill stays at the last good value
                    r = None
                else:
                    self.last[i] = r
                    self.sink.meter(i, r[0], r[1])
            else:
                text = h.failed(why)
            if text:
                self.sink.fault(i, False, text)
            out.append(r)
        return out

    async def run(self):
        """Polls every poll_s seconds by the injected clock; raises only CancelledError."""
        due = self.ms()
        while True:
            try:
                await self.poll()
            except Exception as e:  # a bug in a sink must not stop metering
                text = "meter bus: %s: %s" % (type(e).__name__, e)
                if text != self.error and self._err:
                    try:
                        self._err(text)
                    except Exception:  # a failing logger must not stop metering
                        pass
                self.error = text
            due += self.poll_ms
            now = self.ms()
            if due < now:  # an overrun skips the missed periods instead of polling in a burst
                due = now
            await self._sleep(due - now)
