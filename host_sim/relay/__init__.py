"""MQTT-to-OICP relay: `python -m host_sim relay --config FILE` (docs/relay.md)."""
from host_sim.relay.config import Config, ConfigError, load
from host_sim.relay.service import Relay

__all__ = ["Config", "ConfigError", "Relay", "load"]
