"""`python -m gateway` and the `switchboard` command."""

import gc
import sys


def main() -> int:
    """The CLI, its modules loaded with the cyclic collector off.

    Loading them builds a heap of long-lived objects only, and the collector
    walked all of it again each time it had grown (a server's start ran
    five full collections, ~0.8 s, timed by `gc.callbacks`; docs/
    performance.md has the start times). The CLI turns the collector on
    before a command runs; `serve` once it has loaded the server's modules,
    which it freezes (`gc.freeze`: out of every later walk). A process
    started otherwise (`serve --workers`' workers, the model's process)
    loads with the collector on."""
    gc.disable()
    from gateway.cli import main as run

    return run()


# Guarded, and importing nothing at the top: a spawned process (the tool
# search model's, a worker) imports the main module of a gateway run as a
# script.
if __name__ == "__main__":
    sys.exit(main())
