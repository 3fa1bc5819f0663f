"""Mock OICP 2.3 hub (CPO endpoints): `python -m host_sim hub`, or Hub/HubThread in-process."""
from host_sim.hub.faults import KINDS, Fault, FaultError, Faults
from host_sim.hub.oicp_rules import OPERATIONS, Rules, route
from host_sim.hub.remote import Cpo
from host_sim.hub.server import Hub, HubThread, tls_context

__all__ = ["Cpo", "Hub", "HubThread", "Rules", "Faults", "Fault", "FaultError", "KINDS",
           "OPERATIONS", "route", "tls_context"]
