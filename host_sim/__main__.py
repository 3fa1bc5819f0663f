"""Command line of the host side: `cp-agent {hub,relay,run}` (also `python -m host_sim ...`)."""
import sys

_COMMANDS = ("hub", "relay", "run")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in _COMMANDS:
        print("usage: cp-agent {hub,relay,run} ... (or python -m host_sim)", file=sys.stderr)
        return 2
    if argv[0] == "hub":
        from host_sim.hub.cli import main as hub
        return hub(argv[1:])
    if argv[0] == "relay":
        from host_sim.relay.cli import main as relay
        return relay(argv[1:])
    from host_sim.sim.cli import main as run
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
