"""Host side of the charge-point agent (CPython): mock OICP hub, MQTT relay, simulator."""
