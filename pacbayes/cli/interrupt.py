"""Ctrl-C while the command line loads: one line and exit status 130 (torch-free, click-free)."""

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED = "pacbayes: interrupted"


def _exit_interrupted(signum: int, frame: FrameType | None) -> None:
    os.write(2, (INTERRUPTED + "\n").encode())
    os._exit(130)


@contextmanager
def exit_on_interrupt() -> Iterator[None]:
    """While the command line loads (numpy and click), Ctrl-C prints one line and exits with status 130 at
    once: a KeyboardInterrupt raised inside third-party import code can resurface as another error."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _exit_interrupted)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)
