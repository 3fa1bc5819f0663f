"""Virtual meters on one RS-485 line: each request reaches all, the addressed one answers."""
from host_sim.virtual.meter import VirtualMeter


class Bus:
    """Two meters on one RS-485 line: every request reaches both; only the addressed answers."""

    def __init__(self, cars, model="sdm630"):
        self.meters = [VirtualMeter(model, i + 1, c) for i, c in enumerate(cars)]

    def handle(self, data):
        return b"".join(m.handle(data) for m in self.meters)
