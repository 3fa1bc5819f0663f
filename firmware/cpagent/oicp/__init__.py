"""The OICP 2.3 codec (sans-IO): ids, request builders, reply parsers, the relay's envelope."""
