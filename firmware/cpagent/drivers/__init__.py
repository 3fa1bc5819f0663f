"""The drivers (sans-IO): RFID readers, Modbus RTU, energy meters."""
