"""How long a waiting run sleeps between two looks at what it waits for.

A run waiting at a checkpoint, for another agent's task or for its user to
connect an account is woken by a message when that happens
(`gateway.flows.mailbox`). It also looks for itself now and then, in case a
wake-up was lost -- the gateway stopped between recording a decision and
sending its message. Each look is a recorded step and a durable timer: a few
rows of DBOS's operation records, and some CPU, per look per waiting run. At
one look a minute, a run waiting a week for a human would leave some 30,000
rows to replay after a restart, and 1,000 waiting runs would make 17 looks
a second between them. So the looks start at
``flow_checkpoint_poll_seconds`` and double apart up to a quarter of an hour:
a week's wait is under 700 looks, and a lost wake-up is found within 15
minutes at worst.
"""

from __future__ import annotations

LOOKS_APART_MAX_SECONDS = 900.0


def next_look(poll: float, looks: int) -> float:
    """The wait after look number ``looks`` (the first is 1): ``poll``,
    doubling per look, up to `LOOKS_APART_MAX_SECONDS` -- or ``poll``
    throughout, when it is longer than that."""
    doubled = poll * float(2 ** min(max(looks - 1, 0), 20))
    return max(poll, min(doubled, LOOKS_APART_MAX_SECONDS))
