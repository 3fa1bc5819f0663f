"""The uplinks: the link's supervisor, HTTP and MQTT transports, their clients."""
