"""`python -m host_sim relay --config FILE [--client-id ID]`: runs until SIGTERM or Ctrl-C; SIGHUP
reloads the config's EVSE data (pushed to the hub as updates).
`python -m host_sim relay requeue --config FILE --charger ID [--id MSG]`: asks a charger to send
its dead letters again (all, or one), with the relay's broker credentials (docs/relay.md)."""
import argparse
import logging
import signal
import sys
import threading

from host_sim.relay.config import ConfigError, load


def requeue(argv):
    ap = argparse.ArgumentParser(prog="python -m host_sim relay requeue",
                                 description="ask a charger to send its dead letters again")
    ap.add_argument("--config", required=True, help="the relay's JSON config file")
    ap.add_argument("--charger", required=True, help="the charger id (as in the config)")
    ap.add_argument("--id", help="one dead letter's message id (default: all of them)")
    ap.add_argument("--timeout", type=float, default=10, help="seconds to wait for the broker")
    args = ap.parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print("relay requeue: %s" % e, file=sys.stderr)
        return 2
    from host_sim.relay import envelope
    if args.charger not in cfg.chargers:
        print("relay requeue: --charger %s is not a charger of %s" % (args.charger, args.config),
              file=sys.stderr)
        return 2
    if args.id is not None and not envelope.valid_id(args.id):
        print("relay requeue: --id: expected 1..64 of [A-Za-z0-9_.:-], got %r" % args.id,
              file=sys.stderr)
        return 2
    from host_sim.relay.service import publish_once
    topic = "cp/%s/down" % args.charger
    try:
        publish_once(cfg.broker, topic, envelope.requeue(args.id), args.timeout)
    except OSError as e:
        print("relay requeue: %s" % e, file=sys.stderr)
        return 1
    print("relay requeue: sent to %s (%s)" % (topic, "all dead letters" if args.id is None
                                              else "dead letter %s" % args.id))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["requeue"]:
        return requeue(argv[1:])
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

    def reload(*a):
        try:
            n = relay.reload(load(args.config))
        except ConfigError as e:
            logging.getLogger("relay").error("SIGHUP: config not reloaded: %s", e)
            return
        logging.getLogger("relay").info("SIGHUP: config reloaded, %d EVSE data pushes", n)
    signal.signal(signal.SIGHUP, reload)
    # One machine-readable line for supervisors and tests: where the metrics are.
    print("relay: ready http://%s:%d" % (cfg.http["host"], relay.http.port), flush=True)
    if relay.cpo:  # the next line: where Hubject (or the mock hub) calls
        print("relay: cpo endpoint %s" % relay.cpo.url, flush=True)
    stop.wait()
    relay.stop()
    return 0
