"""`python -m host_sim relay --config FILE [--client-id ID]`: runs until SIGTERM or Ctrl-C."""
import argparse
import logging
import signal
import sys
import threading

from host_sim.relay.config import ConfigError, load


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_sim relay",
                                 description="MQTT-to-OICP relay (docs/relay.md)")
    ap.add_argument("--config", required=True, help="the relay's JSON config file")
    ap.add_argument("--client-id", help="MQTT client id (default: broker.client_id); each "
                    "process of a scaled-out group needs its own, stable across restarts")
    ap.add_argument("--http-port", type=int, help="override http.port (0: any free port)")
    ap.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print("relay: %s" % e, file=sys.stderr)
        return 2
    if args.http_port is not None:
        cfg.http["port"] = args.http_port
    from host_sim.relay.service import Relay
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    relay = Relay(cfg, args.client_id).start()
    # One machine-readable line for supervisors and tests: where the metrics are.
    print("relay: ready http://%s:%d" % (cfg.http["host"], relay.http.port), flush=True)
    stop.wait()
    relay.stop()
    return 0
