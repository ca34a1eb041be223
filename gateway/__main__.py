"""`python -m gateway` and the `switchboard` command."""

import gc
import sys


def main() -> int:
    """The CLI, its modules loaded with the cyclic collector off.

    Loading them, and a server's start, build a heap of long-lived objects,
    and the collector walked all of it again each time it had grown (five
    full collections, ~0.8 s of a server's start, timed by `gc.callbacks`);
    docs/performance.md has the start times with and without. The CLI turns
    the collector on again once the command's modules are in; `serve` once
    the app has started and its heap is frozen
    (`gateway.app.freeze_startup_heap`)."""
    gc.disable()
    from gateway.cli import main as run

    return run()


# Guarded, and importing nothing at the top: a spawned process (the tool
# search model's, a worker) imports the main module of a gateway run as a
# script.
if __name__ == "__main__":
    sys.exit(main())
