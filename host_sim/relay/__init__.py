"""MQTT-to-OICP relay: `python -m host_sim relay --config FILE` (docs/relay.md)."""
import os
import sys

# The relay sorts hub answers with the firmware's own classifier (cpagent.uplink.result): its
# modules import as on the device, `micropython` from the host shim.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(_ROOT, "firmware"), os.path.join(_ROOT, "host_sim", "pyshim")):
    if _p not in sys.path:
        sys.path.append(_p)

from host_sim.relay.config import Config, ConfigError, load  # noqa: E402
from host_sim.relay.service import Relay  # noqa: E402

__all__ = ["Config", "ConfigError", "Relay", "load"]
