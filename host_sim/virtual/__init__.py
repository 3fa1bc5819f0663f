"""Virtual devices for the simulator: PN532 reader, Modbus meters, an EV's load curve."""
