"""An EV's charging curve on a virtual clock: power, per-phase V and A, and the meter's Wh."""
import time

_STEP_S = 1.0  # integration step; advance() splits longer spans so results do not depend on them


class EvLoad:
    """A car behind one meter. Pure and deterministic: time moves only by advance(seconds).

    Charging: power ramps from 0 to max_w over ramp_s, holds, then above taper_soc falls
    linearly with the remaining capacity (never below min_frac of max_w) and stops at 100 %.
    `start_wh` is the meter's lifetime counter before this car. reading() gives the meter's view:
    (wh:int, w:int, volts:3-tuple, amps:3-tuple), like the firmware's Reading.
    """

    def __init__(self, capacity_wh=60000, soc=0.2, max_w=11000, phases=3, ramp_s=10.0,
                 taper_soc=0.8, min_frac=0.1, volts=(230.0, 229.5, 231.0), start_wh=0):
        if phases not in (1, 3):
            raise ValueError("EvLoad phases: expected 1 or 3, got %r" % (phases,))
        self.capacity_wh = capacity_wh
        self.soc = soc
        self.max_w = max_w
        self.phases = phases
        self.ramp_s = ramp_s
        self.taper_soc = taper_soc
        self.min_frac = min_frac
        self.volts = tuple(volts)
        self.t = 0.0
        self.plugged = False
        self.charging = False
        self._on_s = 0.0  # seconds since charging (re)started, for the ramp
        self._wh = float(start_wh)

    def save(self):
        """The car's changing state as JSON-able data (its parameters are the caller's)."""
        return {"wh": self._wh, "soc": self.soc, "plugged": self.plugged,
                "charging": self.charging, "on": self._on_s}

    def load(self, d):
        """Back to a state save() gave; returns self."""
        self._wh, self.soc, self.plugged, self.charging, self._on_s = d["wh"], d["soc"], \
            d["plugged"], d["charging"], d["on"]
        return self

    def plug(self):
        self.plugged = True

    def unplug(self):
        self.plugged = self.charging = False

    def start(self):
        """The charger switches power on; a car that is unplugged or full draws nothing."""
        if self.plugged and self.soc < 1.0:
            self.charging = True
            self._on_s = 0.0

    def stop(self):
        self.charging = False

    def _power(self):
        if not self.charging:
            return 0.0
        p = self.max_w * min(1.0, self._on_s / self.ramp_s) if self.ramp_s > 0 else self.max_w
        if self.soc > self.taper_soc:
            taper = (1.0 - self.soc) / (1.0 - self.taper_soc)
            p = min(p, self.max_w * max(taper, self.min_frac))
        return p

    def advance(self, seconds):
        """Move the virtual clock on; energy accumulates at the power of each step's start."""
        left = float(seconds)
        while left > 0:
            dt = min(_STEP_S, left)
            p = self._power()
            wh = p * dt / 3600.0
            room = (1.0 - self.soc) * self.capacity_wh
            if self.charging and wh >= room:  # full within this step
                wh = room
                self.soc = 1.0
                self.charging = False
            else:
                self.soc += wh / self.capacity_wh
            self._wh += wh
            self._on_s += dt
            self.t += dt
            left -= dt

    @property
    def power_w(self):
        return int(round(self._power()))

    @property
    def energy_wh(self):
        return int(self._wh)

    def reading(self):
        p = self._power()
        amps = []
        for i, v in enumerate(self.volts):
            amps.append(p / self.phases / v if i < self.phases else 0.0)
        return self.energy_wh, self.power_w, self.volts, tuple(amps)


class Fixed:
    """A meter source with set values (tests, and meters with nothing behind them)."""

    def __init__(self, wh=0, w=0, volts=(230.0, 230.0, 230.0), amps=(0.0, 0.0, 0.0)):
        self.wh, self.w, self.volts, self.amps = wh, w, tuple(volts), tuple(amps)

    def reading(self):
        return self.wh, self.w, self.volts, self.amps


class RealTime:
    """An EvLoad behind a meter on real time (times `speed` in a sped-up simulation): advanced
    by the monotonic time since the last reading, at each reading (`.ev` is the car: plug(),
    start(), energy_wh). It outlives a charger's restarts, as a real car does."""

    def __init__(self, ev, speed=1):
        self.ev = ev
        self.speed = speed
        self.t = time.monotonic() * speed

    def reading(self):
        now = time.monotonic() * self.speed
        self.ev.advance(now - self.t)
        self.t = now
        return self.ev.reading()
