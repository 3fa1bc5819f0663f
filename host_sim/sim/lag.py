"""The event loop's lag: how late a 20 ms ticker wakes (a loop kept busy by too many chargers
wakes late, and the chargers' real-time parts with it). A histogram: fixed memory, and the
histograms of several workers add up."""
import asyncio
import time

TICK_S = 0.02
_CAP_MS = 10000  # later wakes count in the last bucket


class LagMeter:
    def __init__(self):
        self.buckets = {}  # whole ms late -> wakes

    async def run(self, after_s=0.0):
        """Tick forever, measuring from after_s real seconds on (the fleet switched on)."""
        await asyncio.sleep(after_s)
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            ms = min(_CAP_MS, max(0, int((now - last - TICK_S) * 1000)))
            self.buckets[ms] = self.buckets.get(ms, 0) + 1
            last = now

    def add(self, buckets):
        """Another meter's buckets (report.json keys are strings) added to these."""
        for k, n in buckets.items():
            self.buckets[int(k)] = self.buckets.get(int(k), 0) + n

    def summary(self):
        """{"p50", "p99", "max"} in ms (None before any tick)."""
        n = sum(self.buckets.values())
        if not n:
            return {"p50": None, "p99": None, "max": None}
        out, seen = {}, 0
        for ms in sorted(self.buckets):
            seen += self.buckets[ms]
            for q in (50, 99):
                if "p%d" % q not in out and seen * 100 >= q * n:
                    out["p%d" % q] = ms
        out["max"] = max(self.buckets)
        return out
