"""Board layers: the only code that builds UARTs, pins, sockets and clocks for the agent."""
