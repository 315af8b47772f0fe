"""Progress bars for long work (kernel blocks, EP sweeps, sampling), silenced by ``quiet``.

Bars go to stderr so that ``--json`` output on stdout stays one clean object.
"""

import sys

from tqdm.auto import tqdm


def progress(iterable=None, *, total=None, desc: str = "", quiet: bool = False, unit: str = "it"):
    """A tqdm bar on stderr; ``quiet=True`` disables it (the iterable is still returned)."""
    return tqdm(
        iterable, total=total, desc=desc, disable=quiet, file=sys.stderr, leave=False, dynamic_ncols=True, unit=unit
    )


def announce(message: str, *, quiet: bool = False) -> None:
    """One line on stderr before long work (its expected time and memory), silenced by ``quiet``."""
    if not quiet:
        tqdm.write(message, file=sys.stderr)
