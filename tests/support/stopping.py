"""Stopping a process the test started, and saying where it hung if it
does not stop: a hang at exit is seen once in a while under load, and a
timeout alone says nothing of its cause."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

# In a process's environment: faulthandler prints every thread's stack on
# SIGABRT (and on a crash) into its stderr.
DIAGNOSABLE = {"PYTHONFAULTHANDLER": "1"}


def stopped(process: subprocess.Popen[bytes], log: Path, seconds: float) -> int:
    """``process``'s exit code once it has exited (it was asked to stop).

    Not exited within ``seconds``: SIGABRT, then the assertion carries the end
    of ``log`` (its stdout and stderr), where faulthandler wrote the stack of
    every thread -- the one that held it up among them."""
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        tail = log.read_text(errors="replace")[-12_000:]
        raise AssertionError(
            f"the process did not exit within {seconds:g} s of being asked; "
            f"its log ends (threads' stacks last):\n{tail}"
        ) from None
